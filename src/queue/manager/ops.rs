//! Operators' changes to the queues the manager owns (PowerMTA's `pause`/`resume queue`,
//! `pause`/`resume job`, `schedule`, `delete`) and the graceful drain at shutdown. Runs inside
//! the manager task, like everything else that touches queue state.

use crate::answer::Answer;
use tokio::sync::oneshot;

use super::{Event, Job, Manager, QueueHandle, queue_matches};
use crate::queue::QueueKey;
use crate::queue::worker::Remote;
use crate::smtp::Reply;

/// Which queued recipients an operation applies to (`ember delete`, `ember list`). Every given
/// field must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `domain/vmta`, `domain`, `*` for either part.
    pub queue: Option<String>,
    /// The envelope sender.
    pub orig: Option<String>,
    pub rcpt: Option<String>,
    pub job_id: Option<String>,
    pub env_id: Option<String>,
    /// Only recipients of messages that arrived at least this many seconds ago.
    pub older_than: Option<u64>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.queue.is_none() && self.job_id.is_none()
    }

    fn matches_queue(&self, key: &QueueKey) -> bool {
        self.queue.as_deref().is_none_or(|q| queue_matches(q, key))
    }

    /// The recipients of `job` this filter selects.
    fn select(&self, job: &Job, now: u64) -> Vec<usize> {
        let env = &job.envelope;
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        if !eq(&self.orig, Some(&env.sender))
            || !eq(&self.job_id, env.job_id.as_deref())
            || !eq(&self.env_id, env.env_id.as_deref())
            || self.older_than.is_some_and(|s| now.saturating_sub(env.arrival_ms / 1000) < s)
        {
            return Vec::new();
        }
        job.recipients.iter().copied().filter(|i| eq(&self.rcpt, Some(&env.recipients[*i].address))).collect()
    }
}

/// Operations that need more than a count of matched queues back.
pub enum Operation {
    PauseJob(String),
    ResumeJob(String),
    /// Removes matching recipients; writes `b` records unless `accounting` is false; sends
    /// DSNs when `dsn`.
    Delete {
        filter: Filter,
        accounting: bool,
        dsn: bool,
    },
    /// Stops handing out work and answers once every connection has closed.
    Drain,
}

/// What the manager answers.
#[derive(Debug, Default, serde::Serialize)]
pub struct OperationResult {
    /// Recipients affected (held, released or deleted).
    pub recipients: usize,
    /// Queues touched.
    pub queues: usize,
}

impl QueueHandle {
    /// Runs an operation in the manager task and returns what it did.
    pub async fn operate(&self, op: Operation) -> OperationResult {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Event::Operate { op, reply: tx }).await.is_err() {
            return OperationResult::default();
        }
        rx.await.unwrap_or_default()
    }

    /// The job ids an operator paused.
    pub async fn paused_jobs(&self) -> Vec<String> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Event::PausedJobs(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

impl Manager {
    pub(super) fn operate(&mut self, op: Operation, reply: oneshot::Sender<OperationResult>) {
        let result = match op {
            Operation::PauseJob(id) => self.pause_job(id),
            Operation::ResumeJob(id) => self.resume_job(&id),
            Operation::Delete { filter, accounting, dsn } => self.delete(&filter, accounting, dsn),
            Operation::Drain => {
                self.draining = true;
                let keys: Vec<QueueKey> = self.queues.keys().cloned().collect();
                for key in &keys {
                    self.expire_idle(key, true);
                }
                self.drain_waiters.push(reply);
                self.check_drained();
                return;
            }
        };
        reply.answer(result);
    }

    /// Answers drain requests once no connection is open.
    pub(super) fn check_drained(&mut self) {
        if self.draining && self.total_connections == 0 {
            for w in self.drain_waiters.drain(..) {
                w.answer(OperationResult::default());
            }
        }
    }

    /// Whether new work for `job` must be held (its job id is paused).
    pub(super) fn held(&self, job: &Job) -> bool {
        job.envelope.job_id.as_ref().is_some_and(|j| self.paused_jobs.contains(j))
    }

    /// Moves ready work of paused jobs in queue `key` to its held list.
    pub(super) fn hold_paused(&mut self, key: &QueueKey) {
        if self.paused_jobs.is_empty() {
            return;
        }
        let Some(q) = self.queues.get_mut(key) else { return };
        let paused = &self.paused_jobs;
        let (held, keep): (Vec<Job>, Vec<Job>) =
            q.ready.drain(..).partition(|j| j.envelope.job_id.as_ref().is_some_and(|id| paused.contains(id)));
        q.ready.extend(keep);
        q.held.extend(held);
    }

    fn pause_job(&mut self, id: String) -> OperationResult {
        let mut result = OperationResult::default();
        for (_, q) in self.queues.iter_mut() {
            let (held, keep): (Vec<Job>, Vec<Job>) =
                q.ready.drain(..).partition(|j| j.envelope.job_id.as_deref() == Some(id.as_str()));
            q.ready.extend(keep);
            if !held.is_empty() {
                result.queues += 1;
                result.recipients += held.iter().map(|j| j.recipients.len()).sum::<usize>();
                q.held.extend(held);
            }
        }
        tracing::info!("job {id} paused by an operator ({} recipients held)", result.recipients);
        self.paused_jobs.insert(id);
        result
    }

    fn resume_job(&mut self, id: &str) -> OperationResult {
        self.paused_jobs.remove(id);
        let mut result = OperationResult::default();
        let mut touched = Vec::new();
        for (key, q) in &mut self.queues {
            let (released, keep): (Vec<Job>, Vec<Job>) =
                q.held.drain(..).partition(|j| j.envelope.job_id.as_deref() == Some(id));
            q.held = keep;
            if !released.is_empty() {
                result.queues += 1;
                result.recipients += released.iter().map(|j| j.recipients.len()).sum::<usize>();
                for job in released {
                    q.enqueue(job);
                }
                touched.push(key.clone());
            }
        }
        tracing::info!("job {id} resumed by an operator ({} recipients released)", result.recipients);
        for key in touched {
            self.start_workers(&key);
        }
        result
    }

    /// Removes the selected recipients from every list of the matching queues. Recipients in
    /// a transaction right now are not touched (their outcome is about to be known).
    fn delete(&mut self, filter: &Filter, accounting: bool, dsn: bool) -> OperationResult {
        let now = self.clock.now_secs();
        let mut removed: Vec<(QueueKey, Job)> = Vec::new();
        let mut result = OperationResult::default();
        for (key, q) in &mut self.queues {
            if !filter.matches_queue(key) {
                continue;
            }
            let before = removed.len();
            let mut take = |job: &mut Job| {
                let chosen = filter.select(job, now);
                if !chosen.is_empty() {
                    job.recipients.retain(|i| !chosen.contains(i));
                    removed.push((key.clone(), Job { recipients: chosen, ..job.clone() }));
                }
                !job.recipients.is_empty()
            };
            q.ready.retain_mut(&mut take);
            q.held.retain_mut(&mut take);
            for jobs in q.waiting.values_mut() {
                jobs.retain_mut(&mut take);
            }
            q.waiting.retain(|_, jobs| !jobs.is_empty());
            if removed.len() > before {
                result.queues += 1;
            }
        }
        let reply = Reply::new(550, "5.0.0", "deleted by an operator (ember delete)");
        for (key, job) in &removed {
            result.recipients += job.recipients.len();
            self.reporter.deleted(&self.spool, job, &reply, &Remote::default(), key, accounting, dsn, &self.config);
        }
        tracing::info!("delete: {} recipients removed from {} queues", result.recipients, result.queues);
        result
    }
}
