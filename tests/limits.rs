//! Limits beyond a queue's message rate, measured at a scripted receiver: connections per local
//! source IP (`source-ip-max-smtp-out`), bytes per second (`max-data-volume-rate`), and a pool's
//! `max-smtp-msg-rate` shared by its members, `queue-priority`, and idle connections kept for the
//! next message (`connection-idle-timeout`). Rates are checked by the limiter the queue names
//! while it holds mail back; their arithmetic is measured in virtual time by the queue manager's
//! unit tests (src/queue/manager/tests.rs).

use crate::support::Ember;
use crate::support::peers::Receiver;
use serde_json::{Value, json};

fn config(rx: &Receiver, top: &str, domain: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta v\n</source>\n<spool spool>\n</spool>\n\
         {top}<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 1s\n    retry-recipients-after 1s\n{domain}</domain>\n",
        rx.addr.port()
    )
}

/// The most connections from `peer` open at once, sampled at each of its connections' starts.
///
/// A connection counts from when the receiver logged it until the last command the receiver
/// read from it (Ember's `QUIT`). Ember certainly held it open over that span. The receiver's
/// own `close` comes later, once its thread has seen the end of the stream, by which time Ember
/// may rightly have opened the next one: ending spans there made the test flaky.
fn peak_from(rx: &Receiver, peer: &str) -> usize {
    let t = |e: &Value| e["t"].as_f64().unwrap();
    let opened: Vec<(i64, f64)> = rx
        .events("connect")
        .iter()
        .filter(|c| c["peer"] == peer)
        .map(|c| (c["conn"].as_i64().unwrap(), t(c)))
        .collect();
    let mut last_command: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
    for c in rx.events("command") {
        let end = last_command.entry(c["conn"].as_i64().unwrap()).or_insert(0.0);
        *end = end.max(t(&c));
    }
    opened
        .iter()
        .map(|(_, at)| opened.iter().filter(|(c, s)| s <= at && last_command.get(c).is_none_or(|end| end > at)).count())
        .max()
        .unwrap_or(0)
}

fn times(rx: &Receiver) -> Vec<f64> {
    let mut t: Vec<f64> = rx.events("message").iter().map(|m| m["t"].as_f64().unwrap()).collect();
    t.sort_by(f64::total_cmp);
    t
}

#[test]
fn source_ip_max_smtp_out_caps_one_ip_and_not_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({"misbehave": {"data_end": "slow"}}), dir.path(), None);
    let top = "<virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n    smtp-source-host 127.0.0.3 b.ember.test\n</virtual-mta>\n";
    let domain = "    max-smtp-out 8\n    max-msg-per-connection 1\n    source-ip-max-smtp-out 127.0.0.2/32 1\n";
    let e = Ember::start_in(dir, &config(&rx, top, domain));
    e.inject_numbered(16, "r");
    e.wait_log_count("delivered ", 16);
    assert_eq!(peak_from(&rx, "127.0.0.2"), 1, "{:?}", rx.events("connect"));
    // The other address is not capped, so the queue did run connections in parallel.
    assert!(peak_from(&rx, "127.0.0.3") >= 2, "{:?}", rx.events("connect"));
}

#[test]
fn max_data_volume_rate_holds_mail_back_for_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let top = "<virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n</virtual-mta>\n";
    let e = Ember::start_in(dir, &config(&rx, top, "    max-data-volume-rate 40K/s\n    max-smtp-out 4\n"));
    // Eight messages of about 20 KiB: 40K/s lets one through every half second.
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
body = ("x" * 99 + "\r\n") * 200
for i in range(8):
    s.sendmail("a@example.net", ["d%d@example.com" % i], "Subject: %d\r\n\r\n%s" % (i, body))
