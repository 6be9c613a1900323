//! The manager's side of `ember drain`: the queued work it lists for the hand-over (once its
//! connections are closed, `Operation::Drain`), and the recipients a peer accepted, which leave
//! the queue — spool state, accounting record — only when the peer's 250 is in.

use tokio::sync::oneshot;

use super::{Event, Job, Manager, QueueHandle};
use crate::answer::Answer;
use crate::queue::QueueKey;
use crate::queue::worker::Remote;
use crate::smtp::Reply;

impl QueueHandle {
    /// Everything queued (ready, waiting for a retry, held by a paused job), per queue.
    pub async fn queued(&self) -> Vec<(QueueKey, Job)> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Event::Queued(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// A peer took `job`'s recipients of queue `key` with `reply`: they leave the queue.
    pub async fn handed_over(&self, key: QueueKey, job: Job, reply: Reply, peer: Remote) {
        if self.tx.send(Event::HandedOver { key, job, reply, peer }).await.is_err() {
            // The peer has the mail and the spool still lists it: after a restart it is handed
            // over again (at least once, never lost).
            tracing::warn!("drain: a hand-over was confirmed after the queue manager stopped");
        }
    }
}

impl Manager {
    pub(super) fn answer_queued(&self, reply: oneshot::Sender<Vec<(QueueKey, Job)>>) {
        let mut all = Vec::new();
        for (key, q) in self.queues.iter() {
            let jobs = q.ready.iter().chain(q.held.iter()).chain(q.waiting.values().flatten());
            all.extend(jobs.map(|j| (key.clone(), j.clone())));
        }
        for d in &self.diverted {
            all.push((d.key.clone(), d.job.clone()));
        }
        for a in &self.awaiting {
            all.push((a.key.clone(), a.job.clone()));
        }
        reply.answer(all);
    }

    /// Removes the recipients a peer took from wherever they wait (their queue, or any queue if
    /// they moved meanwhile), then records them as handed over.
    pub(super) fn handed_over(&mut self, key: &QueueKey, job: Job, reply: &Reply, peer: &Remote) {
        let id = job.envelope.id;
        let mut take = |j: &mut Job| {
            if j.envelope.id == id {
                j.recipients.retain(|i| !job.recipients.contains(i));
            }
            !j.recipients.is_empty()
        };
        let keys: Vec<QueueKey> = std::iter::once(key.clone()).chain(self.queues.keys().cloned()).collect();
        for k in keys {
            let Some(q) = self.queues.get_mut(&k) else { continue };
            q.ready.retain_mut(&mut take);
            q.held.retain_mut(&mut take);
            for jobs in q.waiting.values_mut() {
                jobs.retain_mut(&mut take);
            }
            q.waiting.retain(|_, jobs| !jobs.is_empty());
        }
        self.diverted.retain_mut(|d| take(&mut d.job));
        self.awaiting.retain_mut(|a| take(&mut a.job));
        let settings = self.queues.get(key).map(|q| std::sync::Arc::clone(&q.settings));
        self.reporter.handed_over(&self.spool, &job, reply, peer, key, settings.as_deref());
    }
}
