//! One SMTP injection session: the I/O loop, pipelining, the DATA and BDAT receivers, STARTTLS
//! and timeouts. Command semantics live in `commands.rs`, the end of a transaction in
//! `finish.rs`.
//!
//! Every byte from the network is bounded: command lines (`LINE_LIMIT`), what a session may
//! buffer for one message (`max-message-size`, or `HARD_MESSAGE_LIMIT` when unlimited), and the
//! number of bad commands before the session is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::request::receiver::BdatReceiver;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::context::Context;
use super::policy::SourcePolicy;
use crate::message::{Recipient, Ret};
use crate::smtp::{DataReceiver, Line, LineReader, Reply};

/// Anything a session can run over: a TCP stream, a TLS stream, a test pipe.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// RFC 5321 allows 512 octets per command line; extensions make them longer. 4 KiB is what
/// smtp-proto and Postfix accept.
pub const LINE_LIMIT: usize = 4096;
/// What one session may buffer for one message when `max-message-size` is unlimited.
pub const HARD_MESSAGE_LIMIT: u64 = 100 << 20;
/// Bad commands tolerated before the session is dropped (Postfix's `smtpd_hard_error_limit`).
pub const ERROR_LIMIT: u32 = 20;
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer of a session between transactions: commands are short, and 10,000 idle
/// connections must not pin 64 KiB each (with mimalloc the whole reservation was resident:
/// 70 KB of RSS per idle connection, tests/hostile.rs).
const IDLE_CHUNK: usize = 2048;

/// Facts about the connection a session runs on.
pub struct Connection {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The `source=NAME` of the listener.
    pub listener_source: Option<String>,
    /// The TLS configuration STARTTLS would use, if any.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The connection is already encrypted (implicit-TLS listener).
    pub encrypted: bool,
    /// Names of the client's verified certificate on an implicit-TLS listener (`tls::client_names`).
    pub client_names: Vec<String>,
}

/// A transaction being built (MAIL .. DATA).
#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub sender: String,
    pub ret: Option<Ret>,
    pub env_id: Option<String>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub recipients: Vec<Recipient>,
    /// Recipients accepted but suppressed (`accept-invalid-recipients yes`), with the list name.
    pub suppressed: Vec<(Recipient, String)>,
    /// Recipients refused for exceeding `max-rcpt-per-message` when the message must fail at DATA.
    pub too_many: bool,
    /// Recipients that are a `<feedback-loop-processor>` or `<bounce-processor>` address.
    pub reports: Vec<String>,
}

/// What the reader expects next.
pub(super) enum Mode {
    Command,
    Data(DataReceiver),
    Bdat(BdatReceiver),
    /// AUTH LOGIN: waiting for the user name (None) or the password.
    AuthLogin(Option<String>),
    AuthPlain,
}

/// What the loop does after processing input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    StartTls,
    Close,
}

pub(super) struct Session {
    pub ctx: Arc<Context>,
    pub conn: Connection,
    pub policy: SourcePolicy,
    /// Named sources in force, general first: the listener's, then `{auth}` and the user's.
    pub named_sources: Vec<String>,
    pub helo: Option<String>,
    pub esmtp: bool,
    pub encrypted: bool,
    pub auth_user: Option<String>,
    pub txn: Option<Transaction>,
    pub mode: Mode,
    /// The message being received (DATA or BDAT chunks).
    pub body: Vec<u8>,
    /// The message outgrew the limit: the rest is read and dropped, then refused.
    pub oversized: bool,
    /// BDAT LAST was seen for the current chunk.
    pub bdat_last: bool,
    /// A refusal to send once the current BDAT chunk has been read.
    pub pending_refusal: Option<Reply>,
    pub errors: u32,
    pub out: Vec<u8>,
}

impl Session {
    pub fn reply(&mut self, reply: Reply) {
        if self.policy.log_commands {
            tracing::info!(peer = %self.conn.peer, "<<< {reply}");
        }
        reply.write_to(&mut self.out);
    }

    /// The byte limit for the message being received.
    pub fn message_limit(&self) -> u64 {
        self.policy.max_message_size.unwrap_or(HARD_MESSAGE_LIMIT).min(HARD_MESSAGE_LIMIT)
    }

