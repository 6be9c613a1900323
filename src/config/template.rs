//! The recipient macros of `file-destination` and `command` (`$user`, `$domain`, `$sender`, …):
//! parsing a template once, checking its macro names at configuration time, and expanding it
//! for one recipient; and splitting `command` into words, each a template.
//!
//! Local delivery (`delivery::local`) runs what is parsed here; the syntax lives with the
//! configuration so that loading a configuration can reject a bad value without depending on
//! delivery.
//!
//! `$user` and `$domain` are lower-cased unless `macro-variables-preserve-case` is `yes`, as in
//! PowerMTA: mailbox names on disk should not depend on how a sender capitalised the address.

use std::fmt;

/// The macros a template may use.
const NAMES: &[&str] = &["user", "domain", "rcpt", "sender", "queue", "vmta", "jobid", "envid", "msgid"];

/// A template that names an unknown macro or leaves a `${` open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown macro ${0} (known: {known})", known = NAMES.iter().map(|n| format!("${n}")).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("unterminated ${{…}} macro")]
    Unterminated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Macro(&'static str),
}

/// A parsed `file-destination` or `command` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

/// What one recipient's macros expand to.
#[derive(Debug, Clone, Default)]
pub struct Macros<'a> {
    pub rcpt: &'a str,
    pub sender: &'a str,
    pub queue: &'a str,
    pub vmta: &'a str,
    pub job_id: &'a str,
    pub env_id: &'a str,
    pub msg_id: &'a str,
    /// `macro-variables-preserve-case`.
    pub preserve_case: bool,
}

impl Macros<'_> {
    fn value(&self, name: &str) -> String {
        let (user, domain) = self.rcpt.rsplit_once('@').unwrap_or((self.rcpt, ""));
        let case = |s: &str| if self.preserve_case { s.to_string() } else { s.to_ascii_lowercase() };
        match name {
            "user" => case(user),
            "domain" => case(domain),
            "rcpt" => self.rcpt.to_string(),
            "sender" => self.sender.to_string(),
            "queue" => self.queue.to_string(),
            "vmta" => self.vmta.to_string(),
            "jobid" => self.job_id.to_string(),
            "envid" => self.env_id.to_string(),
            "msgid" => self.msg_id.to_string(),
            _ => String::new(),
        }
    }
}

impl Template {
    /// `$name` (letters only) or `${name}`; `$$` is a literal `$`, and so is a `$` that no
    /// letter follows.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, used) = if let Some(inner) = after.strip_prefix('{') {
                let end = inner.find('}').ok_or(TemplateError::Unterminated)?;
                (&inner[..end], end + 2)
            } else if let Some(stripped) = after.strip_prefix('$') {
                literal.push('$');
                rest = stripped;
                continue;
            } else {
                let end = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() && !after.starts_with('{') {
                // `$1`, `$ `, a trailing `$`: not a macro, kept as written.
                literal.push('$');
                rest = after;
                continue;
            }
            let lower = name.to_ascii_lowercase();
            let known = NAMES.iter().find(|n| **n == lower).ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Macro(known));
            rest = &after[used..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template(parts))
    }

    /// The template with each macro replaced by `sanitize(value)`.
    pub fn expand(&self, macros: &Macros<'_>, sanitize: impl Fn(String) -> String) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Macro(name) => sanitize(macros.value(name)),
            })
            .collect()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                Part::Text(t) => f.write_str(&t.replace('$', "$$"))?,
                Part::Macro(name) => write!(f, "${{{name}}}")?,
            }
        }
        Ok(())
    }
}

/// A macro value made safe as one path component: it can neither climb out of the directory
/// the operator chose (`/`, a leading `.`) nor end the name early (NUL).
pub fn path_component(value: String) -> String {
    let mut v: String = value.chars().map(|c| if c == '/' || c == '\\' || c == '\0' { '_' } else { c }).collect();
    if v.starts_with('.') {
        v.replace_range(..1, "_");
    }
    v
}

/// A `command` line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command is empty")]
    Empty,
    #[error("unterminated quote in command")]
    Unterminated,
    #[error("command: {0}")]
    Template(#[from] TemplateError),
}

/// The words of a `command` line, each a template: double or single quotes group words; inside
/// double quotes `\"` and `\\` escape.
pub fn command_words(text: &str) -> Result<Vec<Template>, CommandError> {
    let words = split(text)?;
    if words.is_empty() {
        return Err(CommandError::Empty);
    }
    Ok(words.iter().map(|w| Template::parse(w)).collect::<Result<_, _>>()?)
}

/// Splits a command line into words.
fn split(text: &str) -> Result<Vec<String>, CommandError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(CommandError::Unterminated)? {
                        '"' => break,
                        '\\' => match chars.next().ok_or(CommandError::Unterminated)? {
                            e @ ('"' | '\\') => word.push(e),
                            other => {
                                word.push('\\');
                                word.push(other);
                            }
                        },
                        other => word.push(other),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(CommandError::Unterminated)? {
                        '\'' => break,
                        other => word.push(other),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn macros(rcpt: &str, preserve_case: bool) -> Macros<'_> {
        Macros { rcpt, sender: "bounce@ex.com", queue: "ex.org/v1", preserve_case, ..Macros::default() }
    }

    #[test]
    fn user_and_domain_are_lower_cased_unless_told_to_keep_the_case() {
        let t = Template::parse("/var/mail/$domain/$user").unwrap();
        assert_eq!(t.expand(&macros("Bob.Smith@Example.ORG", false), |v| v), "/var/mail/example.org/bob.smith");
        assert_eq!(t.expand(&macros("Bob.Smith@Example.ORG", true), |v| v), "/var/mail/Example.ORG/Bob.Smith");
    }

    #[test]
    fn braces_dollars_and_other_macros() {
        let t = Template::parse("x${user}y $$5 $sender $rcpt $queue $1").unwrap();
        assert_eq!(t.expand(&macros("A@b.c", false), |v| v), "xay $5 bounce@ex.com A@b.c ex.org/v1 $1");
        assert_eq!(t.to_string(), "x${user}y $$5 ${sender} ${rcpt} ${queue} $$1");
    }

    #[test]
    fn unknown_or_unterminated_macros_are_errors() {
        assert_eq!(Template::parse("/m/$home"), Err(TemplateError::Unknown("home".into())));
        assert_eq!(Template::parse("/m/${user"), Err(TemplateError::Unterminated));
        assert_eq!(Template::parse("/m/${}"), Err(TemplateError::Unknown(String::new())));
        assert!(Template::parse("/m/$home").unwrap_err().to_string().contains("$user"));
    }

    #[test]
    fn path_components_cannot_escape_their_directory() {
        let t = Template::parse("/m/$user").unwrap();
        assert_eq!(t.expand(&macros("../../etc/x@b.c", false), path_component), "/m/_._.._etc_x");
        assert_eq!(path_component(".hidden".into()), "_hidden");
    }
}
