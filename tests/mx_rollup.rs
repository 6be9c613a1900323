//! MX rollup through real DNS (dnsmasq) and real receivers: three domains whose MX records name
//! one provider share one queue and its connection cap (measured by the receiver, which logs
//! every connection), with `<mx-rollup-list>` and with `auto-mx-rollup yes` (the built-in
//! provider table, and two domains with one MX host set); `show queues` names the provider and
//! `ember explain DOMAIN` shows the MX hosts, the provider and the queue. Inside a rollup queue
//! each recipient keeps its own domain's `require-starttls` and suppression.

use crate::support::dns;

use crate::support::Ember;
use crate::support::peers::{Receiver, read_acct};
use serde_json::json;

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

/// Every recipient the receiver took, sorted.
fn received(r: &Receiver) -> Vec<String> {
    let mut v: Vec<String> = r
        .events("message")
        .iter()
        .flat_map(|m| m["rcpts"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// `show queues --json` from the running daemon.
fn queues(e: &Ember) -> Vec<serde_json::Value> {
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    queues.as_array().unwrap().clone()
}

fn queue_names(queues: &[serde_json::Value]) -> Vec<&str> {
    queues.iter().map(|q| q["queue"].as_str().unwrap()).collect()
}

/// `ember explain ARGS…` from the running daemon: its text, which must come with success.
fn explain(e: &Ember, args: &[&str]) -> String {
    let out = e.live_cli(&[&["explain"], args].concat());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn send(e: &Ember, rcpts: &[String]) {
    for rcpt in rcpts {
        let out = crate::support::swaks(&["--server", &e.smtp().to_string(), "--from", "s@sender.test", "--to", rcpt]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn rcpts_for(domains: &[&str], per_domain: usize) -> Vec<String> {
    (0..per_domain).flat_map(|i| domains.iter().map(move |d| format!("r{i}@{d}"))).collect()
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
        let out = crate::support::swaks(&["--server", &e.smtp().to_string(), "--from", "s@sender.test", "--to", rcpt]);
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

    let queues = queues(&e);
    assert_eq!(queue_names(&queues), ["own.test/{default}", "provider.rollup/{default}"], "{queues:?}");
    let rollup = queues.iter().find(|q| q["queue"] == "provider.rollup/{default}").unwrap();
    assert_eq!(rollup["delivered"], 9, "{rollup}");
    assert_eq!(rollup["provider"], "provider", "{rollup}");
    let own_queue = queues.iter().find(|q| q["queue"] == "own.test/{default}").unwrap();
    assert!(own_queue.get("provider").is_none(), "{own_queue}");
    let text = String::from_utf8_lossy(&e.live_cli(&["show", "queues"]).stdout).to_string();
    assert!(text.lines().any(|l| l.starts_with("provider.rollup/{default}") && l.contains(" provider ")), "{text}");

    // explain DOMAIN: the MX hosts, the provider, the queue; then that queue.
    let text = explain(&e, &["b.test"]);
    assert!(text.contains("MX hosts: mx1.mx.example-provider.test"), "{text}");
    assert!(text.contains("provider: provider (mx-rollup-list)"), "{text}");
    assert!(text.contains("queue: provider.rollup (rolled up"), "{text}");
    assert!(text.contains("queue provider.rollup/{default}: mode normal"), "{text}");
    let text = explain(&e, &["own.test"]);
    assert!(
        text.contains("provider: none") && text.contains("queue: own.test (its own queue: disable-mx-rollup yes)"),
        "{text}"
    );

    // Accounting keeps each recipient's own address.
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let mut delivered: Vec<String> = rows.iter().filter(|r| r["type"] == "d").map(|r| r["rcpt"].clone()).collect();
    delivered.sort();
    let mut all = rcpts.clone();
    all.sort();
    assert_eq!(delivered, all);
}

#[test]
fn auto_mx_rollup_shares_a_providers_queue_and_an_mx_sets_queue() {
    let dir = tempfile::tempdir().unwrap();
    let slow = |name: &str| json!({"hostname": name, "data_end_delay": 0.3});
    let outlook = Receiver::start("127.0.0.40", &slow("outlook"), dir.path(), None);
    let port = outlook.addr.port();
    let hosting = Receiver::start_on(&format!("127.0.0.41:{port}"), &slow("hosting"), dir.path(), None);
    let solo = Receiver::start_on(&format!("127.0.0.42:{port}"), &json!({"hostname": "solo"}), dir.path(), None);
    // Microsoft 365 style: each domain has its own MX name under the provider's suffix.
    let dns = dns::Dnsmasq::start(&[
        "--mx-host=a.test,a-test.mail.protection.outlook.com,10",
        "--mx-host=b.test,b-test.mail.protection.outlook.com,10",
        "--mx-host=c.test,c-test.mail.protection.outlook.com,10",
        "--host-record=a-test.mail.protection.outlook.com,127.0.0.40",
        "--host-record=b-test.mail.protection.outlook.com,127.0.0.40",
        "--host-record=c-test.mail.protection.outlook.com,127.0.0.40",
        "--mx-host=d.test,mx1.hosting.test,10",
        "--mx-host=e.test,mx1.hosting.test,10",
        "--host-record=mx1.hosting.test,127.0.0.41",
        "--mx-host=f.test,mx.solo.test,10",
        "--host-record=mx.solo.test,127.0.0.42",
    ]);
    let config = format!(
        "smtp-listener 127.0.0.1:0\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n\
         <domain *>\n    default-smtp-port {port}\n    retry-after 1h\n    max-smtp-out 1\n    auto-mx-rollup yes\n</domain>\n\
         <domain outlook.rollup>\n    max-smtp-out 2\n</domain>\n\
         <domain hosting.test.rollup>\n    max-smtp-out 1\n</domain>\n\
         <spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b\n</acct-file>\n",
        dns.addr
    );
    let e = Ember::start(&config);
    let to_outlook = rcpts_for(&["a.test", "b.test", "c.test"], 4);
    let to_hosting = rcpts_for(&["d.test", "e.test"], 3);
    let to_solo = rcpts_for(&["f.test"], 2);
    send(&e, &to_outlook);
    send(&e, &to_hosting);
    send(&e, &to_solo);
    e.wait_log_count("delivered ", to_outlook.len() + to_hosting.len() + to_solo.len());

    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(received(&outlook), sorted(&to_outlook));
    assert_eq!(received(&hosting), sorted(&to_hosting));
    assert_eq!(received(&solo), sorted(&to_solo));
    // One cap for the three domains (each alone could have had one connection of its own).
    let peak = peak_connections(&outlook);
    assert!((1..=2).contains(&peak), "outlook.rollup's max-smtp-out 2 covers a.test, b.test and c.test: {peak}");
    // The set's first domain may have been connected when the second formed the rollup: that
    // connection counted against the rollup's max-smtp-out 1.
    assert_eq!(peak_connections(&hosting), 1, "hosting.test.rollup's max-smtp-out 1 covers d.test and e.test");

    let queues = queues(&e);
    assert_eq!(
        queue_names(&queues),
        ["f.test/{default}", "hosting.test.rollup/{default}", "outlook.rollup/{default}"],
        "{queues:?}"
    );
    let by_name = |name: &str| queues.iter().find(|q| q["queue"] == name).unwrap().clone();
    assert_eq!(by_name("outlook.rollup/{default}")["provider"], "outlook");
    assert_eq!(by_name("outlook.rollup/{default}")["delivered"], 12);
    assert_eq!(by_name("hosting.test.rollup/{default}")["provider"], "hosting.test");
    assert!(by_name("f.test/{default}").get("provider").is_none(), "a domain alone with its MX set keeps its queue");

    let text = explain(&e, &["b.test"]);
    assert!(text.contains("MX hosts: b-test.mail.protection.outlook.com"), "{text}");
    assert!(text.contains("provider: outlook (provider-table)"), "{text}");
    assert!(text.contains("queue: outlook.rollup (rolled up"), "{text}");
    let text = explain(&e, &["f.test"]);
    assert!(text.contains("MX hosts: mx.solo.test") && text.contains("provider: none"), "{text}");
    assert!(
        text.contains("queue: f.test (its own queue: no provider, and no other domain with the same MX host set"),
        "{text}"
    );
    let out = e.live_cli(&["explain", "e.test", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let route = &shown["route"];
    assert_eq!(route["mx"], json!(["mx1.hosting.test"]), "{shown}");
    assert_eq!(
        (&route["queue"], &route["provider"], &route["basis"]),
        (&json!("hosting.test.rollup"), &json!("hosting.test"), &json!("same-mx-set")),
        "{shown}"
    );
    assert_eq!(route["rolled_up"], true, "{shown}");
    assert_eq!(shown["queue"], "hosting.test.rollup/{default}", "explain goes on with the domain's queue: {shown}");

    let (_, rows) = read_acct(&e.path("acct.csv"));
    let delivered: Vec<String> = rows.iter().filter(|r| r["type"] == "d").map(|r| r["rcpt"].clone()).collect();
    assert_eq!(
        sorted(&delivered),
        sorted(&[to_outlook, to_hosting, to_solo].concat()),
        "each recipient keeps its address"
    );
}

#[test]
fn each_recipient_keeps_its_own_domains_tls_requirement_and_suppression_in_a_rollup() {
    let dir = tempfile::tempdir().unwrap();
    // No certificate: the receiver offers no STARTTLS, so every connection is in clear.
    let provider = Receiver::start("127.0.0.43", &json!({"hostname": "provider"}), dir.path(), None);
    let port = provider.addr.port();
    let dns = dns::Dnsmasq::start(&[
        "--mx-host=strict.test,mx1.mx.example-provider.test,10",
        "--mx-host=lax.test,mx1.mx.example-provider.test,10",
        "--mx-host=other.test,mx1.mx.example-provider.test,10",
        "--host-record=mx1.mx.example-provider.test,127.0.0.43",
    ]);
    std::fs::write(dir.path().join("lax-suppressed.txt"), "/^blocked@/\n").unwrap();
    let config = format!(
        "smtp-listener 127.0.0.1:0\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n\
         <mx-rollup-list>\n    mx *.mx.example-provider.test provider.rollup\n</mx-rollup-list>\n\
         <domain *>\n    default-smtp-port {port}\n    retry-after 1h\n</domain>\n\
         <domain strict.test>\n    require-starttls yes\n</domain>\n\
         <domain lax.test>\n    suppress-file lax-suppressed.txt\n</domain>\n\
         <spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b,t\n</acct-file>\n",
        dns.addr
    );
    let e = Ember::start_in(dir, &config);
    // One message for all three domains: one envelope in one rollup queue.
    let sent = e.send_with_script(
        "127.0.0.1",
        "s@sender.test",
        &["r@strict.test", "r@lax.test", "blocked@lax.test", "blocked@other.test"],
        "Subject: rollup\r\n\r\nhello\r\n",
    );
    // lax.test's suppression list refuses its own recipient, not another domain's.
    assert_eq!(sent["rcpt"]["blocked@lax.test"][0], 550, "{sent}");
    for rcpt in ["r@strict.test", "r@lax.test", "blocked@other.test"] {
        assert_eq!(sent["rcpt"][rcpt][0], 250, "{rcpt}: {sent}");
    }
    e.wait_log_count("delivered ", 2);
    e.wait_log("deferred ");
    assert_eq!(received(&provider), ["blocked@other.test", "r@lax.test"], "nothing for strict.test in clear");
    // strict.test waits for an encrypted connection; the rollup (require-starttls no) does not
    // decide for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let rows = loop {
        let (_, rows) = read_acct(&e.path("acct.csv"));
        if rows.iter().any(|r| r["rcpt"] == "r@strict.test") || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let strict: Vec<_> = rows.iter().filter(|r| r["rcpt"] == "r@strict.test").collect();
    assert_eq!(strict.len(), 1, "{rows:?}");
    assert_eq!(strict[0]["type"], "t", "{rows:?}");
    assert!(strict[0]["dsnStatus"].starts_with("4.7.10"), "{rows:?}");
    assert!(strict[0]["dsnDiag"].contains("strict.test has require-starttls"), "{rows:?}");
    let queues = queues(&e);
    assert_eq!(queue_names(&queues), ["provider.rollup/{default}"], "{queues:?}");
    assert_eq!(queues[0]["recipients"], 1, "strict.test's recipient waits in the rollup queue");
}
