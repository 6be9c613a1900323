//! `<mx-rollup-list>` through real DNS: three domains whose MX records all name one provider
//! host share the `provider.rollup` queue and its `max-smtp-out 1` (measured by the receiver),
//! while a domain with `disable-mx-rollup yes` keeps its own queue.

#[path = "support/dns.rs"]
mod dns;
mod support;

use serde_json::json;
use support::Ember;
use support::peers::{Receiver, read_acct};

/// The most connections the receiver ever had open at once, from its connect/close log.
fn peak_connections(r: &Receiver) -> usize {
    let log = std::fs::read_to_string(&r.log).unwrap();
    let (mut open, mut peak) = (0usize, 0usize);
    for e in log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        match e["event"].as_str() {
            Some("connect") => {
                open += 1;
                peak = peak.max(open);
            }
            Some("close") => open = open.saturating_sub(1),
            _ => {}
        }
    }
    peak
}

#[test]
fn domains_of_one_provider_share_the_rollup_queue_and_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    // A slow end of data: connections that were allowed to overlap would.
    let script = json!({"hostname": "provider", "data_end_delay": 0.3});
    let provider = Receiver::start("127.0.0.30", &script, dir.path(), None);
    let port = provider.addr.port();
    let own = Receiver::start_on(&format!("127.0.0.31:{port}"), &json!({"hostname": "own"}), dir.path(), None);
    let dns = dns::Dnsmasq::start(&[
        "--mx-host=a.test,mx1.mx.example-provider.test,10",
        "--mx-host=b.test,mx1.mx.example-provider.test,10",
        "--mx-host=c.test,mx1.mx.example-provider.test,10",
        "--mx-host=own.test,mx2.mx.example-provider.test,10",
        "--host-record=mx1.mx.example-provider.test,127.0.0.30",
        "--host-record=mx2.mx.example-provider.test,127.0.0.31",
    ]);
    let config = format!(
        "smtp-listener 127.0.0.1:0\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n\
         <mx-rollup-list>\n    mx *.mx.example-provider.test provider.rollup\n</mx-rollup-list>\n\
         <domain *>\n    default-smtp-port {port}\n    retry-after 1h\n</domain>\n\
         <domain provider.rollup>\n    max-smtp-out 1\n</domain>\n\
         <domain own.test>\n    disable-mx-rollup yes\n</domain>\n\
         <spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b\n</acct-file>\n",
        dns.addr
    );
    let e = Ember::start(&config);
    let mut rcpts = Vec::new();
    for i in 0..3 {
        for d in ["a.test", "b.test", "c.test", "own.test"] {
            rcpts.push(format!("r{i}@{d}"));
        }
    }
    for rcpt in &rcpts {
        let out = support::swaks(&["--server", &e.smtp().to_string(), "--from", "s@sender.test", "--to", rcpt]);
        assert!(out.status.success());
    }
    e.wait_log_count("delivered ", rcpts.len());
    let got = |r: &Receiver| -> Vec<String> {
        let mut v: Vec<String> =
            r.events("message").iter().map(|m| m["rcpts"][0].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    let mut want_provider: Vec<String> = rcpts.iter().filter(|r| !r.ends_with("@own.test")).cloned().collect();
    want_provider.sort();
    assert_eq!(got(&provider), want_provider);
    assert_eq!(got(&own), ["r0@own.test", "r1@own.test", "r2@own.test"]);
    assert_eq!(peak_connections(&provider), 1, "the rollup's max-smtp-out 1 covers all three domains");

    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    let names: Vec<&str> = queues.as_array().unwrap().iter().map(|q| q["queue"].as_str().unwrap()).collect();
    assert_eq!(names, ["own.test/{default}", "provider.rollup/{default}"], "{queues}");
    let rollup = queues.as_array().unwrap().iter().find(|q| q["queue"] == "provider.rollup/{default}").unwrap();
    assert_eq!(rollup["delivered"], 9, "{rollup}");

    // Accounting keeps each recipient's own address.
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let mut delivered: Vec<String> = rows.iter().filter(|r| r["type"] == "d").map(|r| r["rcpt"].clone()).collect();
    delivered.sort();
    let mut all = rcpts.clone();
    all.sort();
    assert_eq!(delivered, all);
}
