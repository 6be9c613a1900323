//! Adaptive delivery against the provider simulator (tests/support/provider.py), over real
//! sockets: a receiver with a hidden rate limit and one with a hidden connection limit. The
//! controller's arithmetic (convergence, anti-flap, bounds, ratio triggers) is tested in virtual
//! time by its unit tests (src/queue/adaptive/tests.rs); the pace it reaches is measured by
//! `bench/adaptive.sh` (docs/benchmarks.md), since timings do not belong in tests.

mod support;

use serde_json::Value;
use support::Ember;
use support::peers::Provider;

/// `source`: the VMTA's `smtp-source-host` address, or none (the system picks the address).
fn config(provider: &Provider, source: Option<&str>, domain: &str) -> String {
    let source = source.map(|ip| format!("    smtp-source-host {ip} a.ember.test\n")).unwrap_or_default();
    format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta v\n</source>\n\
         <virtual-mta v>\n{source}</virtual-mta>\n<spool spool>\n</spool>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 1s\n    retry-recipients-after 1s\n    bounce-after 1h\n{domain}</domain>\n",
        provider.addr.port()
    )
}

fn queue(e: &Ember) -> Value {
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    queues.as_array().and_then(|a| a.iter().find(|q| q["queue"] == "example.com/v").cloned()).unwrap_or_default()
}

/// Attempts the provider answered (accepted, deferred) from `peer`.
fn answered(p: &Provider) -> (usize, usize) {
    (p.events("accepted").len(), p.events("deferred").len())
}

#[test]
fn a_queue_set_at_50_per_second_learns_a_provider_taking_8_and_defers_far_less_than_without() {
    // The same 400 messages, the same 50/s queue and no backoff rule, to two providers that
    // take 8 messages a second per IP: one Ember with adaptive delivery, one without, at once.
    let (adaptive_dir, static_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let adaptive_peer = Provider::start("127.0.0.1", "microsoft", 8, 0, adaptive_dir.path());
    let static_peer = Provider::start("127.0.0.1", "microsoft", 8, 0, static_dir.path());
    let domain = |on: &str| format!("    max-msg-rate 50/s\n    max-smtp-out 4\n    adaptive-delivery {on}\n");
    let adaptive = Ember::start_in(adaptive_dir, &config(&adaptive_peer, Some("127.0.0.2"), &domain("yes")));
    let fixed = Ember::start_in(static_dir, &config(&static_peer, Some("127.0.0.2"), &domain("no")));
    adaptive.inject_numbered(400, "a");
    fixed.inject_numbered(400, "s");
    adaptive.wait_log_count("delivered ", 400);
    fixed.wait_log_count("delivered ", 400);

    let (accepted, deferred) = answered(&adaptive_peer);
    assert_eq!(accepted, 400);
    let share = deferred as f64 / (accepted + deferred) as f64;
    assert!(share <= 0.05, "adaptive: {deferred} of {} attempts deferred", accepted + deferred);
    let (_, static_deferred) = answered(&static_peer);
    assert!(deferred * 2 <= static_deferred, "adaptive deferred {deferred}, static {static_deferred}");

    // What it learned, and why, in the queue's view: a rate within 85% of the provider's 8/s.
    let q = queue(&adaptive);
    let source = &q["adaptive"]["sources"][0];
    assert_eq!(source["source_ip"], "127.0.0.2", "{q}");
    let rate = source["rate_per_second"].as_f64().unwrap();
    assert!((6.8..=8.0).contains(&rate) && source["rate_learned"] == true, "{q}");
    let decisions = q["adaptive"]["decisions"].as_array().unwrap();
    let first = &decisions[0];
    assert_eq!((first["limit"].as_str(), first["rule"].as_str()), (Some("rate"), Some("rate push-back")), "{q}");
    assert!(first["evidence"].as_str().unwrap().contains("RP-001") && first["old"] == "50/s", "{first}");
    // `explain` says it in words, and /metrics exports it.
    let explained = String::from_utf8_lossy(&adaptive.live_cli(&["explain", "example.com"]).stdout).to_string();
    assert!(explained.contains("source 127.0.0.2: rate ") && explained.contains("(learned)"), "{explained}");
    assert!(explained.contains("adaptive") && explained.contains("rate push-back"), "{explained}");
    let metrics = support::http::get(adaptive.mgmt.unwrap(), "/metrics").body;
    assert!(
        metrics.lines().any(|l| l.starts_with("ember_adaptive_rate{") && l.contains("source_ip=\"127.0.0.2\"")),
        "{metrics}"
    );
    assert_eq!(queue(&fixed)["adaptive"], Value::Null);
}

#[test]
fn a_provider_refusing_a_third_connection_sees_few_refusals_and_the_cap_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A busy provider (50 ms a message), so the backlog asks for more connections than it takes.
    let peer = Provider::start_with("127.0.0.1", "yahoo", 0, 2, dir.path(), &["--data-delay", "0.05"]);
    let domain = "    max-smtp-out 10\n    max-msg-per-connection 5\n    adaptive-delivery yes\n";
    // No source address configured: the learned cap is the system-chosen source's ("default").
    let mut e = Ember::start_in(dir, &config(&peer, None, domain));
    e.inject_numbered(200, "c");
    e.wait_log_count("delivered ", 200);
    let (connected, refused) = (peer.events("connect").len(), peer.events("refused").len());
    assert!(connected >= 40, "{connected} connections for 200 messages at 5 a connection");
    assert!(refused * 20 <= connected + refused, "{refused} of {} connections refused", connected + refused);
    assert!(refused >= 1, "the limit was never found: {refused}");
    let q = queue(&e);
    assert_eq!(q["adaptive"]["sources"][0]["source_ip"], "default", "{q}");
    assert_eq!(q["adaptive"]["sources"][0]["connections"], 2, "{q}");
    assert!(q["mode"] != "retry", "a refusal while two connections worked is no queue failure: {q}");
    let reason =
        q["mode_events"].as_array().unwrap().iter().find(|m| m["mode"] == "adaptive").unwrap()["reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("TSS04") && reason.as_str().unwrap().contains("connections 10 -> 2"),
        "{reason}"
    );

    // Learned limits survive a restart: the queue comes back capped at 2, not at 10.
    e.stop();
    e.launch();
    e.inject_numbered(10, "d");
    e.wait_log_count("delivered ", 210);
    let q = queue(&e);
    assert_eq!(q["adaptive"]["sources"][0]["connections"], 2, "{q}");
    assert_eq!(peer.events("refused").len(), refused, "no new refusal after the restart");
}
