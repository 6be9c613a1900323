//! Hostile peers, over real sockets: a slowloris injector (one byte a second), a receiver that
//! answers with an endless multi-line reply or an endless line, and 10,000 idle connections.
//! In each case Ember's memory stays bounded (VmRSS of the daemon, read from /proc) and other
//! mail keeps flowing; every test ends in bounded time.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::Ember;
use crate::support::peers::{Receiver, Sink, free_port};
use serde_json::json;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn config(sink: SocketAddr, extra: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    smtp-command-timeout 3s\n    \
         smtp-data-timeout 3s\n</source>\n<spool spool>\n</spool>\n{extra}<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    \
         retry-after 1s\n    retry-recipients-after 1s\n</domain>\n",
        sink.port()
    )
}

/// Polls `f` until it holds or the bound passes (the event is a file appearing, no signal).
fn eventually(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a slowloris achieved before the server hung up on it.
struct Drip {
    bytes_sent: usize,
    replies: String,
    closed: bool,
}

/// Sends `setup` at once, then `drip` one byte per second (the read timeout between bytes is
/// the pacing), collecting what the server says, until the server closes or `drip` runs out.
fn slowloris(addr: SocketAddr, setup: &[u8], drip: &[u8]) -> Drip {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut replies = Vec::new();
    let mut buf = [0u8; 4096];
    s.write_all(setup).unwrap();
    let mut sent = 0;
    for &b in drip {
        match s.read(&mut buf) {
            Ok(0) => return Drip { bytes_sent: sent, replies: String::from_utf8_lossy(&replies).into(), closed: true },
            Ok(n) => replies.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        if s.write_all(&[b]).is_err() {
            break;
        }
        sent += 1;
    }
    // The drip ran out (or the write failed): read what remains, briefly.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut closed = false;
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            closed = true;
            break;
        }
        replies.extend_from_slice(&buf[..n]);
    }
    Drip { bytes_sent: sent, replies: String::from_utf8_lossy(&replies).into(), closed }
}

#[test]
fn slowloris_clients_are_dropped_by_the_timeouts_while_other_mail_flows() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let e = Ember::start_in(dir, &config(sink.addr, ""));
    let addr = e.smtp();
    let baseline = rss_kib(e.pid());
    // A line of 29 bytes at one byte a second: with a 3 s timeout that applies per read (the
    // bug this guards against), each byte would buy 3 more seconds and the line would complete.
    const LINE: &[u8] = b"EHLO slowloris.example.test\r\n";
    let mut drips = Vec::new();
    for i in 0..20 {
        drips.push(std::thread::spawn(move || {
            if i % 2 == 0 {
                slowloris(addr, b"", LINE)
            } else {
                // In DATA: the body arrives at one byte a second, without a line end.
                let setup = b"EHLO x\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<r@example.com>\r\nDATA\r\n";
                slowloris(addr, setup, b"Subject: never finished, one byte a second")
            }
        }));
    }
    // Meanwhile an ordinary feeder injects and the mail reaches the sink.
    e.inject_numbered(20, "flow");
    eventually("20 messages at smtp-sink", Duration::from_secs(60), || sink.messages().len() >= 20);
    let during = rss_kib(e.pid());
    for (i, d) in drips.into_iter().enumerate() {
        let d = d.join().unwrap();
        assert!(d.closed, "slowloris {i} was never dropped (sent {} bytes): {:?}", d.bytes_sent, d.replies);
        assert!(d.replies.contains("421 4.4.2"), "slowloris {i}: {:?}", d.replies);
        assert!(d.bytes_sent < LINE.len() - 2, "slowloris {i} sent {} bytes before the timeout", d.bytes_sent);
        assert!(!d.replies.contains("250 2.6.0"), "slowloris {i} got a message accepted: {:?}", d.replies);
    }
    let messages = sink.messages();
    for n in 0..20 {
        assert!(messages.iter().any(|m| m.contains(&format!("flow{n}@example.com"))), "flow{n} not delivered");
    }
    eprintln!("slowloris: VmRSS {baseline} KiB before, {during} KiB with 20 slowloris connections");
    assert!(during < baseline + 64 * 1024, "RSS grew from {baseline} to {during} KiB");
}

