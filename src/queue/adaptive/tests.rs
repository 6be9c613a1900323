//! The controller in virtual time: a simulated receiver that takes a fixed number of messages
//! per second and defers the rest, driven step by step, with no clock but the loop's.

use std::collections::VecDeque;

use super::window::{BOUNCED, COMPLAINTS, DEFERRED};
use super::*;

/// A receiver that accepts at most `per_second` messages in any one-second window (the way
/// providers count) and answers 421 RP-001 above it.
struct Receiver {
    per_second: usize,
    accepted: VecDeque<f64>,
}

impl Receiver {
    fn new(per_second: usize) -> Receiver {
        Receiver { per_second, accepted: VecDeque::new() }
    }

    fn offer(&mut self, now: f64) -> Observed {
        while self.accepted.front().is_some_and(|t| now - t >= 1.0) {
            self.accepted.pop_front();
        }
        if self.accepted.len() < self.per_second {
            self.accepted.push_back(now);
            Observed::Delivered
        } else {
            Observed::RatePushBack { reply: "421 4.7.0 [RP-001] temporarily rate limited".into() }
        }
    }
}

/// Sends as fast as the controller's limiter (and `configured`, the queue's own limiter)
/// allow for `secs` seconds against `receiver`; returns (delivered, deferred, decisions).
fn run(c: &mut Controller, t: &Tuning, receiver: &mut Receiver, from: f64, secs: f64) -> (u64, u64, Vec<Decision>) {
    let mut configured = t.max_rate.map(|r| Gcra::per_second(r, 1));
    let (mut delivered, mut deferred, mut decisions) = (0, 0, Vec::new());
    let mut now = from;
    while now < from + secs {
        let own = configured.as_mut().is_none_or(|g| g.check(now).is_ok());
        let learned = match c.limiter() {
            Some((g, _)) => g.check(now).is_ok(),
            None => true,
        };
        if own && learned {
            if let Some(g) = configured.as_mut() {
                let _ = g.take(now, 1);
            }
            if let Some((g, _)) = c.limiter() {
                let _ = g.take(now, 1);
            }
            let answer = receiver.offer(now);
            match answer {
                Observed::Delivered => delivered += 1,
                _ => deferred += 1,
            }
            decisions.extend(c.observe(t, now, &answer));
        } else if !learned {
            c.rate_bound(now);
        }
        now += 0.001;
    }
    (delivered, deferred, decisions)
}

#[test]
fn a_50_per_second_queue_converges_on_a_receiver_taking_8() {
    // With the default deferral ratio on: the push-backs a cut answered do not cut again.
    let t = Tuning::for_test(Some(50.0), 10, 60.0).with_trigger(DEFERRED, "5%/200/10m");
    let mut c = Controller::new(&t, None, 0.0);
    let mut receiver = Receiver::new(8);
    let (delivered, deferred, decisions) = run(&mut c, &t, &mut receiver, 0.0, 50.0);
    let pace = delivered as f64 / 50.0;
    assert!(pace >= 0.85 * 8.0, "{pace}/s of 8/s; {decisions:?}");
    let share = deferred as f64 / (delivered + deferred) as f64;
    assert!(share <= 0.05, "{deferred} of {} deferred; {decisions:?}", delivered + deferred);
    let learned = c.rate().unwrap();
    assert!((6.8..8.0).contains(&learned), "{learned}");
    assert!(decisions.iter().all(|d| d.limit == Limit::Rate && d.rule == "rate push-back"), "{decisions:?}");
    // Every cut is explained: the reply and what was accepted.
    assert!(decisions[0].evidence.contains("RP-001") && decisions[0].old == "50/s", "{:?}", decisions[0]);
}

