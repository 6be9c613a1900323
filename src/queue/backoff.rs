//! Backoff: a queue slows down when the receiver pushes back (docs/operations.md, "Shaping":
//! `<smtp-pattern-list>` rules and the field dialect's `421 RP-001 *, 1h, 5, 1000` lines). A reply
//! that matches a rule puts the queue in backoff mode with fewer connections and a lower rate until
//! the rule's time runs out; every change is recorded with the reply that caused it.

use std::time::Duration;

use crate::config::Config;
use crate::config::Dir;
use crate::config::resolve::QueueSettings;
use crate::config::rules::{BackoffRule, PushBack, QueueModeChange, ReplyAction, ReplyRule};
use crate::config::value::Value;
use crate::config::values::{Rate, Ratio};
use crate::smtp::Reply;

/// What a matching reply asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// Enter (or renew) backoff: for `duration` (`None`: until told otherwise), with these caps.
    Backoff { duration: Option<Duration>, max_smtp_out: usize, rate: Option<Rate>, rule: String },
    /// `mode=normal`: leave backoff now.
    Normal { rule: String },
    /// `defer-queue`: put the queue in retry mode now.
    DeferQueue { rule: String },
}

impl Trigger {
    pub fn rule(&self) -> &str {
        match self {
            Trigger::Backoff { rule, .. } | Trigger::Normal { rule } | Trigger::DeferQueue { rule } => rule,
        }
    }
}

/// What a matched rule does besides changing the queue's mode.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// `disable-source-ip`: stop using the connection's source IP for this queue, until the
    /// rule's `reenable-after` (else `reenable-source-ip-after`; `None`: until an operator says).
    DisableSourceIp(Option<Duration>),
    /// `bounce-rcpt`: bounce the recipient now, even on a 4xx.
    BounceRcpt,
    /// `bounce-queue`: bounce everything queued.
    BounceQueue,
    /// `skip-mx`: close this connection and prefer the queue's other MX hosts for a while.
    SkipMx,
}

/// A matched rule: its mode change, other effects, and `trigger=N/INTERVAL` threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Matched {
    pub rule: String,
    pub trigger: Option<Trigger>,
    pub effects: Vec<Effect>,
    pub threshold: Option<Rate>,
    /// `trigger=PERCENT%/MIN-SAMPLE/WINDOW`.
    pub ratio: Option<Ratio>,
    /// What the reply is to adaptive delivery: `adaptive=…`, or a rate push-back when the rule
    /// puts the queue in backoff.
    pub push_back: Option<PushBack>,
}

/// The backoff rules of one queue, read once from its settings.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    dialect: Vec<BackoffRule>,
    replies: Vec<ReplyRule>,
    /// `backoff-max-smtp-out`, `backoff-max-msg-rate`, `backoff-to-normal-after` for
    /// pattern-list rules.
    max_smtp_out: usize,
    rate: Option<Rate>,
    to_normal_after: Option<Duration>,
    /// `reenable-source-ip-after`.
    reenable_after: Option<Duration>,
}

