//! TLS for injection: STARTTLS and implicit-TLS listeners, from a PEM file holding the
//! certificate chain and its private key (PowerMTA's `smtp-server-tls-certificate` and
//! `<smtp-listener> tls-certificate`), the protocol versions offered
//! (`smtp-server-tls-allow-tlsv1.2`, `<smtp-listener> tls-allow-tlsv1.2`) and the CA that client
//! certificates are verified against (`smtp-server-tls-ca-file`, `<smtp-listener> tls-ca-file`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// What one listener's TLS is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM with the certificate chain and its unencrypted key.
    pub certificate: PathBuf,
    /// Only TLS 1.2 and 1.3 exist in rustls; `false` leaves TLS 1.3 only.
    pub allow_tls12: bool,
    /// Client certificates are asked for and, when one is sent, verified against this bundle;
    /// a client without a certificate is still served (AUTH or the source decide what it may do).
    pub client_ca: Option<PathBuf>,
}

/// Reads the PEM certificates of `file` (`what` names the directive for errors).
pub fn read_certificates(file: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("cannot read {what} {}: {e}", file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in {what} {}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {what} {}", file.display()));
    }
    Ok(certs)
}

/// The rustls server configuration of `spec`.
pub fn server_config(spec: &ServerTls) -> Result<Arc<ServerConfig>, String> {
    let cert_file = &spec.certificate;
    let certs = read_certificates(cert_file, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(cert_file).map_err(|e| {
        format!(
            "no usable private key in {} ({e}); the file must hold the certificate chain and an unencrypted PEM key",
            cert_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if spec.allow_tls12 { &[&rustls::version::TLS13, &rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &spec.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(ca, "client CA file")? {
                roots.add(cert).map_err(|e| format!("unusable CA certificate in {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("client CA file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate {} does not match its key: {e}", cert_file.display()))?;
    Ok(Arc::new(config))
}
