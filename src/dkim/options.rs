//! The `X-DKIM-Options` header (`process-x-dkim-options`): per-message signing options that
//! override the queue's `dkim-*` settings for the first signature.
//!
//! The value is a list of DKIM tags, as in a `DKIM-Signature`: `d=` signing domain, `i=` agent
//! identity (an address or `@domain`), `s=` selector, `a=` algorithm, `c=` header/body
//! canonicalization, `h=` headers added to the signed set (colon-separated), `l=y|n` body
//! length, `q=` query method, `t=y|n` timestamp, `x=` expiry as an interval (`2d`) or `never`.
//! An unknown tag or a value that does not parse is an error: the message goes out signed with
//! the queue's own settings and the log names what was wrong, rather than signed as nobody asked.

use mail_auth::dkim::Canonicalization;

use super::keys::KeyKind;
use super::sign::SignOptions;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("X-DKIM-Options: {0:?} is not TAG=VALUE")]
    NotATag(String),
    #[error("X-DKIM-Options: unknown tag {0:?}")]
    UnknownTag(String),
    #[error("X-DKIM-Options: bad value {value:?} for {tag}=")]
    BadValue { tag: String, value: String },
}

/// Applies the header's options to `options` (its first signature for `d=`, `i=`, `s=`, `a=`).
pub fn apply(header: &str, options: &mut SignOptions) -> Result<(), OptionsError> {
    // Checked in full before anything changes: a bad tag leaves the queue's options whole.
    let mut next = options.clone();
    for item in header.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (tag, value) = item.split_once('=').ok_or_else(|| OptionsError::NotATag(item.to_string()))?;
        let (tag, value) = (tag.trim().to_ascii_lowercase(), value.trim());
        let bad = || OptionsError::BadValue { tag: tag.clone(), value: value.to_string() };
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(bad());
        }
        let first = next.signatures.first_mut();
        match (tag.as_str(), first) {
            ("d", Some(sig)) => {
                sig.identity = format!("@{}", value.trim_start_matches('@'));
                sig.fallback = None;
            }
            ("i", Some(sig)) if value.contains('@') => {
                sig.identity = value.to_string();
                sig.fallback = None;
            }
            ("s", Some(sig)) => sig.selector = Some(value.to_string()),
            ("a", Some(sig)) => {
                sig.kind = match value.to_ascii_lowercase().as_str() {
                    "rsa-sha256" | "rsa-sha1" => KeyKind::Rsa,
                    "ed25519-sha256" => KeyKind::Ed25519,
                    _ => return Err(bad()),
                }
            }
            ("c", _) => {
                let (h, b) = value.split_once('/').unwrap_or((value, "simple"));
                next.header_canon = canon(h).ok_or_else(bad)?;
                next.body_canon = canon(b).ok_or_else(bad)?;
            }
            ("h", _) => {
                for name in value.split(':').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()) {
                    if !next.extra_headers.contains(&name) {
                        next.extra_headers.push(name);
                    }
                }
            }
            ("l", _) => next.body_limit = yes_no(value).ok_or_else(bad)?,
            ("t", _) => next.timestamp = yes_no(value).ok_or_else(bad)?,
            ("q", _) => next.query_method = Some(value.to_string()),
            ("x", _) if value.eq_ignore_ascii_case("never") => next.expire_after = None,
            ("x", _) => next.expire_after = Some(interval(value).ok_or_else(bad)?),
            ("i", Some(_)) => return Err(bad()),
            ("d" | "i" | "s" | "a", None) => {}
            _ => return Err(OptionsError::UnknownTag(tag)),
        }
    }
    *options = next;
    Ok(())
}

fn canon(v: &str) -> Option<Canonicalization> {
    match v.to_ascii_lowercase().as_str() {
        "relaxed" => Some(Canonicalization::Relaxed),
        "simple" => Some(Canonicalization::Simple),
        _ => None,
    }
}

fn yes_no(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" => Some(true),
        "n" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// `90`, `30m`, `2d`, `1d12h`: seconds.
fn interval(v: &str) -> Option<u64> {
    if let Ok(n) = v.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.parse::<u64>().ok()?.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::sign::SignatureSpec;

    fn base() -> SignOptions {
        SignOptions {
            signatures: vec![SignatureSpec {
                identity: "sender-or-from".into(),
                fallback: Some("@esp.example".into()),
                kind: KeyKind::Rsa,
                selector: None,
            }],
            header_canon: Canonicalization::Relaxed,
            body_canon: Canonicalization::Relaxed,
            extra_headers: vec![],
            oversign: vec![],
            timestamp: false,
            expire_after: None,
            body_limit: false,
            query_method: None,
        }
    }

    #[test]
    fn tags_override_the_queue_options() {
        let mut o = base();
        apply("d=brand.example; s=s2; a=ed25519-sha256; c=simple/relaxed; h=X-Campaign:list-id; l=y; t=y; x=1d; q=dns/txt", &mut o)
            .unwrap();
        let sig = &o.signatures[0];
        assert_eq!(
            (sig.identity.as_str(), sig.fallback.as_deref(), sig.selector.as_deref()),
            ("@brand.example", None, Some("s2"))
        );
        assert_eq!(sig.kind, KeyKind::Ed25519);
        assert_eq!((o.header_canon, o.body_canon), (Canonicalization::Simple, Canonicalization::Relaxed));
        assert_eq!(o.extra_headers, ["x-campaign", "list-id"]);
        assert!(o.body_limit && o.timestamp);
        assert_eq!((o.expire_after, o.query_method.as_deref()), (Some(86_400), Some("dns/txt")));
        let mut o = base();
        apply("i=news@brand.example", &mut o).unwrap();
        assert_eq!(o.signatures[0].identity, "news@brand.example");
    }

    #[test]
    fn a_bad_header_changes_nothing() {
        for bad in ["d=brand.example; z=1", "l=maybe", "x=soon", "c=odd", "nonsense", "i=no-at-sign", "d=two words"] {
            let mut o = base();
            assert!(apply(bad, &mut o).is_err(), "{bad}");
            assert_eq!(o.signatures[0].identity, "sender-or-from", "{bad}");
            assert!(!o.body_limit, "{bad}");
        }
    }
}
