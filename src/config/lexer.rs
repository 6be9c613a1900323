//! Splits configuration text into lines of tokens: block openings `<tag arg>`, closings
//! `</tag>` and directives `name value…`.
//!
//! Owns the lexical rules (docs/config-reference.md, "Syntax"): `#` comments, double quotes with
//! `\"` and `\\` escapes, case-insensitive names. Knows nothing about which directives exist.

use std::sync::Arc;

use super::diag::{Diagnostics, Location};

/// One word of a line. `quoted` is true when any part of it was written in double quotes, so
/// that `""` (an empty quoted token) can clear an inherited value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
    pub location: Location,
    /// Whether the first and the last character were written outside double quotes: only a bare
    /// `,` at either end joins the token to its neighbour in a list (`a, b` is `a,b`; `"a," b`
    /// is two values).
    pub bare_ends: (bool, bool),
}

impl Token {
    /// A token written without quotes.
    pub fn bare(text: impl Into<String>, location: Location) -> Token {
        let text = text.into();
        let bare = !text.is_empty();
        Token { text, quoted: false, location, bare_ends: (bare, bare) }
    }

    /// Ends with a `,` written outside quotes: the list continues in the next token.
    pub fn continues_list(&self) -> bool {
        self.bare_ends.1 && self.text.ends_with(',')
    }

    /// Starts with a `,` written outside quotes: the token continues the previous one's list.
    pub fn continues_previous(&self) -> bool {
        self.bare_ends.0 && self.text.starts_with(',')
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Open {
        tag: String,
        tag_location: Location,
        arg: Option<Token>,
    },
    Close {
        tag: String,
        location: Location,
    },
    /// `rest` is the raw text after the name (comment removed, not split), for values such as
    /// regexes whose spaces matter.
    /// `full` is the whole line from the name on, for entries that are all pattern
    /// (`/message +content/ content-related` in `<bounce-category-patterns>`).
    Directive {
        name: String,
        name_location: Location,
        args: Vec<Token>,
        rest: Token,
        full: String,
    },
}

/// Lexes a whole file. Lines with errors are reported and skipped, so one typo does not hide
/// the problems after it. A tag with a recoverable error (no closing `>`, text after it) is
/// reported and still opens or closes its block, so the lines after it are not misread.
pub fn lex(file: &Arc<str>, text: &str, diags: &mut Diagnostics) -> Vec<Line> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    let raws: Vec<&str> = text.split('\n').map(|r| r.strip_suffix('\r').unwrap_or(r)).collect();
    let mut in_categories = false;
    let mut index = 0;
    while index < raws.len() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let trimmed = raws[index].trim_start().to_ascii_lowercase();
        if trimmed.starts_with("<bounce-category-patterns") {
            in_categories = true;
        } else if trimmed.starts_with("</bounce-category-patterns") {
            in_categories = false;
        }
        let joined;
        let raw = match in_categories.then(|| join_wrapped_regex(&raws, index)).flatten() {
            Some((text, next)) => {
                joined = text;
                index = next;
                joined.as_str()
            }
            None => {
                index += 1;
                raws[index - 1]
            }
        };
        let mut report = |(col, message): LexError| diags.error(&Location::new(file, number, col), message);
        match lex_line(file, number, raw, &mut report) {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => {}
            Err(e) => report(e),
        }
    }
    lines
}

/// Most lines a `/regex/ category` entry wrapped by copy-paste may span.
const MAX_WRAPPED_LINES: usize = 6;

