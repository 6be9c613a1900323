//! `domain-macro NAME LIST` and `$NAME` expansion in `<domain>` patterns (docs/config-reference.md,
//! "Syntax").
//!
//! Owns macro collection (anywhere at top level, so file order does not matter), nesting and loop
//! detection. Expansion returns each resulting pattern and whether a macro produced it, because
//! explicitly written domains beat macro-produced ones.

use std::collections::{BTreeMap, BTreeSet};

use super::diag::{Diagnostics, Location};
use super::tree::{Node, suggest};
use super::value::split_list;

#[derive(Debug, Default)]
pub struct Macros {
    defs: BTreeMap<String, (Vec<String>, Location)>,
    /// Names in definition order, so a loop is reported at the macro written first.
    order: Vec<String>,
    /// Macros that do not expand (a loop, an unknown macro in their list), already reported
    /// where they are defined.
    broken: BTreeSet<String>,
}

/// Why a `<domain>` pattern did not expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// It uses a macro that does not expand; that was reported where the macro is defined, and
    /// repeating it at every `<domain>` using the macro would only bury it.
    BrokenMacro,
    /// The pattern itself is wrong (an unknown macro, a lone `$`, too many patterns).
    Invalid(String),
}

/// What went wrong while expanding; `within` is the macro whose list has the problem (`None`
/// for the pattern being expanded).
enum Failure {
    Loop(Vec<String>),
    Unknown { name: String, within: Option<String> },
    NoName { within: Option<String> },
    TooMany { within: Option<String> },
    Broken,
}

