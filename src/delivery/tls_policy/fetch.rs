//! Fetching an MTA-STS policy file (RFC 8461 §3.3): `GET /.well-known/mta-sts.txt` over HTTPS
//! from `mta-sts.DOMAIN` on port 443, the certificate verified for that name (SNI set), no
//! redirects followed, the body bounded in size and the whole exchange in time. Whatever goes
//! wrong is a `FetchError`: the caller treats it as "no valid policy".

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::sts::MAX_POLICY_BYTES;

/// How a fetch is bounded.
#[derive(Clone, Copy, Debug)]
pub struct FetchLimits {
    /// For the whole fetch, every address tried included.
    pub timeout: Duration,
    pub port: u16,
}

impl Default for FetchLimits {
    fn default() -> FetchLimits {
        FetchLimits { timeout: Duration::from_secs(15), port: 443 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("cannot connect to {host}: {why}")]
    Connect { host: String, why: String },
    /// The certificate did not verify for the policy host (TLS-RPT `sts-webpki-invalid`).
    #[error("certificate of {host} not valid: {why}")]
    Certificate { host: String, why: String },
    #[error("TLS with {host} failed: {why}")]
    Tls { host: String, why: String },
    #[error("{host} answered HTTP {status}{}", if *.redirect { " (redirects are not followed)" } else { "" })]
    Status { host: String, status: u16, redirect: bool },
    #[error("the policy from {host} is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge { host: String },
    #[error("HTTP exchange with {host} failed: {why}")]
    Http { host: String, why: String },
    #[error("no policy from {host} within {0:?}", .timeout)]
    Timeout { host: String, timeout: Duration },
}

/// Fetches the policy of `domain` from `addrs` (the addresses of `mta-sts.DOMAIN`), trying
/// them in order within `limits.timeout`.
pub async fn fetch(
    domain: &str,
    addrs: &[IpAddr],
    verifier: Arc<dyn ServerCertVerifier>,
    limits: FetchLimits,
) -> Result<Vec<u8>, FetchError> {
    let host = format!("mta-sts.{domain}");
    if addrs.is_empty() {
        return Err(FetchError::NoAddress { host });
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Tls { host: host.clone(), why: e.to_string() })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(tls));
    let attempt = async {
        let mut last = FetchError::NoAddress { host: host.clone() };
        for ip in addrs {
            match fetch_from(&host, SocketAddr::new(*ip, limits.port), &connector).await {
                Ok(body) => return Ok(body),
                // A policy the server did send (too large, an HTTP error) is the answer: the
                // other addresses serve the same site.
                Err(e @ (FetchError::Status { .. } | FetchError::TooLarge { .. })) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(limits.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout { host, timeout: limits.timeout }),
    }
}

async fn fetch_from(host: &str, addr: SocketAddr, connector: &TlsConnector) -> Result<Vec<u8>, FetchError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| FetchError::Connect { host: host.to_string(), why: format!("{addr}: {e}") })?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| FetchError::Tls { host: host.to_string(), why: e.to_string() })?;
    let stream = connector.connect(name, tcp).await.map_err(|e| {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(c)) => {
                FetchError::Certificate { host: host.to_string(), why: format!("{c:?}") }
            }
            _ => FetchError::Tls { host: host.to_string(), why: e.to_string() },
        }
    })?;
    let http = |e: hyper::Error| FetchError::Http { host: host.to_string(), why: e.to_string() };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
    // The connection task ends with the exchange (or when `fetch`'s timeout drops the sender).
    let driver = tokio::spawn(connection);
    let request = Request::get("/.well-known/mta-sts.txt")
        .header(HOST, host)
        .header(USER_AGENT, concat!("ember/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Http { host: host.to_string(), why: e.to_string() })?;
    let result = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        if status.as_u16() != 200 {
            return Err(FetchError::Status {
                host: host.to_string(),
                status: status.as_u16(),
                redirect: status.is_redirection(),
            });
        }
        if response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > MAX_POLICY_BYTES as u64)
        {
            return Err(FetchError::TooLarge { host: host.to_string() });
        }
        let body = Limited::new(response.into_body(), MAX_POLICY_BYTES).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                FetchError::TooLarge { host: host.to_string() }
            } else {
                FetchError::Http { host: host.to_string(), why: e.to_string() }
            }
        })?;
        Ok(body.to_bytes().to_vec())
    }
    .await;
    driver.abort();
    result
}
