//! `<email-patterns>` of a `<feedback-loop-processor>` or `<bounce-processor>`: regular
//! expressions, one a line in each `body-pattern-file`, that read reports in no standard format
//! (a provider's plain-text complaint, a homegrown bounce). A message the processor does not
//! recognise as ARF/JMRP or a DSN is matched against them in order, headers and body as text;
//! the first pattern that matches with a named capture `rcpt` makes it a report:
//!
//! - `rcpt` (required): the recipient complained about or bounced;
//! - `orig`: the original sender; `status` (a DSN status such as `5.1.1`, default `5.0.0`) and
//!   `diag` (default: the matched text) for bounces (a status of class 5 is `rb`, others `rs`);
//!   `type` for complaints (the `feedbackType`, default `abuse`); `envId`.
//!
//! `log-match-info yes` logs which file, line and pattern matched and what it captured. Lines
//! that are empty or start with `#` are skipped; a pattern without an `rcpt` capture is ignored
//! with a warning; one that does not compile refuses the configuration, naming the file and
//! line.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::config::model::OtherBlock;
use crate::config::value::Value;
use crate::config::{Config, Dir};

/// One compiled pattern and where it came from.
#[derive(Debug)]
struct Pattern {
    regex: Regex,
    file: PathBuf,
    line: usize,
}

/// The `<email-patterns>` of one processor.
#[derive(Debug, Default)]
pub struct EmailPatterns {
    patterns: Vec<Pattern>,
    log_match_info: bool,
}

/// What a pattern read from a message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Matched {
    pub rcpt: String,
    pub orig: String,
    pub status: String,
    pub diag: String,
    pub feedback_type: String,
    pub env_id: String,
}

/// A `body-pattern-file` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatternFileError {
    #[error("body-pattern-file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line (counted from 1) that is not a regular expression.
    #[error("{}:{line}: {source}", path.display())]
    Regex {
        path: PathBuf,
        line: usize,
        #[source]
        source: regex::Error,
    },
}

impl EmailPatterns {
    /// The patterns of a processor block's `<email-patterns>` children.
    pub fn from_block(config: &Config, block: &OtherBlock) -> Result<EmailPatterns, PatternFileError> {
        let mut out = EmailPatterns::default();
        for child in block.children.iter().filter(|c| c.tag == "email-patterns") {
            out.log_match_info |= child.settings.flag(Dir::LogMatchInfo);
            for e in child.settings.all(Dir::BodyPatternFile) {
                if let Value::Path(p) = &e.value {
                    out.load(&config.path(p))?;
                }
            }
        }
        Ok(out)
    }

    fn load(&mut self, path: &Path) -> Result<(), PatternFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PatternFileError::Read { path: path.to_path_buf(), source })?;
        for (i, line) in text.lines().enumerate() {
            let line_text = line.trim();
            if line_text.is_empty() || line_text.starts_with('#') {
                continue;
            }
            let regex = Regex::new(line_text).map_err(|source| PatternFileError::Regex {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?;
            if !regex.capture_names().flatten().any(|n| n == "rcpt") {
                // It could never name a recipient: said once, not an error (PowerMTA accepts it).
                tracing::warn!("{}:{}: the pattern has no (?P<rcpt>…) capture; it is ignored", path.display(), i + 1);
                continue;
            }
            self.patterns.push(Pattern { regex, file: path.to_path_buf(), line: i + 1 });
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first pattern's reading of `message`, if one matches with a non-empty `rcpt`.
    /// `what` names the processor in the log line of `log-match-info`.
    pub fn find(&self, message: &[u8], what: &str) -> Option<Matched> {
        if self.patterns.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(message);
        for p in &self.patterns {
            let Some(caps) = p.regex.captures(&text) else { continue };
            let get = |name: &str| caps.name(name).map_or(String::new(), |m| m.as_str().trim().to_string());
            let rcpt = get("rcpt");
            if rcpt.is_empty() {
                continue;
            }
            let whole = caps.get(0).map_or("", |m| m.as_str()).trim();
            let matched = Matched {
                orig: get("orig"),
                status: Some(get("status")).filter(|s| !s.is_empty()).unwrap_or_else(|| "5.0.0".into()),
                diag: Some(get("diag")).filter(|s| !s.is_empty()).unwrap_or_else(|| whole.to_string()),
                feedback_type: Some(get("type")).filter(|s| !s.is_empty()).unwrap_or_else(|| "abuse".into()),
                env_id: get("envId"),
                rcpt,
            };
            if self.log_match_info {
                tracing::info!(
                    "{what} processor: {}:{} /{}/ matched: rcpt={} orig={} status={}",
                    p.file.display(),
                    p.line,
                    p.regex.as_str(),
                    matched.rcpt,
                    matched.orig,
                    matched.status
                );
            }
            return Some(matched);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileCheck, load_str};

    fn patterns(dir: &Path, file: &str) -> Result<EmailPatterns, PatternFileError> {
        std::fs::write(dir.join("p.txt"), file).unwrap();
        let text = "<bounce-processor>\n <address-list>\n  domain b.example\n </address-list>\n <email-patterns>\n  body-pattern-file p.txt\n  log-match-info yes\n </email-patterns>\n</bounce-processor>\n";
        let loaded = load_str("p.conf", text, dir, FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.sorted());
        let block = loaded.config.blocks_of("bounce-processor").next().unwrap();
        EmailPatterns::from_block(&loaded.config, block)
    }

    #[test]
    fn first_matching_pattern_with_a_recipient_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = patterns(
            dir.path(),
            "# homegrown bounces\n\nnever (?P<rcpt>\\S+@nowhere)\n(?m)^Could not deliver to <(?P<rcpt>[^>]+)>: (?P<status>\\d\\.\\d\\.\\d) (?P<diag>.*)$\n(?P<rcpt>\\S+@\\S+) complained\n",
        )
        .unwrap();
        assert!(p.log_match_info);
        let m = p
            .find(b"Subject: failure\r\n\r\nCould not deliver to <gone@x.example>: 5.1.1 no such user\r\n", "bounce")
            .unwrap();
        assert_eq!((m.rcpt.as_str(), m.status.as_str(), m.diag.as_str()), ("gone@x.example", "5.1.1", "no such user"));
        let m = p.find(b"\r\nv@isp.example complained\r\n", "bounce").unwrap();
        assert_eq!((m.rcpt.as_str(), m.status.as_str(), m.feedback_type.as_str()), ("v@isp.example", "5.0.0", "abuse"));
        assert_eq!(p.find(b"Subject: hello\r\n\r\nnothing here\r\n", "bounce"), None);
    }

    #[test]
    fn bad_patterns_are_refused_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let e = patterns(dir.path(), "# c\n(?P<rcpt>unclosed\n").unwrap_err().to_string();
        assert!(e.contains("p.txt:2"), "{e}");
        assert!(patterns(dir.path(), "no capture here\n").unwrap().is_empty(), "ignored, not refused");
    }
}