/// A `<bounce-category-patterns>` entry whose regex a copy-paste wrapped across lines: line
/// `start` opens a `/regex` without closing it, and the following lines (blank lines aside)
/// continue it up to the line holding the closing `/`. Returns the joined text and the index of
/// the line after the entry, or `None` when `start` is not such an entry or the regex is not
/// closed before another entry, a tag or a comment begins: a truncated line stays one line, and
/// one error.
///
/// A wrap inside a word joins without a space (`activa` + `ted`); one across blank lines between
/// two words, or onto an indented line (an editor's wrap at a space), joins with one. A line
/// `/ category` closes the regex.
fn join_wrapped_regex(raws: &[&str], start: usize) -> Option<(String, usize)> {
    let first = raws[start].trim_start();
    if !first.starts_with('/') || closing_slash(&first[1..]) {
        return None;
    }
    let mut text = raws[start].to_string();
    let mut next = start + 1;
    let mut blank = false;
    while next < raws.len() && next - start <= MAX_WRAPPED_LINES {
        let line = raws[next];
        next += 1;
        if line.trim().is_empty() {
            blank = true;
            continue;
        }
        let trimmed = line.trim_start();
        // `/ category` alone on a line closes the regex; any other line starting with `/` is a
        // new entry.
        let closing = trimmed
            .strip_prefix('/')
            .is_some_and(|c| c.starts_with(char::is_whitespace) && c.split_whitespace().count() == 1);
        if (trimmed.starts_with('/') && !closing) || trimmed.starts_with(['<', '#']) {
            return None;
        }
        let words_meet =
            text.ends_with(|c: char| c.is_alphanumeric()) && trimmed.starts_with(|c: char| c.is_alphanumeric());
        let indented = trimmed.len() < line.len();
        if !closing && !text.ends_with(char::is_whitespace) && ((blank && words_meet) || indented) {
            // An editor's wrap at a space: a blank line between two words, or the continuation
            // indented like the entry.
            text.push(' ');
        }
        text.push_str(if closing || text.ends_with(char::is_whitespace) || indented { trimmed } else { line });
        if closing_slash(line) {
            return Some((text, next));
        }
        blank = false;
    }
    None
}

/// Whether `text` holds an unescaped `/`.
fn closing_slash(text: &str) -> bool {
    let mut escaped = false;
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return true,
            _ => {}
        }
    }
    false
}

type LexError = (u32, String);

fn lex_line(
    file: &Arc<str>,
    number: u32,
    raw: &str,
    report: &mut dyn FnMut(LexError),
) -> Result<Option<Line>, LexError> {
    let tag_mode = raw.trim_start().starts_with('<');
    let (tokens, content_chars) = tokenize(file, number, raw, tag_mode)?;
    let Some(first) = tokens.first() else { return Ok(None) };
    if !first.quoted && first.text.starts_with('<') {
        return lex_tag(file, number, tokens, report).map(Some);
    }
    let mut tokens = tokens.into_iter();
    let name_token = tokens.next().expect("non-empty");
    let args: Vec<Token> = tokens.collect();
    let rest = match args.first() {
        Some(first) => {
            let start = first.location.col as usize - 1;
            let text: String = raw.chars().skip(start).take(content_chars.saturating_sub(start)).collect();
            Token::bare(text.trim_end(), first.location.clone())
        }
        None => Token::bare("", name_token.location.clone()),
    };
    let start = name_token.location.col as usize - 1;
    let full: String = raw.chars().skip(start).take(content_chars.saturating_sub(start)).collect();
    Ok(Some(Line::Directive {
        name: name_token.text.to_lowercase(),
        name_location: name_token.location,
        args,
        rest,
        full: full.trim_end().to_string(),
    }))
}

/// `<tag arg…>` or `</tag …>`: the tokenizer emits the first unquoted `>` as its own token.
/// A missing `>` and text after it are reported through `report`; the tag still counts, so the
/// block it opens or closes keeps the lines after it in place.
fn lex_tag(
    file: &Arc<str>,
    number: u32,
    tokens: Vec<Token>,
    report: &mut dyn FnMut(LexError),
) -> Result<Line, LexError> {
    let open_col = tokens[0].location.col;
    // Reported once the tag turns out to be usable; otherwise it is the line's only error.
    let mut unterminated = None;
    let close = match tokens.iter().position(|t| !t.quoted && t.text == ">") {
        Some(close) => {
            if let Some(extra) = tokens.get(close + 1) {
                report((extra.location.col, format!("unexpected text after '>': {:?}", extra.text)));
            }
            close
        }
        None => {
            unterminated = Some((open_col, "unterminated tag: expected '>' at the end of the line".to_string()));
            tokens.len()
        }
    };
    let mut words: Vec<Token> = tokens.into_iter().take(close).collect();
    words[0].text.remove(0);
    words[0].location.col += 1;
    if words[0].text.is_empty() && !words[0].quoted {
        words.remove(0);
    }
    let mut words = words.into_iter();
    let Some(tag_token) = words.next() else {
        return Err(unterminated.unwrap_or_else(|| (open_col, "empty tag '<>'".into())));
    };
    if let Some(tag) = tag_token.text.strip_prefix('/') {
        // Closing tags may carry a trailing argument (`</domain-key-list name>`); it is ignored.
        let tag = tag.trim();
        if tag.is_empty() {
            return Err(unterminated.unwrap_or_else(|| (open_col, "empty closing tag '</>'".into())));
        }
        if let Some(e) = unterminated {
            report(e);
        }
        return Ok(Line::Close { tag: tag.to_lowercase(), location: Location::new(file, number, open_col) });
    }
    if let Some(e) = unterminated {
        report(e);
    }
    let rest: Vec<Token> = words.collect();
    let arg = if rest.is_empty() {
        None
    } else {
        let location = rest[0].location.clone();
        let quoted = rest.iter().any(|t| t.quoted);
        let bare_ends = (rest[0].bare_ends.0, rest[rest.len() - 1].bare_ends.1);
        let text = rest.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ");
        Some(Token { text, quoted, location, bare_ends })
    };
    Ok(Line::Open { tag: tag_token.text.to_lowercase(), tag_location: Location::new(file, number, open_col), arg })
}

