//! Assembling server replies from lines, with hard bounds.
//!
//! Our own parser rather than smtp-proto's `ResponseReceiver`: that one silently truncates a
//! reply at 4 KB and then resumes mid-line, does not check that every line of a multi-line
//! reply carries the same code, and has no line-count bound. Here a reply is at most
//! `MAX_REPLY_BYTES` and `MAX_REPLY_LINES`; past either the session is a protocol error, so a
//! receiver answering with an endless multi-line reply costs at most that much memory.

use std::borrow::Cow;

use crate::smtp::Reply;

pub const MAX_REPLY_BYTES: usize = 100 * 1024;
pub const MAX_REPLY_LINES: usize = 1000;

/// A server reply that breaks the protocol or the bounds; the session ends with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply longer than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    #[error("reply longer than {MAX_REPLY_BYTES} bytes")]
    TooLong,
    /// The line (its first 60 bytes, lossily) does not start with a code.
    #[error("not an SMTP reply: {0:?}")]
    NotAReply(String),
    #[error("reply code {0} out of range")]
    CodeRange(u16),
    #[error("reply line with code {code} inside a {first} reply")]
    MixedCodes { code: u16, first: u16 },
}

/// Collects the lines of one reply.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: u16,
    enhanced: String,
    text: String,
    lines: usize,
    bytes: usize,
}

impl ReplyParser {
    /// Feeds one line (without its line ending). Returns the reply when this was its last line.
    pub fn push(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        self.lines += 1;
        self.bytes += line.len() + 2;
        if self.lines > MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        if self.bytes > MAX_REPLY_BYTES {
            return Err(ReplyError::TooLong);
        }
        let (code, last, text) = split_line(line)?;
        // Non-UTF-8 text (Latin-1 servers exist) is kept, lossily.
        let text = String::from_utf8_lossy(text);
        let text = text.as_ref();
        if self.lines == 1 {
            self.code = code;
            self.enhanced = enhanced_prefix(code, text).unwrap_or_default().to_string();
        } else if code != self.code {
            return Err(ReplyError::MixedCodes { code, first: self.code });
        } else {
            self.text.push('\n');
        }
        let text = match text.strip_prefix(self.enhanced.as_str()) {
            Some(rest) if !self.enhanced.is_empty() && (rest.is_empty() || rest.starts_with(' ')) => {
                rest.strip_prefix(' ').unwrap_or(rest)
            }
            _ => text,
        };
        self.text.push_str(text);
        if !last {
            return Ok(None);
        }
        let done = std::mem::take(self);
        Ok(Some(Reply { code: done.code, enhanced: Cow::Owned(done.enhanced), text: Cow::Owned(done.text) }))
    }

    /// Bytes held for a reply not yet complete (for the caller's bound on a partial line).
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }
}

/// `CODE[ -]TEXT` or a bare `CODE`; the code must be 2xx–5xx.
fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    let shown = || String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
    let digits = line.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
    let Some(digits) = digits else {
        return Err(ReplyError::NotAReply(shown()));
    };
    let code = digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..600).contains(&code) {
        return Err(ReplyError::CodeRange(code));
    }
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(ReplyError::NotAReply(shown())),
    };
    Ok((code, last, text))
}

/// An RFC 3463 `class.subject.detail` at the start of the text whose class agrees with the
/// reply code.
fn enhanced_prefix(code: u16, text: &str) -> Option<&str> {
    let word = text.split(' ').next()?;
    let mut parts = word.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    let numeric = |p: &str, max: usize| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit());
    // The class is checked to be one digit before its value is compared with the code's.
    let agrees = numeric(class, 1) && u16::from(class.as_bytes()[0] - b'0') == code / 100;
    (parts.next().is_none() && agrees && numeric(subject, 3) && numeric(detail, 3)).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Option<Reply>, ReplyError> {
        let mut p = ReplyParser::default();
        let mut out = Ok(None);
        for l in lines {
            out = p.push(l.as_bytes());
            if !matches!(out, Ok(None)) {
                break;
            }
        }
        out
    }

    #[test]
    fn single_multi_and_enhanced() {
        let r = parse(&["250 2.1.5 ok"]).unwrap().unwrap();
        assert_eq!((r.code, &*r.enhanced, &*r.text), (250, "2.1.5", "ok"));
        let r = parse(&["550-5.1.1 no such user", "550-5.1.1 really", "550 5.1.1 bye"]).unwrap().unwrap();
        assert_eq!((r.code, &*r.enhanced, &*r.text), (550, "5.1.1", "no such user\nreally\nbye"));
        let r = parse(&["250-mx.example.com hi", "250-PIPELINING", "250 SIZE 1000"]).unwrap().unwrap();
        assert_eq!((&*r.enhanced, &*r.text), ("", "mx.example.com hi\nPIPELINING\nSIZE 1000"));
        let r = parse(&["354"]).unwrap().unwrap();
        assert_eq!((r.code, &*r.text), (354, ""));
        // A class that disagrees with the code is text, not an enhanced code.
        let r = parse(&["550 4.2.2 full"]).unwrap().unwrap();
        assert_eq!((&*r.enhanced, &*r.text), ("", "4.2.2 full"));
        let r = parse(&["421 4.3.2"]).unwrap().unwrap();
        assert_eq!((&*r.enhanced, &*r.text), ("4.3.2", ""));
        assert_eq!(parse(&["250-first"]), Ok(None));
        let mut p = ReplyParser::default();
        let r = p.push(b"550 5.1.1 Benutzer unbekannt \xfc").unwrap().unwrap();
        assert_eq!(&*r.text, "Benutzer unbekannt \u{fffd}");
    }

    #[test]
    fn garbage_and_mixed_codes_are_errors() {
        assert!(parse(&["hello"]).is_err());
        assert!(parse(&["25"]).is_err());
        assert!(parse(&["250x"]).is_err());
        assert!(parse(&["999 what"]).is_err());
        assert!(parse(&["250-a", "550 b"]).is_err());
    }

    #[test]
    fn bounded_in_lines_and_bytes() {
        let mut p = ReplyParser::default();
        let err = (0..2000).find_map(|_| p.push(b"250-x").err()).unwrap().to_string();
        assert!(err.contains("1000 lines"), "{err}");
        let mut p = ReplyParser::default();
        let long = format!("250-{}", "x".repeat(500));
        let err = (0..1000).find_map(|_| p.push(long.as_bytes()).err()).unwrap().to_string();
        assert!(err.contains("bytes"), "{err}");
        assert!(p.pending_bytes() <= MAX_REPLY_BYTES + long.len() + 2);
    }
}
