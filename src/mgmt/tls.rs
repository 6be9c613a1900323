//! HTTPS on the management port: with `http-tls-certificate` (a PEM file with the chain and its
//! key) each connection's first byte says what it speaks: a TLS handshake is served as HTTPS
//! (with `Strict-Transport-Security` when `http-strict-transport-security-max-age` is set), a
//! plain request as HTTP, or, with `http-redirect-to-https yes`, a `301` to the same path over
//! HTTPS. `http-log-tls yes` logs each handshake (protocol and cipher, or why it failed).
//!
//! The certificate is read when the daemon starts (a reload does not change it); the other
//! directives are read from the running configuration for every connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::api::ApiState;
use crate::config::{Config, Dir};

/// How long a client has to send its first byte and finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `http-tls-certificate` cannot be used (the reason names the file).
#[derive(Debug, thiserror::Error)]
#[error("http-tls-certificate: {0}")]
pub struct HttpTlsError(#[from] crate::ingress::tls::TlsConfigError);

/// The TLS configuration of the management port, if `http-tls-certificate` is set.
pub fn server_config(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, HttpTlsError> {
    let Some(path) = config.global.path(Dir::HttpTlsCertificate) else { return Ok(None) };
    let mut tls = (*crate::ingress::tls::server_config(&crate::ingress::tls::ServerTls {
        certificate: config.path(path),
        allow_tls12: true,
        client_ca: None,
    })?)
    .clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

/// Serves the router on `listener`, HTTPS and (unless redirected) HTTP on the same port.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>, router: Router, tls: Arc<rustls::ServerConfig>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("management https: accept: {e}");
                continue;
            }
        };
        let (acceptor, state, router) = (acceptor.clone(), Arc::clone(&state), router.clone());
        tokio::spawn(async move { connection(stream, peer, acceptor, state, router).await });
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, state: Arc<ApiState>, router: Router) {
    let config = state.config();
    let log_tls = config.global.flag(Dir::HttpLogTls);
    let mut first = [0u8; 1];
    let is_tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16, // a TLS handshake record
        _ => return,
    };
    let router = router.layer(axum::Extension(ConnectInfo(peer)));
    if !is_tls {
        if config.global.flag(Dir::HttpRedirectToHttps) {
            serve_one(stream, redirect_router()).await;
        } else {
            serve_one(stream, router).await;
        }
        return;
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            if log_tls {
                tracing::info!("management https: TLS handshake with {peer} failed: {e}");
            }
            return;
        }
        Err(_) => {
            if log_tls {
                tracing::info!("management https: TLS handshake with {peer} timed out");
            }
            return;
        }
    };
    if log_tls {
        let (_, session) = tls.get_ref();
        let protocol = session.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
        let cipher = session.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default();
        tracing::info!("management https: TLS with {peer}: {protocol} {cipher}");
    }
    let router = match hsts(&config) {
        Some(value) => router.layer(axum::middleware::map_response(move |mut r: Response<axum::body::Body>| {
            let value = value.clone();
            async move {
                r.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, value);
                r
            }
        })),
        None => router,
    };
    serve_one(tls, router).await;
}

/// `max-age=N` from `http-strict-transport-security-max-age`, when set.
fn hsts(config: &Config) -> Option<HeaderValue> {
    let age = config.global.interval(Dir::HttpStsMaxAge)?;
    HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok()
}

/// Answers every plain-HTTP request with a redirect to the same host and path over HTTPS.
fn redirect_router() -> Router {
    Router::new().fallback(|request: Request<axum::body::Body>| async move {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{path}");
        let mut response = Response::new(axum::body::Body::from(format!("use HTTPS: {location}\n")));
        *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        response
    })
}

/// Serves one connection with HTTP/1.1.
async fn serve_one<S>(io: S, router: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service).await {
        tracing::debug!("management http connection: {e}");
    }
}