/// Splits one line into tokens, dropping the comment. A `"` starts a quoted run anywhere in a
/// token (shell-like), so `"a b"` and `x"a b"` are one token each.
/// Also returns how many characters of the line precede the comment.
/// In `tag_mode` an unquoted `>` ends the current token and is a token of its own.
fn tokenize(file: &Arc<str>, number: u32, raw: &str, tag_mode: bool) -> Result<(Vec<Token>, usize), LexError> {
    let mut tokens = Vec::new();
    let mut chars = raw.chars().peekable();
    let mut col: u32 = 0;
    let mut current: Option<Token> = None;
    while let Some(c) = chars.next() {
        col += 1;
        match c {
            '#' => {
                col -= 1;
                break;
            }
            c if c.is_whitespace() => {
                if let Some(t) = current.take() {
                    tokens.push(t);
                }
            }
            '>' if tag_mode => {
                if let Some(t) = current.take() {
                    tokens.push(t);
                }
                tokens.push(Token::bare(">", Location::new(file, number, col)));
            }
            '"' => {
                let start = col;
                let token = current.get_or_insert_with(|| Token {
                    text: String::new(),
                    quoted: true,
                    location: Location::new(file, number, start),
                    bare_ends: (false, false),
                });
                token.quoted = true;
                token.bare_ends.1 = false;
                let mut terminated = false;
                while let Some(q) = chars.next() {
                    col += 1;
                    match q {
                        '"' => {
                            terminated = true;
                            break;
                        }
                        '\\' => match chars.peek() {
                            Some(&e @ ('"' | '\\')) => {
                                chars.next();
                                col += 1;
                                token.text.push(e);
                            }
                            _ => token.text.push('\\'),
                        },
                        q => token.text.push(q),
                    }
                }
                if !terminated {
                    return Err((start, "unterminated quoted string: missing closing '\"'".into()));
                }
            }
            c => {
                let start = col;
                let token = current.get_or_insert_with(|| Token {
                    text: String::new(),
                    quoted: false,
                    location: Location::new(file, number, start),
                    bare_ends: (true, true),
                });
                token.text.push(c);
                token.bare_ends.1 = true;
            }
        }
    }
    if let Some(t) = current.take() {
        tokens.push(t);
    }
    Ok((tokens, col as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_ok(text: &str) -> Vec<Line> {
        let mut d = Diagnostics::default();
        let file: Arc<str> = Arc::from("t.conf");
        let lines = lex(&file, text, &mut d);
        assert!(d.is_empty(), "{d}");
        lines
    }

    fn fulls(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| match l {
                Line::Directive { full, .. } => Some(full.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn wrapped_category_regexes_are_joined() {
        let text = "<bounce-category-patterns>\n  /mailbox (is )?not activa\nted/ inactive-mailbox\n\
                    /does not \nexist|bad|\n\ninvalid)/ bad-mailbox\n/(is)? not\n\nactivated/ other\n\
                    /quota/ quota-issues\n    /(user|mailbox)\n    (is|has)? inactive\n    / inactive-mailbox\n\
                    /not\n    found/ bad-mailbox\n\t/a \n\tb/ x\n</bounce-category-patterns>\n";
        let lines = lex_ok(text);
        assert_eq!(
            fulls(&lines),
            [
                "/mailbox (is )?not activated/ inactive-mailbox",
                "/does not exist|bad|invalid)/ bad-mailbox",
                "/(is)? not activated/ other",
                "/quota/ quota-issues",
                "/(user|mailbox) (is|has)? inactive/ inactive-mailbox",
                "/not found/ bad-mailbox",
                "/a b/ x",
            ]
        );
    }

    #[test]
    fn truncated_category_regexes_stay_one_line_each() {
        let text = "<bounce-category-patterns>\n/user has full\n/message size exceeds\n/quota/ quota\n\
                    /cut\n</bounce-category-patterns>\n/outside\nnext line/ x\n";
        let lines = lex_ok(text);
        assert_eq!(
            fulls(&lines),
            ["/user has full", "/message size exceeds", "/quota/ quota", "/cut", "/outside", "next line/ x"]
        );
    }

    #[test]
    fn directive_with_comment_and_quotes() {
        let lines = lex_ok("Max-SMTP-Out 20 # note\nqueue-to \"hot mail\"\nx \"a\\\"b#c\"");
        match &lines[0] {
            Line::Directive { name, args, .. } => {
                assert_eq!(name, "max-smtp-out");
                assert_eq!(args.len(), 1);
                assert_eq!(args[0].text, "20");
                assert_eq!(args[0].location.col, 14);
            }
            other => panic!("{other:?}"),
        }
        match &lines[1] {
            Line::Directive { args, .. } => assert_eq!(args[0].text, "hot mail"),
            other => panic!("{other:?}"),
        }
        match &lines[2] {
            Line::Directive { args, .. } => assert_eq!(args[0].text, "a\"b#c"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tags_open_and_close() {
        let lines = lex_ok("<domain [*.]x.com>\n</domain>\n</domain-key-list name>\n<acct-file |/bin/cat -u>");
        assert!(matches!(&lines[0], Line::Open { tag, arg: Some(a), .. } if tag == "domain" && a.text == "[*.]x.com"));
        assert!(matches!(&lines[1], Line::Close { tag, .. } if tag == "domain"));
        assert!(matches!(&lines[2], Line::Close { tag, .. } if tag == "domain-key-list"));
        assert!(matches!(&lines[3], Line::Open { arg: Some(a), .. } if a.text == "|/bin/cat -u"));
    }

    #[test]
    fn empty_quotes_are_a_token() {
        let lines = lex_ok("queue-to \"\"");
        assert!(matches!(&lines[0], Line::Directive { args, .. } if args[0].quoted && args[0].text.is_empty()));
    }

    #[test]
    fn errors_name_the_column() {
        let mut d = Diagnostics::default();
        let file: Arc<str> = Arc::from("t.conf");
        lex(&file, "  <domain x.com\nfoo \"bar", &mut d);
        let all: Vec<String> = d.iter().map(|x| x.to_string()).collect();
        assert_eq!(all[0], "t.conf:1:3: error: unterminated tag: expected '>' at the end of the line");
        assert_eq!(all[1], "t.conf:2:5: error: unterminated quoted string: missing closing '\"'");
    }

    fn lex_reporting(text: &str) -> (Vec<Line>, Vec<String>) {
        let mut d = Diagnostics::default();
        let lines = lex(&Arc::from("t.conf"), text, &mut d);
        (lines, d.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_tag_with_a_mistake_still_opens_its_block() {
        let (lines, errors) = lex_reporting("<domain gmail.com\n<domain x.com> max-smtp-out 3\n</domain\n");
        assert_eq!(
            errors,
            [
                "t.conf:1:1: error: unterminated tag: expected '>' at the end of the line",
                "t.conf:2:16: error: unexpected text after '>': \"max-smtp-out\"",
                "t.conf:3:1: error: unterminated tag: expected '>' at the end of the line",
            ]
        );
        assert!(matches!(&lines[0], Line::Open { tag, arg: Some(a), .. } if tag == "domain" && a.text == "gmail.com"));
        assert!(matches!(&lines[1], Line::Open { tag, arg: Some(a), .. } if tag == "domain" && a.text == "x.com"));
        assert!(matches!(&lines[2], Line::Close { tag, .. } if tag == "domain"));
        // Nothing usable: one error, no line.
        let (lines, errors) = lex_reporting("<\n");
        assert_eq!(errors, ["t.conf:1:1: error: unterminated tag: expected '>' at the end of the line"]);
        assert!(lines.is_empty());
    }

    #[test]
    fn only_bare_commas_continue_a_list() {
        let lines = lex_ok("x a, \"b,\" ,c \"\"d");
        let Line::Directive { args, .. } = &lines[0] else { panic!("{lines:?}") };
        let flags: Vec<(bool, bool)> = args.iter().map(|t| (t.continues_previous(), t.continues_list())).collect();
        assert_eq!(flags, [(false, true), (false, false), (true, false), (false, false)]);
    }
}
