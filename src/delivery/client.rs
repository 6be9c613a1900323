//! The outbound SMTP client: one connection to one MX address, opened from the virtual MTA's
//! source IP with its host name, upgraded by STARTTLS and authenticated per the queue's
//! settings, then used for any number of transactions, each giving one reply per recipient.
//!
//! Owns the client side of the wire protocol (RFC 5321, 2920 PIPELINING, 3030 CHUNKING,
//! 3207 STARTTLS, 4954 AUTH, 3461 DSN, 6152 8BITMIME, 6531 SMTPUTF8). Knows nothing about
//! queues, retries or the spool: every failure comes back as a `ClientError` or as replies, and
//! the caller decides what they mean. Every byte from the server is bounded (see `reply`).

// `ehlo` and `reply` parse what a remote server sends; public for the fuzz targets in `fuzz/`.
pub mod ehlo;
mod envelope;
mod error;
pub mod reply;
mod tls;
mod transaction;
mod transfer;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpSocket;

use self::ehlo::Extensions;
use self::wire::{Stream, Wire};
use crate::smtp::Reply;
use crate::smtp::sasl::encode_base64;

pub use self::error::{ClientError, Phase};
pub use self::reply::{MAX_REPLY_BYTES, MAX_REPLY_LINES};
pub use self::tls::{SessionCache, TlsEnforcement, TlsFailure};
pub use self::transfer::TransferPolicy;

/// A queue's client settings, filled from its effective `<domain>`/`<virtual-mta>` settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// The virtual MTA's host name, sent with EHLO.
    pub helo_name: String,
    /// `smtp-source-host`: bound before connecting.
    pub source_ip: Option<IpAddr>,
    /// `use-starttls`: STARTTLS when offered; on handshake failure reconnect and go on in clear.
    pub use_starttls: bool,
    /// `require-starttls`: never send MAIL in clear.
    pub require_starttls: bool,
    /// `smtp-tls-ca-file`: verify the server's certificate against it.
    pub tls_ca_file: Option<PathBuf>,
    /// `smtp-tls-allow-tlsv1.2` / `smtp-tls-allow-tlsv1.3`: the versions offered.
    pub allow_tls12: bool,
    pub allow_tls13: bool,
    /// `smtp-tls-tlsv1.3-ciphersuites`, by OpenSSL name, in preference order; empty: all.
    pub tls13_suites: Vec<String>,
    /// `smtp-client-certificate`: PEM with the chain and its unencrypted key, presented when
    /// the server asks for a client certificate.
    pub client_certificate: Option<PathBuf>,
    /// `reuse-ssl-session yes`: the queue's TLS session cache, so its next connections resume
    /// instead of a full handshake; `None` disables resumption.
    pub tls_sessions: Option<Arc<SessionCache>>,
    /// `auth-username` / `auth-password`.
    pub auth: Option<(String, String)>,
    /// `use-unencrypted-plain-auth`.
    pub allow_plain_in_clear: bool,
    pub ignore_pipelining: bool,
    pub ignore_chunking: bool,
    pub ignore_8bitmime: bool,
    pub ignore_dsn: bool,
    /// Recipients per transaction; a message with more is sent as several transactions on the
    /// same connection. 0 means no limit.
    pub max_rcpt_per_transaction: usize,
    pub connect_timeout: Duration,
    pub greeting_timeout: Duration,
    /// For each reply to a command (and for writing the command).
    pub command_timeout: Duration,
    /// For each block of message data written.
    pub data_send_timeout: Duration,
    /// For the reply to the end of data.
    pub data_termination_timeout: Duration,
    /// What a transfer broken after the data started means (`bounce-upon-transfer-failure`,
    /// `assume-delivery-upon-data-termination-timeout`).
    pub transfer: TransferPolicy,
    /// `replace-smtp-421-service-response`: a 421 from the server keeps its codes, its text is
    /// replaced by `SCRUBBED_421_TEXT` before anyone sees it.
    pub replace_421_text: bool,
    /// `log-transfer-failures`: a log line for every transfer broken after the data started.
    pub log_transfer_failures: bool,
    /// A transport-security policy in force (MTA-STS enforce): TLS required, the certificate
    /// verified by the policy's verifier, failures named after the policy. Wins over
    /// `smtp-tls-ca-file` and `use-starttls no`.
    pub tls_policy: Option<TlsEnforcement>,
    /// A verifier the certificate is checked with after an opportunistic handshake, without
    /// refusing the session (MTA-STS testing mode): `Connection::tls_audit` has the result.
    pub tls_audit: Option<Arc<dyn rustls::client::danger::ServerCertVerifier>>,
}