    /// Counts a bad command; true when the session has had enough.
    pub fn count_error(&mut self) -> bool {
        self.errors += 1;
        if self.errors >= ERROR_LIMIT {
            self.reply(Reply::new(
                421,
                "4.7.0",
                format!("{} too many errors, closing connection", self.ctx.host_name()),
            ));
            return true;
        }
        false
    }

    fn timeout(&self) -> Duration {
        match self.mode {
            Mode::Data(_) | Mode::Bdat(_) => self.policy.data_timeout,
            _ => self.policy.command_timeout,
        }
    }

    /// Consumes what it can of `input`; returns the number of bytes used and what to do next.
    async fn consume(&mut self, input: &[u8], lines: &mut LineReader) -> (usize, Flow) {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match &mut self.mode {
                Mode::Data(_) | Mode::Bdat(_) => {
                    // Past the size limit the rest of the message is read and dropped.
                    let mut scratch = Vec::new();
                    let sink = if self.oversized { &mut scratch } else { &mut self.body };
                    let (used, done, is_data) = match &mut self.mode {
                        Mode::Data(receiver) => {
                            let (used, done) = receiver.ingest(rest, sink);
                            (used, done, true)
                        }
                        Mode::Bdat(receiver) => {
                            let mut iter = rest.iter();
                            let done = receiver.ingest(&mut iter, sink);
                            (rest.len() - iter.as_slice().len(), done, false)
                        }
                        _ => unreachable!("matched above"),
                    };
                    pos += used;
                    self.check_size();
                    if !done {
                        return (pos, Flow::Continue);
                    }
                    self.mode = Mode::Command;
                    let flow = if is_data { self.finish_message().await } else { self.bdat_chunk_done().await };
                    if flow != Flow::Continue {
                        return (pos, flow);
                    }
                }
                Mode::Command | Mode::AuthLogin(_) | Mode::AuthPlain => {
                    let (line, used) = lines.next(rest);
                    pos += used;
                    let flow = match line {
                        Line::Incomplete => return (pos, Flow::Continue),
                        Line::TooLong => {
                            self.reply(Reply::new(500, "5.5.6", "line too long"));
                            if self.count_error() { Flow::Close } else { Flow::Continue }
                        }
                        Line::Complete(line) => {
                            let line = line.to_vec();
                            if matches!(self.mode, Mode::Command) {
                                self.command(&line).await
                            } else {
                                self.auth_continue(&line)
                            }
                        }
                    };
                    if flow != Flow::Continue {
                        return (pos, flow);
                    }
                }
            }
        }
    }

    fn check_size(&mut self) {
        if !self.oversized && self.body.len() as u64 > self.message_limit() {
            self.oversized = true;
            self.body = Vec::new();
        }
    }
}

/// Runs one session to its end. Errors on the socket end the session; nothing half-received is
/// ever acknowledged, because `250` is only sent after the sink stored the message.
pub async fn serve(ctx: Arc<Context>, conn: Connection, stream: Box<dyn Io>) {
    let mut named = Vec::new();
    if let Some(s) = &conn.listener_source {
        named.push(s.clone());
    }
    let names: Vec<&str> = named.iter().map(String::as_str).collect();
    let policy = SourcePolicy::for_client(&ctx.config, conn.peer.ip(), &names);
    let encrypted = conn.encrypted;
    let mut session = Session {
        ctx,
        conn,
        policy,
        named_sources: named,
        helo: None,
        esmtp: false,
        encrypted,
        auth_user: None,
        txn: None,
        mode: Mode::Command,
        body: Vec::new(),
        oversized: false,
        bdat_last: false,
        pending_refusal: None,
        errors: 0,
        out: Vec::new(),
    };
    if session.policy.log_connections {
        tracing::info!(peer = %session.conn.peer, local = %session.conn.local, "smtp connection");
    }
    let names = std::mem::take(&mut session.conn.client_names);
    session.certificate_login(&names);
    if let Err(e) = run(&mut session, stream).await {
        tracing::debug!(peer = %session.conn.peer, "smtp session ended: {e}");
    }
    if session.policy.log_connections {
        tracing::info!(peer = %session.conn.peer, "smtp connection closed");
    }
}

