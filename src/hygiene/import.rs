//! Reading suppression lists for import: one entry a line (address or `@domain`; `#` comments
//! and blank lines ignored), every bad line reported with its number, the rest kept.

use serde::{Deserialize, Serialize};

use super::store::Entry;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub text: String,
    pub error: String,
}

/// Parses `text` whose first line is line `first_line` of the operator's file.
pub fn parse_lines(text: &[u8], first_line: u64) -> (Vec<Entry>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(raw);
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match Entry::parse(entry) {
            Ok(e) => entries.push(e),
            Err(e) => {
                let shown: String = line.trim_end_matches('\r').chars().take(200).collect();
                bad.push(BadLine { line: first_line + i as u64, text: shown, error: e.to_string() })
            }
        }
    }
    (entries, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_keep_their_numbers() {
        let (entries, bad) = parse_lines(b"a@x.com\r\n# comment\n\nnot valid\n@y.org\nb@@z\n", 10);
        assert_eq!(entries.len(), 2);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [13, 15]);
        assert_eq!(bad[0].text, "not valid");
    }
}
