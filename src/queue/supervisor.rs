//! Supervision of connection workers, in the way Postfix's qmgr reaps a delivery agent that died:
//! every worker task runs under a watcher, and the manager keeps the jobs it handed to each worker
//! until their outcomes come back. A worker that panics (or ends without reporting a job) loses
//! nothing: its connection slot is released, the jobs it held go back to their queue as deferred
//! with the reason logged, and `/metrics` counts it (`ember_worker_failures`).
//!
//! The watcher reports a death on the manager's own event channel, after every event the worker
//! sent before it died (one channel keeps their order), so the outcomes a worker did report are
//! applied first and only the rest is deferred: nothing is reported twice.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::manager::{Event, Job};
use super::worker::WorkerSetup;

/// Names one connection worker for as long as the daemon runs.
pub type WorkerId = u64;

/// A connection worker's task, boxed so that a test's stand-in has the real one's type.
pub type WorkerTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the manager runs for a connection: `worker::run`, or a unit test's stand-in.
pub type WorkerFn = Arc<dyn Fn(WorkerSetup) -> WorkerTask + Send + Sync>;

/// The real connection worker.
pub fn real_worker() -> WorkerFn {
    Arc::new(|setup| Box::pin(super::worker::run(setup)))
}

/// Starts `run(setup)` on the runtime, watched: a panic becomes `Event::WorkerFailed`.
pub fn spawn(run: &WorkerFn, setup: WorkerSetup) {
    let events = setup.events.clone();
    let (worker, key, source) = (setup.worker, setup.key.clone(), setup.source.ip);
    let task = tokio::spawn(run(setup));
    tokio::spawn(async move {
        let Err(error) = task.await else { return };
        let reason = if error.is_panic() { panic_text(error.into_panic()) } else { "the task was cancelled".into() };
        tracing::error!(queue = %key, "delivery worker {worker} died: {reason}");
        if events.send(Event::WorkerFailed { worker, key, source, reason }).await.is_err() {
            // The daemon is stopping: what the worker held is still in the spool for the next start.
            tracing::info!("delivery worker {worker}'s recipients stay in the spool: the queue manager has stopped");
        }
    });
}

/// The message a panic carried (`panic!` with a literal or a formatted string).
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_string(),
            Err(_) => "a panic without a message".into(),
        },
    }
}

/// The jobs each worker holds: handed out by the manager, not yet reported.
#[derive(Default)]
pub struct InFlight {
    by_worker: HashMap<WorkerId, Vec<Job>>,
}

impl InFlight {
    /// `job` went to `worker`.
    pub fn handed(&mut self, worker: WorkerId, job: &Job) {
        self.by_worker.entry(worker).or_default().push(job.clone());
    }

    /// `worker` reported the outcome of `job`'s recipients (a 421 may split a job, so a report
    /// can cover part of one).
    pub fn reported(&mut self, worker: WorkerId, job: &Job) {
        let Some(jobs) = self.by_worker.get_mut(&worker) else { return };
        for held in jobs.iter_mut().filter(|h| h.envelope.id == job.envelope.id) {
            held.recipients.retain(|r| !job.recipients.contains(r));
        }
        jobs.retain(|h| !h.recipients.is_empty());
        if jobs.is_empty() {
            self.by_worker.remove(&worker);
        }
    }

    /// What `worker` still held when it ended: nothing, unless it died or lost a job.
    pub fn take(&mut self, worker: WorkerId) -> Vec<Job> {
        self.by_worker.remove(&worker).unwrap_or_default()
    }

    /// Recipients held by workers, all queues together.
    pub fn recipients(&self) -> usize {
        self.by_worker.values().flatten().map(|j| j.recipients.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::{Envelope, MessageId, Recipient};

    fn job(id: u64, recipients: Vec<usize>) -> Job {
        let rcpts = (0..4).map(|n| Recipient::new(format!("r{n}@example.com"))).collect();
        let envelope = Envelope { id: MessageId(id), ..Envelope::new("s@example.net".into(), rcpts) };
        Job { envelope: Arc::new(envelope), recipients, attempts: 0 }
    }

    #[test]
    fn a_report_removes_only_the_recipients_it_covers() {
        let mut in_flight = InFlight::default();
        in_flight.handed(1, &job(10, vec![0, 1, 2]));
        in_flight.handed(1, &job(11, vec![0]));
        in_flight.handed(2, &job(12, vec![3]));
        // A 421 split: recipient 1 reported, 0 and 2 still with the worker.
        in_flight.reported(1, &job(10, vec![1]));
        assert_eq!(in_flight.recipients(), 4);
        in_flight.reported(1, &job(11, vec![0]));
        let left = in_flight.take(1);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].envelope.id, MessageId(10));
        assert_eq!(left[0].recipients, vec![0, 2]);
        assert!(in_flight.take(1).is_empty(), "taken once");
        assert_eq!(in_flight.recipients(), 1, "worker 2 untouched");
    }

    #[test]
    fn a_panic_message_is_kept_as_the_reason() {
        let text = std::panic::catch_unwind(|| panic!("index {} out of range", 7)).unwrap_err();
        assert_eq!(panic_text(text), "index 7 out of range");
        let literal = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_text(literal), "plain");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(42u8)).unwrap_err();
        assert_eq!(panic_text(other), "a panic without a message");
    }
}
