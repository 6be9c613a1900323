//! What `show queues`, the API and the dashboard see of each queue: one `QueueStatus` per queue,
//! built from the manager's state in one pass.

use super::Manager;
use crate::queue::ramp::RampStatus;
use crate::queue::state::ModeEvent;

/// What `show queues` says about a queue.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct QueueStatus {
    pub queue: String,
    pub recipients: usize,
    pub messages_ready: usize,
    pub messages_waiting: usize,
    pub connections: usize,
    /// `normal`, or `retry` while waiting after a connection failure.
    pub mode: String,
    /// Unix time the retry wait ends.
    pub retry_until: Option<u64>,
    pub last_error: Option<String>,
    pub delivered: u64,
    pub bounced: u64,
    pub deferred: u64,
    /// Why the mode is what it is (the rule and the reply that triggered backoff).
    pub mode_reason: Option<String>,
    /// Unix time backoff ends.
    pub mode_until: Option<u64>,
    /// Why the queue is not sending faster right now, in the same words everywhere.
    pub waiting_reason: Option<String>,
    pub mode_events: Vec<ModeEvent>,
    /// The queue's `warmup-schedule` ramp: step, cap, use, why it holds.
    pub warmup: Option<RampStatus>,
    /// Paused by an operator (`pause queue`).
    pub paused: bool,
    /// Recipients held because their job is paused.
    pub held_recipients: usize,
    /// A rollup queue's provider (`google`, `outlook`, the `<mx-rollup-list>` name without
    /// `.rollup`, or the shared MX hosts' parent domain); absent for a domain's own queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `adaptive-delivery`: the learned limits per source IP and the last decisions.
    pub adaptive: Option<crate::queue::adaptive::per_queue::AdaptiveStatus>,
}

impl Manager {
    pub(super) fn snapshot(&mut self) -> Vec<QueueStatus> {
        let now = self.clock.now_secs();
        let ramps = &mut self.ramps;
        let rollups = &self.rollups;
        let mut out: Vec<QueueStatus> = self
            .queues
            .iter()
            // A domain queue emptied into its rollup is not a queue of its own any more.
            .filter(|(k, q)| rollups.current(&k.name).is_none() || q.recipients() > 0 || q.connections > 0)
            .map(|(k, q)| (k, q, q.ramp.as_ref().map(|p| ramps.status(&k.to_string(), p, now))))
            .map(|(k, q, warmup)| QueueStatus {
                queue: k.to_string(),
                recipients: q.recipients(),
                messages_ready: q.ready.len(),
                messages_waiting: q.waiting.values().map(Vec::len).sum(),
                connections: q.connections,
                mode: if q.paused {
                    "paused".into()
                } else if q.retry_until.is_some() {
                    "retry".into()
                } else if q.backoff.is_some() {
                    "backoff".into()
                } else {
                    "normal".into()
                },
                retry_until: q.retry_until,
                last_error: q.last_error.clone(),
                delivered: q.delivered,
                bounced: q.bounced,
                deferred: q.deferred,
                mode_reason: q.backoff.as_ref().map(|b| b.reason.clone()),
                mode_until: q.backoff.as_ref().and_then(|b| b.until),
                waiting_reason: warmup
                    .as_ref()
                    .filter(|_| !q.ready.is_empty())
                    .and_then(RampStatus::waiting_reason)
                    .or_else(|| q.waiting_reason()),
                mode_events: q.events.iter().cloned().collect(),
                warmup,
                paused: q.paused,
                held_recipients: q.held.iter().map(|j| j.recipients.len()).sum(),
                provider: rollups.provider(&k.name).map(|(p, _)| p.to_string()),
                adaptive: q.adaptive.as_ref().map(|a| a.status()),
            })
            .collect();
        out.sort_by(|a, b| a.queue.cmp(&b.queue));
        out
    }
}
