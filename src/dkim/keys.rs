//! DKIM private keys named by `domain-key` directives (global, per pool, per virtual MTA, and in
//! `<domain-key-list>` blocks): read and parsed once per configuration generation, so a missing,
//! unreadable or malformed key stops `ember run` and a reload instead of producing unsigned mail.
//!
//! Knows nothing of messages; `sign.rs` asks it for the key of (virtual MTA, domain, algorithm).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};

use crate::config::diag::Location;
use crate::config::value::Value;
use crate::config::{Config, Dir};

/// The marker `ember dkim keygen` writes above the PEM block, naming what the key is for.
pub const KEY_FOR: &str = "# ember dkim key for ";

/// A key that could not be used, with the directive that named it.
#[derive(Debug, thiserror::Error)]
#[error("{location}: error: domain-key: {reason}")]
pub struct KeyError {
    pub location: Location,
    pub reason: KeyFileError,
    /// The file does not exist (`check-config` without `--strict` only warns about that).
    pub missing: bool,
}

/// Why a key file named by `domain-key` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `ember dkim keygen` wrote the file for `made_for` (`SELECTOR._domainkey.DOMAIN`, lower
    /// case), whose domain `made_domain` is not the `domain` the directive signs for.
    #[error(
        "key file {} was made for {made_domain}, not {domain} (it says \"{}{made_for}\")",
        path.display(),
        KEY_FOR.trim_start_matches("# ")
    )]
    OtherDomain { path: PathBuf, made_for: String, made_domain: String, domain: String },
    #[error("key file {}: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: PemError,
    },
}

/// Why PEM text is not a DKIM private key.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("not a usable DKIM private key: {0}")]
    Rsa(#[source] mail_auth::Error),
    #[error("not a usable DKIM private key: a PKCS#8 key that is neither RSA (1024 to 8192 bits) nor Ed25519")]
    UnknownPkcs8,
    #[error(
        "not a usable DKIM private key: expected a PEM block \"BEGIN RSA PRIVATE KEY\" or \"BEGIN PRIVATE KEY\" (RSA or Ed25519)"
    )]
    NotPem,
}

/// Which kind of key, and so which `a=` it signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

impl KeyKind {
    pub fn algorithm(self) -> &'static str {
        match self {
            KeyKind::Rsa => "rsa-sha256",
            KeyKind::Ed25519 => "ed25519-sha256",
        }
    }
}

pub enum PrivateKey {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

impl PrivateKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            PrivateKey::Rsa(_) => KeyKind::Rsa,
            PrivateKey::Ed25519(_) => KeyKind::Ed25519,
        }
    }
}

/// One `domain-key SELECTOR,DOMAIN,FILE` with its key loaded.
pub struct DomainKey {
    pub selector: String,
    /// Lower case; `*` signs for whatever domain the identity has.
    pub domain: String,
    pub key: Arc<PrivateKey>,
    pub location: Location,
}

/// Every key of one configuration generation.
#[derive(Default)]
pub struct KeyStore {
    global: Vec<DomainKey>,
    /// Keys of each virtual MTA: its own first, then those of the pools it belongs to.
    vmtas: HashMap<String, Vec<DomainKey>>,
    /// Keys of `<domain-key-list NAME>` blocks.
    pub lists: HashMap<String, Vec<DomainKey>>,
}

impl KeyStore {
    /// Loads every key the configuration names; every problem is reported, with its location.
    pub fn load(config: &Config) -> Result<KeyStore, Vec<KeyError>> {
        let mut errors = Vec::new();
        let mut cache: HashMap<std::path::PathBuf, Arc<PrivateKey>> = HashMap::new();
        let mut load_all = |settings: &crate::config::settings::Settings, errors: &mut Vec<KeyError>| {
            let mut keys = Vec::new();
            for e in settings.all(Dir::DomainKey) {
                let (Value::DomainKey { selector, domain, file }, Some(location)) = (&e.value, e.origin.location())
                else {
                    continue;
                };
                let path = config.path(file);
                let key = match cache.get(&path) {
                    Some(k) => Ok(Arc::clone(k)),
                    None => read_key(&path, selector, domain).map(Arc::new),
                };
                match key {
                    Ok(key) => {
                        cache.insert(path, Arc::clone(&key));
                        keys.push(DomainKey {
                            selector: selector.clone(),
                            domain: domain.clone(),
                            key,
                            location: location.clone(),
                        });
                    }
                    Err(reason) => {
                        let missing = !path.exists();
                        errors.push(KeyError { location: location.clone(), reason, missing })
                    }
                }
            }
            keys
        };
        let global = load_all(&config.global, &mut errors);
        let mut pools: HashMap<&str, Vec<DomainKey>> = HashMap::new();
        for pool in &config.pools {
            pools.insert(&pool.name, load_all(&pool.settings, &mut errors));
        }
        let mut vmtas = HashMap::new();
        for vmta in &config.vmtas {
            let mut keys = load_all(&vmta.settings, &mut errors);
            for pool in config.pools.iter().filter(|p| p.members().any(|(m, _)| m == vmta.name)) {
                keys.extend(pools[pool.name.as_str()].iter().map(DomainKey::share));
            }
            vmtas.insert(vmta.name.clone(), keys);
        }
        let mut lists = HashMap::new();
        for block in config.blocks_of("domain-key-list") {
            let keys = load_all(&block.settings, &mut errors);
            lists.insert(block.arg.clone().unwrap_or_default(), keys);
        }
        if errors.is_empty() { Ok(KeyStore { global, vmtas, lists }) } else { Err(errors) }
    }

