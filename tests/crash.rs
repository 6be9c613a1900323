//! Crash safety: "a 250 is a promise". A feeder injects 20,000 messages over 20 connections,
//! Ember is killed with SIGKILL at a random moment, and every message that got `250` must be in
//! the spool afterwards; what is there beyond that can only be the transactions in flight at the
//! kill (their final dot was sent, the `250` never arrived). Repeated at several kill moments.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::Ember;

const CONFIG: &str = "\
smtp-listener 127.0.0.1:0
total-max-smtp-in 200
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<spool spool>
</spool>
";

const MESSAGES: usize = 20_000;
const CONNECTIONS: usize = 20;

/// A small deterministic generator, so a failing round can be replayed from its seed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn round(kill_after: usize) {
    let mut e = Ember::start(CONFIG);
    let acked_file = e.path("acked.txt");
    let mut feeder = Command::new("python3")
        .arg(crate::support::support_dir().join("inject.py"))
        .arg(e.smtp().to_string())
        .arg(MESSAGES.to_string())
        .arg(CONNECTIONS.to_string())
        .arg("1024")
        .arg(&acked_file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    // Kill when the feeder reports the chosen number of acknowledgements: an event, not a timer.
    let stdout = feeder.stdout.take().unwrap();
    let mut killed = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.parse::<usize>().ok())
            && n >= kill_after
            && !killed
        {
            e.kill9();
            killed = true;
        }
    }
    assert!(feeder.wait().unwrap().success());
    assert!(killed, "the feeder finished before {kill_after} acknowledgements");
    let acked: HashSet<String> = std::fs::read_to_string(&acked_file).unwrap().lines().map(str::to_string).collect();
    assert!(acked.len() >= kill_after, "only {} acknowledged", acked.len());

    // Offline first (the spool as the crash left it), then through a restart (recovery).
    for restart in [false, true] {
        if restart {
            e.launch();
        }
        let spooled: HashSet<String> = e.spooled().iter().map(|m| m["sender"].as_str().unwrap().to_string()).collect();
        let lost: Vec<_> = acked.difference(&spooled).take(5).collect();
        assert!(
            lost.is_empty(),
            "kill after {kill_after}: {} acknowledged messages missing, e.g. {lost:?}",
            acked.difference(&spooled).count()
        );
        let extra = spooled.difference(&acked).count();
        assert!(extra <= CONNECTIONS, "kill after {kill_after}: {extra} messages spooled that were never acknowledged");
    }
    e.stop();
}

#[test]
fn every_acknowledged_message_survives_sigkill() {
    let mut seed = std::env::var("EMBER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64 ^ std::process::id() as u64);
    eprintln!("crash test seed {seed} (set EMBER_CRASH_SEED to replay)");
    for _ in 0..5 {
        let kill_after = 500 + (next(&mut seed) % 18_000) as usize;
        round(kill_after);
    }
}

#[test]
fn a_torn_final_record_is_detected_and_dropped() {
    let mut e = Ember::start(CONFIG);
    for n in 0..3 {
        let out = crate::support::swaks(&[
            "--server",
            &e.smtp().to_string(),
            "--from",
            &format!("m{n}@example.net"),
            "--to",
            "r@example.com",
        ]);
        assert!(out.status.success());
    }
    e.stop();
    // Cut the last record short, as a crash in the middle of a write would.
    let mut segments: Vec<_> = std::fs::read_dir(e.path("spool"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment");
    let len = std::fs::metadata(last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    file.set_len(len - 7).unwrap();
    drop(file);
    e.launch();
    // Recovery reports before the daemon is ready, so the line is already in its output.
    let line =
        e.stdout.lock().unwrap().iter().find(|l| l.contains("torn record")).cloned().expect("a torn-record line");
    assert!(line.contains(&last.file_name().unwrap().to_string_lossy().to_string()), "{line}");
    let spooled: Vec<String> = e.spooled().iter().map(|m| m["sender"].as_str().unwrap().to_string()).collect();
    assert_eq!(spooled, ["m0@example.net", "m1@example.net"]);
}
