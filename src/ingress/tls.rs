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

/// Why a server TLS configuration cannot be built; each says which file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("bad certificate in {what} {}: {source}", path.display())]
    BadCertificate {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate found in {what} {}", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error(
        "no usable private key in {} ({source}); the file must hold the certificate chain and an unencrypted PEM key",
        path.display()
    )]
    NoKey {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(#[source] rustls::Error),
    #[error("unusable CA certificate in {}: {source}", path.display())]
    UnusableCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client CA file {}: {source}", path.display())]
    ClientCa {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("certificate {} does not match its key: {source}", path.display())]
    KeyMismatch {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Reads the PEM certificates of `file` (`what` names the directive for errors).
pub fn read_certificates(file: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let path = || file.to_path_buf();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .map_err(|source| TlsConfigError::Read { what, path: path(), source })?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsConfigError::BadCertificate { what, path: path(), source })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate { what, path: path() });
    }
    Ok(certs)
}

/// The names a client's verified certificate carries: its subject common name, then its DNS
/// subject alternative names (what `authentication-method certificate` users are matched on).
/// Empty when the client sent no certificate.
pub fn client_names(conn: &rustls::ServerConnection) -> Vec<String> {
    let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else { return Vec::new() };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else { return Vec::new() };
    let mut names: Vec<String> = common_name(cert.subject()).into_iter().collect();
    names.extend(cert.valid_dns_names().map(str::to_string));
    names
}

/// The common name (OID 2.5.4.3) of a DER subject, when it is a string of one of the usual
/// types with a short-form length (a common name is at most 64 characters).
fn common_name(subject: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    let at = subject.windows(CN.len()).position(|w| w == CN)? + CN.len();
    let (&tag, rest) = subject[at..].split_first()?;
    // UTF8String, PrintableString, IA5String, T61String.
    if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let value = rest.get(..usize::from(len)).filter(|_| len < 0x80)?;
    String::from_utf8(value.to_vec()).ok()
}

/// The rustls server configuration of `spec`.
pub fn server_config(spec: &ServerTls) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let cert_file = &spec.certificate;
    let certs = read_certificates(cert_file, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(cert_file)
        .map_err(|source| TlsConfigError::NoKey { path: cert_file.clone(), source })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if spec.allow_tls12 { &[&rustls::version::TLS13, &rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(TlsConfigError::Setup)?;
    let builder = match &spec.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(ca, "client CA file")? {
                roots.add(cert).map_err(|source| TlsConfigError::UnusableCa { path: ca.clone(), source })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|source| TlsConfigError::ClientCa { path: ca.clone(), source })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsConfigError::KeyMismatch { path: cert_file.clone(), source })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_of_a_subject() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["dns.example".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Org");
        params.distinguished_name.push(rcgen::DnType::CommonName, "mailer-7");
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().clone();
        let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
        assert_eq!(common_name(parsed.subject()).as_deref(), Some("mailer-7"));
        assert_eq!(parsed.valid_dns_names().collect::<Vec<_>>(), ["dns.example"]);
        assert_eq!(common_name(&[0x30, 0x00]), None);
    }
}