async fn run(session: &mut Session, mut stream: Box<dyn Io>) -> std::io::Result<()> {
    let host = session.ctx.host_name().to_string();
    if !session.policy.smtp_service {
        session.reply(Reply::new(521, "5.7.1", format!("{host} does not accept mail from you")));
        stream.write_all(&session.out).await?;
        return stream.shutdown().await;
    }
    session.reply(Reply::new(220, "", format!("{host} (Ember {}) ESMTP service ready", env!("CARGO_PKG_VERSION"))));
    let mut input: Vec<u8> = Vec::new();
    let mut lines = LineReader::new(LINE_LIMIT);
    // The timeouts bound the time to complete each line, not the gap between reads: a client
    // dripping one byte a second (slowloris) would otherwise hold its connection slot forever.
    // A line end or a reply of ours is progress; inside a BDAT chunk (binary) any byte is.
    let mut progress = tokio::time::Instant::now();
    loop {
        let (used, flow) = session.consume(&input, &mut lines).await;
        input.drain(..used);
        if !session.out.is_empty() {
            stream.write_all(&session.out).await?;
            stream.flush().await?;
            session.out.clear();
            // The client's time starts when it has our answer.
            progress = tokio::time::Instant::now();
        }
        match flow {
            Flow::Continue => {}
            Flow::Close => return stream.shutdown().await,
            Flow::StartTls => {
                if !input.is_empty() {
                    // Commands pipelined after STARTTLS were sent in clear and must not be
                    // executed inside the TLS session (CVE-2011-0411 class of injection).
                    tracing::warn!(peer = %session.conn.peer, "discarding {} bytes sent after STARTTLS before the handshake", input.len());
                    input.clear();
                }
                let Some(tls) = session.conn.tls.clone() else { return Ok(()) };
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                let tls_stream = match acceptor.accept(stream).await {
                    Ok(s) => s,
                    Err(e) => {
                        if session.policy.log_tls {
                            tracing::info!(peer = %session.conn.peer, "TLS handshake failed: {e}");
                        }
                        return Err(e);
                    }
                };
                if session.policy.log_tls {
                    let (protocol, cipher) = crate::smtp::tls::names(tls_stream.get_ref().1);
                    tracing::info!(peer = %session.conn.peer, "TLS handshake done: {protocol} {cipher}");
                }
                let names = super::tls::client_names(tls_stream.get_ref().1);
                stream = Box::new(tls_stream);
                session.encrypted = true;
                session.reset_after_tls();
                session.certificate_login(&names);
                lines = LineReader::new(LINE_LIMIT);
                continue;
            }
        }
        if input.len() >= READ_CHUNK * 2 && matches!(session.mode, Mode::Command) {
            // Unconsumed input this large in command mode cannot be a line in progress (lines
            // are bounded); it is a client flooding us: drop it.
            input.clear();
        }
        if matches!(session.mode, Mode::Command) && input.is_empty() {
            // Nothing pending: give back what a message needed, read commands in small pieces.
            input.shrink_to(IDLE_CHUNK);
            input.reserve(IDLE_CHUNK);
        } else {
            input.reserve(READ_CHUNK);
        }
        let before = input.len();
        match tokio::time::timeout_at(progress + session.timeout(), stream.read_buf(&mut input)).await {
            Ok(Ok(0)) => {
                if session.txn.is_some() || !matches!(session.mode, Mode::Command) {
                    tracing::info!(peer = %session.conn.peer, "client disconnected mid-transaction; nothing from it was accepted");
                }
                return Ok(());
            }
            Ok(Ok(_)) => {
                if matches!(session.mode, Mode::Bdat(_)) || input[before..].contains(&b'\n') {
                    progress = tokio::time::Instant::now();
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let what = if matches!(session.mode, Mode::Data(_) | Mode::Bdat(_)) { "data" } else { "command" };
                session.reply(Reply::new(421, "4.4.2", format!("{host} {what} timeout, closing connection")));
                stream.write_all(&session.out).await?;
                return stream.shutdown().await;
            }
        }
    }
}
