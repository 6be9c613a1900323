//! TLS for outbound STARTTLS (rustls with the ring provider, like the ingress): versions, TLS 1.3
//! suites, client certificate and session resumption per queue.
//!
//! With `smtp-tls-ca-file` the server's chain and name are verified against that file. Without
//! it, any certificate is accepted (opportunistic TLS protects against passive listeners only,
//! which is PowerMTA's default) and what was seen is recorded: whether the certificate names
//! the MX, and its SHA-256 fingerprint.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::SystemTime;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, hash::HashAlgorithm, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedCipherSuite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::ClientConfig;

/// Why a queue's TLS client configuration could not be built; the message follows `TLS setup: `
/// in the reply recorded for the recipients.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("smtp-tls-allow-tlsv1.2 and smtp-tls-allow-tlsv1.3 are both no")]
    NoVersions,
    #[error("TLS setup: {0}")]
    Versions(#[source] rustls::Error),
    #[error("TLS 1.3 cipher suite {0} is not available")]
    Suite(String),
    #[error("cannot read smtp-tls-ca-file {}: {source}", path.display())]
    ReadCa {
        path: PathBuf,
        #[source]
        source: PemError,
    },
    #[error("bad certificate in {}: {source}", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: PemError,
    },
    #[error("unusable CA certificate in {}: {source}", path.display())]
    UnusableCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("no certificate found in smtp-tls-ca-file {}", .0.display())]
    EmptyCa(PathBuf),
    #[error("cannot read smtp-client-certificate {}: {source}", path.display())]
    ReadCertificate {
        path: PathBuf,
        #[source]
        source: PemError,
    },
    #[error("bad certificate in smtp-client-certificate {}: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: PemError,
    },
    #[error("no certificate found in smtp-client-certificate {}", .0.display())]
    NoCertificate(PathBuf),
    #[error(
        "no usable private key in smtp-client-certificate {} ({source}); it must be unencrypted PEM",
        path.display()
    )]
    Key {
        path: PathBuf,
        #[source]
        source: PemError,
    },
    #[error("smtp-client-certificate {} does not match its key: {source}", path.display())]
    KeyMismatch {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// A transport-security policy (MTA-STS in enforce mode, DANE) that governs one connection:
/// STARTTLS is required, the server's certificate is checked by `verifier` for the MX name, and
/// every failure is reported in the policy's name (`label`, "MTA-STS policy of example.com").
#[derive(Clone)]
pub struct TlsEnforcement {
    pub label: String,
    pub verifier: Arc<dyn ServerCertVerifier>,
    /// MX hosts the policy leaves to opportunistic TLS (DANE: hosts without TLSA records); the
    /// verifier accepts any certificate from them.
    pub optional_for: Vec<String>,
}

impl TlsEnforcement {
    /// Whether the policy requires TLS of `mx_name`.
    pub fn covers(&self, mx_name: &str) -> bool {
        !self.optional_for.iter().any(|h| h == mx_name)
    }
}

/// Why TLS did not meet what a policy asks, in the terms TLS-RPT (RFC 8460) reports.
#[derive(Clone, Debug, PartialEq)]
pub enum TlsFailure {
    /// The server does not offer STARTTLS (or EHLO was refused).
    NotOffered,
    /// STARTTLS was offered but refused.
    Refused,
    /// The certificate did not verify.
    Certificate(rustls::CertificateError),
    /// The handshake or the session failed otherwise.
    Handshake,
}

/// The rustls client configuration of a queue: the TLS versions and TLS 1.3 suites it allows,
/// verifying against `smtp-tls-ca-file` or accepting any certificate, presenting
/// `smtp-client-certificate` when asked, and resuming sessions from the queue's cache.
pub fn client_config(config: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    match &config.tls_sessions {
        Some(cache) => cache.config(config),
        None => build(config, None),
    }
}

/// A queue's TLS sessions (`reuse-ssl-session yes`), with the rustls configuration that made
/// them: rustls resumes a session only under the very configuration (the same verifier and
/// client certificate objects) that made it, so the configuration is built once and rebuilt
/// only when the settings or the files behind them change.
#[derive(Default)]
pub struct SessionCache {
    built: Mutex<Option<(TlsKey, Arc<rustls::ClientConfig>)>>,
}

/// What a queue's rustls configuration is built from, files by modification time.
#[derive(Clone, PartialEq, Eq)]
struct TlsKey {
    ca_file: Option<(PathBuf, Option<SystemTime>)>,
    client_certificate: Option<(PathBuf, Option<SystemTime>)>,
    allow_tls12: bool,
    allow_tls13: bool,
    tls13_suites: Vec<String>,
    /// The enforcing policy's verifier, by identity (shared per CA file, so stable).
    verifier: Option<usize>,
}

/// Server names whose sessions one queue remembers (a queue talks to a few MX hosts).
const SESSIONS_PER_QUEUE: usize = 32;

impl SessionCache {
    fn config(&self, config: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
        let stamp =
            |p: &Option<PathBuf>| p.as_ref().map(|p| (p.clone(), std::fs::metadata(p).and_then(|m| m.modified()).ok()));
        let key = TlsKey {
            ca_file: stamp(&config.tls_ca_file),
            client_certificate: stamp(&config.client_certificate),
            allow_tls12: config.allow_tls12,
            allow_tls13: config.allow_tls13,
            tls13_suites: config.tls13_suites.clone(),
            verifier: config.tls_policy.as_ref().map(|p| Arc::as_ptr(&p.verifier).cast::<()>() as usize),
        };
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, c)) = built.as_ref()
            && *k == key
        {
            return Ok(Arc::clone(c));
        }
        let store = Arc::new(rustls::client::ClientSessionMemoryCache::new(SESSIONS_PER_QUEUE));
        let fresh = build(config, Some(store))?;
        *built = Some((key, Arc::clone(&fresh)));
        Ok(fresh)
    }
}

