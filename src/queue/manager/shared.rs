//! Cluster mode's shared queue state, inside the manager task: a queue's mode changed here
//! (operator pause, resume or mode; a reply rule's backoff and its end) is published for the
//! other nodes, and their changes are applied here, creating the queue if it has no mail yet so
//! that the mode holds when mail comes. Publishing never waits (`Cluster::publish`).

use super::{Manager, QueueKey};
use crate::cluster::state::Change;
use crate::queue::state::new_queue;

impl Manager {
    /// Publishes what changed in `key`'s mode since `before` (`Queue::shared_mode`).
    pub(super) fn share_mode(&self, key: &QueueKey, before: &(bool, Option<(String, Option<u64>)>)) {
        let (Some(cluster), Some(q)) = (&self.cluster, self.queues.get(key)) else { return };
        let after = q.shared_mode();
        let queue = key.to_string();
        if after.0 != before.0 {
            cluster.publish(if after.0 {
                Change::Pause { queue: queue.clone() }
            } else {
                Change::Resume { queue: queue.clone() }
            });
        }
        if after.1 != before.1 {
            cluster.publish(match &q.backoff {
                Some(b) => Change::Backoff {
                    queue,
                    reason: b.reason.clone(),
                    until: b.until,
                    max_smtp_out: b.max_smtp_out,
                    rate: b.rate_spec.map(|r| (r.count, r.period)),
                },
                None => Change::Normal { queue, reason: "back to normal".into() },
            });
        }
    }

    /// Applies another node's change to a queue.
    pub(super) fn apply_shared(&mut self, from: &str, change: Change) {
        let queue = match &change {
            Change::Pause { queue } | Change::Resume { queue } => queue,
            Change::Backoff { queue, .. } | Change::Normal { queue, .. } => queue,
            Change::Suppress { .. } | Change::Unsuppress { .. } => return,
        };
        let Some((name, vmta)) = queue.rsplit_once('/') else { return };
        let key = QueueKey { name: name.to_string(), vmta: vmta.to_string() };
        if self.queues.get(&key).is_none() {
            let Some(settings) = self.settings(name, vmta) else {
                tracing::debug!(%queue, "cluster: a change from node {from} for a queue this node cannot have");
                return;
            };
            let (config, clock) = (std::sync::Arc::clone(&self.config), self.clock.clone());
            let learned = self.learned.saved(&key);
            self.queues.get_or_insert_with(&key, || new_queue(settings, &config, &clock, learned));
        }
        if let Some(q) = self.queues.get_mut(&key) {
            q.apply_shared(from, change);
        }
        self.start_workers(&key);
    }
}
