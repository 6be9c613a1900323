//! Traffic shaping with a scripted receiver: `max-msg-rate` holds mail back and says so, and the
//! seed's field-dialect backoff rule (`421 RP-001 *, 1h, 5, 1000`, scaled down) cuts connections
//! when the receiver pushes back, says why, and ends. The timing itself (spacing, expiry) is
//! asserted in virtual time by the queue manager's unit tests (src/queue/manager/tests.rs): here,
//! through real sockets, only what does not depend on how fast this machine is today.

use crate::support::Ember;
use crate::support::peers::Receiver;
use serde_json::{Value, json};

fn inject(e: &Ember, n: usize, prefix: &str) {
    e.inject_numbered(n, prefix);
}

fn config(port: u16, extra: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<spool spool>\n</spool>\n<domain *>\n    smtp-hosts [127.0.0.1]:{port}\n    retry-after 1s\n    retry-recipients-after 1s\n    backoff-retry-after 1s\n{extra}</domain>\n"
    )
}

fn times(rx: &Receiver) -> Vec<f64> {
    let mut t: Vec<f64> = rx.events("message").iter().map(|m| m["t"].as_f64().unwrap()).collect();
    t.sort_by(f64::total_cmp);
    t
}

#[test]
fn max_msg_rate_holds_mail_back_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let e = Ember::start_in(dir, &config(rx.addr.port(), "    max-msg-rate 120/m\n    max-smtp-out 5\n"));
    inject(&e, 6, "r");
    // The queue holds mail back for its rate, and says so; the spacing itself is measured in
    // virtual time by queue::manager::tests::max_msg_rate_opens_its_window_once_a_second_in_virtual_time.
    assert_eq!(e.wait_queue_reason("rate: "), "rate: max-msg-rate 120/m");
    e.wait_log_count("delivered ", 6);
    assert_eq!(times(&rx).len(), 6);
}