    /// The key for `domain` and `kind` as seen from `vmta`: the virtual MTA's keys (and its
    /// pools') before the global ones, as settings inherit; within each, an exact domain before
    /// `*`.
    pub fn find(&self, vmta: &str, domain: &str, kind: KeyKind) -> Option<&DomainKey> {
        self.find_selector(vmta, domain, kind, None)
    }

    /// [`find`](Self::find) limited to keys of one selector when `selector` names one (the
    /// `s=` of `X-DKIM-Options`).
    pub fn find_selector(&self, vmta: &str, domain: &str, kind: KeyKind, selector: Option<&str>) -> Option<&DomainKey> {
        let scopes = [self.vmtas.get(vmta).map(Vec::as_slice).unwrap_or(&[]), self.global.as_slice()];
        for keys in scopes {
            let usable =
                |k: &&DomainKey| k.key.kind() == kind && selector.is_none_or(|s| k.selector.eq_ignore_ascii_case(s));
            if let Some(k) = keys.iter().filter(usable).find(|k| k.domain.eq_ignore_ascii_case(domain)) {
                return Some(k);
            }
            if let Some(k) = keys.iter().filter(usable).find(|k| k.domain == "*") {
                return Some(k);
            }
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.vmtas.values().all(Vec::is_empty) && self.lists.values().all(Vec::is_empty)
    }
}

impl DomainKey {
    fn share(&self) -> DomainKey {
        DomainKey {
            selector: self.selector.clone(),
            domain: self.domain.clone(),
            key: Arc::clone(&self.key),
            location: self.location.clone(),
        }
    }
}

/// Reads a PEM private key: PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`, what PowerMTA's guide shows)
/// or PKCS#8 RSA or Ed25519 (`BEGIN PRIVATE KEY`). A file written by `ember dkim keygen` names
/// its selector and domain; a key made for another domain is refused.
pub fn read_key(path: &Path, selector: &str, domain: &str) -> Result<PrivateKey, KeyFileError> {
    let text = std::fs::read(path).map_err(|source| KeyFileError::Read { path: path.to_path_buf(), source })?;
    if let Some(line) = String::from_utf8_lossy(&text).lines().find_map(|l| l.strip_prefix(KEY_FOR)) {
        let made_for = line.trim().to_lowercase();
        let (made_selector, made_domain) = made_for.split_once("._domainkey.").unwrap_or(("", &made_for));
        if domain != "*" && made_domain != domain {
            return Err(KeyFileError::OtherDomain {
                path: path.to_path_buf(),
                made_domain: made_domain.to_string(),
                made_for: made_for.clone(),
                domain: domain.to_string(),
            });
        }
        if !made_selector.is_empty() && !made_selector.eq_ignore_ascii_case(selector) {
            tracing::warn!(
                "key file {} was made for selector {made_selector} but is used with selector {selector}",
                path.display()
            );
        }
    }
    parse_pem(&text).map_err(|source| KeyFileError::Key { path: path.to_path_buf(), source })
}

/// Parses a PEM private key (see [`read_key`]).
pub fn parse_pem(pem: &[u8]) -> Result<PrivateKey, PemError> {
    if let Ok(der) = PrivatePkcs1KeyDer::from_pem_slice(pem) {
        return RsaKey::from_key_der(PrivateKeyDer::Pkcs1(der)).map(PrivateKey::Rsa).map_err(PemError::Rsa);
    }
    match PrivatePkcs8KeyDer::from_pem_slice(pem) {
        Ok(der) => {
            let bytes = der.secret_pkcs8_der().to_vec();
            if let Ok(k) = RsaKey::from_key_der(PrivateKeyDer::Pkcs8(der)) {
                return Ok(PrivateKey::Rsa(k));
            }
            Ed25519Key::from_pkcs8_maybe_unchecked_der(&bytes)
                .map(PrivateKey::Ed25519)
                .map_err(|_| PemError::UnknownPkcs8)
        }
        Err(_) => Err(PemError::NotPem),
    }
}
