//! What a reply means to adaptive delivery, and the bounds it works within: the built-in list of
//! push-back markers (data, extended by `adaptive-rate-reply` / `adaptive-connection-reply` and
//! by `<smtp-pattern-list>` rules), and the tuning read once per queue from its settings.

use std::fmt;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use super::window::{BOUNCED, COMPLAINTS, DEFERRED};
use crate::config::Dir;
use crate::config::resolve::QueueSettings;
use crate::config::rules::PushBack;
use crate::config::value::Value;
use crate::config::values::Ratio;
use crate::smtp::Reply;

/// Replies that mean "too many connections" (matched first: they also say "too many").
const CONNECTION_MARKERS: &[&str] = &[
    r"too many (\w+ ){0,2}(connections|sessions)",
    r"connection (limit|rate limit)",
    r"too many connections from",
    r"concurrent (smtp )?connections",
    r"\bmaximum (number of )?connections\b",
];

/// Replies that mean "slow down": Microsoft's RP-00x, Yahoo's [TS0x], Gmail's 4.7.28, and the
/// generic wordings of rate limits.
const RATE_MARKERS: &[&str] = &[
    r"\bRP-00[1-3]\b",
    r"\bTS0[1-4]\b",
    r"\b4\.7\.28\b",
    r"\b4\.7\.0\b.*\brate",
    r"rate.?limit",
    r"too many (messages|mails|e-?mails|deliveries|requests|attempts)",
    r"try again later",
    r"throttl",
    r"temporarily deferred",
    r"exceeded .*(rate|quota|limit)",
];

static CONNECTIONS: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(CONNECTION_MARKERS.iter().map(|m| format!("(?i){m}"))).expect("valid markers"));
static RATE: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(RATE_MARKERS.iter().map(|m| format!("(?i){m}"))).expect("valid markers"));

/// What the controller is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    Delivered,
    /// A 4xx that is no push-back.
    Deferred,
    RatePushBack {
        reply: String,
    },
    /// A connection refused (or a "too many connections" reply).
    ConnPushBack {
        reply: String,
    },
    Bounced,
    Complaint,
}

/// A ratio trigger as the controller counts it.
#[derive(Clone, Debug, PartialEq)]
pub struct RatioTrigger {
    /// The window slot it counts (`DEFERRED`, `BOUNCED`, `COMPLAINTS`).
    pub slot: usize,
    pub percent: f64,
    pub min_sample: u64,
    /// Seconds.
    pub window: f64,
    pub spec: Ratio,
}

impl RatioTrigger {
    fn new(slot: usize, spec: Ratio) -> RatioTrigger {
        RatioTrigger {
            slot,
            percent: spec.percent(),
            min_sample: spec.min_sample,
            window: spec.window.seconds().max(1) as f64,
            spec,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.slot {
            DEFERRED => "deferral",
            BOUNCED => "bounce",
            _ => "complaint",
        }
    }

    /// What the percentage is of.
    pub fn base_name(&self) -> &'static str {
        match self.slot {
            DEFERRED => "attempts deferred",
            BOUNCED => "attempts bounced",
            _ => "deliveries complained about",
        }
    }
}

impl fmt::Display for RatioTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.spec)
    }
}

/// The bounds and triggers of one queue's controller.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Messages a second.
    pub min_rate: f64,
    /// `max-msg-rate`, messages a second; `None` is unlimited.
    pub max_rate: Option<f64>,
    pub min_conns: usize,
    pub max_conns: usize,
    /// `adaptive-interval`, seconds.
    pub interval: f64,
    pub triggers: Vec<RatioTrigger>,
    rate_replies: Vec<Regex>,
    connection_replies: Vec<Regex>,
}

impl Tuning {
    /// The queue's tuning, or `None` when `adaptive-delivery` is off.
    pub fn from_settings(settings: &QueueSettings) -> Option<Tuning> {
        let p = &settings.policy;
        if !p.adaptive_delivery {
            return None;
        }
        let regexes = |dir| {
            settings
                .settings
                .all(dir)
                .iter()
                .filter_map(|e| match &e.value {
                    Value::Regex(r) => Some((*r.regex).clone()),
                    _ => None,
                })
                .collect()
        };
        let max_conns = p.max_smtp_out;
        let triggers = [
            (DEFERRED, p.adaptive_deferral_ratio),
            (BOUNCED, p.adaptive_bounce_ratio),
            (COMPLAINTS, p.adaptive_complaint_ratio),
        ]
        .into_iter()
        .filter_map(|(slot, r)| r.map(|r| RatioTrigger::new(slot, r)))
        .collect();
        Some(Tuning {
            min_rate: p.adaptive_min_msg_rate.map_or(1.0 / 60.0, |r| r.per_second()),
            max_rate: p.max_msg_rate.map(|r| r.per_second()),
            min_conns: p.adaptive_min_smtp_out.min(max_conns),
            max_conns,
            interval: p.adaptive_interval.as_secs_f64().max(1.0),
            triggers,
            rate_replies: regexes(Dir::AdaptiveRateReply),
            connection_replies: regexes(Dir::AdaptiveConnectionReply),
        })
    }

