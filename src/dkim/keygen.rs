//! `ember dkim keygen`: a new DKIM key pair, written as PEM, and the DNS TXT record that
//! publishes its public half.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::dkim::generate::DkimKeyPair;

use super::keys::KEY_FOR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// A generated key: the PEM file contents and the TXT record's name and value.
pub struct Generated {
    pub pem: String,
    pub record_name: String,
    pub record_value: String,
}

/// RSA keys are 2048 bits: large enough for RFC 8301, small enough for one TXT string set.
const RSA_BITS: usize = 2048;

/// Why `ember dkim keygen` made no key.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// `algorithm` is RSA or Ed25519.
    #[error("cannot generate an {algorithm} key: {source}")]
    Generate {
        algorithm: &'static str,
        #[source]
        source: mail_auth::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn generate(selector: &str, domain: &str, algorithm: Algorithm) -> Result<Generated, KeygenError> {
    let domain = domain.trim_end_matches('.').to_lowercase();
    let record_name = format!("{selector}._domainkey.{domain}");
    let (label, der, public, k) = match algorithm {
        Algorithm::Rsa => {
            let pair = DkimKeyPair::generate_rsa(RSA_BITS)
                .map_err(|source| KeygenError::Generate { algorithm: "RSA", source })?;
            let (private, public) = pair.into_inner();
            ("RSA PRIVATE KEY", private, rsa_spki(&public), "rsa")
        }
        Algorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519()
                .map_err(|source| KeygenError::Generate { algorithm: "Ed25519", source })?;
            let (private, public) = pair.into_inner();
            ("PRIVATE KEY", private, public, "ed25519")
        }
    };
    let mut pem = format!("{KEY_FOR}{record_name}\n-----BEGIN {label}-----\n");
    for chunk in STANDARD.encode(&der).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    let record_value = format!("v=DKIM1; k={k}; p={}", STANDARD.encode(&public));
    Ok(Generated { pem, record_name, record_value })
}

/// Writes the key (mode 0600, never over an existing file) and prints the record to publish.
pub fn run(selector: &str, domain: &str, algorithm: Algorithm, out: Option<&Path>) -> Result<(), KeygenError> {
    let generated = generate(selector, domain, algorithm)?;
    let path = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("{}.pem", generated.record_name)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_private()
        .open(&path)
        .map_err(|source| KeygenError::Create { path: path.clone(), source })?;
    file.write_all(generated.pem.as_bytes()).map_err(|source| KeygenError::Write { path: path.clone(), source })?;
    println!("wrote {}", path.display());
    println!("domain-key {selector},{domain},{}", path.display());
    println!();
    println!("publish this DNS TXT record:");
    println!("{}. IN TXT {}", generated.record_name, txt_strings(&generated.record_value));
    Ok(())
}

/// A TXT value split into quoted strings of at most 255 bytes (RFC 1035), as zone files need for
/// 2048-bit RSA keys.
fn txt_strings(value: &str) -> String {
    value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect::<Vec<_>>().join(" ")
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form RFC 6376 §3.6.1 puts in p=.
/// (Hand-written: a dozen bytes of DER do not justify a DER crate.)
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const RSA_ALGORITHM: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(pkcs1);
    let mut inner = RSA_ALGORITHM.to_vec();
    inner.extend(der(0x03, &bit_string));
    der(0x30, &inner)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::keys::{KeyKind, parse_pem};

    #[test]
    fn generated_keys_load_back_and_name_their_record() {
        for (alg, kind) in [(Algorithm::Ed25519, KeyKind::Ed25519), (Algorithm::Rsa, KeyKind::Rsa)] {
            let g = generate("s1", "Example.COM", alg).unwrap();
            assert_eq!(g.record_name, "s1._domainkey.example.com");
            assert!(g.record_value.starts_with("v=DKIM1; k="), "{}", g.record_value);
            assert_eq!(parse_pem(g.pem.as_bytes()).unwrap().kind(), kind);
        }
    }

    #[test]
    fn spki_wrapping_is_valid_der() {
        let spki = rsa_spki(&[0x30, 0x03, 0x02, 0x01, 0x05]);
        assert_eq!(spki[0], 0x30);
        assert_eq!(spki[1] as usize, spki.len() - 2);
        assert_eq!(&spki[spki.len() - 5..], &[0x30, 0x03, 0x02, 0x01, 0x05]);
    }
}
