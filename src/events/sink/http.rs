//! The HTTP sink: each batch is one `POST` of a JSON array to `url`, with
//! `X-Ember-Batch-Id: FIRST-LAST` (the same on every retry) and, with a `secret`,
//! `X-Ember-Signature: sha256=HEX` (HMAC-SHA256 of the body). Only a 2xx answer delivers the
//! batch; any other status, a connection that fails or hangs past the timeout, or a broken
//! answer is an error and the batch is sent again later. One HTTP/1.1 connection is kept open
//! between batches (TLS for `https://`, verified against the system's roots).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::{Batch, SinkError};

/// How long one batch may take: connecting, sending and the whole answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Most of an answer's body that is read (and ignored).
const ANSWER_LIMIT: usize = 64 << 10;

pub struct HttpSink {
    url: String,
    host: String,
    port: u16,
    /// The request target: path and query.
    target: String,
    /// The `Host` header.
    authority: String,
    tls: Option<tokio_rustls::TlsConnector>,
    secret: Option<ring::hmac::Key>,
    conn: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl HttpSink {
    pub fn new(url: &str, secret: Option<&str>) -> Result<HttpSink, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or_else(|| format!("url {url:?}: no host"))?.trim_matches(['[', ']']).to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_else(|| host.clone());
        let target = uri.path_and_query().map_or_else(|| "/".to_string(), |p| p.to_string());
        let tls = https.then(client_tls).transpose()?;
        Ok(HttpSink {
            url: url.to_string(),
            host,
            port,
            target,
            authority,
            tls,
            secret: secret.map(|s| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.as_bytes())),
            conn: None,
            timeout: TIMEOUT,
        })
    }

    /// The same sink with another limit on one batch (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> HttpSink {
        self.timeout = timeout;
        self
    }

    pub async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let body = batch.json_array();
        match tokio::time::timeout(self.timeout, self.post(batch.id(), body)).await {
            Ok(result) => result,
            Err(_) => {
                // A receiver that hangs: the connection is in an unknown state.
                self.conn = None;
                Err(SinkError::Timeout(self.timeout))
            }
        }
    }

    async fn post(&mut self, batch_id: String, body: Vec<u8>) -> Result<(), SinkError> {
        let reusable = match self.conn.take() {
            Some(mut c) => c.ready().await.is_ok().then_some(c),
            None => None,
        };
        let mut sender = match reusable {
            Some(c) => c,
            None => self.connect().await?,
        };
        let mut request = hyper::Request::post(&self.target)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, concat!("Ember/", env!("CARGO_PKG_VERSION")))
            .header("X-Ember-Batch-Id", &batch_id);
        if let Some(key) = &self.secret {
            request = request.header("X-Ember-Signature", signature(key, &body));
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| SinkError::Http(e.to_string()))?;
        let answer = sender.send_request(request).await.map_err(|e| SinkError::Http(format!("{}: {e}", self.url)))?;
        let status = answer.status();
        // The body is read so the connection can carry the next batch.
        let text = Limited::new(answer.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).chars().take(200).collect::<String>())
            .map_err(|e| SinkError::Http(format!("{}: answer: {e}", self.url)))?;
        if !status.is_success() {
            return Err(SinkError::Http(format!("{} answered {status}: {}", self.url, text.trim())));
        }
        self.conn = Some(sender);
        Ok(())
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SinkError> {
        let failed = |reason: String| SinkError::Connect { target: self.url.clone(), reason };
        let tcp =
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| failed(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(TokioIo::new(tcp)).await.map_err(failed),
            Some(connector) => {
                let name =
                    rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| failed(e.to_string()))?;
                let tls = connector.connect(name, tcp).await.map_err(|e| failed(e.to_string()))?;
                handshake(TokioIo::new(tls)).await.map_err(failed)
            }
        }
    }
}

async fn handshake<T>(io: TokioIo<T>) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Ends when the receiver or the sink closes the connection; nothing to report.
        let _ = connection.await;
    });
    Ok(sender)
}

/// `sha256=HEX` of the body under the key.
pub fn signature(key: &ring::hmac::Key, body: &[u8]) -> String {
    let tag = ring::hmac::sign(key, body);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256=");
    for b in tag.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// TLS for `https://` receivers, verified against the system's root certificates.
fn client_tls() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231 test case 2.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn one_event() -> Batch {
        let json = br#"{"id":1,"type":"reception","time":"2026-12-06T19:22:43.123Z"}"#.to_vec();
        Batch { first: 1, last: 1, events: vec![crate::events::log::Stored { id: 1, time_ms: 0, json }] }
    }

    #[tokio::test]
    async fn a_receiver_that_hangs_or_answers_garbage_is_an_error_not_a_wait() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // The first connection reads the request and never answers; the second answers
            // bytes that are not HTTP.
            let (mut hung, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = hung.read(&mut buf).await;
            let (mut garbage, _) = listener.accept().await.unwrap();
            let _ = garbage.read(&mut buf).await;
            garbage.write_all(b"\x00\x01 not http\r\n\r\n").await.unwrap();
            std::future::pending::<()>().await;
        });
        let mut sink =
            HttpSink::new(&format!("http://{addr}/"), None).unwrap().with_timeout(Duration::from_millis(300));
        let hung = sink.deliver(&one_event()).await.unwrap_err();
        assert!(matches!(hung, SinkError::Timeout(_)), "{hung}");
        let garbage = sink.deliver(&one_event()).await.unwrap_err();
        assert!(matches!(garbage, SinkError::Http(_)), "{garbage}");
    }

    #[test]
    fn urls_are_split_into_host_port_and_target() {
        let s = HttpSink::new("http://127.0.0.1:8099/hooks?x=1", Some("k")).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.target.as_str(), s.authority.as_str()),
            ("127.0.0.1", 8099, "/hooks?x=1", "127.0.0.1:8099")
        );
        assert!(s.tls.is_none());
    }
}
