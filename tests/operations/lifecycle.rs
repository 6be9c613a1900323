//! Hot reload while mail flows (a broken file is refused and the old limits hold; a good one
//! applies to new connections; nothing is lost) and the graceful drain on SIGTERM (in-flight
//! transactions finish, in and out; what is still queued stays safe on disk).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::{acct_rows, config, inject, mgmt, until};
use crate::support::peers::Receiver;
use crate::support::{Ember, signal, support_dir};

fn route(port: u16, max: &str) -> String {
    format!(
        "<domain example.com>\n    smtp-hosts [127.0.0.1]:{port}\n    max-smtp-out {max}\n    max-msg-rate 25/s\n    retry-after 1m\n</domain>\n"
    )
}

/// The most connections the receiver had open at once, counting connections opened before
/// `until` (wall-clock seconds) only.
fn max_concurrent(rx: &Receiver, until: f64) -> usize {
    let mut events: Vec<(f64, i32)> = Vec::new();
    for e in rx.events("connect") {
        let t = e["t"].as_f64().unwrap();
        if t < until {
            events.push((t, 1));
        }
    }
    let opened: Vec<u64> = rx
        .events("connect")
        .iter()
        .filter(|e| e["t"].as_f64().unwrap() < until)
        .map(|e| e["conn"].as_u64().unwrap())
        .collect();
    for e in rx.events("close") {
        if opened.contains(&e["conn"].as_u64().unwrap()) {
            events.push((e["t"].as_f64().unwrap(), -1));
        }
    }
    // A close at the same instant as a connect counts first.
    events.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

fn wall() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn connections(e: &Ember) -> u64 {
    let q = crate::support::http::get(mgmt(e), "/api/v1/queues?queue=example.com").data();
    q[0]["connections"].as_u64().unwrap_or(0)
}

#[test]
fn reload_changes_max_smtp_out_while_mail_flows_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let port = rx.addr.port();
    let e = Ember::start_in(dir, &config("operator", &route(port, "2")));
    // One message proves the route, so the queue opens connections up to its cap.
    inject(&e, "first@example.com", &[]);
    acct_rows(&e, "d", 1);
    // 160 more over four feeder connections; at 25/s they take about six and a half seconds to deliver.
    let acked = e.path("acked.txt");
    let out = Command::new("python3")
        .arg(support_dir().join("inject.py"))
        .args([&e.smtp().to_string(), "160", "4", "200"])
        .arg(&acked)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    until("two connections at work", || (connections(&e) == 2).then_some(()));

    let good = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(&e.config, good.replace("max-smtp-out 2", "max-smtp-out banana")).unwrap();
    let broken = e.live_cli(&["reload"]);
    assert!(!broken.status.success());
    let why = String::from_utf8_lossy(&broken.stderr);
    assert!(why.contains("ember.conf:") && why.contains("max-smtp-out"), "{why}");
    e.wait_log("reload refused; the running configuration is unchanged");

    let before_good = wall();
    std::fs::write(&e.config, good.replace("max-smtp-out 2", "max-smtp-out 6")).unwrap();
    let reloaded = e.live_cli(&["reload"]);
    assert!(reloaded.status.success(), "{}", String::from_utf8_lossy(&reloaded.stderr));
    // The new cap applies while the backlog is still there.
    until("more than two connections after the reload", || (connections(&e) > 2).then_some(()));
    let d = acct_rows(&e, "d", 161);
    assert_eq!(d.len(), 161);
    assert!(max_concurrent(&rx, before_good) <= 2, "the old limit held until the good reload");
    let overall = max_concurrent(&rx, f64::MAX);
    assert!(overall > 2 && overall <= 6, "{overall} connections at once");
    // Nothing lost, nothing left.
    assert_eq!(rx.events("message").len(), 161);
    assert!(e.spooled().is_empty());
}

const HALF_SESSION: &str = r#"
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=60)
s.ehlo("feeder.test")
s.mail("late@example.net")
s.rcpt("late@slow.example")
code, _ = s.docmd("DATA")
assert code == 354, code
s.send(b"Subject: in flight\r\n\r\nstill arriving\r\n")
print("ready", flush=True)
sys.stdin.readline()
s.send(b".\r\n")
code, text = s.getreply()
print(code, text.decode(), flush=True)
s.quit()
"#;

#[test]
fn sigterm_drains_in_flight_transactions_and_keeps_the_rest_queued() {
    let dir = tempfile::tempdir().unwrap();
    // The receiver takes two seconds to answer each end of data.
    let rx = Receiver::start("127.0.0.1", &json!({"data_end_delay": 2}), dir.path(), None);
    let route = format!(
        "<domain slow.example>\n    smtp-hosts [127.0.0.1]:{}\n    max-smtp-out 1\n</domain>\n",
        rx.addr.port()
    );
    let mut e = Ember::start_in(dir, &config("operator", &route));
    for n in 0..3 {
        inject(&e, &format!("r{n}@slow.example"), &[]);
    }
    // A feeder is in the middle of DATA, and a delivery waits for the receiver's answer.
    let mut feeder = Command::new("python3")
        .args(["-c", HALF_SESSION, &e.smtp().ip().to_string(), &e.smtp().port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut feeder_out = BufReader::new(feeder.stdout.take().unwrap());
    let mut line = String::new();
    feeder_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    until("a delivery in flight", || (!rx.events("message").is_empty()).then_some(()));

    signal(e.pid(), "TERM");
    // The feeder finishes its message after the signal: it is still accepted.
    feeder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    line.clear();
    feeder_out.read_line(&mut line).unwrap();
    assert!(line.starts_with("250"), "the in-flight message got {line:?}");
    feeder.wait().unwrap();
    e.stop();
    assert!(e.stdout.lock().unwrap().iter().any(|l| l == "ember stopped"));

    // The delivery in flight finished and was recorded; no other was started.
    let delivered = rx.events("message");
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let d = acct_rows(&e, "d", 1);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["rcpt"], delivered[0]["rcpts"][0].as_str().unwrap());
    // Everything else is safe in the spool: the two undelivered and the late one.
    let mut left: Vec<String> = e.spooled().iter().map(|r: &Value| r["rcpt"].as_str().unwrap().to_string()).collect();
    left.sort();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&"late@slow.example".to_string()));
}
