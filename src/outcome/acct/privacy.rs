//! `privacy-policy` of an `<acct-file>`: what the recipient columns (`rcpt`, `orcpt`) of its
//! records hold, so a file handed to analysts need not carry recipient addresses.
//!
//! - `retain` (the default): the address as received.
//! - `redact [STR]`: the local part is replaced by STR (default `redacted`); the domain stays, so
//!   per-domain statistics still work.
//! - `siphash KEY`: the local part is replaced by `h-` and the SipHash-2-4 (keyed with KEY, 16
//!   bytes: 32 hex digits or 16 characters) of the whole lower-cased address, in hex. The same
//!   recipient always gives the same value under one key, so records can still be joined.
//! - `hmac-sha256 KEY`: the same with HMAC-SHA256 (any key length), hex.
//!
//! Runs on the output's writer thread, per value written.

use std::fmt::Write;

use super::AcctError;

/// What an output writes in place of a recipient address.
#[derive(Clone, Debug, Default)]
pub(super) enum Privacy {
    #[default]
    Retain,
    Redact(String),
    SipHash([u8; 16]),
    Hmac(ring::hmac::Key),
}

/// The columns that hold a recipient's address.
pub(super) const RECIPIENT_FIELDS: &[&str] = &["rcpt", "orcpt"];

const DEFAULT_REDACTION: &str = "redacted";

impl Privacy {
    /// From the directive's words (`privacy-policy redact XXX` → `["redact", "XXX"]`).
    pub fn parse(words: &[String]) -> Result<Privacy, AcctError> {
        let (mode, arg) = match words {
            [mode] => (mode.as_str(), None),
            [mode, arg] => (mode.as_str(), Some(arg.as_str())),
            _ => return Err(AcctError::PrivacyWords),
        };
        match (mode.to_ascii_lowercase().as_str(), arg) {
            ("retain", None) => Ok(Privacy::Retain),
            ("redact", text) => {
                let text = text.unwrap_or(DEFAULT_REDACTION);
                if text.contains('@') {
                    return Err(AcctError::RedactionAt(text.to_string()));
                }
                Ok(Privacy::Redact(text.to_string()))
            }
            ("siphash" | "siphash-2-4", Some(key)) => siphash_key(key).map(Privacy::SipHash),
            ("hmac-sha256", Some(key)) if !key.is_empty() => {
                Ok(Privacy::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes())))
            }
            ("siphash" | "siphash-2-4" | "hmac-sha256", None) => Err(AcctError::KeyRequired(mode.to_string())),
            ("retain", Some(extra)) => Err(AcctError::RetainArgument(extra.to_string())),
            _ => Err(AcctError::UnknownPolicy(mode.to_string())),
        }
    }

    pub fn is_retain(&self) -> bool {
        matches!(self, Privacy::Retain)
    }

    /// The value to write for an address (an empty value stays empty).
    pub fn apply(&self, address: &str) -> String {
        if address.is_empty() {
            return String::new();
        }
        let domain = address.rsplit_once('@').map(|(_, d)| d);
        let local = match self {
            Privacy::Retain => return address.to_string(),
            Privacy::Redact(text) => text.clone(),
            Privacy::SipHash(key) => format!("h-{:016x}", siphash24(key, address.to_lowercase().as_bytes())),
            Privacy::Hmac(key) => {
                let tag = ring::hmac::sign(key, address.to_lowercase().as_bytes());
                let mut hex = String::from("h-");
                for b in tag.as_ref() {
                    let _ = write!(hex, "{b:02x}");
                }
                hex
            }
        };
        match domain {
            Some(d) => format!("{local}@{d}"),
            None => local,
        }
    }
}

/// A SipHash key: 32 hex digits, or exactly 16 characters taken as bytes.
fn siphash_key(text: &str) -> Result<[u8; 16], AcctError> {
    let mut key = [0u8; 16];
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("two hex digits, checked above");
        }
        return Ok(key);
    }
    let bytes = text.as_bytes();
    if bytes.len() != 16 {
        return Err(AcctError::SipHashKey(bytes.len()));
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

/// SipHash-2-4 (Aumasson and Bernstein) of `data` under a 128-bit key.
fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or_default());
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap_or_default());
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(words: &[&str]) -> Result<Privacy, AcctError> {
        Privacy::parse(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // The paper's key 00 01 .. 0f; messages 00 01 .. (n-1).
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&key, &[0]), 0x74f8_39c5_93dc_67fd);
        let fifteen: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(&key, &fifteen), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn retain_redact_and_hashes() {
        assert_eq!(policy(&["retain"]).unwrap().apply("A@x.example"), "A@x.example");
        assert_eq!(policy(&["redact"]).unwrap().apply("a@x.example"), "redacted@x.example");
        assert_eq!(policy(&["redact", "***"]).unwrap().apply("a@x.example"), "***@x.example");
        assert_eq!(policy(&["redact"]).unwrap().apply(""), "");
        let sip = policy(&["siphash", "000102030405060708090a0b0c0d0e0f"]).unwrap();
        let a = sip.apply("User@X.example");
        assert_eq!(a, sip.apply("user@X.example"), "case does not change the hash");
        assert!(a.starts_with("h-") && a.ends_with("@X.example") && a.len() == 2 + 16 + 10, "{a}");
        assert_ne!(a, policy(&["siphash", "0123456789abcdef"]).unwrap().apply("user@x.example"));
        let mac = policy(&["hmac-sha256", "k"]).unwrap().apply("user@x.example");
        // HMAC-SHA256("k", "user@x.example") is 64 hex digits.
        assert_eq!(mac.len(), 2 + 64 + 10, "{mac}");
        assert_eq!(mac, policy(&["hmac-sha256", "k"]).unwrap().apply("USER@x.example"));
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(policy(&["siphash"]).unwrap_err().to_string().contains("KEY is required"));
        assert!(policy(&["siphash", "short"]).unwrap_err().to_string().contains("32 hex digits or 16 characters"));
        assert!(policy(&["forget"]).unwrap_err().to_string().contains("unknown policy"));
        assert!(policy(&["redact", "a@b"]).is_err());
        assert!(policy(&["retain", "x"]).is_err());
    }
}
