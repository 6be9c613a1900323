//! MTA-STS (RFC 8461) texts: the `_mta-sts` TXT record that announces a policy and its id, the
//! policy file served at `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, and whether an MX
//! host name matches the policy's `mx` patterns. Pure parsing: no I/O.

use serde::{Deserialize, Serialize};

/// A policy file larger than this is not a policy (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// `max_age` is capped at one year (RFC 8461 §3.2: at most 31557600).
pub const MAX_AGE_CAP: u64 = 31_557_600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// `mx` patterns, lower case, as written (`mx.example.com`, `*.example.net`).
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is not UTF-8 text")]
    NotText,
    #[error("the policy lacks \"version: STSv1\"")]
    Version,
    #[error("the policy has no valid mode (enforce, testing or none)")]
    Mode,
    #[error("the policy has no valid max_age")]
    MaxAge,
    #[error("the policy in mode {0} names no mx")]
    NoMx(&'static str),
    #[error("malformed line {0:?}")]
    Line(String),
}

impl Policy {
    /// Parses a policy file (RFC 8461 §3.2): `key: value` lines, CRLF or LF, unknown keys
    /// ignored, `mx` repeated.
    pub fn parse(body: &[u8]) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line).trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(PolicyError::Line(line.chars().take(80).collect()));
            };
            let value = value.trim();
            match key.trim() {
                "version" if version.is_none() => version = Some(value.to_string()),
                "mode" if mode.is_none() => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        _ => return Err(PolicyError::Mode),
                    })
                }
                "max_age" if max_age.is_none() => {
                    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(PolicyError::MaxAge);
                    }
                    max_age = Some(value.parse::<u64>().map_err(|_| PolicyError::MaxAge)?.min(MAX_AGE_CAP));
                }
                "mx" => {
                    let pattern = value.trim_end_matches('.').to_ascii_lowercase();
                    if !pattern.is_empty() {
                        mx.push(pattern);
                    }
                }
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err(PolicyError::Version);
        }
        let mode = mode.ok_or(PolicyError::Mode)?;
        let max_age = max_age.ok_or(PolicyError::MaxAge)?;
        if mx.is_empty() && mode != Mode::None {
            return Err(PolicyError::NoMx(mode.as_str()));
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether `host` (an MX name, any case, trailing dot or not) matches one of the `mx`
    /// patterns: exactly, or `*.example.com` for one more leftmost label (RFC 8461 §4.1).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *pattern == host,
        })
    }

    /// The policy as TLS-RPT's `policy-string` wants it: one entry per line of the canonical
    /// form.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec!["version: STSv1".to_string(), format!("mode: {}", self.mode.as_str())];
        lines.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        lines.push(format!("max_age: {}", self.max_age));
        lines
    }
}

/// The `_mta-sts.DOMAIN` TXT record: `v=STSv1; id=…;` (RFC 8461 §3.1). Returns the id.
pub fn parse_txt(record: &str) -> Option<String> {
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=STSv1" {
        return None;
    }
    let mut id = None;
    for field in fields {
        let (key, value) = field.split_once('=')?;
        if key.trim() == "id" {
            let value = value.trim();
            if value.is_empty() || value.len() > 32 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            id = Some(value.to_string());
        }
    }
    id
}

/// Of all TXT records at `_mta-sts.DOMAIN`, the policy id: exactly one record must start with
/// `v=STSv1` (RFC 8461 §3.1: several such records mean no policy).
pub fn policy_id(records: &[String]) -> Result<String, &'static str> {
    let sts: Vec<&String> = records.iter().filter(|r| r.trim_start().starts_with("v=STSv1")).collect();
    match sts.as_slice() {
        [] => Err("no TXT record with v=STSv1"),
        [one] => parse_txt(one).ok_or("malformed v=STSv1 TXT record"),
        _ => Err("more than one v=STSv1 TXT record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_parses_with_crlf_and_unknown_keys() {
        let p = Policy::parse(
            b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net.\r\nmax_age: 86400\r\nextension: x\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mx1.example.com", "*.example.net"]);
        assert_eq!(p.max_age, 86400);
        assert!(p.allows("MX1.example.com."));
        assert!(p.allows("a.example.net"));
        assert!(!p.allows("a.b.example.net"), "a wildcard covers one label only");
        assert!(!p.allows("example.net"));
        assert!(!p.allows("mx2.example.com"));
        assert_eq!(p.lines()[1], "mode: enforce");
    }

    #[test]
    fn malformed_policies_are_refused() {
        assert_eq!(Policy::parse(b"mode: enforce\nmx: a\nmax_age: 1\n"), Err(PolicyError::Version));
        assert_eq!(Policy::parse(b"version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n"), Err(PolicyError::Mode));
        assert_eq!(Policy::parse(b"version: STSv1\nmode: enforce\nmx: a\n"), Err(PolicyError::MaxAge));
        assert_eq!(Policy::parse(b"version: STSv1\nmode: enforce\nmx: a\nmax_age: -1\n"), Err(PolicyError::MaxAge));
        assert_eq!(Policy::parse(b"version: STSv1\nmode: enforce\nmax_age: 5\n"), Err(PolicyError::NoMx("enforce")));
        assert!(matches!(Policy::parse(b"<html>hello</html>"), Err(PolicyError::Line(_))));
        assert_eq!(Policy::parse(&[0xff, 0xfe]), Err(PolicyError::NotText));
        let none = Policy::parse(b"version: STSv1\nmode: none\nmax_age: 99999999999\n");
        assert!(none.is_err(), "max_age past 10 digits");
        assert_eq!(Policy::parse(b"version: STSv1\nmode: none\nmax_age: 9999999999\n").unwrap().max_age, MAX_AGE_CAP);
    }

    #[test]
    fn txt_records_give_the_policy_id() {
        assert_eq!(policy_id(&["v=STSv1; id=20240101T0000;".into()]), Ok("20240101T0000".into()));
        assert_eq!(policy_id(&["v=spf1 -all".into(), "v=STSv1;id=abc".into()]), Ok("abc".into()));
        assert!(policy_id(&["v=spf1 -all".into()]).is_err());
        assert!(policy_id(&["v=STSv1; id=a".into(), "v=STSv1; id=b".into()]).is_err());
        assert!(policy_id(&["v=STSv1; id=bad-id".into()]).is_err());
        assert!(policy_id(&["v=STSv1;".into()]).is_err());
        assert!(policy_id(&["v=STSv2; id=a".into()]).is_err());
    }
}