#[test]
fn without_the_controller_the_same_queue_is_deferred_most_of_the_time() {
    // The comparison the benchmark makes: a static 50/s against the same receiver.
    let mut g = Gcra::per_second(50.0, 1);
    let mut receiver = Receiver::new(8);
    let (mut sent, mut deferred) = (0, 0);
    let mut now = 0.0;
    while now < 50.0 {
        if g.take(now, 1).is_ok() {
            sent += 1;
            deferred += u64::from(receiver.offer(now) != Observed::Delivered);
        }
        now += 0.001;
    }
    assert!(deferred * 100 / sent > 80, "{deferred} of {sent}");
}

#[test]
fn anti_flap_one_upward_step_per_interval_and_none_after_a_push_back() {
    let t = Tuning::for_test(Some(50.0), 10, 60.0);
    let mut c = Controller::new(&t, None, 0.0);
    let mut receiver = Receiver::new(8);
    let (_, _, early) = run(&mut c, &t, &mut receiver, 0.0, 59.0);
    assert!(early.iter().all(|d| d.rule != "probe"), "no probe within the interval of a cut: {early:?}");
    // The receiver's limit rises to 20/s: the controller climbs, one step per interval.
    receiver.per_second = 20;
    let (_, _, later) = run(&mut c, &t, &mut receiver, 59.0, 300.0);
    let probes: Vec<&Decision> = later.iter().filter(|d| d.rule == "probe").collect();
    assert!(probes.len() >= 3, "{later:?}");
    let steps: Vec<f64> = probes
        .windows(2)
        .map(|w| {
            w[1].old.trim_end_matches("/s").parse::<f64>().unwrap()
                - w[0].old.trim_end_matches("/s").parse::<f64>().unwrap()
        })
        .collect();
    // Additive: 5% of the configured 50/s each time.
    assert!(steps.iter().all(|s| (s - 2.5).abs() < 0.11), "{steps:?}");
    assert!(c.rate().unwrap() < 20.0);
}

#[test]
fn bounds_hold_cuts_stop_at_the_floor_and_probes_end_at_the_configured_rate() {
    let mut t = Tuning::for_test(Some(10.0), 4, 10.0);
    t.min_rate = 2.0;
    let mut c = Controller::new(&t, None, 0.0);
    // A receiver that takes nothing: cuts go down to the floor, never below, each step at most
    // to a quarter.
    let mut receiver = Receiver::new(0);
    let (_, _, cuts) = run(&mut c, &t, &mut receiver, 0.0, 30.0);
    assert_eq!(c.rate(), Some(2.0));
    assert_eq!(cuts.first().map(|d| d.new.as_str()), Some("2.5/s"), "10/s cut by at most 75%: {cuts:?}");
    // The receiver takes everything: probes climb back and hand over to the configured rate.
    receiver.per_second = 1000;
    let (_, _, probes) = run(&mut c, &t, &mut receiver, 30.0, 400.0);
    assert_eq!(c.rate(), None, "{probes:?}");
    assert_eq!(probes.last().map(|d| d.new.as_str()), Some("10/s"));
    assert!(probes.iter().all(|d| d.rule.starts_with("probe")));
}

#[test]
fn connection_push_back_caps_at_the_connections_up_and_probes_by_one() {
    let t = Tuning::for_test(None, 10, 60.0);
    let mut c = Controller::new(&t, None, 0.0);
    // One opening at a time, unless the greeting is long in coming.
    assert!(c.may_open(0.0, true));
    c.opened(0.0);
    assert!(!c.may_open(0.0, true), "the next waits for the greeting");
    assert!(c.may_open(6.0, true), "a host that does not answer holds the others back 5 s at most");
    c.greeted();
    c.opened(0.0);
    c.greeted();
    c.opened(0.0);
    // The third is refused.
    let refused = Observed::ConnPushBack { reply: "421 4.7.0 Too many concurrent SMTP connections".into() };
    c.closed(false);
    let d = c.observe(&t, 1.0, &refused).unwrap();
    assert_eq!((d.limit, d.old.as_str(), d.new.as_str()), (Limit::Connections, "10", "2"));
    assert!(!c.may_open(2.0, true), "two are up");
    // A clean interval with mail waiting: one more is tried, not ten.
    for s in 2..70 {
        c.observe(&t, f64::from(s), &Observed::Delivered);
    }
    assert_eq!(c.connections(), 3);
    // Never below adaptive-min-smtp-out.
    c.closed(true);
    c.closed(true);
    c.observe(&t, 80.0, &refused);
    assert_eq!(c.connections(), 1);
}

