//! One-click unsubscribe (RFC 8058, RFC 2369): the `List-Unsubscribe` and
//! `List-Unsubscribe-Post` headers added at injection, and the HMAC-signed tokens in them.
//!
//! A token is `base64url(recipient NUL job NUL issued) "." base64url(HMAC-SHA256 truncated to 128
//! bits)` under `list-unsubscribe-secret`. Nothing is stored per message: a token verifies on its
//! own, a tampered one does not, and using one twice changes nothing the second time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;

use crate::config::settings::Settings;
use crate::config::{Config, Dir};

/// The shortest secret accepted (a guessable key makes tokens forgeable).
const MIN_SECRET: usize = 16;
const MAC_LEN: usize = 16;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub rcpt: String,
    pub job: String,
    pub issued: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed unsubscribe token")]
    Malformed,
    #[error("unsubscribe token signature does not verify (forged, altered, or signed with another secret)")]
    BadSignature,
}

/// Signs and verifies tokens with the configured secret.
#[derive(Clone)]
pub struct Tokens {
    key: hmac::Key,
}

impl Tokens {
    /// `None` when no `list-unsubscribe-secret` is set; an error when it is too short.
    pub fn from_config(config: &Config) -> Result<Option<Tokens>, String> {
        let Some(secret) = config.global.text(Dir::ListUnsubscribeSecret) else { return Ok(None) };
        if secret.len() < MIN_SECRET {
            let at = config.global.get(Dir::ListUnsubscribeSecret).and_then(|e| e.origin.location().cloned());
            let at = at.map(|l| format!("{l}: ")).unwrap_or_default();
            return Err(format!(
                "{at}list-unsubscribe-secret: at least {MIN_SECRET} characters are needed, found {}",
                secret.len()
            ));
        }
        Ok(Some(Tokens::new(secret.as_bytes())))
    }

    pub fn new(secret: &[u8]) -> Tokens {
        Tokens { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    pub fn token(&self, rcpt: &str, job: &str, issued: u64) -> String {
        let payload = format!("{rcpt}\0{job}\0{issued}");
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{}.{}", B64.encode(payload), B64.encode(&tag.as_ref()[..MAC_LEN]))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (payload, mac) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let mac = B64.decode(mac).map_err(|_| TokenError::Malformed)?;
        if mac.len() != MAC_LEN {
            return Err(TokenError::Malformed);
        }
        let expected = hmac::sign(&self.key, &payload);
        // Constant time: a byte-by-byte early exit would tell a forger how much is right.
        let diff = expected.as_ref()[..MAC_LEN].iter().zip(&mac).fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(TokenError::BadSignature);
        }
        let text = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let mut parts = text.split('\0');
        let (Some(rcpt), Some(job), Some(issued), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        Ok(Claims {
            rcpt: rcpt.to_string(),
            job: job.to_string(),
            issued: issued.parse().map_err(|_| TokenError::Malformed)?,
        })
    }
}

/// Whether and how to add the headers, from the layers that may set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub enabled: bool,
    pub url: Option<String>,
    pub mailto: Option<String>,
}

impl Spec {
    /// Applies the directives `settings` sets explicitly over `self` (later layers are more
    /// specific: source, then virtual MTA, then domain).
    pub fn overlay(&mut self, settings: &Settings) {
        if settings.get(Dir::ListUnsubscribe).is_some() {
            self.enabled = settings.flag(Dir::ListUnsubscribe);
        }
        if settings.get(Dir::ListUnsubscribeUrl).is_some() {
            self.url = settings.text(Dir::ListUnsubscribeUrl).map(|u| u.trim_end_matches('/').to_string());
        }
        if settings.get(Dir::ListUnsubscribeMailto).is_some() {
            self.mailto = settings.text(Dir::ListUnsubscribeMailto).map(str::to_string);
        }
    }

    /// The two header fields for `rcpt`, or `None` when the headers are not wanted or have no
    /// URL to carry (RFC 8058 needs an https URL).
    pub fn headers(&self, tokens: &Tokens, rcpt: &str, job: &str, now: u64) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let url = self.url.as_deref()?;
        let token = tokens.token(rcpt, job, now);
        let mut value = format!("<{url}/{token}>");
        if let Some(m) = &self.mailto {
            value.push_str(&format!(",\r\n <mailto:{m}?subject=unsubscribe%20{token}>"));
        }
        Some(format!("List-Unsubscribe: {value}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"))
    }
}

