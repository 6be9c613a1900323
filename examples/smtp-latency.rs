//! Measures time-to-`250`: the delay between sending a message's final dot and receiving the
//! server's reply, under parallel load. Used by `bench/ingest.sh` next to `smtp-source` (which
//! measures throughput but not latency).
//!
//!     smtp-latency HOST:PORT MESSAGES CONNECTIONS SIZE
//!
//! With `SMTP_LATENCY_SAMPLES=FILE`, every sample is also written to FILE, one line per message:
//! when its final dot was sent (µs since the start) and its time to `250` (µs). Slow replies
//! that come in groups of CONNECTIONS at the same moment are a stall of the whole server.
//!
//! By default each connection sends its next message as soon as the last one is answered (a
//! closed loop: the server is saturated, and the time to `250` grows with the whole machine's
//! cost per message). With `SMTP_LATENCY_RATE=N`, the connections together start N messages a
//! second, each connection on its own schedule, staggered (an open loop: the time to `250` at a
//! given load, below saturation). A connection that falls behind its schedule sends at once.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn reply(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let last = line.as_bytes().get(3) == Some(&b' ');
        all.push_str(&line);
        if last {
            return Ok(all);
        }
    }
}

/// One message's final dot (when it was sent) and the time until its reply.
type Sample = (Instant, Duration);

async fn connection(
    addr: String,
    count: usize,
    body: std::sync::Arc<Vec<u8>>,
    every: Option<Duration>,
    offset: Duration,
) -> std::io::Result<Vec<Sample>> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    reply(&mut reader).await?;
    write.write_all(b"EHLO latency.test\r\n").await?;
    reply(&mut reader).await?;
    let mut samples = Vec::with_capacity(count);
    let mut schedule = every.map(|period| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        // Behind schedule, send at once and keep the pace from there, not a burst to catch up.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    for n in 0..count {
        if let Some(ticks) = schedule.as_mut() {
            ticks.tick().await;
        }
        write
            .write_all(
                format!("MAIL FROM:<latency-{n}@bench.test>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n").as_bytes(),
            )
            .await?;
        for _ in 0..3 {
            let r = reply(&mut reader).await?;
            if r.starts_with('4') || r.starts_with('5') {
                return Err(std::io::Error::other(format!("refused: {r}")));
            }
        }
        write.write_all(&body).await?;
        let start = Instant::now();
        write.write_all(b".\r\n").await?;
        let r = reply(&mut reader).await?;
        samples.push((start, start.elapsed()));
        if !r.starts_with("250") {
            return Err(std::io::Error::other(format!("not accepted: {r}")));
        }
    }
    write.write_all(b"QUIT\r\n").await?;
    Ok(samples)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, messages, connections, size] = args.as_slice() else {
        eprintln!("usage: smtp-latency HOST:PORT MESSAGES CONNECTIONS SIZE");
        std::process::exit(2);
    };
    let (messages, connections, size): (usize, usize, usize) =
        (messages.parse().unwrap(), connections.parse().unwrap(), size.parse().unwrap());
    let mut body = b"From: latency@bench.test\r\nTo: rcpt@example.com\r\nSubject: latency\r\n\r\n".to_vec();
    while body.len() < size {
        body.extend_from_slice(&[b'x'; 76]);
        body.extend_from_slice(b"\r\n");
    }
    let body = std::sync::Arc::new(body);
    let every = std::env::var("SMTP_LATENCY_RATE").ok().map(|rate| {
        let rate: f64 = rate.parse().ok().filter(|r: &f64| *r > 0.0).unwrap_or_else(|| {
            eprintln!("SMTP_LATENCY_RATE: expected messages per second, found {rate:?}");
            std::process::exit(2);
        });
        Duration::from_secs_f64(connections as f64 / rate)
    });
    let started = Instant::now();
    // Connection i starts i/CONNECTIONS of a period late, so that the messages arrive evenly
    // spread rather than all connections at once.
    let offset = |i: usize| every.map_or(Duration::ZERO, |period| period * i as u32 / connections as u32);
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let body = std::sync::Arc::clone(&body);
            tokio::spawn(connection(addr.clone(), messages / connections, body, every, offset(i)))
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.expect("task").expect("connection"));
    }
    let elapsed = started.elapsed();
    if let Ok(path) = std::env::var("SMTP_LATENCY_SAMPLES") {
        let lines: String = samples
            .iter()
            .map(|(at, took)| format!("{} {}\n", (*at - started).as_micros(), took.as_micros()))
            .collect();
        std::fs::write(&path, lines).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let mut samples: Vec<Duration> = samples.into_iter().map(|(_, took)| took).collect();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "time to 250: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms ({} messages, {:.0} msg/s from this client)",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64()
    );
}