#[test]
fn ratio_triggers_need_their_minimum_sample() {
    let t =
        Tuning::for_test(Some(10.0), 4, 60.0).with_trigger(DEFERRED, "5%/200/10m").with_trigger(BOUNCED, "3%/200/10m");
    let mut c = Controller::new(&t, None, 0.0);
    let mut now = 0.0;
    let mut send = |c: &mut Controller, what: Observed, n: usize| {
        let mut decisions = Vec::new();
        for _ in 0..n {
            now += 0.5;
            decisions.extend(c.observe(&t, now, &what));
        }
        decisions
    };
    // 20% deferred, but only 100 attempts: under the minimum sample, nothing happens.
    assert!(send(&mut c, Observed::Delivered, 80).is_empty());
    assert!(send(&mut c, Observed::Deferred, 20).is_empty());
    assert_eq!(c.rate(), None);
    // Past 200 attempts at that share, one cut by a quarter, explained.
    send(&mut c, Observed::Delivered, 80);
    let d = send(&mut c, Observed::Deferred, 20);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].rule.as_str(), d[0].new.as_str()), ("deferral ratio 5%/200/10m", "7.5/s"));
    assert!(d[0].evidence.contains("of 2") && d[0].evidence.contains("deferred"), "{}", d[0].evidence);
    // The sample starts over, so the same deferrals do not cut again.
    assert!(send(&mut c, Observed::Deferred, 5).is_empty());
    // Bounces: 20 of the 465 attempts in the window (4.3%), after the interval.
    let mut d = send(&mut c, Observed::Delivered, 240);
    d.extend(send(&mut c, Observed::Bounced, 20));
    assert!(d.iter().any(|d| d.rule == "bounce ratio 3%/200/10m"), "{d:?}");
}

#[test]
fn learned_limits_survive_a_restart() {
    let t = Tuning::for_test(Some(50.0), 10, 60.0);
    let saved = Learned { rate: Some(7.5), connections: 2, ceiling: Some(50.0) };
    let mut c = Controller::new(&t, Some(saved), 1000.0);
    assert_eq!(c.learned(), saved);
    assert!(c.limiter().is_some_and(|(_, name)| name == "adaptive rate 7.5/s (learned)"));
    // A saved value outside new bounds is brought within them.
    let t = Tuning::for_test(Some(5.0), 1, 60.0);
    let c = Controller::new(&t, Some(saved), 0.0);
    assert_eq!((c.rate(), c.connections()), (Some(5.0), 1));
}

#[test]
fn complaints_count_against_deliveries_with_their_own_minimum_sample() {
    let t = Tuning::for_test(Some(10.0), 4, 60.0).with_trigger(COMPLAINTS, "1%/100/1d");
    let mut c = Controller::new(&t, None, 0.0);
    let mut now = 0.0;
    for _ in 0..50 {
        now += 0.5;
        assert_eq!(c.observe(&t, now, &Observed::Delivered), None);
    }
    // 2 complaints of 50 deliveries is 4%, but under the sample of 100: nothing.
    assert_eq!(c.observe(&t, now, &Observed::Complaint), None);
    assert_eq!(c.observe(&t, now, &Observed::Complaint), None);
    // The 100th delivery completes the sample: 2 of 100 is over 1%.
    let mut decisions = Vec::new();
    for _ in 0..60 {
        now += 0.5;
        decisions.extend(c.observe(&t, now, &Observed::Delivered));
    }
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let d = &decisions[0];
    assert_eq!((d.rule.as_str(), d.new.as_str()), ("complaint ratio 1%/100/1d", "7.5/s"));
    assert!(d.evidence.starts_with("2 of 100 deliveries complained about"), "{}", d.evidence);
}