impl Rules {
    pub fn from_settings(settings: &QueueSettings, config: &Config) -> Rules {
        let s = &settings.settings;
        let dialect = s
            .all(Dir::BackoffRuleDir)
            .iter()
            .filter_map(|e| match &e.value {
                Value::BackoffRule(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let replies = s
            .text(Dir::SmtpPatternListRef)
            .and_then(|name| config.blocks_of("smtp-pattern-list").find(|b| b.arg.as_deref() == Some(name)))
            .map(|b| {
                b.settings
                    .all(Dir::Reply)
                    .iter()
                    .filter_map(|e| match &e.value {
                        Value::ReplyRule(r) => Some(r.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Rules {
            dialect,
            replies,
            max_smtp_out: settings.policy.backoff_max_smtp_out,
            rate: settings.policy.backoff_max_msg_rate,
            to_normal_after: settings.policy.backoff_to_normal_after,
            reenable_after: settings.policy.reenable_source_ip_after,
        }
    }

    /// The `<smtp-pattern-list>` rules with a ratio trigger, named as `Matched::rule` names them.
    pub fn ratio_rules(&self) -> impl Iterator<Item = (String, Ratio)> + '_ {
        self.replies.iter().filter_map(|r| {
            r.actions.iter().find_map(|a| match a {
                ReplyAction::RatioTrigger(ratio) => Some((r.to_string(), *ratio)),
                _ => None,
            })
        })
    }

    /// What a reply is to adaptive delivery by the rules (the built-in markers aside).
    pub fn push_back(&self, reply: &Reply) -> Option<PushBack> {
        self.check(reply).and_then(|m| m.push_back)
    }

    pub fn is_empty(&self) -> bool {
        self.dialect.is_empty() && self.replies.is_empty()
    }

    /// The first rule a reply matches: `<smtp-pattern-list>` rules first (PowerMTA's documented
    /// mechanism), then the field-dialect lines.
    pub fn check(&self, reply: &Reply) -> Option<Matched> {
        let line = reply.to_string();
        for r in &self.replies {
            if !r.pattern.regex.is_match(&line) {
                continue;
            }
            let threshold = r.actions.iter().find_map(|a| match a {
                ReplyAction::Trigger(t) => Some(*t),
                _ => None,
            });
            let ratio = r.actions.iter().find_map(|a| match a {
                ReplyAction::RatioTrigger(t) => Some(*t),
                _ => None,
            });
            let mut push_back = r.actions.iter().find_map(|a| match a {
                ReplyAction::Adaptive(p) => Some(*p),
                _ => None,
            });
            let rule = r.to_string();
            let mut trigger = None;
            let mut effects = Vec::new();
            for a in &r.actions {
                match a {
                    ReplyAction::Mode(QueueModeChange::Backoff) => {
                        push_back.get_or_insert(PushBack::Rate);
                        let duration = r
                            .actions
                            .iter()
                            .find_map(|a| match a {
                                ReplyAction::BackoffToNormalAfter(d) => {
                                    Some(d.map(|i| Duration::from_secs(i.seconds())))
                                }
                                _ => None,
                            })
                            .unwrap_or(self.to_normal_after);
                        trigger = Some(Trigger::Backoff {
                            duration,
                            max_smtp_out: self.max_smtp_out,
                            rate: self.rate,
                            rule: rule.clone(),
                        });
                    }
                    ReplyAction::Mode(QueueModeChange::Normal) => {
                        trigger = Some(Trigger::Normal { rule: rule.clone() })
                    }
                    ReplyAction::DeferQueue => trigger = Some(Trigger::DeferQueue { rule: rule.clone() }),
                    ReplyAction::DisableSourceIp => {
                        let until = r
                            .actions
                            .iter()
                            .find_map(|a| match a {
                                ReplyAction::ReenableAfter(d) => Some(d.map(|i| Duration::from_secs(i.seconds()))),
                                _ => None,
                            })
                            .unwrap_or(self.reenable_after);
                        effects.push(Effect::DisableSourceIp(until));
                    }
                    ReplyAction::BounceRcpt => effects.push(Effect::BounceRcpt),
                    ReplyAction::BounceQueue => effects.push(Effect::BounceQueue),
                    ReplyAction::SkipMx => effects.push(Effect::SkipMx),
                    _ => {}
                }
            }
            if trigger.is_some() || !effects.is_empty() || push_back.is_some() {
                return Some(Matched { rule, trigger, effects, threshold, ratio, push_back });
            }
        }
        self.dialect.iter().find(|r| dialect_matches(r, reply)).map(|r| Matched {
            rule: format!("backoff-rule {r}"),
            trigger: Some(Trigger::Backoff {
                duration: Some(Duration::from_secs(r.duration.seconds())),
                max_smtp_out: r.max_smtp_out.max(1) as usize,
                rate: r.max_msg_rate,
                rule: format!("backoff-rule {r}"),
            }),
            effects: Vec::new(),
            threshold: r.trigger,
            ratio: None,
            push_back: Some(PushBack::Rate),
        })
    }
}

/// `421 RP-001 *`: the code, then the text (contained, case-insensitive) and the enhanced code
/// (exact), `*` for either.
fn dialect_matches(rule: &BackoffRule, reply: &Reply) -> bool {
    if rule.code != reply.code {
        return false;
    }
    if let Some(e) = &rule.enhanced
        && e != reply.enhanced.as_ref()
    {
        return false;
    }
    match &rule.text {
        Some(t) => reply.to_string().to_lowercase().contains(&t.to_lowercase()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    const HOT: &str = include_str!("../../examples/hot.conf");

    fn rules(text: &str, domain: &str) -> Rules {
        let c = load_str("b.conf", text, Path::new("."), FileCheck::Warn).config;
        let q = c.queue_settings(domain, None).unwrap();
        Rules::from_settings(&q, &c)
    }

    #[test]
    fn the_hot_examples_microsoft_rules() {
        let r = rules(HOT, "hotmail.com");
        let t = r.check(&Reply::new(421, "4.7.0", "[RP-001] temporarily rate limited")).unwrap().trigger.unwrap();
        assert_eq!(
            t,
            Trigger::Backoff {
                duration: Some(Duration::from_secs(3600)),
                max_smtp_out: 5,
                rate: Some(Rate { count: 1000, period: 3600 }),
                rule: "backoff-rule 421 RP-001 *, 1h, 5, 1000/h".into()
            }
        );
        let t = r.check(&Reply::new(421, "4.3.2", "service not available")).unwrap().trigger.unwrap();
        assert!(matches!(t, Trigger::Backoff { max_smtp_out: 2, .. }));
        assert_eq!(r.check(&Reply::new(421, "4.3.0", "try later")), None);
        assert_eq!(r.check(&Reply::new(451, "4.3.2", "x")), None);
        assert!(rules(HOT, "gmail.com").is_empty());
    }

    #[test]
    fn pattern_lists_enter_and_leave_backoff() {
        let text = "<smtp-pattern-list yahoo>\n reply /\\[TS0[1-3]\\]/ mode=backoff\n reply /all clear/ mode=normal\n</smtp-pattern-list>\n<domain yahoo.com>\n smtp-pattern-list yahoo\n backoff-max-smtp-out 3\n backoff-max-msg-rate 100/h\n backoff-to-normal-after 30m\n</domain>\n";
        let r = rules(text, "yahoo.com");
        match r
            .check(&Reply::new(421, "4.7.0", "[TS01] Messages from 1.2.3.4 temporarily deferred"))
            .unwrap()
            .trigger
            .unwrap()
        {
            Trigger::Backoff { duration, max_smtp_out, rate, .. } => {
                assert_eq!(
                    (duration, max_smtp_out, rate),
                    (Some(Duration::from_secs(1800)), 3, Some(Rate { count: 100, period: 3600 }))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.check(&Reply::new(250, "2.0.0", "all clear")).and_then(|m| m.trigger),
            Some(Trigger::Normal { .. })
        ));
    }

    #[test]
    fn effects_besides_mode_changes() {
        let text = "<smtp-pattern-list p>\n reply /blocked/ disable-source-ip,reenable-after=2h\n reply /no such user/ bounce-rcpt\n reply /go away/ bounce-queue\n</smtp-pattern-list>\n<domain *>\n smtp-pattern-list p\n reenable-source-ip-after 30m\n</domain>\n";
        let r = rules(text, "x.com");
        let m = r.check(&Reply::new(451, "4.7.1", "IP blocked")).unwrap();
        assert_eq!((m.trigger, m.effects), (None, vec![Effect::DisableSourceIp(Some(Duration::from_secs(7200)))]));
        assert_eq!(r.check(&Reply::new(450, "4.1.1", "no such user")).unwrap().effects, vec![Effect::BounceRcpt]);
        assert_eq!(r.check(&Reply::new(554, "5.7.1", "go away")).unwrap().effects, vec![Effect::BounceQueue]);
        assert_eq!(r.check(&Reply::new(250, "2.0.0", "ok")), None);
    }
}