    /// A rate within the bounds.
    pub fn bound_rate(&self, rate: f64) -> f64 {
        let floor = self.min_rate.min(self.max_rate.unwrap_or(f64::MAX));
        rate.min(self.max_rate.unwrap_or(f64::MAX)).max(floor)
    }

    /// What a reply to a recipient says. `rule` is what a matching `<smtp-pattern-list>` rule
    /// says (`adaptive=…`, or `mode=backoff`, which is a rate push-back).
    pub fn classify(&self, reply: &Reply, rule: Option<PushBack>) -> Observed {
        match reply.code {
            200..=399 => return Observed::Delivered,
            500.. => return Observed::Bounced,
            _ => {}
        }
        match self.push_back(reply, rule) {
            Some(PushBack::Connections) => Observed::ConnPushBack { reply: reply.to_string() },
            Some(PushBack::Rate) => Observed::RatePushBack { reply: reply.to_string() },
            None => Observed::Deferred,
        }
    }

    /// Whether a reply is a push-back, and on what.
    pub fn push_back(&self, reply: &Reply, rule: Option<PushBack>) -> Option<PushBack> {
        if rule.is_some() {
            return rule;
        }
        let line = reply.to_string();
        if CONNECTIONS.is_match(&line) || self.connection_replies.iter().any(|r| r.is_match(&line)) {
            return Some(PushBack::Connections);
        }
        if RATE.is_match(&line) || self.rate_replies.iter().any(|r| r.is_match(&line)) {
            return Some(PushBack::Rate);
        }
        None
    }

    /// A tuning for unit tests: `max_rate` per second, `max_conns`, the interval in seconds.
    #[cfg(test)]
    pub fn for_test(max_rate: Option<f64>, max_conns: usize, interval: f64) -> Tuning {
        Tuning {
            min_rate: 1.0 / 60.0,
            max_rate,
            min_conns: 1,
            max_conns,
            interval,
            triggers: Vec::new(),
            rate_replies: Vec::new(),
            connection_replies: Vec::new(),
        }
    }

    #[cfg(test)]
    pub fn with_trigger(mut self, slot: usize, spec: &str) -> Tuning {
        self.triggers.push(RatioTrigger::new(slot, Ratio::parse(spec).expect("valid")));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_providers_push_backs_are_recognised() {
        let t = Tuning::for_test(None, 10, 60.0);
        let rate = |code, enh, text| t.push_back(&Reply::new(code, enh, text), None);
        assert_eq!(rate(421, "4.7.0", "[RP-001] temporarily rate limited"), Some(PushBack::Rate));
        assert_eq!(rate(421, "4.7.0", "[TS01] Messages from 127.0.0.2 temporarily deferred"), Some(PushBack::Rate));
        assert_eq!(rate(450, "4.7.28", "unusual rate of unsolicited mail"), Some(PushBack::Rate));
        assert_eq!(rate(421, "4.7.0", "Try again later, closing connection."), Some(PushBack::Rate));
        assert_eq!(rate(421, "4.7.0", "Too many concurrent SMTP connections"), Some(PushBack::Connections));
        assert_eq!(rate(450, "4.2.1", "mailbox busy"), None);
        assert_eq!(rate(452, "4.5.3", "Too many recipients"), None, "a transaction's limit, not a rate");
        assert_eq!(rate(451, "4.3.0", "local error in processing"), None);
        assert_eq!(t.classify(&Reply::new(250, "2.0.0", "ok"), None), Observed::Delivered);
        assert_eq!(t.classify(&Reply::new(550, "5.1.1", "too many"), None), Observed::Bounced);
        assert_eq!(
            t.classify(&Reply::new(451, "4.3.0", "odd"), Some(PushBack::Rate)),
            Observed::RatePushBack { reply: "451 4.3.0 odd".into() }
        );
    }
}