s.quit()
"#;
    let out = crate::support::python(script, &[e.smtp().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The bytes already sent hold the next message back (the spacing by size is measured in
    // virtual time by queue::manager::tests::max_data_volume_rate_spaces_messages_by_their_size_...).
    assert_eq!(e.wait_queue_reason("rate: "), "rate: max-data-volume-rate");
    e.wait_log_count("delivered ", 8);
    assert_eq!(times(&rx).len(), 8);
}

#[test]
fn a_pools_msg_rate_is_shared_by_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let top = "<virtual-mta a>\n    smtp-source-host 127.0.0.2 a.ember.test\n</virtual-mta>\n\
               <virtual-mta b>\n    smtp-source-host 127.0.0.3 b.ember.test\n</virtual-mta>\n\
               <virtual-mta-pool v>\n    virtual-mta a\n    virtual-mta b\n    max-smtp-msg-rate 120/m\n</virtual-mta-pool>\n";
    let e = Ember::start_in(dir, &config(&rx, top, "    max-smtp-out 4\n"));
    e.inject_numbered(10, "p");
    // Two queues (one per member) held back by one rate: the pool's.
    assert_eq!(e.wait_queue_reason("rate: "), "rate: pool v max-smtp-msg-rate 120/m");
    e.wait_log_count("delivered ", 10);
    let peers: std::collections::BTreeSet<String> =
        rx.events("message").iter().map(|m| m["peer"].as_str().unwrap().to_string()).collect();
    assert_eq!(peers.len(), 2, "both members sent: {peers:?}");
    assert_eq!(times(&rx).len(), 10);
}

#[test]
fn a_freed_connection_slot_goes_to_the_higher_queue_priority() {
    let dir = tempfile::tempdir().unwrap();
    // A slow receiver (0.6 s a message), so every message is queued before the first is done.
    let slow = json!({"misbehave": {"mail": "slow", "data_end": "slow"}});
    let rx = Receiver::start("127.0.0.1", &slow, dir.path(), None);
    let config = format!(
        "total-max-smtp-out 1\nsmtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<spool spool>\n</spool>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{}\n    max-msg-per-connection 1\n</domain>\n\
         <domain low.example>\n    queue-priority 10\n</domain>\n<domain high.example>\n    queue-priority 90\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    // low first: its connection takes the only slot while the rest arrive.
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
for to in ["l0@low.example", "l1@low.example", "l2@low.example", "h0@high.example", "h1@high.example", "h2@high.example"]:
    s.sendmail("a@example.net", [to], "Subject: x\r\n\r\nx\r\n")
s.quit()
"#;
    let out = crate::support::python(script, &[e.smtp().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    e.wait_log_count("delivered ", 6);
    let mut messages = rx.events("message");
    messages.sort_by(|a, b| a["t"].as_f64().unwrap().total_cmp(&b["t"].as_f64().unwrap()));
    let order: Vec<String> = messages.iter().map(|m| m["rcpts"][0].as_str().unwrap()[..2].to_string()).collect();
    assert_eq!(order, ["l0", "h0", "h1", "h2", "l1", "l2"]);
}

#[test]
fn connection_idle_timeout_keeps_a_connection_for_the_next_message_then_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let top = "<virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n</virtual-mta>\n";
    let e = Ember::start_in(dir, &config(&rx, top, "    connection-idle-timeout 2s\n"));
    e.inject_numbered(1, "first");
    e.wait_log_count("delivered ", 1);
    e.inject_numbered(1, "second");
    e.wait_log_count("delivered ", 2);
    assert_eq!(rx.events("connect").len(), 1, "the second message reused the idle connection");
    assert_eq!(rx.events("message").iter().map(|m| m["conn"].as_i64()).collect::<Vec<_>>(), [Some(1), Some(1)]);
    // Idle past the timeout, the connection closes; the next message opens a new one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rx.events("close").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the idle connection never closed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    e.inject_numbered(1, "third");
    e.wait_log_count("delivered ", 3);
    assert_eq!(rx.events("connect").len(), 2);
}

#[test]
fn an_idle_connection_the_receiver_hangs_up_is_not_used_for_the_next_message() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({"idle_timeout": 0.5}), dir.path(), None);
    let top = "<virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n</virtual-mta>\n";
    let e = Ember::start_in(dir, &config(&rx, top, "    connection-idle-timeout 1m\n"));
    e.inject_numbered(1, "first");
    e.wait_log_count("delivered ", 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rx.events("idle_close").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the receiver never hung up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    e.inject_numbered(1, "second");
    e.wait_log_count("delivered ", 2);
    assert_eq!(rx.events("connect").len(), 2, "a new connection for the second message");
    assert!(!e.log_contains("deferred "), "no attempt on the connection the receiver closed");
}