fn build(
    config: &ClientConfig,
    sessions: Option<Arc<rustls::client::ClientSessionMemoryCache>>,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let provider = Arc::new(provider(&config.tls13_suites)?);
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if config.allow_tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if config.allow_tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err(TlsSetupError::NoVersions);
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(TlsSetupError::Versions)?;
    let builder = match (&config.tls_policy, config.tls_ca_file.as_deref()) {
        (Some(policy), _) => builder.dangerous().with_custom_certificate_verifier(Arc::clone(&policy.verifier)),
        (None, Some(path)) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|source| TlsSetupError::ReadCa { path: path.to_path_buf(), source })?;
            for cert in certs {
                let cert = cert.map_err(|source| TlsSetupError::BadCa { path: path.to_path_buf(), source })?;
                roots.add(cert).map_err(|source| TlsSetupError::UnusableCa { path: path.to_path_buf(), source })?;
            }
            if roots.is_empty() {
                return Err(TlsSetupError::EmptyCa(path.to_path_buf()));
            }
            builder.with_root_certificates(roots)
        }
        (None, None) => builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider))),
    };
    let mut tls = match config.client_certificate.as_deref() {
        Some(path) => {
            let (chain, key) = client_identity(path)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsSetupError::KeyMismatch { path: path.to_path_buf(), source })?
        }
        None => builder.with_no_client_auth(),
    };
    tls.resumption = match sessions {
        Some(store) => Resumption::store(store),
        None => Resumption::disabled(),
    };
    Ok(Arc::new(tls))
}

/// The ring provider with only the TLS 1.3 suites asked for (all TLS 1.2 suites stay).
fn provider(tls13: &[String]) -> Result<CryptoProvider, TlsSetupError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if tls13.is_empty() {
        return Ok(provider);
    }
    let mut suites: Vec<SupportedCipherSuite> = Vec::new();
    for name in tls13 {
        let wanted = format!("TLS13_{}", name.strip_prefix("TLS_").unwrap_or(name));
        let suite = provider
            .cipher_suites
            .iter()
            .find(|s| s.tls13().is_some() && s.suite().as_str() == Some(wanted.as_str()))
            .ok_or_else(|| TlsSetupError::Suite(name.clone()))?;
        suites.push(*suite);
    }
    suites.extend(provider.cipher_suites.iter().filter(|s| s.tls13().is_none()).copied());
    provider.cipher_suites = suites;
    Ok(provider)
}

/// The certificate chain and key of `smtp-client-certificate` (one PEM file).
fn client_identity(path: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsSetupError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|source| TlsSetupError::ReadCertificate { path: path.to_path_buf(), source })?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsSetupError::BadCertificate { path: path.to_path_buf(), source })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate(path.to_path_buf()));
    }
    let key =
        PrivateKeyDer::from_pem_file(path).map_err(|source| TlsSetupError::Key { path: path.to_path_buf(), source })?;
    Ok((chain, key))
}

/// The name to verify and send as SNI: the MX host name, or the address for `[ip]` hosts.
pub fn server_name(mx_name: &str, addr: SocketAddr) -> ServerName<'static> {
    let bare = mx_name.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    let bare = bare.strip_prefix("IPv6:").unwrap_or(bare);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(bare.to_string()).unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()))
}

