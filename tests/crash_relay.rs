//! SIGKILL under full relay load, 20 rounds: a feeder injects over 10 connections while Ember
//! relays to Postfix's `smtp-sink`; Ember is killed with SIGKILL at a random acknowledgement
//! count, restarted on the same spool, and every message that ever got `250` must reach the sink
//! at least once. Messages delivered twice (the sink said 250, the kill came before the
//! "delivered" state was durable) are counted per kill and must stay within what was in flight
//! on the delivery connections.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Ember;
use crate::support::peers::{Sink, free_port};

const ROUNDS: usize = 20;
const PER_ROUND: usize = 400;
const CONNECTIONS: usize = 10;
/// `max-smtp-out` of the queue: at most this many delivery transactions are open at a kill.
const OUT_CONNECTIONS: usize = 10;
/// A duplicate is a message the sink accepted whose "delivered" state was not yet durable at the
/// kill: a transaction open on one of the connections, or one that completed while its state
/// change waited for the spool's group commit (the connection does not wait for that fsync
/// before its next transaction). So per kill: the open transactions plus what the connections
/// complete during one fdatasync — a few each. Observed: 0–10 per kill (docs/hardening.md).
const DUPLICATE_BOUND: usize = 4 * OUT_CONNECTIONS;

fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// How many times each sender's message reached the sink (the feeder sets `From:` to it).
fn delivered(sink: &Sink) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for m in sink.messages() {
        if let Some(from) = m.lines().find_map(|l| l.strip_prefix("From: ")) {
            *count.entry(from.trim().to_string()).or_insert(0) += 1;
        }
    }
    count
}

/// Waits until every acknowledged message is at the sink; returns the delivery counts.
fn wait_delivered(sink: &Sink, acked: &HashSet<String>, round: usize) -> HashMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = delivered(sink);
        let missing: Vec<&String> = acked.iter().filter(|s| !got.contains_key(*s)).collect();
        if missing.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "after the kill of round {round}: {} acknowledged messages never reached the sink, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        // The sink writes one file per message; nothing signals it, so poll.
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn twenty_sigkills_under_relay_load_lose_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let config = format!(
        "smtp-listener 127.0.0.1:0\ntotal-max-smtp-in 200\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n\
         <spool spool>\n</spool>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    max-smtp-out {OUT_CONNECTIONS}\n    \
         retry-after 1s\n    retry-recipients-after 1s\n</domain>\n",
        sink.addr.port()
    );
    let mut seed = std::env::var("EMBER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64 ^ std::process::id() as u64);
    eprintln!("crash_relay seed {seed} (set EMBER_CRASH_SEED to replay)");
    let mut e = Ember::start_in(dir, &config);
    let mut acked_all: HashSet<String> = HashSet::new();
    let mut duplicates_before = 0;
    let mut report = Vec::new();
    for round in 0..=ROUNDS {
        if round > 0 {
            e.launch();
            // Everything acknowledged so far, before this restart, reaches the sink.
            let got = wait_delivered(&sink, &acked_all, round - 1);
            let duplicates: usize = got.values().map(|&n| n - 1).sum();
            let dup = duplicates - duplicates_before;
            duplicates_before = duplicates;
            let (kill_after, acked): (usize, usize) = report[round - 1];
            eprintln!(
                "round {:2}: killed after {kill_after:3} acks, {acked:3} acknowledged, {dup} duplicates",
                round - 1
            );
            assert!(
                dup <= DUPLICATE_BOUND,
                "round {}: {dup} duplicates, more than {DUPLICATE_BOUND} ({OUT_CONNECTIONS} connections) can have in flight",
                round - 1
            );
        }
        if round == ROUNDS {
            break;
        }
        let kill_after = 20 + (next(&mut seed) % 300) as usize;
        let acked_file = e.path(&format!("acked-{round}.txt"));
        let mut feeder = Command::new("python3")
            .arg(crate::support::support_dir().join("inject.py"))
            .arg(e.smtp().to_string())
            .arg(PER_ROUND.to_string())
            .arg(CONNECTIONS.to_string())
            .arg("1024")
            .arg(&acked_file)
            .arg("10")
            .arg(format!("r{round}-"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut killed = false;
        for line in BufReader::new(feeder.stdout.take().unwrap()).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.parse::<usize>().ok())
                && n >= kill_after
                && !killed
            {
                e.kill9();
                killed = true;
            }
        }
        assert!(feeder.wait().unwrap().success());
        assert!(killed, "round {round}: the feeder finished before {kill_after} acknowledgements");
        let acked: Vec<String> = std::fs::read_to_string(&acked_file).unwrap().lines().map(str::to_string).collect();
        report.push((kill_after, acked.len()));
        acked_all.extend(acked);
    }
    let total: usize = report.iter().map(|r| r.1).sum();
    eprintln!("{ROUNDS} kills: {total} messages acknowledged, all delivered, {duplicates_before} duplicates in all");
    e.stop();
}
