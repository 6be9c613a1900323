//! Moving a queue's mail to another virtual MTA, seen from a scripted receiver (by the source IP
//! of each message): `reroute-to-virtual-mta` always, `backoff-reroute-to-virtual-mta` while the
//! queue is in backoff, and `backoff-retry-after` replacing `retry-after` in backoff.

mod support;

use serde_json::json;
use support::Ember;
use support::peers::Receiver;

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
    let out = support::python(parse, &[until]);
    let wait: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(wait > 3000, "r0 retries in {wait}s: {line}");
    assert_eq!(e.spooled().len(), 1);
    let text = String::from_utf8_lossy(&e.live_cli(&["explain", "example.com/a"]).stdout).to_string();
    assert!(text.contains("[RP-001]"), "{text}");
}
