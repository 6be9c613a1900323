//! Adaptive delivery (`adaptive-delivery yes`): each queue learns, per local source IP, the
//! message rate and the number of connections its receiver takes, from the receiver's own
//! replies, between `adaptive-min-*` and the configured `max-*` (docs/operations.md, "Adaptive
//! delivery").
//!
//! The controller is AIMD, as TCP's congestion control is:
//! - a rate push-back (a 4xx that says "slow down": `RP-001`, `[TS01]`, `4.7.28`, …) cuts the
//!   rate at once to 90% of what the receiver accepted over the last window, by at least 10% and
//!   at most 75% in one step; push-backs in the window after a cut are its tail, not new news;
//! - a connection push-back ("too many connections", or a refusal while other connections from
//!   the same IP are up) sets the cap to the connections that are up;
//! - ratio triggers (deferrals, bounces over a minimum sample in a window) cut the rate by a
//!   quarter, at most once per `adaptive-interval`;
//! - sustained clean delivery raises the rate by a fixed step (5% of the ceiling) and the cap by
//!   one, at most once per `adaptive-interval`, and only while the learned limit is what holds
//!   the queue back: nothing is probed that is not needed.
//!
//! New connections open one at a time (the next waits until the last one was greeted, or for
//! `OPENING_GRACE`), so a receiver that takes two connections refuses one, not eight.
//!
//! Time is the caller's monotonic reading in seconds (`Clock::elapsed`), so every rule here is
//! unit-tested in virtual time (`tests.rs`). The controller decides; the queue (state.rs)
//! applies its limits, records its decisions as events and saves the learned values.

mod apply;
pub mod per_queue;
pub mod signals;
pub mod store;
pub mod window;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

use super::rate::Gcra;
use window::{ACCEPTED, ATTEMPTS, BOUNCED, COMPLAINTS, DEFERRED, Window};

pub use signals::{Observed, Tuning};

/// A cut takes the rate to this share of what the receiver accepted over the last window.
const BELOW_ACCEPTED: f64 = 0.9;
/// A cut takes at least 10% off the rate, and at most 75%: bounded steps.
const LEAST_CUT: f64 = 0.9;
const MOST_CUT: f64 = 0.25;
/// A ratio trigger takes a quarter off.
const RATIO_CUT: f64 = 0.75;
/// An upward probe adds this share of the ceiling (the configured rate, else the rate before
/// the first cut).
const PROBE_STEP: f64 = 0.05;
/// The estimate needs about this many messages in its window; the window is at least a second
/// (receivers count per second at the finest) and at most `adaptive-interval`.
const WINDOW_MESSAGES: f64 = 10.0;
/// Seconds a connection may take to be greeted before the next one may open anyway.
const OPENING_GRACE: f64 = 5.0;

/// A limit the controller sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Rate,
    Connections,
}

/// One change of a learned limit, with why.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub limit: Limit,
    /// The rule that acted: `rate push-back`, `connection push-back`, `deferral ratio`, …
    pub rule: String,
    /// What it saw: the reply, the counts.
    pub evidence: String,
    pub old: String,
    pub new: String,
    /// Seconds until the limit may rise again (for the event's expiry).
    #[serde(skip)]
    pub hold: f64,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.limit {
            Limit::Rate => "rate",
            Limit::Connections => "connections",
        };
        write!(f, "{}: {what} {} -> {} ({})", self.rule, self.old, self.new, self.evidence)
    }
}

/// What survives a restart: the learned values, not the evidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// Messages a second; `None`: the configured rate.
    pub rate: Option<f64>,
    pub connections: usize,
    /// The rate before the first cut (the probing step's reference).
    pub ceiling: Option<f64>,
}