/// Runs the handshake within `timeout`. The error says why, for the record or `TlsRequired`,
/// and whether it was the certificate.
pub async fn handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, (String, TlsFailure)> {
    match tokio::time::timeout(timeout, TlsConnector::from(config).connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => {
            let failure = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(rustls::Error::InvalidCertificate(c)) => TlsFailure::Certificate(c.clone()),
                _ => TlsFailure::Handshake,
            };
            // A verifier's own error (DANE: no TLSA record matched) reads better than its Debug.
            if let TlsFailure::Certificate(rustls::CertificateError::Other(other)) = &failure {
                return Err((format!("TLS handshake failed: certificate {other}"), failure));
            }
            Err((format!("TLS handshake failed: {e}"), failure))
        }
        Err(_) => Err(("timeout during TLS handshake".into(), TlsFailure::Handshake)),
    }
}

/// The server's certificate chain (leaf first), kept so that it can be checked again after the
/// handshake.
pub fn peer_chain(stream: &TlsStream<TcpStream>) -> Vec<CertificateDer<'static>> {
    stream.get_ref().1.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned()).collect()
}

/// Checks the server's certificate chain with `verifier` for `name` after a handshake that did
/// not (MTA-STS testing mode, or a policy other than the one the connection was set up for).
pub fn audit(
    certs: &[CertificateDer<'_>],
    name: &ServerName<'_>,
    verifier: &dyn ServerCertVerifier,
) -> Result<(), TlsFailure> {
    let Some((leaf, intermediates)) = certs.split_first() else {
        return Err(TlsFailure::Certificate(rustls::CertificateError::BadEncoding));
    };
    match verifier.verify_server_cert(leaf, intermediates, name, &[], UnixTime::now()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InvalidCertificate(c)) => Err(TlsFailure::Certificate(c)),
        Err(_) => Err(TlsFailure::Handshake),
    }
}

/// The negotiated protocol ("TLSv1.3") and cipher suite (IANA name).
pub fn negotiated(stream: &TlsStream<TcpStream>) -> (String, String) {
    crate::smtp::tls::names(stream.get_ref().1)
}

/// What Ember knows about the server's certificate after the handshake.
pub fn describe_peer(
    stream: &TlsStream<TcpStream>,
    name: &ServerName<'_>,
    ca_file: Option<&Path>,
    policy: Option<&TlsEnforcement>,
) -> String {
    if let Some(policy) = policy.filter(|p| p.covers(&name.to_str())) {
        return format!("certificate verified for {} ({})", name.to_str(), policy.label);
    }
    if let Some(path) = ca_file {
        return format!("certificate verified against {}", path.display());
    }
    let Some(leaf) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return "not verified (no smtp-tls-ca-file); no certificate".into();
    };
    let matches =
        ParsedCertificate::try_from(leaf).is_ok_and(|parsed| rustls::client::verify_server_name(&parsed, name).is_ok());
    let mut out = format!(
        "not verified (no smtp-tls-ca-file); certificate {} {}",
        if matches { "names" } else { "does not name" },
        name.to_str()
    );
    if let Some(fp) = sha256(leaf) {
        out.push_str(", sha256 ");
        out.push_str(&fp);
    }
    out
}

/// SHA-256 of the certificate, hex, with the hash the ring provider already carries.
fn sha256(cert: &[u8]) -> Option<String> {
    let provider = rustls::crypto::ring::default_provider();
    let hash = provider
        .cipher_suites
        .iter()
        .filter_map(|s| s.tls13())
        .map(|s| s.common.hash_provider)
        .find(|h| h.algorithm() == HashAlgorithm::SHA256)?;
    let mut hex = String::with_capacity(64);
    for b in hash.hash(cert).as_ref() {
        let _ = write!(hex, "{b:02x}");
    }
    Some(hex)
}

/// Opportunistic TLS without a CA file: any certificate, but the handshake signatures are still
/// checked (the session is still encrypted to whoever holds the certificate's key).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        let addr: SocketAddr = "192.0.2.1:25".parse().unwrap();
        assert_eq!(server_name("mx.example.com.", addr).to_str(), "mx.example.com");
        assert_eq!(server_name("[192.0.2.7]", addr).to_str(), "192.0.2.7");
        assert_eq!(server_name("[IPv6:2001:db8::1]", addr).to_str(), "2001:db8::1");
        assert_eq!(server_name("bad name!", addr).to_str(), "192.0.2.1");
    }

    #[test]
    fn unreadable_ca_file_is_an_error_with_the_path() {
        let mut config = ClientConfig::new("ember.test");
        assert!(client_config(&config).is_ok());
        config.tls_ca_file = Some("/nonexistent/ca.pem".into());
        let err = client_config(&config).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
