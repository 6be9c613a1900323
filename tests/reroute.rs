//! Sending a queue's mail another way, seen from scripted receivers (by the source IP and MX
//! of each message): `reroute-to-virtual-mta` always, `backoff-reroute-to-virtual-mta` while the
//! queue is in backoff, and `backoff-retry-after` replacing `retry-after` in backoff.

use crate::support::Ember;
use crate::support::peers::Receiver;
use serde_json::json;

/// Two VMTAs (`a` from 127.0.0.2, `b` from 127.0.0.3); sources default to `a`; `domain` goes
/// into `<domain example.com>` inside `a`.
fn config(rx: &Receiver, domain: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta a\n</source>\n<spool spool>\n</spool>\n\
         <virtual-mta b>\n    smtp-source-host 127.0.0.3 b.ember.test\n</virtual-mta>\n\
         <virtual-mta a>\n    smtp-source-host 127.0.0.2 a.ember.test\n    <domain example.com>\n{domain}    </domain>\n</virtual-mta>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 1s\n    retry-recipients-after 1s\n</domain>\n",
        rx.addr.port()
    )
}

fn peers(rx: &Receiver) -> Vec<String> {
    rx.events("message").iter().map(|m| m["peer"].as_str().unwrap().to_string()).collect()
}

#[test]
fn reroute_to_virtual_mta_sends_the_queue_from_the_other_vmta() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let e = Ember::start_in(dir, &config(&rx, "        reroute-to-virtual-mta b\n"));
    e.inject_numbered(3, "r");
    e.wait_log_count("delivered ", 3);
    assert_eq!(peers(&rx), vec!["127.0.0.3"; 3]);
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queues[0]["queue"], "example.com/b", "{queues}");
}

#[test]
fn a_queue_in_backoff_moves_to_its_backoff_reroute_vmta_and_retries_on_the_backoff_schedule() {
    let dir = tempfile::tempdir().unwrap();
    // The first message is refused with the seed's RP-001 (and accepted when retried).
    let script = json!({"rcpt_rules": [{"address": "r0@example.com", "replies": ["421 4.7.0 [RP-001] temporarily rate limited", "250 2.1.5 ok"]}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let domain =
        "        421 RP-001 *, 1h, 2, 60/m\n        backoff-reroute-to-virtual-mta b\n        backoff-retry-after 1h\n";
    let e = Ember::start_in(dir, &config(&rx, domain));
    e.inject_numbered(1, "r");
    e.wait_log("queue mode backoff");
    e.inject_numbered(4, "s");
    e.wait_log_count("delivered ", 4);
    // Everything after the backoff began went out from b's address.
    assert_eq!(peers(&rx), vec!["127.0.0.3"; 4], "{:?}", rx.events("message"));
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = queues.as_array().unwrap().iter().find(|q| q["queue"] == "example.com/a").expect("queue a");
    assert_eq!(a["mode"], "backoff", "{queues}");
    // r0, deferred by the 421 while a was in backoff, waits for backoff-retry-after (1h), not
    // retry-after (1s).
    assert_eq!(a["messages_waiting"], 1, "{queues}");
    let line = e.stderr.lock().unwrap().iter().find(|l| l.contains("to <r0@example.com> until")).cloned().unwrap();
    let until = line.split(" until ").nth(1).unwrap()[..24].to_string();
    let parse = "import datetime,sys,time; print(int(datetime.datetime.strptime(sys.argv[1],'%Y-%m-%d %H:%M:%S%z').timestamp() - time.time()))";
    let out = crate::support::python(parse, &[until]);
    let wait: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(wait > 3000, "r0 retries in {wait}s: {line}");
    assert_eq!(e.spooled().len(), 1);
    let text = String::from_utf8_lossy(&e.live_cli(&["explain", "example.com/a"]).stdout).to_string();
    assert!(text.contains("[RP-001]"), "{text}");
}

#[test]
fn skip_mx_sends_the_retry_to_the_next_mx_host() {
    let dir = tempfile::tempdir().unwrap();
    let busy = json!({"rcpt_rules": [{"regex": ".", "replies": "451 4.3.0 busy here, try the next mx"}]});
    let first = Receiver::start("127.0.0.1", &busy, dir.path(), None);
    let second_dir = dir.path().join("second");
    std::fs::create_dir(&second_dir).unwrap();
    let second = Receiver::start("127.0.0.4", &json!({}), &second_dir, None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<spool spool>\n</spool>\n\
         <smtp-pattern-list next>\n    reply /try the next mx/ skip-mx\n</smtp-pattern-list>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{};[127.0.0.4]:{}\n    smtp-pattern-list next\n    retry-after 1h\n    retry-recipients-after 1h\n</domain>\n",
        first.addr.port(),
        second.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    e.inject_numbered(1, "r");
    e.wait_log("MX 127.0.0.1 skipped");
    e.wait_log_count("delivered ", 1);
    assert_eq!(second.events("message").len(), 1, "the retry went to the second MX");
    e.inject_numbered(2, "s");
    e.wait_log_count("delivered ", 3);
    assert_eq!(first.events("connect").len(), 1, "the skipped MX is not tried again meanwhile");
    assert_eq!(second.events("message").len(), 3);
}

#[test]
fn with_every_source_ip_disabled_backoff_upon_all_sources_disabled_goes_on_in_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let script = json!({"rcpt_rules": [{"address": "r0@example.com", "replies": ["451 4.7.1 your IP is blocked here", "250 2.1.5 ok"]}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta a\n</source>\n<spool spool>\n</spool>\n\
         <smtp-pattern-list blocks>\n    reply /ip is blocked/ disable-source-ip,reenable-after=1h\n</smtp-pattern-list>\n\
         <virtual-mta a>\n    smtp-source-host 127.0.0.2 a.ember.test\n</virtual-mta>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{}\n    smtp-pattern-list blocks\n    backoff-upon-all-sources-disabled yes\n    \
         backoff-max-smtp-out 1\n    backoff-retry-after 1s\n    retry-after 1s\n    retry-recipients-after 1s\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    e.inject_numbered(1, "r");
    e.wait_log("source IP 127.0.0.2 disabled");
    // Its only IP disabled for an hour, the queue still delivers: in backoff, from that IP.
    e.wait_log_count("delivered ", 1);
    assert_eq!(rx.events("message").len(), 1);
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queues[0]["mode"], "backoff", "{queues}");
    assert!(queues[0]["mode_reason"].as_str().unwrap().contains("every source IP is disabled"), "{queues}");
}
