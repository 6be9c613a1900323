//! PowerMTA's built-in blackhole SMTP server (`dummy-smtp-port`, `dummy-smtp-ip`): a receiver
//! for load tests that accepts every command and discards every message.
//!
//! It offers the extensions the `dummy-smtp-has-*` directives choose (PIPELINING, CHUNKING,
//! XVERP), waits `dummy-smtp-latency` before each answer it sends (once per round trip, as a
//! distant server would), takes an inbound session slot of `total-max-smtp-in` first under
//! `dummy-smtp-await-slot yes`, and counts what it receives in the inbound statistics under
//! `dummy-smtp-update-stats yes`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::value::Value;
use crate::config::{Config, Dir};
use crate::telemetry::Telemetry;

/// Longest command line read; longer lines are cut, as a receiver's limit would.
const MAX_LINE: u64 = 4096;
/// A silent client is dropped after this long.
const IDLE: Duration = Duration::from_secs(300);

/// The sink's settings, from the top level of the configuration.
#[derive(Clone, Debug)]
pub struct Options {
    pub addr: SocketAddr,
    pub host_name: String,
    pub pipelining: bool,
    pub chunking: bool,
    pub verp: bool,
    pub latency: Duration,
    pub await_slot: bool,
    pub update_stats: bool,
}

