//! Which certificates the CLI trusts for an `https://` management API: the operating system's
//! roots (`rustls-native-certs`: what `curl` and the system trust, including a company CA added
//! with `update-ca-certificates`, and updated with the system rather than compiled in), plus the
//! PEM certificates of `--mgmt-ca FILE` for a private CA or a self-signed certificate.

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

use super::error::CliError;

/// The TLS settings of the management client: ring as the crypto provider (the project's one),
/// certificates verified against the system's roots and `ca`.
pub fn tls_config(ca: Option<&Path>) -> Result<TlsConfig, CliError> {
    // A system store that cannot be read is not fatal: `--mgmt-ca` may be all that is needed,
    // and a certificate no root signs fails the handshake with a clear reason anyway.
    let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if let Some(path) = ca {
        roots.extend(read_ca(path)?);
    }
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build())
}

/// Every certificate of a PEM file (keys and other blocks in it are skipped).
fn read_ca(path: &Path) -> Result<Vec<Certificate<'static>>, CliError> {
    let fail = |reason: String| CliError::CaFile { path: path.to_path_buf(), reason };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| fail(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(read_ca(&missing).unwrap_err().to_string().contains("missing.pem"));
        let key_only = dir.path().join("key.pem");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&key_only, ck.key_pair.serialize_pem()).unwrap();
        assert!(read_ca(&key_only).unwrap_err().to_string().contains("no PEM certificate"));
        let both = dir.path().join("both.pem");
        std::fs::write(&both, format!("{}{}", ck.key_pair.serialize_pem(), ck.cert.pem())).unwrap();
        let certs = read_ca(&both).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].der(), ck.cert.der().as_ref());
    }
}