/// A rate as an operator reads it: per second, per minute or per hour, whichever shows a
/// number at least 1.
pub fn rate_text(per_second: Option<f64>) -> String {
    match per_second {
        None => "unlimited".into(),
        Some(r) if r >= 1.0 => format!("{}/s", round1(r)),
        Some(r) if r * 60.0 >= 1.0 => format!("{}/m", round1(r * 60.0)),
        Some(r) => format!("{}/h", round1(r * 3600.0)),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One source IP's learned limits for one queue.
#[derive(Clone, Debug)]
pub struct Controller {
    /// The learned rate, messages a second; `None` while the configured rate holds.
    rate: Option<f64>,
    limiter: Option<Gcra>,
    ceiling: Option<f64>,
    /// The learned connection cap, and the connections opening and up.
    conns: usize,
    opening: usize,
    up: usize,
    /// Accepted messages and attempts, for the estimate and the clean spells.
    recent: Window,
    /// One window per ratio trigger, in `Tuning::triggers` order.
    ratios: Vec<Window>,
    /// Rate push-backs before this are the tail of the last cut.
    settle_until: f64,
    conn_settle_until: f64,
    last_rate_change: f64,
    last_conn_change: f64,
    last_rate_pushback: f64,
    last_conn_pushback: f64,
    last_ratio_cut: f64,
    /// When the learned rate last held a message back, and the learned cap a connection.
    rate_bound_at: f64,
    conn_bound_at: f64,
    /// When the last connection began to open.
    last_opened: f64,
}

impl Controller {
    pub fn new(t: &Tuning, learned: Option<Learned>, now: f64) -> Controller {
        let learned = learned.unwrap_or(Learned { rate: None, connections: t.max_conns, ceiling: None });
        let rate = learned.rate.map(|r| t.bound_rate(r));
        Controller {
            rate,
            limiter: rate.map(|r| Gcra::per_second(r, 1)),
            ceiling: learned.ceiling,
            conns: learned.connections.clamp(t.min_conns, t.max_conns),
            opening: 0,
            up: 0,
            recent: Window::new(0.1, t.interval.max(1.0)),
            ratios: t.triggers.iter().map(|r| Window::new(r.window / 60.0, r.window)).collect(),
            settle_until: f64::MIN,
            conn_settle_until: f64::MIN,
            // A restart counts as a change: the next probe waits a whole interval.
            last_rate_change: now,
            last_conn_change: now,
            last_rate_pushback: f64::MIN,
            last_conn_pushback: f64::MIN,
            last_ratio_cut: f64::MIN,
            rate_bound_at: f64::MIN,
            conn_bound_at: f64::MIN,
            last_opened: f64::MIN,
        }
    }

    pub fn learned(&self) -> Learned {
        Learned { rate: self.rate, connections: self.conns, ceiling: self.ceiling }
    }

    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    pub fn connections(&self) -> usize {
        self.conns
    }

    /// (opening, up).
    pub fn counts(&self) -> (usize, usize) {
        (self.opening, self.up)
    }

    /// Carries the connection counts over to a controller rebuilt by a reload.
    pub fn set_counts(&mut self, opening: usize, up: usize) {
        (self.opening, self.up) = (opening, up);
    }

    /// Connections opening and up from this source.
    pub fn open(&self) -> usize {
        self.opening + self.up
    }

    /// The limiter at the learned rate, with its name as `explain` shows it.
    pub fn limiter(&mut self) -> Option<(&mut Gcra, String)> {
        let name = format!("adaptive rate {} (learned)", rate_text(self.rate));
        self.limiter.as_mut().map(|g| (g, name))
    }

    /// The learned rate made a message wait.
    pub fn rate_bound(&mut self, now: f64) {
        self.rate_bound_at = now;
    }

    /// Whether one more connection may open now: under the learned cap, and none opening.
    pub fn may_open(&mut self, now: f64, backlog: bool) -> bool {
        // An opening that takes longer than the grace (a host that does not answer, tried until
        // connect-timeout) no longer holds the others back.
        let waiting_for_greeting = self.opening > 0 && now - self.last_opened < OPENING_GRACE;
        let allowed = !waiting_for_greeting && self.open() < self.conns;
        if !allowed && backlog && !waiting_for_greeting {
            self.conn_bound_at = now;
        }
        allowed
    }

    /// Whether a connection that is up is one too many (the cap was cut below the open ones).
    pub fn over_cap(&self) -> bool {
        self.up > self.conns
    }

    pub fn opened(&mut self, now: f64) {
        self.opening += 1;
        self.last_opened = now;
    }

    /// The receiver greeted a connection that was opening.
    pub fn greeted(&mut self) {
        self.opening = self.opening.saturating_sub(1);
        self.up += 1;
    }

    pub fn closed(&mut self, greeted: bool) {
        if greeted {
            self.up = self.up.saturating_sub(1);
        } else {
            self.opening = self.opening.saturating_sub(1);
        }
    }

    /// Takes one reply (or a refused connection, a complaint) into account; returns the
    /// decision it led to, if any.
    pub fn observe(&mut self, t: &Tuning, now: f64, what: &Observed) -> Option<Decision> {
        let attempt = !matches!(what, Observed::Complaint | Observed::ConnPushBack { .. });
        if attempt {
            self.recent.add(now, ATTEMPTS, 1);
        }
        let slot = match what {
            Observed::Delivered => Some(ACCEPTED),
            Observed::Deferred | Observed::RatePushBack { .. } => Some(DEFERRED),
            Observed::Bounced => Some(BOUNCED),
            Observed::Complaint => Some(COMPLAINTS),
            Observed::ConnPushBack { .. } => None,
        };
        if slot == Some(ACCEPTED) {
            self.recent.add(now, ACCEPTED, 1);
        }
        for (trigger, w) in t.triggers.iter().zip(&mut self.ratios) {
            // Complaints count against deliveries; deferrals and bounces against attempts.
            let counted = if trigger.slot == COMPLAINTS { slot == Some(ACCEPTED) } else { attempt };
            if counted {
                w.add(now, ATTEMPTS, 1);
            }
            if let Some(s) = slot.filter(|s| *s == trigger.slot) {
                w.add(now, s, 1);
            }
        }
        let decision = match what {
            Observed::Delivered => self.probe(t, now),
            Observed::RatePushBack { reply } => {
                self.last_rate_pushback = now;
                self.cut_rate(t, now, reply)
            }
            Observed::ConnPushBack { reply } => {
                self.last_conn_pushback = now;
                self.cut_connections(t, now, reply)
            }
            _ => None,
        };
        decision.or_else(|| self.check_ratios(t, now))
    }

    /// The rate the queue sends at now: the learned one, else the configured one, else what it
    /// sent over the last seconds.
    fn current_rate(&self, t: &Tuning, now: f64) -> f64 {
        if let Some(r) = self.rate.or(t.max_rate) {
            return r;
        }
        for secs in [1.0, 5.0, t.interval.max(1.0)] {
            let n = self.recent.recent(now, ATTEMPTS, secs) as f64;
            if n >= WINDOW_MESSAGES || secs >= t.interval {
                return (n / secs).max(t.min_rate);
            }
        }
        t.min_rate
    }

    fn window_for(t: &Tuning, rate: f64) -> f64 {
        (WINDOW_MESSAGES / rate.max(f64::MIN_POSITIVE)).clamp(1.0, t.interval.max(1.0))
    }

    fn set_rate(&mut self, new: f64, now: f64) {
        self.rate = Some(new);
        match &mut self.limiter {
            Some(g) => g.set_rate(new),
            None => self.limiter = Some(Gcra::per_second(new, 1)),
        }
        self.last_rate_change = now;
    }

    fn cut_rate(&mut self, t: &Tuning, now: f64, reply: &str) -> Option<Decision> {
        if now < self.settle_until {
            return None;
        }
        let current = self.current_rate(t, now);
        let window = Self::window_for(t, current);
        let accepted = self.recent.recent(now, ACCEPTED, window);
        let estimate = accepted as f64 / window * BELOW_ACCEPTED;
        let new = t.bound_rate(estimate.min(current * LEAST_CUT).max(current * MOST_CUT));
        if new >= current {
            return None;
        }
        self.ceiling.get_or_insert(current);
        self.set_rate(new, now);
        self.settle_until = now + Self::window_for(t, new);
        // The deferrals this cut answers are spent: the deferral ratio starts a new sample, or
        // it would cut again for the same push-backs.
        for (trigger, w) in t.triggers.iter().zip(&mut self.ratios) {
            if trigger.slot == DEFERRED {
                w.clear();
            }
        }
        Some(Decision {
            limit: Limit::Rate,
            rule: "rate push-back".into(),
            evidence: format!("\"{reply}\"; {accepted} accepted in the last {}s", round1(window)),
            old: rate_text(Some(current)),
            new: rate_text(Some(new)),
            hold: t.interval,
        })
    }

    fn cut_connections(&mut self, t: &Tuning, now: f64, reply: &str) -> Option<Decision> {
        if now < self.conn_settle_until {
            return None;
        }
        let new = self.up.min(self.conns.saturating_sub(1)).max(t.min_conns);
        if new >= self.conns {
            return None;
        }
        let old = self.conns;
        self.conns = new;
        self.last_conn_change = now;
        self.conn_settle_until = now + 1.0;
        Some(Decision {
            limit: Limit::Connections,
            rule: "connection push-back".into(),
            evidence: format!("\"{reply}\" with {} connection(s) up", self.up),
            old: old.to_string(),
            new: new.to_string(),
            hold: t.interval,
        })
    }

    /// Additive increase: after a clean interval in which the learned limit held the queue back.
    fn probe(&mut self, t: &Tuning, now: f64) -> Option<Decision> {
        let clean =
            |last_change: f64, last_pushback: f64| now - last_change >= t.interval && now - last_pushback >= t.interval;
        if let Some(rate) = self.rate
            && clean(self.last_rate_change, self.last_rate_pushback.max(self.last_ratio_cut))
            && now - self.rate_bound_at < t.interval
        {
            let reference = t.max_rate.or(self.ceiling).unwrap_or(rate);
            let raised = rate + (reference * PROBE_STEP).max(t.min_rate);
            let back_to_configured = t.max_rate.is_some_and(|max| raised >= max);
            let evidence = format!(
                "{} delivered, no push-back in the last {}s",
                self.recent.recent(now, ACCEPTED, t.interval),
                round1(t.interval)
            );
            if back_to_configured {
                self.rate = None;
                self.limiter = None;
                self.ceiling = None;
                self.last_rate_change = now;
            } else {
                self.set_rate(raised, now);
            }
            return Some(Decision {
                limit: Limit::Rate,
                rule: if back_to_configured { "probe (back to the configured rate)" } else { "probe" }.into(),
                evidence,
                old: rate_text(Some(rate)),
                new: rate_text(self.rate.or(t.max_rate)),
                hold: t.interval,
            });
        }
        if self.conns < t.max_conns
            && clean(self.last_conn_change, self.last_conn_pushback)
            && now - self.conn_bound_at < t.interval
        {
            let old = self.conns;
            self.conns += 1;
            self.last_conn_change = now;
            return Some(Decision {
                limit: Limit::Connections,
                rule: "probe".into(),
                evidence: format!("no connection refused in the last {}s", round1(t.interval)),
                old: old.to_string(),
                new: self.conns.to_string(),
                hold: t.interval,
            });
        }
        None
    }

    fn check_ratios(&mut self, t: &Tuning, now: f64) -> Option<Decision> {
        if now - self.last_ratio_cut < t.interval {
            return None;
        }
        for (trigger, w) in t.triggers.iter().zip(&mut self.ratios) {
            let base = w.total(now, ATTEMPTS);
            let seen = w.total(now, trigger.slot);
            if base < trigger.min_sample || (seen as f64) * 100.0 <= trigger.percent * base as f64 {
                continue;
            }
            w.clear();
            let current = self.current_rate(t, now);
            let new = t.bound_rate(current * RATIO_CUT);
            self.last_ratio_cut = now;
            if new >= current {
                return None;
            }
            self.ceiling.get_or_insert(current);
            self.set_rate(new, now);
            return Some(Decision {
                limit: Limit::Rate,
                rule: format!("{} ratio {trigger}", trigger.name()),
                evidence: format!(
                    "{seen} of {base} {} ({}%) in the last {}",
                    trigger.base_name(),
                    round1(seen as f64 * 100.0 / base as f64),
                    crate::config::values::Interval(trigger.window as u64)
                ),
                old: rate_text(Some(current)),
                new: rate_text(Some(new)),
                hold: t.interval,
            });
        }
        None
    }
}