/// The text a server's 421 gets under `replace-smtp-421-service-response` (RFC 5321 §4.2.3's own
/// wording for the code): neutral, so nothing the receiver wrote reaches DSNs or accounting.
pub const SCRUBBED_421_TEXT: &str = "Service not available, closing transmission channel";

impl ClientConfig {
    /// PowerMTA's defaults (docs/config-reference.md) for a virtual MTA named `helo_name`.
    pub fn new(helo_name: impl Into<String>) -> ClientConfig {
        ClientConfig {
            helo_name: helo_name.into(),
            source_ip: None,
            use_starttls: true,
            require_starttls: false,
            tls_ca_file: None,
            allow_tls12: true,
            allow_tls13: true,
            tls13_suites: Vec::new(),
            client_certificate: None,
            tls_sessions: None,
            auth: None,
            allow_plain_in_clear: false,
            ignore_pipelining: false,
            ignore_chunking: false,
            ignore_8bitmime: false,
            ignore_dsn: false,
            max_rcpt_per_transaction: 1000,
            connect_timeout: Duration::from_secs(2 * 60),
            greeting_timeout: Duration::from_secs(5 * 60),
            command_timeout: Duration::from_secs(5 * 60),
            data_send_timeout: Duration::from_secs(3 * 60),
            data_termination_timeout: Duration::from_secs(10 * 60),
            transfer: TransferPolicy::default(),
            replace_421_text: false,
            log_transfer_failures: false,
            tls_policy: None,
            tls_audit: None,
        }
    }

