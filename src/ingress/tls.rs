//! TLS for injection: STARTTLS and implicit-TLS listeners, from a PEM file holding the
//! certificate chain and its private key (PowerMTA's `smtp-server-tls-certificate` and
//! `<smtp-listener> tls-certificate`).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Loads a certificate chain and key from one PEM file (or the key from `key_file` when given).
/// Only TLS 1.2 and 1.3 exist in rustls; `allow_tls12 = false` leaves TLS 1.3 only.
pub fn server_config(cert_file: &Path, allow_tls12: bool) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(cert_file).map_err(|e| {
        format!(
            "no usable private key in {} ({e}); the file must hold the certificate chain and an unencrypted PEM key",
            cert_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if allow_tls12 { &[&rustls::version::TLS13, &rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate {} does not match its key: {e}", cert_file.display()))?;
    Ok(Arc::new(config))
}
