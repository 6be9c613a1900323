//! `<smtp-user>` credentials for SMTP AUTH: plain-text passwords as PowerMTA writes them, or
//! hashes (argon2 PHC strings, SHA-512/SHA-256 crypt) so configs need not hold clear text.

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordVerifier};

use crate::config::{Config, Dir};

/// `authentication-method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// SMTP AUTH with the `password`.
    Password,
    /// A TLS client certificate verified against the listener's CA, whose common name or DNS
    /// name is the user's name; AUTH with a password is refused for such a user.
    Certificate,
}

#[derive(Clone, Debug)]
struct User {
    password: Option<String>,
    method: Method,
    source: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Users {
    users: HashMap<String, User>,
}

impl Users {
    pub fn from_config(config: &Config) -> Users {
        let mut users = HashMap::new();
        for b in config.blocks_of("smtp-user") {
            let Some(name) = b.arg.clone() else { continue };
            let method = match b.settings.text(Dir::AuthenticationMethod) {
                Some("certificate") => Method::Certificate,
                // `system` is refused when the configuration loads (`check`).
                _ => Method::Password,
            };
            let password = b.settings.text(Dir::Password).map(str::to_string);
            if method == Method::Password && password.is_none() {
                continue;
            }
            users.insert(name, User { password, method, source: b.settings.text(Dir::SourceRef).map(str::to_string) });
        }
        Users { users }
    }

    /// The user a verified client certificate names (`authentication-method certificate`), by
    /// the certificate's common name or DNS names, with the user's named source.
    pub fn by_certificate(&self, names: &[String]) -> Option<(String, Option<String>)> {
        names.iter().find_map(|n| {
            self.users
                .iter()
                .find(|(name, u)| u.method == Method::Certificate && name.eq_ignore_ascii_case(n))
                .map(|(name, u)| (name.clone(), u.source.clone()))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks credentials; on success returns the user's named source, if any.
    pub fn verify(&self, user: &str, password: &str) -> Option<Option<String>> {
        let u = self.users.get(user).filter(|u| u.method == Method::Password)?;
        password_matches(u.password.as_deref()?, password).then(|| u.source.clone())
    }
}

fn password_matches(stored: &str, given: &str) -> bool {
    if stored.starts_with("$argon2") {
        return PasswordHash::new(stored)
            .is_ok_and(|h| argon2::Argon2::default().verify_password(given.as_bytes(), &h).is_ok());
    }
    if stored.starts_with("$6$") {
        return sha_crypt::sha512_check(given, stored).is_ok();
    }
    if stored.starts_with("$5$") {
        return sha_crypt::sha256_check(given, stored).is_ok();
    }
    constant_time_eq(stored.as_bytes(), given.as_bytes())
}

/// Compares without an early exit, so response timing does not reveal how much of a password
/// matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    #[test]
    fn plain_and_hashed_passwords() {
        assert!(password_matches("s3cret", "s3cret"));
        assert!(!password_matches("s3cret", "s3cre"));
        assert!(!password_matches("s3cret", "s3cretx"));
        let salt = SaltString::encode_b64(b"ember-test-salt!").unwrap();
        let hash = argon2::Argon2::default().hash_password(b"pw", &salt).unwrap().to_string();
        assert!(password_matches(&hash, "pw"));
        assert!(!password_matches(&hash, "px"));
        let sha = sha_crypt::sha512_simple("pw", &sha_crypt::Sha512Params::new(5000).unwrap()).unwrap();
        assert!(password_matches(&sha, "pw"));
        assert!(!password_matches(&sha, "no"));
    }
}