/// The most connections open at once between `from` and `to`, sampled at every connection and
/// message the receiver saw in that window.
fn peak_connections(rx: &Receiver, from: f64, to: f64) -> usize {
    let at = |e: &Value| e["t"].as_f64().unwrap();
    let opened: Vec<(i64, f64)> = rx.events("connect").iter().map(|c| (c["conn"].as_i64().unwrap(), at(c))).collect();
    let closed: std::collections::HashMap<i64, f64> =
        rx.events("close").iter().map(|c| (c["conn"].as_i64().unwrap(), at(c))).collect();
    let samples: Vec<f64> = rx
        .events("connect")
        .iter()
        .chain(rx.events("message").iter())
        .map(at)
        .filter(|t| *t >= from && *t < to)
        .collect();
    samples
        .iter()
        .map(|s| opened.iter().filter(|(c, t)| t <= s && closed.get(c).is_none_or(|end| end > s)).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn the_seeds_backoff_rule_cuts_connections_and_rate_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let script = json!({"rcpt_rules": [{"address": "r0@example.com", "replies": ["421 4.7.0 [RP-001] temporarily rate limited", "250 2.1.5 ok"]}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    // The seed's rule, scaled: back off for 8s to 2 connections and 60/m.
    let e = Ember::start_in(dir, &config(rx.addr.port(), "    max-smtp-out 10\n    421 RP-001 *, 8s, 2, 60/m\n"));
    inject(&e, 1, "r");
    e.wait_log("queue mode backoff");
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    inject(&e, 12, "s");
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: Value = serde_json::from_slice(&out.stdout).unwrap();
    let q = &queues[0];
    assert_eq!(q["mode"], "backoff", "{q}");
    assert!(q["mode_reason"].as_str().unwrap().contains("421 RP-001"), "{q}");
    assert!(q["mode_until"].as_u64().is_some(), "{q}");
    let explain = e.live_cli(&["explain", "example.com"]);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(text.contains("mode backoff") && text.contains("[RP-001]") && text.contains("max-smtp-out 2"), "{text}");
    e.wait_log("queue mode normal");
    e.wait_log_count("delivered ", 13);
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = queues[0]["mode_events"].as_array().unwrap();
    let modes: Vec<&str> = events.iter().map(|ev| ev["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["backoff", "normal"], "{queues}");
    // While the queue was in backoff (between its two mode events, as the daemon logged them):
    // never more than the rule's 2 connections at once. When backoff ends is tested in virtual
    // time (queue::manager::tests::a_backoff_cycle_cuts_the_queue_ends_on_time_...).
    let normal_at = events[1]["time"].as_f64().unwrap();
    let peak = peak_connections(&rx, started, normal_at);
    assert!(peak <= 2, "peak {peak} connections in backoff: {:?} {:?}", rx.events("connect"), rx.events("close"));
}

#[test]
fn a_threshold_rule_waits_for_its_nth_match() {
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<Value> = (0..3)
        .map(|n| json!({"address": format!("t{n}@example.com"), "replies": ["421 4.7.0 [RP-001] slow down", "250 2.1.5 ok"]}))
        .collect();
    let rx = Receiver::start("127.0.0.1", &json!({ "rcpt_rules": rules }), dir.path(), None);
    let e = Ember::start_in(dir, &config(rx.addr.port(), "    421 RP-001 *, 1h, 1, 60/m, trigger=3/1m\n"));
    inject(&e, 1, "t");
    e.wait_log("(1 of 3/m within its trigger)");
    assert!(!e.log_contains("queue mode backoff"), "one match must not change the queue");
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
for r in ["t1@example.com", "t2@example.com"]:
    s.sendmail("a@example.net", [r], "Subject: t\r\n\r\nx\r\n")
s.quit()
"#;
    assert!(crate::support::python(script, &[e.smtp().to_string()]).status.success());
    e.wait_log("queue mode backoff");
    let log = e.stderr.lock().unwrap().clone();
    let second =
        log.iter().position(|l| l.contains("(2 of 3/m within its trigger)")).expect("the second match is counted");
    let fired = log.iter().position(|l| l.contains("queue mode backoff")).unwrap();
    assert!(second < fired, "{log:?}");
    assert!(log[fired].contains("trigger=3/m"), "{}", log[fired]);
}

#[test]
fn operators_set_queue_modes_and_disable_source_ips() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta v\n</source>\n<spool spool>\n</spool>\n<virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n    smtp-source-host 127.0.0.3 b.ember.test\n</virtual-mta>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    max-smtp-out 1\n    max-msg-per-connection 1\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    inject(&e, 1, "first");
    e.wait_log_count("delivered ", 1);
    let out = e.live_cli(&["disable", "source", "127.0.0.2", "example.com/v"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 queue changed",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    inject(&e, 4, "off");
    e.wait_log_count("delivered ", 5);
    let peers = |prefix: &str| -> Vec<String> {
        rx.events("message")
            .iter()
            .filter(|m| m["rcpts"][0].as_str().unwrap().starts_with(prefix))
            .map(|m| m["peer"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(peers("off"), vec!["127.0.0.3"; 4], "a disabled source IP is not used");
    let out = e.live_cli(&["enable", "source", "127.0.0.2", "example.com/v"]);
    assert!(out.status.success());
    inject(&e, 4, "on");
    e.wait_log_count("delivered ", 9);
    let on = peers("on");
    assert!(on.contains(&"127.0.0.2".to_string()) && on.contains(&"127.0.0.3".to_string()), "{on:?}");

    let out = e.live_cli(&["set", "queue", "--mode=backoff", "example.com/*"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1 queue changed");
    let explain = String::from_utf8_lossy(&e.live_cli(&["explain", "example.com/v"]).stdout).to_string();
    assert!(explain.contains("mode backoff") && explain.contains("set by an operator"), "{explain}");
    e.live_cli(&["set", "queue", "--mode=normal", "example.com"]);
    let explain = String::from_utf8_lossy(&e.live_cli(&["explain", "example.com/v"]).stdout).to_string();
    assert!(explain.contains("mode normal"), "{explain}");
    let unknown = e.live_cli(&["set", "queue", "--mode=backoff", "nowhere.example"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no queue matches nowhere.example"));
}

#[test]
fn cold_vmta_gets_exactly_the_daily_allowance_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta warm\n</source>\n<spool spool>\n</spool>\n<virtual-mta cold>\n    smtp-source-host 127.0.0.3 cold.ember.test\n</virtual-mta>\n<virtual-mta warm>\n    smtp-source-host 127.0.0.2 warm.ember.test\n    cold-virtual-mta cold\n    <domain *>\n        max-cold-virtual-mta-msg 3/day\n    </domain>\n</virtual-mta>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n",
        rx.addr.port()
    );
    let mut e = Ember::start_in(dir, &config);
    inject(&e, 5, "a");
    e.wait_log_count("delivered ", 5);
    e.stop();
    e.launch();
    inject(&e, 3, "b");
    e.wait_log_count("delivered ", 8);
    let from = |ip: &str| rx.events("message").iter().filter(|m| m["peer"] == ip).count();
    assert_eq!(
        from("127.0.0.3"),
        3,
        "the cold IP gets exactly today's allowance, restart or not: {:?}",
        e.stderr.lock().unwrap().iter().filter(|l| l.contains("warm")).collect::<Vec<_>>()
    );
    assert_eq!(from("127.0.0.2"), 5);
}

#[test]
fn disable_source_ip_rule_stops_using_that_ip_for_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let script = json!({"rcpt_rules": [{"address": "r0@example.com", "replies": ["451 4.7.1 your IP is blocked here", "250 2.1.5 ok"]}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta v\n</source>\n<spool spool>\n</spool>\n<smtp-pattern-list blocks>\n    reply /ip is blocked/ disable-source-ip,reenable-after=1h\n</smtp-pattern-list>\n<virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n    smtp-source-host 127.0.0.3 b.ember.test\n</virtual-mta>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    smtp-pattern-list blocks\n    max-smtp-out 1\n    max-msg-per-connection 1\n    retry-after 1s\n    retry-recipients-after 1s\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    // The first connection comes from 127.0.0.2 (the VMTA's first source host) and is refused.
    inject(&e, 1, "r");
    e.wait_log("source IP 127.0.0.2 disabled");
    inject(&e, 4, "s");
    e.wait_log_count("delivered ", 5);
    let peers: Vec<String> = rx.events("message").iter().map(|m| m["peer"].as_str().unwrap().to_string()).collect();
    assert_eq!(peers, vec!["127.0.0.3"; 5], "the disabled IP is not used again for this queue");
    let explain = String::from_utf8_lossy(&e.live_cli(&["explain", "example.com/v"]).stdout).to_string();
    assert!(explain.contains("source-disabled"), "{explain}");
}

#[test]
fn a_vmta_rate_is_shared_by_its_queues() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta v\n</source>\n<spool spool>\n</spool>\n<virtual-mta v>\n    smtp-source-host 127.0.0.2 v.ember.test\n    max-smtp-msg-rate 120/m\n</virtual-mta>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
for i in range(8):
    for d in ("example.com", "example.org"):
        s.sendmail("a@example.net", ["r%d@%s" % (i, d)], "Subject: %d\r\n\r\nx\r\n" % i)
s.quit()
"#;
    assert!(crate::support::python(script, &[e.smtp().to_string()]).status.success());
    // Two queues, one VMTA: the VMTA's rate is what holds them back (shared, as
    // queue::manager::tests::a_virtual_mtas_rate_is_shared_by_its_queues_in_virtual_time measures).
    assert_eq!(e.wait_queue_reason("rate: "), "rate: vmta v max-smtp-msg-rate 120/m");
    e.wait_log_count("delivered ", 16);
    assert_eq!(times(&rx).len(), 16);
}

#[test]
fn a_receiver_refusing_every_connection_gets_no_connection_storm() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(
        "127.0.0.1",
        &json!({"greeting": "421 4.3.2 System not accepting network messages"}),
        dir.path(),
        None,
    );
    let e = Ember::start_in(dir, &config(rx.addr.port(), "    max-smtp-out 20\n"));
    inject(&e, 20, "r");
    e.wait_log_count("queue failure", 2);
    // One connection per attempt, then the queue's retry wait: never twenty at once.
    let connects = rx.events("connect").len();
    assert!(connects <= 3, "{connects} connections for two failed attempts");
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queues[0]["mode"], "retry", "{queues}");
    assert_eq!(queues[0]["recipients"], 20);
}

#[test]
fn the_seeds_second_rule_matches_on_the_enhanced_code() {
    let dir = tempfile::tempdir().unwrap();
    let script = json!({"rcpt_rules": [{"address": "r0@example.com", "replies": ["421 4.3.2 System not accepting network messages", "250 2.1.5 ok"]}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let e =
        Ember::start_in(dir, &config(rx.addr.port(), "    421 RP-001 *, 1h, 5, 1000\n    421 4.3.2 *, 3s, 2, 500\n"));
    inject(&e, 1, "r");
    e.wait_log("queue mode backoff");
    let explain = String::from_utf8_lossy(&e.live_cli(&["explain", "example.com"]).stdout).to_string();
    assert!(
        explain.contains("backoff-rule 421 4.3.2 *, 3s, 2, 500/h") && explain.contains("max-smtp-out 2"),
        "{explain}"
    );
    e.wait_log("queue mode normal");
    e.wait_log("delivered ");
}

#[test]
fn higher_recipient_priority_goes_first_within_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<pattern-list prio>\n    mail-from /^urgent@/ recipient-priority=90\n</pattern-list>\n<source 127.0.0.1>\n    always-allow-relaying yes\n    pattern-list prio\n</source>\n<spool spool>\n</spool>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    max-msg-rate 120/m\n    max-smtp-out 1\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
for i in range(6):
    s.sendmail("bulk@example.net", ["b%d@example.com" % i], "Subject: bulk\r\n\r\nx\r\n")
s.sendmail("urgent@example.net", ["u@example.com"], "Subject: urgent\r\n\r\nx\r\n")
s.quit()
"#;
    assert!(crate::support::python(script, &[e.smtp().to_string()]).status.success());
    e.wait_log_count("delivered ", 7);
    let mut messages = rx.events("message");
    messages.sort_by(|a, b| a["t"].as_f64().unwrap().total_cmp(&b["t"].as_f64().unwrap()));
    let order: Vec<&str> = messages.iter().map(|m| m["rcpts"][0].as_str().unwrap()).collect();
    let urgent = order.iter().position(|r| *r == "u@example.com").unwrap();
    // Queued behind five bulk messages held by the rate, the urgent one jumps the line.
    assert!(urgent <= 2, "{order:?}");
}