#[test]
fn an_endless_reply_or_line_from_the_receiver_defers_the_message_which_is_delivered_later() {
    let dir = tempfile::tempdir().unwrap();
    // First attempt: continuation lines forever; second: one line that never ends; third: fine.
    let script = json!({"misbehave": {"mail": ["endless", "endless_line", null]}});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let extra = format!(
        "<domain hostile.example>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 1s\n    retry-recipients-after 1s\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config(sink.addr, &extra));
    let baseline = rss_kib(e.pid());
    let out = crate::support::swaks(&[
        "--server",
        &e.smtp().to_string(),
        "--from",
        "a@example.net",
        "--to",
        "r@hostile.example",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Ember gives up on each with a clear error, the recipient stays queued, and the third
    // attempt delivers it.
    e.wait_log("reply longer than 1000 lines");
    let peak_endless = rss_kib(e.pid());
    e.wait_log("reply longer than 102400 bytes");
    eventually("the message at the receiver", Duration::from_secs(60), || !rx.events("message").is_empty());
    let msgs = rx.events("message");
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["rcpts"], json!(["r@hostile.example"]));
    // Other traffic flowed meanwhile.
    e.inject_numbered(5, "other");
    eventually("5 messages at smtp-sink", Duration::from_secs(60), || sink.messages().len() >= 5);
    eprintln!("endless reply: VmRSS {baseline} KiB before, {peak_endless} KiB after the endless reply");
    assert!(peak_endless < baseline + 64 * 1024, "RSS grew from {baseline} to {peak_endless} KiB");
}

/// Raises this process's open-file limit (children, Ember included, inherit it); returns the
/// soft limit now in force.
fn raise_nofile(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    // Root may raise the hard limit too; anyone may raise the soft limit up to the hard one.
    let target = Rlimit { current: Some(wanted), maximum: Some(hard.max(wanted)) };
    if setrlimit(Resource::Nofile, target).is_err() {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(wanted.min(hard)), maximum: Some(hard) });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[test]
fn ten_thousand_idle_connections_keep_memory_bounded_and_mail_flowing() {
    const WANTED: usize = 10_000;
    let limit = raise_nofile(WANTED as u64 * 2 + 1000);
    // This process holds the client ends and Ember the server ends, each in its own process,
    // so each needs WANTED descriptors and some to spare.
    let n = WANTED.min((limit as usize).saturating_sub(500));
    if n < WANTED {
        eprintln!("open-file limit is {limit} and cannot be raised: testing {n} idle connections instead of {WANTED}");
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let extra = format!("total-max-smtp-in {}\n", WANTED + 100);
    let e =
        Ember::start_in(dir, &config(sink.addr, &extra).replace("smtp-command-timeout 3s", "smtp-command-timeout 10m"));
    let baseline = rss_kib(e.pid());
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(e.smtp()).unwrap());
    }
    // Every one was accepted and greeted: a session exists for each.
    let mut buf = [0u8; 512];
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let got = s.read(&mut buf).unwrap();
        assert!(buf[..got].starts_with(b"220 "), "{:?}", String::from_utf8_lossy(&buf[..got]));
    }
    let loaded = rss_kib(e.pid());
    let per_conn = (loaded.saturating_sub(baseline)) * 1024 / n as u64;
    eprintln!("{n} idle connections: VmRSS {baseline} KiB -> {loaded} KiB ({per_conn} bytes per connection)");
    assert!(per_conn < 16 * 1024, "{per_conn} bytes of RSS per idle connection");
    // A normal message is still accepted and delivered while they all wait.
    let out =
        crate::support::swaks(&["--server", &e.smtp().to_string(), "--from", "a@example.net", "--to", "r@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    eventually("the message at smtp-sink", Duration::from_secs(60), || sink.messages().len() == 1);
    drop(idle);
}
