//! Answering a connection that asks for its next message: the checks that close it (source IP
//! disabled, warm-up cap used, MX skipped, draining), the rate limiters, and idle connections.
//!
//! With `connection-idle-timeout`, a connection that finds its queue empty is not closed: its
//! request is held, and the next message that arrives for the queue goes to it before any new
//! connection is opened. The worker drops the request if the server speaks or hangs up meanwhile;
//! a job sent to a request nobody holds any more comes back to the front of the queue.

use crate::answer::Answer;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Job, Manager, NextJob, QueueKey};
use crate::queue::state::next_job;
use crate::queue::supervisor::WorkerId;

/// A connection waiting for mail.
pub(in crate::queue) struct IdleConnection {
    worker: WorkerId,
    reply: oneshot::Sender<NextJob>,
    source: Option<std::net::IpAddr>,
    mx: String,
    /// When it began to wait (`Clock::elapsed`).
    since: f64,
}

/// PowerMTA's ceiling for `connection-idle-timeout`.
const MAX_IDLE: Duration = Duration::from_secs(600);

impl Manager {
    pub(super) fn answer_next(
        &mut self,
        worker: WorkerId,
        key: &QueueKey,
        source: Option<std::net::IpAddr>,
        mx: String,
        reply: oneshot::Sender<NextJob>,
    ) {
        let now = self.monotonic();
        // The VMTA's and its pools' rates, shared by their queues.
        let shared = self.shared_rates.for_vmta(&self.config, &key.vmta);
        let spool = &self.spool;
        let size = |job: &Job| spool.message_size(job.envelope.id).unwrap_or(0);
        // Only a queue on a warm-up schedule needs its name as a key: no allocation otherwise.
        let ramp_key = || key.to_string();
        let draining = self.draining;
        let scope = self.cluster.as_ref().map(|_| crate::cluster::limits::scope(&key.vmta, source, &key.name));
        let Some(q) = self.queues.get_mut(key) else {
            reply.answer(NextJob::Done);
            return;
        };
        let ramp_full =
            q.ramp.as_ref().is_some_and(|p| self.ramps.remaining(&ramp_key(), p, self.clock.now_secs()) == 0);
        let source_ok = q.source_allowed(source) || q.probing_disabled_sources();
        // Adaptive delivery: the connection is up; one beyond a cut cap closes.
        let over_cap = q.adaptive.as_mut().is_some_and(|a| a.greeted(worker, now));
        let next = if draining || q.paused || !source_ok || ramp_full || over_cap || q.skipped_mx.contains_key(&mx) {
            // Draining, paused, a source IP disabled while the connection was open, the warm-up
            // step's cap used, or its MX skipped by a skip-mx rule: close it.
            NextJob::Done
        } else {
            let idle = q.settings.policy.connection_idle_timeout.min(MAX_IDLE);
            if q.ready.is_empty() && q.retry_until.is_none() && !idle.is_zero() {
                q.idle.push_back(IdleConnection { worker, reply, source, mx, since: self.clock.elapsed() });
                return;
            }
            let next = next_job(q, now, shared, source, size, scope.as_deref());
            if let (NextJob::Job(..), Some(plan)) = (&next, &q.ramp) {
                self.ramps.charge(&ramp_key(), plan, self.clock.now_secs());
            }
            next
        };
        // Kept until its outcome comes back, so a worker that dies loses nothing (supervisor.rs).
        let handed = match &next {
            NextJob::Job(job, _) => Some(job.clone()),
            _ => None,
        };
        let sent = reply.send(next);
        if let (Ok(()), Some(job)) = (&sent, &handed) {
            self.in_flight.handed(worker, job);
        }
        if let Err(NextJob::Job(job, _)) = sent {
            // The worker is gone: the job goes back, and its warm-up charge with it.
            if let Some(q) = self.queues.get_mut(key) {
                if let Some(plan) = &q.ramp {
                    self.ramps.refund(&ramp_key(), plan, self.clock.now_secs());
                }
                q.ready.push_front(job);
            }
        }
    }

    /// Gives ready mail to the queue's idle connections first.
    pub(super) fn feed_idle(&mut self, key: &QueueKey) {
        loop {
            let Some(q) = self.queues.get_mut(key) else { return };
            if q.ready.is_empty() {
                return;
            }
            let Some(idle) = q.idle.pop_front() else { return };
            self.answer_next(idle.worker, key, idle.source, idle.mx, idle.reply);
        }
    }

    /// Closes the idle connections that waited `connection-idle-timeout` (or all of them, when
    /// `all`: draining, a reload that lowered the timeout is taken at the next check).
    pub(super) fn expire_idle(&mut self, key: &QueueKey, all: bool) {
        let Some(q) = self.queues.get_mut(key) else { return };
        let idle = q.settings.policy.connection_idle_timeout.min(MAX_IDLE);
        let now = self.clock.elapsed();
        while q.idle.front().is_some_and(|c| all || now - c.since >= idle.as_secs_f64()) {
            if let Some(c) = q.idle.pop_front() {
                c.reply.answer(NextJob::Done);
            }
        }
    }
}