/// Most patterns one `<domain>` argument may expand to: a guard against macro explosions.
const MAX_EXPANSION: usize = 10_000;

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Macros {
    pub fn collect(nodes: &[Node], diags: &mut Diagnostics) -> Macros {
        let mut macros = Macros::default();
        for node in nodes {
            let Node::Directive(d) = node else { continue };
            if d.name != "domain-macro" {
                continue;
            }
            let Some((name, values)) = d.args.split_first().filter(|(_, v)| !v.is_empty()) else {
                diags.error(
                    &d.location,
                    "domain-macro: expected NAME LIST like domain-macro msft hotmail.com,outlook.com",
                );
                continue;
            };
            if !valid_name(&name.text) {
                diags.error(
                    &name.location,
                    format!("domain-macro: invalid macro name {:?}: use letters, digits and '_'", name.text),
                );
                continue;
            }
            // PowerMTA keeps the last definition; say so, as a warning.
            if let Some((_, first)) = macros.defs.get(&name.text) {
                diags.warning(
                    &name.location,
                    format!(
                        "domain-macro {} is already defined at {}; this definition replaces it",
                        name.text,
                        first.file_line()
                    ),
                );
                macros.order.retain(|n| n != &name.text);
            }
            let list = split_list(&values.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" "));
            macros
                .defs
                .insert(name.text.clone(), (list.iter().map(|v| v.to_lowercase()).collect(), d.location.clone()));
            macros.order.push(name.text.clone());
        }
        // Each problem is reported once, at the definition that has it: a loop at the macro of
        // the loop written first, an unknown name at the macro whose list uses it. Macros that
        // merely use a broken one are broken too, silently.
        let mut broken = BTreeSet::new();
        for name in &macros.order {
            let Err(failure) = macros.expand_name(name, &mut Vec::new()) else { continue };
            broken.insert(name.clone());
            let (owner, message) = match failure {
                Failure::Loop(chain) => {
                    let repeated = chain.last().expect("a loop names a macro");
                    let first = chain.iter().position(|n| n == repeated).expect("the repeated macro is in the chain");
                    let mut cycle: Vec<&String> = chain[first..chain.len() - 1].iter().collect();
                    let earliest = (0..cycle.len())
                        .min_by_key(|i| macros.order.iter().position(|n| n == cycle[*i]))
                        .expect("a loop has members");
                    cycle.rotate_left(earliest);
                    let path: Vec<&str> = cycle.iter().chain([&cycle[0]]).map(|n| n.as_str()).collect();
                    let message = format!("macro loop: ${}", path.join(" -> $"));
                    (cycle[0].clone(), message)
                }
                Failure::Unknown { name: unknown, within } => {
                    let owner = within.unwrap_or_else(|| name.clone());
                    (owner, format!("unknown domain-macro ${unknown}{}", macros.suggestion(&unknown)))
                }
                Failure::NoName { within } => {
                    (within.unwrap_or_else(|| name.clone()), "'$' must be followed by a macro name".to_string())
                }
                Failure::TooMany { within } => {
                    (within.unwrap_or_else(|| name.clone()), format!("expands to more than {MAX_EXPANSION} patterns"))
                }
                Failure::Broken => continue,
            };
            // Diagnostics are deduplicated: a loop reached from each of its macros, or from a
            // macro using it, is one line.
            diags.error(&macros.defs[&owner].1, format!("domain-macro {owner}: {message}"));
        }
        macros.broken = broken;
        macros
    }

    /// ` (did you mean "$x"?)` for a mistyped macro name.
    fn suggestion(&self, name: &str) -> String {
        let known: Vec<String> = self.defs.keys().map(|k| format!("${k}")).collect();
        suggest(&format!("${name}"), known.iter().map(String::as_str))
    }

    /// Expands `$NAME` occurrences in a pattern. Returns (pattern, produced-by-macro).
    pub fn expand(&self, pattern: &str) -> Result<Vec<(String, bool)>, ExpandError> {
        if !pattern.contains('$') {
            return Ok(vec![(pattern.to_string(), false)]);
        }
        let results = self.expand_text(pattern, &mut Vec::new()).map_err(|f| match f {
            Failure::Broken => ExpandError::BrokenMacro,
            Failure::Loop(chain) => ExpandError::Invalid(format!("macro loop: ${}", chain.join(" -> $"))),
            Failure::Unknown { name, .. } => {
                ExpandError::Invalid(format!("unknown domain-macro ${name}{}", self.suggestion(&name)))
            }
            Failure::NoName { .. } => ExpandError::Invalid("'$' must be followed by a macro name".into()),
            Failure::TooMany { .. } => ExpandError::Invalid(format!("expands to more than {MAX_EXPANSION} patterns")),
        })?;
        Ok(results.into_iter().map(|p| (p, true)).collect())
    }

    fn expand_text(&self, text: &str, stack: &mut Vec<String>) -> Result<Vec<String>, Failure> {
        let Some(dollar) = text.find('$') else { return Ok(vec![text.to_string()]) };
        let after = &text[dollar + 1..];
        let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        let name = &after[..len];
        if name.is_empty() {
            return Err(Failure::NoName { within: stack.last().cloned() });
        }
        let values = self.expand_name(name, stack)?;
        let tails = self.expand_text(&after[len..], stack)?;
        let mut out = Vec::new();
        for v in &values {
            for t in &tails {
                out.push(format!("{}{v}{t}", &text[..dollar]));
                if out.len() > MAX_EXPANSION {
                    return Err(Failure::TooMany { within: stack.last().cloned() });
                }
            }
        }
        Ok(out)
    }

    fn expand_name(&self, name: &str, stack: &mut Vec<String>) -> Result<Vec<String>, Failure> {
        if self.broken.contains(name) {
            return Err(Failure::Broken);
        }
        if stack.iter().any(|s| s == name) {
            return Err(Failure::Loop(stack.iter().cloned().chain([name.to_string()]).collect()));
        }
        let Some((values, _)) = self.defs.get(name) else {
            return Err(Failure::Unknown { name: name.to_string(), within: stack.last().cloned() });
        };
        stack.push(name.to_string());
        let mut out = Vec::new();
        for v in values {
            out.extend(self.expand_text(v, stack)?);
        }
        stack.pop();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::parse_text;

    fn macros(text: &str) -> (Macros, Diagnostics) {
        let mut d = Diagnostics::default();
        let nodes = parse_text("m.conf", text, std::path::Path::new("."), &mut d);
        let m = Macros::collect(&nodes, &mut d);
        (m, d)
    }

    #[test]
    fn list_continued_after_trailing_comma() {
        let (m, d) = macros("domain-macro big a.com,b.com,\nc.com,d.com,\n  e.com\nmax-smtp-out 5\n");
        assert!(d.is_empty(), "{d}");
        let got: Vec<String> = m.expand("$big").unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, ["a.com", "b.com", "c.com", "d.com", "e.com"]);
    }

    #[test]
    fn redefinition_warns_and_the_last_wins() {
        let (m, d) = macros("domain-macro x a.com\ndomain-macro x b.com\n");
        assert!(!d.has_errors(), "{d}");
        assert_eq!(d.warnings().count(), 1, "{d}");
        assert_eq!(m.expand("$x").unwrap(), [("b.com".to_string(), true)]);
    }

    #[test]
    fn nested_expansion() {
        let (m, d) = macros("domain-macro com com, net\ndomain-macro tld $com,org\n");
        assert!(d.is_empty(), "{d}");
        let got: Vec<String> = m.expand("yahoo.$tld").unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, ["yahoo.com", "yahoo.net", "yahoo.org"]);
        assert_eq!(m.expand("x.com").unwrap(), [("x.com".to_string(), false)]);
    }

    #[test]
    fn loops_and_unknown_names() {
        let (m, d) = macros("domain-macro a $b\ndomain-macro b $a\n");
        assert_eq!(d.to_string(), "m.conf:1:1: error: domain-macro a: macro loop: $a -> $b -> $a\n");
        assert_eq!(m.expand("x.$b").unwrap_err(), ExpandError::BrokenMacro);
        let (m, _) = macros("domain-macro a x\n");
        assert_eq!(m.expand("$nope.com").unwrap_err(), ExpandError::Invalid("unknown domain-macro $nope".into()));
        assert_eq!(
            m.expand("$aa.com").unwrap_err(),
            ExpandError::Invalid("unknown domain-macro $aa (did you mean \"$a\"?)".into())
        );
    }

    #[test]
    fn a_loop_is_reported_once_at_the_macro_written_first() {
        // `uses` reaches the loop of `tld` and `cc` without being part of it; `cc` is written
        // before `tld`, so the loop is told from `cc`.
        let (m, d) = macros("domain-macro uses $tld\ndomain-macro cc de,$tld\ndomain-macro tld $cc,com\n");
        assert_eq!(d.to_string(), "m.conf:2:1: error: domain-macro cc: macro loop: $cc -> $tld -> $cc\n");
        for pattern in ["a.$uses", "a.$cc", "a.$tld"] {
            assert_eq!(m.expand(pattern).unwrap_err(), ExpandError::BrokenMacro, "{pattern}");
        }
    }

    #[test]
    fn an_unknown_name_is_reported_at_the_macro_using_it() {
        let (m, d) = macros("domain-macro outer $inner,x\ndomain-macro inner $nope\n");
        assert_eq!(d.to_string(), "m.conf:2:1: error: domain-macro inner: unknown domain-macro $nope\n");
        assert_eq!(m.expand("a.$outer").unwrap_err(), ExpandError::BrokenMacro);
    }
}