/// Every problem with the configuration's unsubscribe directives (file:line), for start and
/// reload: a URL that is not https, headers wanted without a secret.
pub fn check(config: &Config, tokens: Option<&Tokens>) -> Vec<String> {
    let mut errors = Vec::new();
    for s in layers(config) {
        if let Some(e) = s.get(Dir::ListUnsubscribeUrl)
            && let Some(url) = s.text(Dir::ListUnsubscribeUrl)
            && !url.starts_with("https://")
        {
            let at = e.origin.location().map(|l| format!("{l}: ")).unwrap_or_default();
            errors.push(format!("{at}list-unsubscribe-url: RFC 8058 needs an https:// URL, found {url:?}"));
        }
        if let Some(e) = s.get(Dir::ListUnsubscribe)
            && s.flag(Dir::ListUnsubscribe)
            && tokens.is_none()
        {
            let at = e.origin.location().map(|l| format!("{l}: ")).unwrap_or_default();
            errors.push(format!("{at}list-unsubscribe: needs a global list-unsubscribe-secret to sign its tokens"));
        }
    }
    errors
}

/// Every `list-unsubscribe-mailto` address the configuration names (mail to them is read as an
/// unsubscribe request).
pub fn mailto_addresses(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = layers(config)
        .iter()
        .filter_map(|s| s.get(Dir::ListUnsubscribeMailto).and(s.text(Dir::ListUnsubscribeMailto)))
        .map(str::to_lowercase)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every settings block that may hold the unsubscribe directives.
fn layers(config: &Config) -> Vec<&Settings> {
    let mut layers: Vec<&Settings> = vec![&config.global, &config.queue_defaults];
    layers.extend(config.sources.iter().map(|s| &s.settings));
    layers.extend(config.vmtas.iter().map(|v| &v.settings));
    layers.extend(config.pools.iter().map(|p| &p.settings));
    layers.extend(config.domains.iter().map(|d| d.settings.as_ref()));
    layers.extend(config.vmtas.iter().flat_map(|v| v.domains.iter().map(|d| d.settings.as_ref())));
    layers.extend(config.pools.iter().flat_map(|p| p.domains.iter().map(|d| d.settings.as_ref())));
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_tampering_is_detected() {
        let t = Tokens::new(b"0123456789abcdef-secret");
        let token = t.token("Bob@Example.com", "job-7", 1_700_000_000);
        assert_eq!(
            t.verify(&token).unwrap(),
            Claims { rcpt: "Bob@Example.com".into(), job: "job-7".into(), issued: 1_700_000_000 }
        );
        // Another recipient's payload with this token's MAC.
        let other = t.token("eve@example.com", "job-7", 1_700_000_000);
        let forged = format!("{}.{}", other.split('.').next().unwrap(), token.split('.').nth(1).unwrap());
        assert_eq!(t.verify(&forged).unwrap_err(), TokenError::BadSignature);
        // One character changed anywhere.
        let mut bytes = token.clone().into_bytes();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        assert!(t.verify(&String::from_utf8(bytes).unwrap()).is_err());
        assert_eq!(t.verify("nodot").unwrap_err(), TokenError::Malformed);
        assert_eq!(Tokens::new(b"another-secret-entirely").verify(&token).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn headers_carry_url_and_mailto() {
        let t = Tokens::new(b"0123456789abcdef-secret");
        let spec = Spec {
            enabled: true,
            url: Some("https://u.example/unsubscribe".into()),
            mailto: Some("unsub@u.example".into()),
        };
        let h = spec.headers(&t, "a@b.example", "", 1).unwrap();
        assert!(h.starts_with("List-Unsubscribe: <https://u.example/unsubscribe/"), "{h}");
        assert!(h.contains(",\r\n <mailto:unsub@u.example?subject=unsubscribe%20"), "{h}");
        assert!(h.ends_with("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), "{h}");
        assert_eq!(Spec { enabled: false, ..spec.clone() }.headers(&t, "a@b.example", "", 1), None);
    }
}
