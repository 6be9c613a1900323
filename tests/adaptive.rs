//! Adaptive delivery against the provider simulator (tests/support/provider.py), over real
//! sockets: a receiver with a hidden rate limit and one with a hidden connection limit. The
//! controller's arithmetic (convergence, anti-flap, bounds, ratio triggers) is tested in virtual
//! time by its unit tests (src/queue/adaptive/tests.rs); the pace it reaches is measured by
//! `bench/adaptive.sh` (docs/benchmarks.md), since timings do not belong in tests.

use crate::support::Ember;
use crate::support::peers::Provider;
use serde_json::Value;

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
    let metrics = crate::support::http::get(adaptive.mgmt.unwrap(), "/metrics").body;
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

/// An ARF report about `rcpt`, sent from `source` (the report's Source-IP).
fn arf(rcpt: &str, source: &str) -> String {
    format!(
        "From: <fbl@isp.example>\r\nTo: <fbl@fbl.ember.test>\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"p\"\r\n\r\n--p\r\n\
         Content-Type: text/plain\r\n\r\nabuse report\r\n--p\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: test/1\r\nVersion: 1\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\
         Source-IP: {source}\r\n\r\n--p\r\nContent-Type: message/rfc822\r\n\r\nTo: <{rcpt}>\r\nSubject: x\r\n\r\nx\r\n--p--\r\n"
    )
}

#[test]
fn feedback_loop_complaints_over_the_ratio_cut_the_queues_rate() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Provider::start("127.0.0.1", "gmail", 0, 0, dir.path());
    let domain = "    max-msg-rate 100/s\n    adaptive-delivery yes\n    adaptive-complaint-ratio 5%/10/1h\n";
    let fbl = "<feedback-loop-processor>\n    <address-list>\n        address fbl@fbl.ember.test\n    </address-list>\n</feedback-loop-processor>\n";
    let e = Ember::start_in(dir, &format!("{fbl}{}", config(&peer, Some("127.0.0.2"), domain)));
    e.inject_numbered(20, "f");
    e.wait_log_count("delivered ", 20);
    // One complaint in 20 deliveries is 5%: not over it.
    e.send_with_script("127.0.0.3", "fbl@isp.example", &["fbl@fbl.ember.test"], &arf("f1@example.com", "127.0.0.2"));
    e.wait_log_count("feedback-loop: abuse complaint", 1);
    assert_eq!(queue(&e)["adaptive"]["decisions"], serde_json::json!([]), "{}", queue(&e));
    // A second is 10%: the queue's rate for 127.0.0.2 is cut by a quarter, and says why.
    e.send_with_script("127.0.0.3", "fbl@isp.example", &["fbl@fbl.ember.test"], &arf("f2@example.com", "127.0.0.2"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let decision = loop {
        let q = queue(&e);
        if let Some(d) = q["adaptive"]["decisions"].as_array().and_then(|d| d.first()).cloned() {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no decision: {q}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(decision["rule"], "complaint ratio 5%/10/1h", "{decision}");
    assert_eq!((decision["old"].as_str(), decision["new"].as_str()), (Some("100/s"), Some("75/s")), "{decision}");
    assert_eq!(decision["source_ip"], "127.0.0.2", "{decision}");
}
