//! SMTP replies: a code, an enhanced status code (RFC 3463) and text, written as one or more
//! `CODE-text` lines.

use std::borrow::Cow;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `x.y.z`, or empty for replies that carry none (greeting, EHLO, 354, 334).
    pub enhanced: Cow<'static, str>,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub fn new(code: u16, enhanced: impl Into<Cow<'static, str>>, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply { code, enhanced: enhanced.into(), text: text.into() }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Appends the wire form. Text with newlines becomes a multi-line reply; every line carries
    /// the enhanced code, as RFC 2034 asks.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(sep as u8);
            if !self.enhanced.is_empty() {
                out.extend_from_slice(self.enhanced.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enhanced.is_empty() {
            write!(f, "{} {}", self.code, self.text.replace('\n', " "))
        } else {
            write!(f, "{} {} {}", self.code, self.enhanced, self.text.replace('\n', " "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(250, "2.0.0", "OK").write_to(&mut out);
        Reply::new(250, "", "mx.example.com Hello\nPIPELINING\nSIZE 0").write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "250 2.0.0 OK\r\n250-mx.example.com Hello\r\n250-PIPELINING\r\n250 SIZE 0\r\n"
        );
    }
}