    /// The error for a session that cannot have the TLS required of it: in a policy's name when
    /// one is in force.
    fn tls_required(&self, mx_name: &str, why: String, failure: TlsFailure) -> ClientError {
        match self.tls_policy.as_ref().filter(|p| p.covers(mx_name)) {
            Some(policy) => ClientError::PolicyRefused { policy: policy.label.clone(), why, failure },
            None => ClientError::TlsRequired { why },
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("helo_name", &self.helo_name)
            .field("source_ip", &self.source_ip)
            .field("use_starttls", &self.use_starttls)
            .field("require_starttls", &self.require_starttls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("allow_tls12", &self.allow_tls12)
            .field("allow_tls13", &self.allow_tls13)
            .field("tls13_suites", &self.tls13_suites)
            .field("client_certificate", &self.client_certificate)
            .field("tls_sessions", &self.tls_sessions.is_some())
            .field("auth", &self.auth.as_ref().map(|(user, _)| (user, "********")))
            .field("allow_plain_in_clear", &self.allow_plain_in_clear)
            .field("ignore_pipelining", &self.ignore_pipelining)
            .field("ignore_chunking", &self.ignore_chunking)
            .field("ignore_8bitmime", &self.ignore_8bitmime)
            .field("ignore_dsn", &self.ignore_dsn)
            .field("max_rcpt_per_transaction", &self.max_rcpt_per_transaction)
            .field("connect_timeout", &self.connect_timeout)
            .field("greeting_timeout", &self.greeting_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("data_send_timeout", &self.data_send_timeout)
            .field("data_termination_timeout", &self.data_termination_timeout)
            .field("transfer", &self.transfer)
            .field("replace_421_text", &self.replace_421_text)
            .field("log_transfer_failures", &self.log_transfer_failures)
            .field("tls_policy", &self.tls_policy.as_ref().map(|p| &p.label))
            .field("tls_audit", &self.tls_audit.is_some())
            .finish()
    }
}

/// An open SMTP session, ready for `send`.
pub struct Connection {
    wire: Wire,
    remote: SocketAddr,
    local: SocketAddr,
    mx_name: String,
    greeting: Reply,
    /// EHLO was accepted (false: HELO fallback, no extensions).
    esmtp: bool,
    /// The extensions in effect (after TLS: the second EHLO's).
    ext: Extensions,
    /// Every keyword offered in this session, in order (both EHLOs).
    offered: Vec<String>,
    tls: Option<(String, String)>,
    tls_peer: Option<String>,
    tls_fallback: Option<String>,
    /// The certificate checked with `ClientConfig::tls_audit`, when one was given.
    tls_audit: Option<Result<(), TlsFailure>>,
    /// The server's certificate chain, leaf first (empty in clear).
    tls_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// What failed when TLS was tried and the session went on in clear.
    tls_fallback_failure: Option<TlsFailure>,
    auth_mechanism: Option<&'static str>,
    config: ClientConfig,
    /// False once the session cannot carry another transaction (421, a failed RSET, a drop).
    usable: bool,
    messages_sent: usize,
}

/// A session before it is handed out: connected, greeted, EHLO done.
struct Session {
    wire: Wire,
    remote: SocketAddr,
    local: SocketAddr,
    greeting: Reply,
    esmtp: bool,
    ext: Extensions,
}

/// How a STARTTLS attempt ended when it did not give a TLS session.
enum StartTlsFailure {
    /// The server refused STARTTLS; the session goes on in clear.
    Refused(Box<Session>, Reply),
    /// The session is gone (handshake failure, drop, timeout); the reason, and what failed.
    Broken(String, TlsFailure),
    /// Ember's own TLS setup failed, or EHLO after the handshake was refused.
    Fatal(ClientError),
}

impl Connection {
    /// TCP connect (from `source_ip`), greeting, EHLO (HELO when EHLO gets 5xx), STARTTLS per
    /// policy (then EHLO again), AUTH.
    ///
    /// Opportunistic TLS that fails in the handshake reconnects and goes on in clear;
    /// `tls_fallback()` says why. A STARTTLS refused with 4xx/5xx goes on in clear on the same
    /// session.
    pub async fn open(addr: SocketAddr, mx_name: &str, config: &ClientConfig) -> Result<Connection, ClientError> {
        if config.helo_name.is_empty() || config.helo_name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ClientError::Config(format!("host name {:?} cannot be sent with EHLO", config.helo_name)));
        }
        let mut session = Session::start(addr, config).await?;
        let mut tls = None;
        let mut fallback = None;
        let mut fallback_failure = None;
        let required = config.require_starttls || config.tls_policy.as_ref().is_some_and(|p| p.covers(mx_name));
        if config.use_starttls || required {
            if !session.ext.starttls {
                if required {
                    let why = if session.esmtp {
                        format!("{mx_name} does not offer STARTTLS")
                    } else {
                        format!("{mx_name} refused EHLO, so STARTTLS is not available")
                    };
                    session.abandon(config).await;
                    return Err(config.tls_required(mx_name, why, TlsFailure::NotOffered));
                }
            } else {
                match session.starttls(mx_name, config).await {
                    Ok((upgraded, info)) => {
                        session = upgraded;
                        tls = Some(info);
                    }
                    Err(StartTlsFailure::Fatal(e)) => return Err(e),
                    Err(StartTlsFailure::Refused(_, reply)) if reply.code == 421 => {
                        return Err(ClientError::Refused { phase: Phase::StartTls, reply });
                    }
                    Err(StartTlsFailure::Refused(clear, reply)) => {
                        let why = format!("STARTTLS refused: {reply}");
                        if required {
                            clear.abandon(config).await;
                            return Err(config.tls_required(mx_name, why, TlsFailure::Refused));
                        }
                        session = *clear;
                        fallback = Some(why);
                        fallback_failure = Some(TlsFailure::Refused);
                    }
                    Err(StartTlsFailure::Broken(why, failure)) => {
                        if required {
                            return Err(config.tls_required(mx_name, why, failure));
                        }
                        tracing::info!(%addr, mx = mx_name, "{why}; reconnecting to deliver in clear");
                        session = Session::start(addr, config).await?;
                        fallback = Some(why);
                        fallback_failure = Some(failure);
                    }
                }
            }
        }
        let offered = session.ext.keywords.clone();
        let mut conn = Connection {
            wire: session.wire,
            remote: session.remote,
            local: session.local,
            mx_name: mx_name.to_string(),
            greeting: session.greeting,
            esmtp: session.esmtp,
            ext: session.ext,
            offered,
            tls: None,
            tls_peer: None,
            tls_fallback: fallback,
            tls_audit: None,
            tls_chain: Vec::new(),
            tls_fallback_failure: fallback_failure,
            auth_mechanism: None,
            config: config.clone(),
            usable: true,
            messages_sent: 0,
        };
        if let Some(info) = tls {
            conn.tls = Some(info.negotiated);
            conn.tls_peer = Some(info.peer);
            conn.tls_audit = info.audit;
            conn.tls_chain = info.chain;
            // The first EHLO's keywords (STARTTLS among them) stay in the record, followed by
            // what only the second offered.
            let second = std::mem::replace(&mut conn.offered, info.first_keywords);
            for k in second {
                if !conn.offered.contains(&k) {
                    conn.offered.push(k);
                }
            }
        }
        if let Some((user, password)) = &config.auth
            && let Err(e) = conn.authenticate(user, password).await
        {
            if !matches!(e, ClientError::Timeout { .. } | ClientError::Disconnected { .. }) {
                conn.quit().await;
            }
            return Err(e);
        }
        Ok(conn)
    }

    /// Ends the session: QUIT (and TLS close_notify), best effort, bounded by the command
    /// timeout.
    pub async fn quit(mut self) {
        if self.usable {
            let timeout = self.config.command_timeout;
            if self.wire.command(b"QUIT\r\n", timeout, Phase::Quit).await.is_ok() {
                self.wire.shutdown(timeout).await;
            }
        }
    }

    /// PowerMTA's `dlvEsmtpAvailable`: the extensions the server offered in this session (both
    /// EHLOs when TLS was started), upper case, comma-separated.
    pub fn esmtp_available(&self) -> String {
        self.offered.join(",")
    }

    /// The negotiated TLS protocol ("TLSv1.3") and cipher suite ("TLS_AES_256_GCM_SHA384"), for
    /// `dlvTlsProtocol` / `dlvTlsCipher`.
    pub fn tls(&self) -> Option<(String, String)> {
        self.tls.clone()
    }

    /// What was checked about the server's certificate: "certificate verified against FILE" or
    /// "not verified (no smtp-tls-ca-file); certificate names mx.example.com, sha256 …".
    pub fn tls_peer(&self) -> Option<&str> {
        self.tls_peer.as_deref()
    }

    /// The certificate checked with `ClientConfig::tls_audit` (`None`: no audit asked, or the
    /// session is in clear).
    pub fn tls_audit(&self) -> Option<&Result<(), TlsFailure>> {
        self.tls_audit.as_ref()
    }

    /// Checks the server's certificate with `verifier` for the MX name now, after the
    /// handshake: a rollup connection carries mail of domains whose policies the handshake did
    /// not check. In clear: `NotOffered`.
    pub fn verify_peer(&self, verifier: &dyn rustls::client::danger::ServerCertVerifier) -> Result<(), TlsFailure> {
        if self.tls.is_none() {
            return Err(self.tls_fallback_failure.clone().unwrap_or(TlsFailure::NotOffered));
        }
        tls::audit(&self.tls_chain, &tls::server_name(&self.mx_name, self.remote), verifier)
    }

    /// What failed when this session fell back to clear text (see `tls_fallback`).
    pub fn tls_fallback_failure(&self) -> Option<&TlsFailure> {
        self.tls_fallback_failure.as_ref()
    }

    /// Why this session is in clear although opportunistic TLS was wanted and offered.
    pub fn tls_fallback(&self) -> Option<&str> {
        self.tls_fallback.as_deref()
    }

    /// The SASL mechanism used when the session authenticated.
    pub fn auth_mechanism(&self) -> Option<&str> {
        self.auth_mechanism
    }

    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// EHLO was accepted (false when the session fell back to HELO).
    pub fn is_esmtp(&self) -> bool {
        self.esmtp
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn mx_name(&self) -> &str {
        &self.mx_name
    }

    /// Messages `send` completed on this connection (for `max-msg-per-connection`).
    pub fn messages_sent(&self) -> usize {
        self.messages_sent
    }

    /// Returns when the server speaks or hangs up between transactions (see `Wire::peer_activity`).
    pub async fn peer_activity(&self) {
        self.wire.peer_activity().await;
    }

    /// Whether another `send` can be tried: false after a 421, a failed RSET or a broken
    /// transfer.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// AUTH PLAIN (preferred) or LOGIN, whichever the server offers, never in clear unless
    /// `use-unencrypted-plain-auth`.
    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        let mechanism = if self.ext.auth.iter().any(|m| m == "PLAIN") {
            "PLAIN"
        } else if self.ext.auth.iter().any(|m| m == "LOGIN") {
            "LOGIN"
        } else if self.ext.auth.is_empty() {
            return Err(ClientError::AuthNotPossible(format!("{} does not offer AUTH", self.mx_name)));
        } else {
            return Err(ClientError::AuthNotPossible(format!(
                "{} offers AUTH {}; Ember speaks PLAIN and LOGIN",
                self.mx_name,
                self.ext.auth.join(" ")
            )));
        };
        if self.tls.is_none() && !self.config.allow_plain_in_clear {
            let why = match &self.tls_fallback {
                Some(fallback) => format!("the session is not encrypted ({fallback})"),
                None => "the session is not encrypted".to_string(),
            };
            return Err(ClientError::AuthNotPossible(format!(
                "{why}; credentials are sent in clear only with use-unencrypted-plain-auth"
            )));
        }
        let timeout = self.config.command_timeout;
        let reply = if mechanism == "PLAIN" {
            let token = encode_base64(format!("\0{user}\0{password}").as_bytes());
            self.wire.command(format!("AUTH PLAIN {token}\r\n").as_bytes(), timeout, Phase::Auth).await?
        } else {
            let mut reply = self.wire.command(b"AUTH LOGIN\r\n", timeout, Phase::Auth).await?;
            for secret in [user, password] {
                if reply.code != 334 {
                    break;
                }
                let line = format!("{}\r\n", encode_base64(secret.as_bytes()));
                reply = self.wire.command(line.as_bytes(), timeout, Phase::Auth).await?;
            }
            reply
        };
        match reply.code {
            235 => {
                self.auth_mechanism = Some(mechanism);
                Ok(())
            }
            334 => {
                // A challenge Ember cannot answer: cancel the exchange (RFC 4954 §4).
                let cancel = self.wire.command(b"*\r\n", timeout, Phase::Auth).await?;
                Err(ClientError::Auth(if cancel.code >= 400 { cancel } else { reply }))
            }
            _ => Err(ClientError::Auth(reply)),
        }
    }
}

/// What a successful STARTTLS yields besides the upgraded session.
struct TlsInfo {
    negotiated: (String, String),
    peer: String,
    audit: Option<Result<(), TlsFailure>>,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    first_keywords: Vec<String>,
}

impl Session {
    /// Connect, greeting, EHLO (HELO on 5xx).
    async fn start(addr: SocketAddr, config: &ClientConfig) -> Result<Session, ClientError> {
        let tcp = connect(addr, config).await?;
        let local = tcp.local_addr().map_err(ClientError::Connect)?;
        let mut wire = Wire::new(Stream::Plain(tcp));
        wire.scrub_421 = config.replace_421_text;
        let greeting = wire.read_reply(config.greeting_timeout, Phase::Greeting).await?;
        if greeting.code != 220 {
            if greeting.is_positive() {
                return Err(ClientError::Protocol(format!("unexpected greeting: {greeting}")));
            }
            // RFC 5321 §3.1: after a 554 greeting the client should still QUIT; after a 421 the
            // server is closing.
            if greeting.code != 421 {
                let _ = wire.command(b"QUIT\r\n", config.command_timeout.min(QUIT_GRACE), Phase::Quit).await;
            }
            return Err(ClientError::Greeting(greeting));
        }
        let mut session = Session { wire, remote: addr, local, greeting, esmtp: false, ext: Extensions::default() };
        session.hello(config).await?;
        Ok(session)
    }

