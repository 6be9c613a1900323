//! SASL PLAIN and LOGIN (RFC 4616, draft-murchison-sasl-login) as SMTP AUTH carries them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Credentials a client presented.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `[authzid] NUL authcid NUL passwd`, base64-encoded. An authzid different from the authcid is
/// refused: Ember does not let one user act for another.
pub fn decode_plain(text: &str) -> Option<Credentials> {
    let raw = decode_base64(text)?;
    let mut parts = raw.split(|&b| b == 0);
    let (authz, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() || (!authz.is_empty() && authz != user) {
        return None;
    }
    Some(Credentials {
        user: String::from_utf8(user.to_vec()).ok()?,
        password: String::from_utf8(password.to_vec()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let t = encode_base64(b"\0alice\0s3cret");
        assert_eq!(decode_plain(&t), Some(Credentials { user: "alice".into(), password: "s3cret".into() }));
        assert_eq!(decode_plain(&encode_base64(b"alice\0alice\0pw")).unwrap().user, "alice");
        assert_eq!(decode_plain(&encode_base64(b"bob\0alice\0pw")), None);
        assert_eq!(decode_plain("!!!"), None);
        assert_eq!(decode_plain(&encode_base64(b"\0\0pw")), None);
    }
}
