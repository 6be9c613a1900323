//! The socket of one outbound session, plain or TLS, with a bounded read buffer: whole replies
//! in, whole writes out, each under its phase's timeout.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::error::{ClientError, Phase};
use super::reply::{MAX_REPLY_BYTES, ReplyParser};
use crate::smtp::Reply;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

const READ_CHUNK: usize = 16 * 1024;

pub struct Wire {
    pub stream: Stream,
    /// Received bytes not yet consumed start at `start`.
    buf: Vec<u8>,
    start: usize,
    /// `replace-smtp-421-service-response`: every 421 read here loses its text.
    pub scrub_421: bool,
}

impl Wire {
    pub fn new(stream: Stream) -> Wire {
        Wire { stream, buf: Vec::with_capacity(READ_CHUNK), start: 0, scrub_421: false }
    }

    /// The plain socket, for the TLS handshake after `220` to STARTTLS. Anything the server sent
    /// after that reply is an error: it would be read as if it had come over TLS (CVE-2011-0411
    /// in reverse, a response injection).
    pub fn into_plain(self) -> Result<TcpStream, ClientError> {
        if self.has_unread() {
            return Err(ClientError::Protocol("server sent data after its reply to STARTTLS".into()));
        }
        match self.stream {
            Stream::Plain(tcp) => Ok(tcp),
            Stream::Tls(_) => Err(ClientError::Protocol("STARTTLS on a session already in TLS".into())),
        }
    }

    /// Returns when the server sends something or closes the connection while we send nothing:
    /// on an idle connection either means it is no longer fit for a transaction.
    pub async fn peer_activity(&self) {
        let tcp = match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        };
        // peek, not readable(): readiness can be left over from the last reply, and peeking
        // takes nothing from a TLS stream's records.
        let mut byte = [0u8; 1];
        let _ = tcp.peek(&mut byte).await;
    }

    /// Bytes the server sent that no reply has consumed yet.
    pub fn has_unread(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Reads one complete reply within `timeout`.
    pub async fn read_reply(&mut self, timeout: Duration, phase: Phase) -> Result<Reply, ClientError> {
        match tokio::time::timeout(timeout, self.read_reply_untimed(phase)).await {
            // Scrubbed here, where every server reply passes, so no copy of the text survives.
            Ok(Ok(reply)) if reply.code == 421 && self.scrub_421 => {
                Ok(Reply::new(421, reply.enhanced, super::SCRUBBED_421_TEXT))
            }
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { phase }),
        }
    }

    async fn read_reply_untimed(&mut self, phase: Phase) -> Result<Reply, ClientError> {
        let mut parser = ReplyParser::default();
        loop {
            while let Some(pos) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let end = self.start + pos;
                let line = &self.buf[self.start..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let done = parser.push(line).map_err(|e| ClientError::Protocol(e.to_string()))?;
                self.start = end + 1;
                if let Some(reply) = done {
                    return Ok(reply);
                }
            }
            // A partial line counts against the bound too: no line ending is waited for forever.
            if parser.pending_bytes() + (self.buf.len() - self.start) > MAX_REPLY_BYTES {
                return Err(ClientError::Protocol(format!("reply longer than {MAX_REPLY_BYTES} bytes")));
            }
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.reserve(READ_CHUNK);
            // `read_buf` fills spare capacity and sets the length only once bytes arrived, so
            // a timeout that cancels it leaves the buffer as it was.
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Err(ClientError::disconnected(phase, None)),
                Ok(_) => {}
                Err(e) => return Err(ClientError::disconnected(phase, Some(&e))),
            }
        }
    }

    /// Writes and flushes `data` within `timeout`.
    pub async fn write(&mut self, data: &[u8], timeout: Duration, phase: Phase) -> Result<(), ClientError> {
        let write = async {
            self.stream.write_all(data).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::disconnected(phase, Some(&e))),
            Err(_) => Err(ClientError::Timeout { phase }),
        }
    }

    /// Sends a command and reads its reply, both under `timeout`.
    pub async fn command(&mut self, line: &[u8], timeout: Duration, phase: Phase) -> Result<Reply, ClientError> {
        self.write(line, timeout, phase).await?;
        self.read_reply(timeout, phase).await
    }

    /// Closes the sending side (TLS close_notify first), best effort and bounded in time.
    pub async fn shutdown(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
    }
}
