//! Fills a spool directory with queued messages through Ember's own spool API (the same records,
//! checksums and fsyncs the SMTP listener produces), many stores in flight so group commit batches
//! them. Used by `bench/queued.sh` to build a spool of a million messages in seconds instead of
//! injecting them for minutes: what is measured there is memory and recovery, not injection.
//!
//!     fill-spool DIR MESSAGES RECIPIENTS SIZE [DOMAIN]

use std::sync::Arc;

use ember::message::{Envelope, MessageId, Origin, Recipient};
use ember::spool::{Spool, SpoolDir, SpoolOptions};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: fill-spool DIR MESSAGES RECIPIENTS SIZE [DOMAIN]";
    let dir = args.get(1).expect(usage).clone();
    let number = |i: usize| -> usize { args.get(i).and_then(|a| a.parse().ok()).expect(usage) };
    let (messages, recipients, size) = (number(2), number(3), number(4));
    let domain = args.get(5).cloned().unwrap_or_else(|| "example.com".into());
    let (spool, _) = Spool::open(SpoolOptions::new(vec![SpoolDir::new(&dir)])).expect("open the spool");
    let line = "x".repeat(76) + "\r\n";
    let mut body = format!("From: bench@ember.test\r\nTo: rcpt@{domain}\r\nSubject: queued\r\n\r\n").into_bytes();
    while body.len() < size {
        body.extend_from_slice(line.as_bytes());
    }
    body.truncate(size.max(64));
    let body = Arc::new(body);
    let started = std::time::Instant::now();
    let in_flight = 2_000usize;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..in_flight.min(messages) {
        let (spool, body, next, domain) = (spool.clone(), Arc::clone(&body), Arc::clone(&next), domain.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= messages {
                    return;
                }
                let envelope = Envelope {
                    id: MessageId(0),
                    sender: "bench@ember.test".into(),
                    recipients: (0..recipients).map(|r| Recipient::new(format!("r{n}-{r}@{domain}"))).collect(),
                    vmta: None,
                    job_id: None,
                    env_id: None,
                    ret: None,
                    eight_bit: false,
                    smtputf8: false,
                    arrival_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    priority: None,
                    dkim_options: None,
                    origin: Origin { kind: "smtp".into(), ..Origin::default() },
                };
                spool.store(envelope, body.as_ref().clone()).await.expect("store");
            }
        }));
    }
    for t in tasks {
        t.await.expect("store task");
    }
    spool.close().await;
    eprintln!(
        "stored {messages} messages x {recipients} recipients of {size} bytes in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