impl Options {
    /// `None` when `dummy-smtp-port` is 0 (the default): no sink.
    pub fn from_config(config: &Config) -> Option<Options> {
        let g = &config.global;
        let port = g.uint(Dir::DummySmtpPort).filter(|p| *p > 0)? as u16;
        let ip = match g.effective(Dir::DummySmtpIp) {
            Some(Value::Cidr(c)) => c.addr(),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        Some(Options {
            addr: SocketAddr::new(ip, port),
            // host-name has no table default (unset means the OS name elsewhere); the sink answers as
            // localhost then.
            host_name: g.text(Dir::HostName).unwrap_or("localhost").to_string(),
            pipelining: g.flag(Dir::DummySmtpHasPipelining),
            chunking: g.flag(Dir::DummySmtpHasChunking),
            verp: g.flag(Dir::DummySmtpHasVerp),
            latency: config.policy.dummy_smtp_latency,
            await_slot: g.flag(Dir::DummySmtpAwaitSlot),
            update_stats: g.flag(Dir::DummySmtpUpdateStats),
        })
    }

    fn ehlo(&self) -> String {
        let mut lines = vec![self.host_name.clone()];
        for (offered, ext) in
            [(self.pipelining, "PIPELINING"), (self.chunking, "CHUNKING"), (self.verp, "XVERP"), (true, "8BITMIME")]
        {
            if offered {
                lines.push(ext.to_string());
            }
        }
        lines.extend(["DSN", "SMTPUTF8", "ENHANCEDSTATUSCODES"].map(String::from));
        let last = lines.len() - 1;
        lines.iter().enumerate().map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' })).collect()
    }
}

/// Accepts connections until the task is aborted; aborting it ends every open session too.
pub async fn serve(listener: TcpListener, options: Options, slots: Arc<Semaphore>, telemetry: Arc<Telemetry>) {
    let options = Arc::new(options);
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (options, slots, telemetry) = (Arc::clone(&options), Arc::clone(&slots), Arc::clone(&telemetry));
                    sessions.spawn(async move {
                        // Under await-slot the session waits for (and holds) an inbound slot, so
                        // sink traffic competes with real injection as another receiver's would.
                        let _slot = if options.await_slot { slots.acquire_owned().await.ok() } else { None };
                        let (read, write) = stream.into_split();
                        let stats = options.update_stats.then_some((&*telemetry, peer.ip()));
                        if let Err(e) = session(BufReader::new(read), write, &options, stats).await {
                            tracing::debug!("dummy smtp {peer}: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("dummy smtp: accept failed: {e}"),
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// What the current transaction holds.
#[derive(Default)]
struct Transaction {
    recipients: usize,
    bytes: usize,
}

/// One SMTP session, from the greeting to QUIT or the end of the connection.
pub async fn session<R, W>(
    mut input: BufReader<R>,
    mut output: W,
    options: &Options,
    stats: Option<(&Telemetry, IpAddr)>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut pending = format!("220 {} ESMTP Ember dummy SMTP sink\r\n", options.host_name);
    let mut tx = Transaction::default();
    let mut line = Vec::new();
    loop {
        // A reply goes out once the client has nothing more in flight: one latency per round
        // trip, whether or not it pipelines.
        if !pending.is_empty() && input.buffer().is_empty() {
            if !options.latency.is_zero() {
                tokio::time::sleep(options.latency).await;
            }
            output.write_all(pending.as_bytes()).await?;
            output.flush().await?;
            pending.clear();
        }
        line.clear();
        let read = tokio::time::timeout(IDLE, (&mut input).take(MAX_LINE).read_until(b'\n', &mut line)).await;
        match read {
            Err(_) | Ok(Ok(0)) => return Ok(()),
            Ok(r) => r?,
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, args) = text.split_once(' ').unwrap_or((text, ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => options.ehlo(),
            "HELO" => format!("250 {}\r\n", options.host_name),
            "MAIL" if args.to_ascii_uppercase().split_whitespace().any(|p| p == "XVERP") && !options.verp => {
                "555 5.5.4 XVERP is not offered\r\n".into()
            }
            "MAIL" => {
                tx = Transaction::default();
                "250 2.1.0 sender ok\r\n".into()
            }
            "RCPT" => {
                tx.recipients += 1;
                "250 2.1.5 recipient ok\r\n".into()
            }
            "DATA" => {
                pending.push_str("354 end data with <CR><LF>.<CR><LF>\r\n");
                tx.bytes += skip_data(&mut input, &mut output, &mut pending, options).await?;
                finish(&mut tx, stats)
            }
            "BDAT" => {
                let mut words = args.split_whitespace();
                let size: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
                let skipped = tokio::io::copy(&mut (&mut input).take(size), &mut tokio::io::sink()).await?;
                if skipped < size {
                    return Ok(());
                }
                tx.bytes += size as usize;
                if !options.chunking {
                    "502 5.5.1 CHUNKING is not offered\r\n".into()
                } else if last {
                    finish(&mut tx, stats)
                } else {
                    format!("250 2.0.0 {size} octets received\r\n")
                }
            }
            "RSET" => {
                tx = Transaction::default();
                "250 2.0.0 ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 ok\r\n".into(),
            "VRFY" => "252 2.5.0 cannot verify\r\n".into(),
            "QUIT" => {
                pending.push_str("221 2.0.0 bye\r\n");
                output.write_all(pending.as_bytes()).await?;
                return output.flush().await;
            }
            _ => "502 5.5.2 command not recognised\r\n".into(),
        };
        pending.push_str(&reply);
    }
}

/// The end of a message: counted (under update-stats) and discarded.
fn finish(tx: &mut Transaction, stats: Option<(&Telemetry, IpAddr)>) -> String {
    if let Some((telemetry, peer)) = stats {
        telemetry.received(&peer.to_string(), tx.recipients, tx.bytes, None);
    }
    *tx = Transaction::default();
    "250 2.0.0 message accepted and discarded\r\n".into()
}

/// Sends the 354 (after the latency) and reads the message up to its `.` line; returns its size.
async fn skip_data<R, W>(
    input: &mut BufReader<R>,
    output: &mut W,
    pending: &mut String,
    options: &Options,
) -> std::io::Result<usize>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if input.buffer().is_empty() {
        if !options.latency.is_zero() {
            tokio::time::sleep(options.latency).await;
        }
        output.write_all(pending.as_bytes()).await?;
        output.flush().await?;
        pending.clear();
    }
    let mut size = 0;
    let mut line = Vec::new();
    // Lines are read in bounded pieces; only a piece that starts a line can be the final dot.
    let mut line_start = true;
    loop {
        line.clear();
        let n = tokio::time::timeout(IDLE, (&mut *input).take(MAX_LINE).read_until(b'\n', &mut line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "data timeout"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line_start && (line == b".\r\n" || line == b".\n") {
            return Ok(size);
        }
        line_start = line.ends_with(b"\n");
        size += n;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    use super::*;

    fn options(latency_ms: u64, await_slot: bool) -> Options {
        Options {
            addr: "127.0.0.1:0".parse().unwrap(),
            host_name: "sink.test".into(),
            pipelining: true,
            chunking: false,
            verp: true,
            latency: Duration::from_millis(latency_ms),
            await_slot,
            update_stats: true,
        }
    }

    async fn start(options: Options, slots: Arc<Semaphore>, telemetry: Arc<Telemetry>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, options, slots, telemetry));
        addr
    }

    /// Reads one (possibly multi-line) reply.
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).await.unwrap() > 0, "connection closed after {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
    }

    #[tokio::test]
    async fn accepts_discards_and_offers_the_chosen_extensions() {
        let telemetry = Arc::new(Telemetry::default());
        let addr = start(options(0, false), Arc::new(Semaphore::new(1)), Arc::clone(&telemetry)).await;
        let (r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut r = BufReader::new(r);
        assert!(reply(&mut r).await.starts_with("220 sink.test"));
        w.write_all(b"EHLO me\r\n").await.unwrap();
        let ehlo = reply(&mut r).await;
        assert!(ehlo.contains("250-PIPELINING") && ehlo.contains("XVERP"), "{ehlo}");
        assert!(!ehlo.contains("CHUNKING"), "{ehlo}");
        // Pipelined envelope, then the message.
        w.write_all(b"MAIL FROM:<a@b> XVERP\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n").await.unwrap();
        for code in ["250", "250", "250", "354"] {
            assert!(reply(&mut r).await.starts_with(code));
        }
        w.write_all(b"Subject: x\r\n\r\n..dot\r\n.\r\n").await.unwrap();
        assert!(reply(&mut r).await.starts_with("250 2.0.0"));
        w.write_all(b"BDAT 3 LAST\r\nabc").await.unwrap();
        assert!(reply(&mut r).await.starts_with("502"), "CHUNKING is off");
        w.write_all(b"QUIT\r\n").await.unwrap();
        assert!(reply(&mut r).await.starts_with("221"));
        let totals = telemetry.totals();
        assert_eq!((totals.received_msgs, totals.received_rcpts), (1, 2), "counted under update-stats");
    }

    #[tokio::test]
    async fn xverp_is_refused_when_not_offered_and_bdat_works_when_offered() {
        let o = Options { verp: false, chunking: true, update_stats: false, ..options(0, false) };
        let telemetry = Arc::new(Telemetry::default());
        let addr = start(o, Arc::new(Semaphore::new(1)), Arc::clone(&telemetry)).await;
        let (r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut r = BufReader::new(r);
        reply(&mut r).await;
        w.write_all(b"EHLO me\r\nMAIL FROM:<a@b> XVERP\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n").await.unwrap();
        assert!(reply(&mut r).await.contains("250-CHUNKING"));
        assert!(reply(&mut r).await.starts_with("555"));
        assert!(reply(&mut r).await.starts_with("250"));
        assert!(reply(&mut r).await.starts_with("250"));
        w.write_all(b"BDAT 4\r\nab\r\nBDAT 2 LAST\r\ncd").await.unwrap();
        assert!(reply(&mut r).await.starts_with("250 2.0.0 4 octets"));
        assert!(reply(&mut r).await.starts_with("250 2.0.0 message accepted"));
        assert_eq!(telemetry.totals().received_msgs, 0, "not counted without update-stats");
    }

    #[tokio::test]
    async fn answers_after_the_latency_once_per_round_trip() {
        let addr = start(options(300, false), Arc::new(Semaphore::new(1)), Arc::default()).await;
        let started = std::time::Instant::now();
        let (r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut r = BufReader::new(r);
        reply(&mut r).await;
        assert!(started.elapsed() >= Duration::from_millis(300), "the greeting waits too");
        let sent = std::time::Instant::now();
        w.write_all(b"NOOP\r\n").await.unwrap();
        assert!(reply(&mut r).await.starts_with("250"));
        assert!(sent.elapsed() >= Duration::from_millis(300), "{:?}", sent.elapsed());
    }

    #[tokio::test]
    async fn await_slot_holds_the_greeting_until_an_inbound_slot_is_free() {
        let slots = Arc::new(Semaphore::new(1));
        let busy = Arc::clone(&slots).acquire_owned().await.unwrap();
        let addr = start(options(0, true), Arc::clone(&slots), Arc::default()).await;
        let (r, _w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut r = BufReader::new(r);
        let early = tokio::time::timeout(Duration::from_millis(300), reply(&mut r)).await;
        assert!(early.is_err(), "no greeting while every slot is taken");
        drop(busy);
        assert!(reply(&mut r).await.starts_with("220"));
        assert_eq!(slots.available_permits(), 0, "the session holds the slot");
    }
}
