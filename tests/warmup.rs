//! The warm-up schedule against a scripted receiver: a fresh IP sends exactly its step's cap
//! (the rest overflows to a warm VMTA, or waits), the ramp advances after a clean step and
//! pauses after a step the receiver deferred too much, and the state survives a restart.
//! Steps are written with short periods (`3/6s`), which is what makes the test quick: the
//! arithmetic is the same as for `/day`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::Ember;
use crate::support::peers::Receiver;
use serde_json::{Value, json};

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Waits until the wall clock passes `t` (Unix seconds): the schedule's windows are wall-clock
/// windows, so their boundaries are the events to wait for.
fn wait_until(t: f64) {
    while now() < t {
        std::thread::sleep(Duration::from_millis(20).min(Duration::from_secs_f64((t - now()).max(0.0))));
    }
}

fn config(rx: &Receiver, fresh_domain: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    default-virtual-mta fresh\n</source>\n<spool spool>\n</spool>\n\
         <virtual-mta warm>\n    smtp-source-host 127.0.0.2 warm.ember.test\n</virtual-mta>\n\
         <virtual-mta fresh>\n    smtp-source-host 127.0.0.3 fresh.ember.test\n    <domain *>\n{fresh_domain}    </domain>\n</virtual-mta>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 1h\n    retry-recipients-after 1h\n</domain>\n",
        rx.addr.port()
    )
}

/// Messages the receiver got from `ip`.
fn from(rx: &Receiver, ip: &str) -> usize {
    rx.events("message").iter().filter(|m| m["peer"] == ip).count()
}

fn queue(e: &Ember, name: &str) -> Value {
    let out = e.live_cli(&["explain", name, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_ramp_caps_each_step_advances_when_clean_and_pauses_on_deferrals() {
    let dir = tempfile::tempdir().unwrap();
    // b0..b2 are deferred (and retried only after the test): half of step two's attempts.
    let script = json!({"rcpt_rules": [{"regex": "^b[0-2]@", "replies": "451 4.7.0 slow down, new sender"}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let fresh = "        warmup-schedule 3/6s,6/6s,12/6s\n        warmup-max-deferral-rate 20\n        \
                 warmup-overflow-virtual-mta warm\n";
    let e = Ember::start_in(dir, &config(&rx, fresh));
    // Windows are aligned on multiples of their period: start at the beginning of one.
    wait_until((now() / 6.0).ceil() * 6.0 + 0.1);

    // Step 1 (cap 3): 5 messages, 3 from the fresh IP, 2 overflow to the warm one.
    e.inject_numbered(5, "a");
    e.wait_log_count("delivered ", 5);
    assert_eq!((from(&rx, "127.0.0.3"), from(&rx, "127.0.0.2")), (3, 2));
    let q = queue(&e, "example.com/fresh");
    assert_eq!((q["warmup"]["step"].as_u64(), q["warmup"]["used"].as_u64()), (Some(1), Some(3)), "{q}");
    assert!(q["warmup"]["held"].is_null(), "{q}");

    // Step 2 (cap 6, after a clean step): 8 messages, 6 fresh (3 of them deferred), 2 warm.
    wait_until(q["warmup"]["window_ends"].as_f64().unwrap() + 0.1);
    e.inject_numbered(8, "b");
    e.wait_log_count("delivered ", 5 + 3 + 2);
    e.wait_log_count("deferred ", 3);
    assert_eq!((from(&rx, "127.0.0.3"), from(&rx, "127.0.0.2")), (3 + 3, 2 + 2));
    let q = queue(&e, "example.com/fresh");
    assert_eq!((q["warmup"]["step"].as_u64(), q["warmup"]["used"].as_u64()), (Some(2), Some(6)), "{q}");
    assert_eq!(q["warmup"]["deferred"].as_u64(), Some(3), "{q}");

    // The next window: 50% deferred is above the 20% ceiling, so the ramp stays at step 2 (cap 6,
    // not 12) and says why; the mail still flows, the excess through the warm VMTA.
    wait_until(q["warmup"]["window_ends"].as_f64().unwrap() + 0.1);
    e.inject_numbered(8, "c");
    e.wait_log_count("delivered ", 10 + 8);
    assert_eq!((from(&rx, "127.0.0.3"), from(&rx, "127.0.0.2")), (6 + 6, 4 + 2));
    let q = queue(&e, "example.com/fresh");
    assert_eq!(q["warmup"]["step"].as_u64(), Some(2), "{q}");
    let held = q["warmup"]["held"].as_str().unwrap_or_default();
    assert!(held.contains("deferred 50% (3 of 6 attempts), above warmup-max-deferral-rate 20%"), "{q}");
    let text = String::from_utf8_lossy(&e.live_cli(&["explain", "example.com/fresh"]).stdout).to_string();
    assert!(text.contains("warm-up: step 2 of 3 (6/6s), 6 used"), "{text}");
    assert!(text.contains("warm-up ramp paused: the last step deferred 50%"), "{text}");
}

#[test]
fn without_an_overflow_the_excess_waits_and_the_count_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let mut e = Ember::start_in(dir, &config(&rx, "        warmup-schedule 2/day,4/day\n"));
    e.inject_numbered(4, "w");
    e.wait_log_count("delivered ", 2);
    let waiting = |e: &Ember| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let q = queue(e, "example.com/fresh");
            if q["waiting_reason"].as_str().is_some_and(|w| w.starts_with("warm-up cap")) {
                return q;
            }
            assert!(std::time::Instant::now() < deadline, "the queue never reported its warm-up cap: {q}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let q = waiting(&e);
    assert_eq!((q["recipients"].as_u64(), q["warmup"]["used"].as_u64()), (Some(2), Some(2)), "{q}");
    assert!(q["waiting_reason"].as_str().unwrap().contains("step 1 of 2 allows 2/d, all used"), "{q}");

    // A restart the same day: the two spooled messages come back and still wait.
    e.stop();
    e.launch();
    let q = waiting(&e);
    assert_eq!((q["recipients"].as_u64(), q["warmup"]["used"].as_u64()), (Some(2), Some(2)), "{q}");
    assert_eq!(from(&rx, "127.0.0.3"), 2, "no more than the day's cap from the fresh IP");
    assert_eq!(e.spooled().len(), 2, "the excess is kept, not dropped");
}
