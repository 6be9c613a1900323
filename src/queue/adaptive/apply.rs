//! Where the queue meets its controllers: the replies of each attempt and the refused
//! connections go in, the decisions come out as mode events, `adaptive` events in the event
//! log, and log lines.

use super::per_queue::DecisionRecord;
use super::window::ATTEMPTS;
use super::{Limit, Observed};
use crate::queue::state::{MODE_EVENTS, ModeEvent, Queue};
use crate::queue::supervisor::WorkerId;
use crate::smtp::Reply;

impl Queue {
    /// Counts the attempts of one job for the pattern-list rules with ratio triggers, and tells
    /// the controller of the source `worker` connects from what each reply said. Returns
    /// whether a limit changed.
    pub(in crate::queue) fn adapt_to_replies(&mut self, worker: WorkerId, replies: &[Reply]) -> bool {
        if !self.rule_ratios.is_empty() {
            let now = self.clock.elapsed();
            for w in self.rule_ratios.values_mut() {
                w.add(now, ATTEMPTS, replies.len() as u64);
            }
        }
        // The source the manager chose for the connection (the key its limits live under), not
        // the address the socket happened to get.
        let Some(source) = self.adaptive.as_ref().and_then(|a| a.source_of(worker)) else { return false };
        let mut changed = false;
        for reply in replies {
            let rule = if reply.is_positive() { None } else { self.rules.push_back(reply) };
            let Some(adaptive) = self.adaptive.as_mut() else { break };
            let observed = adaptive.tuning.classify(reply, rule);
            let (now, unix) = (self.clock.elapsed(), self.clock.now_secs());
            if let Some(record) = adaptive.observe(source, now, unix, &observed) {
                self.decided(record);
                changed = true;
            }
        }
        changed
    }

    /// A connection ended. When it was refused while other connections from the same source
    /// were up (or its reply says "too many connections"), that is a connection push-back: the
    /// cap comes down, and the queue does not go into retry mode (its other connections work).
    /// Returns (a limit changed, the refusal was a push-back).
    pub(in crate::queue) fn adapt_to_connection_end(
        &mut self,
        worker: WorkerId,
        refusal: Option<&Reply>,
    ) -> (bool, bool) {
        let (now, unix) = (self.clock.elapsed(), self.clock.now_secs());
        let rule = refusal.and_then(|r| self.rules.push_back(r));
        let Some(adaptive) = self.adaptive.as_mut() else { return (false, false) };
        let Some((source, greeted)) = adaptive.closed(worker, now) else { return (false, false) };
        let Some(reply) = refusal.filter(|_| !greeted) else { return (false, false) };
        let others_up = adaptive.up(source, now) > 0;
        let observed = match adaptive.tuning.push_back(reply, rule) {
            Some(crate::config::rules::PushBack::Connections) => Observed::ConnPushBack { reply: reply.to_string() },
            Some(crate::config::rules::PushBack::Rate) => Observed::RatePushBack { reply: reply.to_string() },
            None if others_up && reply.code / 100 == 4 => Observed::ConnPushBack { reply: reply.to_string() },
            None => return (false, false),
        };
        let push_back = others_up || matches!(observed, Observed::ConnPushBack { .. });
        let record = adaptive.observe(source, now, unix, &observed);
        let changed = record.is_some();
        if let Some(record) = record {
            self.decided(record);
        }
        (changed, push_back && others_up)
    }

    /// A complaint about this queue's mail sent from `source_ip` (the queue's controller for that
    /// address, else the one of the system-chosen source). Returns whether a limit changed.
    pub(in crate::queue) fn adapt_to_complaint(&mut self, source_ip: Option<std::net::IpAddr>) -> bool {
        let (now, unix) = (self.clock.elapsed(), self.clock.now_secs());
        let Some(adaptive) = self.adaptive.as_mut() else { return false };
        let source = adaptive.source_for(source_ip);
        let Some(record) = adaptive.observe(source, now, unix, &Observed::Complaint) else { return false };
        self.decided(record);
        true
    }

    /// Records a decision: the queue's mode events (shown by `show queues` and `explain`), the
    /// event log, and the log.
    fn decided(&mut self, record: DecisionRecord) {
        let d = &record.decision;
        let what = match d.limit {
            Limit::Rate => "rate",
            Limit::Connections => "connections",
        };
        let reason = format!("source {}: {d}", record.source_ip);
        tracing::info!(queue = %self.settings.name(), "adaptive {reason}");
        if crate::events::enabled() {
            let mut e = crate::events::Event::new(crate::events::EventKind::Adaptive);
            e.queue = Some(self.settings.name());
            e.vmta = Some(self.settings.vmta.clone());
            e.mode = Some("adaptive".into());
            e.source_ip = Some(record.source_ip.clone());
            e.limit = Some(what.into());
            e.rule = Some(d.rule.clone());
            e.evidence = Some(d.evidence.clone());
            e.old = Some(d.old.clone());
            e.new = Some(d.new.clone());
            e.until = Some(crate::events::event::rfc3339_ms(record.until * 1000));
            e.reason = Some(reason.clone());
            crate::events::emit(e);
        }
        self.events.push_back(ModeEvent {
            time: record.time,
            mode: "adaptive".into(),
            reason,
            until: Some(record.until),
        });
        while self.events.len() > MODE_EVENTS {
            self.events.pop_front();
        }
    }
}