    async fn hello(&mut self, config: &ClientConfig) -> Result<(), ClientError> {
        let timeout = config.command_timeout;
        let ehlo = format!("EHLO {}\r\n", config.helo_name);
        let reply = self.wire.command(ehlo.as_bytes(), timeout, Phase::Ehlo).await?;
        if reply.code == 250 {
            self.esmtp = true;
            self.ext = Extensions::parse(&reply);
            return Ok(());
        }
        if reply.code < 500 {
            return Err(ClientError::Ehlo(reply));
        }
        let helo = format!("HELO {}\r\n", config.helo_name);
        let reply = self.wire.command(helo.as_bytes(), timeout, Phase::Helo).await?;
        if reply.code != 250 {
            return Err(ClientError::Ehlo(reply));
        }
        self.esmtp = false;
        self.ext = Extensions::default();
        Ok(())
    }

    /// STARTTLS, the handshake, and EHLO again.
    async fn starttls(mut self, mx_name: &str, config: &ClientConfig) -> Result<(Session, TlsInfo), StartTlsFailure> {
        let tls_config =
            tls::client_config(config).map_err(|why| StartTlsFailure::Fatal(ClientError::Tls(why.to_string())))?;
        let reply = match self.wire.command(b"STARTTLS\r\n", config.command_timeout, Phase::StartTls).await {
            Ok(reply) => reply,
            Err(e) => return Err(StartTlsFailure::Broken(e.to_string(), TlsFailure::Handshake)),
        };
        if reply.code != 220 {
            return Err(StartTlsFailure::Refused(Box::new(self), reply));
        }
        let tcp = self.wire.into_plain().map_err(|e| StartTlsFailure::Broken(e.to_string(), TlsFailure::Handshake))?;
        let name = tls::server_name(mx_name, self.remote);
        let stream = tls::handshake(tcp, tls_config, name.clone(), config.command_timeout)
            .await
            .map_err(|(why, failure)| StartTlsFailure::Broken(why, failure))?;
        let chain = tls::peer_chain(&stream);
        let info = TlsInfo {
            negotiated: tls::negotiated(&stream),
            peer: tls::describe_peer(&stream, &name, config.tls_ca_file.as_deref(), config.tls_policy.as_ref()),
            audit: config.tls_audit.as_ref().map(|verifier| tls::audit(&chain, &name, verifier.as_ref())),
            chain,
            first_keywords: std::mem::take(&mut self.ext.keywords),
        };
        let mut wire = Wire::new(Stream::Tls(Box::new(stream)));
        wire.scrub_421 = config.replace_421_text;
        let mut session = Session { wire, ..self };
        match session.hello(config).await {
            Ok(()) => Ok((session, info)),
            Err(ClientError::Ehlo(reply)) => Err(StartTlsFailure::Fatal(ClientError::Ehlo(reply))),
            Err(e) => Err(StartTlsFailure::Broken(format!("after TLS handshake: {e}"), TlsFailure::Handshake)),
        }
    }

    /// QUIT before giving up on a session Ember will not use; best effort.
    async fn abandon(mut self, config: &ClientConfig) {
        let _ = self.wire.command(b"QUIT\r\n", config.command_timeout.min(QUIT_GRACE), Phase::Quit).await;
    }
}

/// How long a QUIT on a session being given up may take.
const QUIT_GRACE: Duration = Duration::from_secs(10);

async fn connect(addr: SocketAddr, config: &ClientConfig) -> Result<tokio::net::TcpStream, ClientError> {
    let socket =
        if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(ClientError::Connect)?;
    if let Some(ip) = config.source_ip {
        if ip.is_ipv4() != addr.is_ipv4() {
            return Err(ClientError::Connect(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source address {ip} cannot reach {}", addr.ip()),
            )));
        }
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| {
            ClientError::Connect(io::Error::new(e.kind(), format!("cannot bind source address {ip}: {e}")))
        })?;
    }
    match tokio::time::timeout(config.connect_timeout, socket.connect(addr)).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err(e)) => Err(ClientError::Connect(e)),
        Err(_) => Err(ClientError::Timeout { phase: Phase::Connect }),
    }
}
