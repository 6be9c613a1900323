//! What the queue does with the end of an attempt: each recipient's reply (delivered, deferred
//! with its retry time, bounced, with the rules' effects: backoff, bounce-rcpt, bounce-queue,
//! skip-mx), and the end of a connection (retry mode after a failure, bounces when the route
//! itself is refused, the freed connection slot).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Job, Manager, QueueKey};
use crate::queue::backoff::Effect;
use crate::queue::supervisor::WorkerId;
use crate::queue::worker::{QueueFailure, Remote};
use crate::smtp::Reply;

impl Manager {
    /// A worker ended: whatever it still held goes back to its queue. After a death (`failed`,
    /// with the panic's message) each recipient is deferred with that reason and the death is
    /// counted; after a normal end, what is left is a job sent to a request the worker had just
    /// dropped, which never reached it: it is ready again at once.
    pub(super) fn reap(&mut self, worker: WorkerId, key: &QueueKey, failed: Option<&str>) {
        let left = self.in_flight.take(worker);
        let Some(reason) = failed else {
            if let Some(q) = self.queues.get_mut(key) {
                for job in left {
                    q.ready.push_front(job);
                }
            }
            return;
        };
        let recipients: usize = left.iter().map(|j| j.recipients.len()).sum();
        tracing::error!(queue = %key, "delivery worker {worker} failed: {reason}; {recipients} recipients deferred");
        self.reporter.worker_failed(key);
        let reply = Reply::new(451, "4.3.0", format!("delivery worker failed: {reason}"));
        for job in left {
            let replies = vec![reply.clone(); job.recipients.len()];
            self.outcome(None, key, job, &replies, &Remote::default());
        }
    }

    /// The replies of one job, from `worker` (`None`: the worker died and the replies are the
    /// manager's own deferrals).
    pub(super) fn outcome(
        &mut self,
        worker: Option<WorkerId>,
        key: &QueueKey,
        job: Job,
        replies: &[Reply],
        remote: &Remote,
    ) {
        let now = self.clock.now_secs();
        let Some(q) = self.queues.get_mut(key) else { return };
        q.proven = true;
        let source = remote.source_ip.parse().ok();
        // Replies that match rules: mode changes and disabled IPs apply to the queue; bounce-rcpt
        // turns that recipient's deferral into a bounce; bounce-queue empties the queue below.
        let mut bounce_now = vec![false; job.recipients.len()];
        // skip-mx: the recipient is tried again at once, on another MX.
        let mut retry_now = vec![false; job.recipients.len()];
        let mut bounce_queue: Option<Reply> = None;
        let before = q.shared_mode();
        if let Some(worker) = worker
            && q.adapt_to_replies(worker, replies)
        {
            let learned = q.adaptive.as_ref().map(|a| a.learned()).unwrap_or_default();
            self.learned.update(key, learned);
        }
        let Some(q) = self.queues.get_mut(key) else { return };
        for (pos, reply) in replies.iter().enumerate().filter(|(_, r)| !r.is_positive()) {
            for effect in q.react(reply, source, Some(&remote.mx)) {
                match effect {
                    Effect::BounceRcpt => {
                        if let Some(b) = bounce_now.get_mut(pos) {
                            *b = true;
                        }
                    }
                    Effect::BounceQueue => bounce_queue = Some(reply.clone()),
                    Effect::SkipMx => {
                        if let Some(r) = retry_now.get_mut(pos) {
                            *r = true;
                        }
                    }
                    Effect::DisableSourceIp(_) => {}
                }
            }
        }
        let arrival = job.envelope.arrival_ms / 1000;
        let mut delivered = Vec::new();
        let mut bounced = Vec::new();
        let mut deferred = Vec::new();
        for (pos, &index) in job.recipients.iter().enumerate() {
            let reply = replies.get(pos).cloned().unwrap_or_else(|| Reply::new(451, "4.4.0", "no reply"));
            match reply.code {
                200..=399 => delivered.push((index, reply)),
                400..=499 if bounce_now.get(pos).copied().unwrap_or(false) => bounced.push((index, reply)),
                400..=499 => deferred.push((index, reply, retry_now.get(pos).copied().unwrap_or(false))),
                _ => bounced.push((index, reply)),
            }
        }
        if !delivered.is_empty() {
            q.retry_step = 0;
            q.delivered += delivered.len() as u64;
            if q.normal_after_delivery && q.backoff.is_some() {
                q.backoff = None;
                q.record("normal", "a delivery succeeded (backoff-to-normal-after-delivery)".into(), None);
            }
        }
        q.bounced += bounced.len() as u64;
        let attempts = job.attempts + 1;
        let mut retry = Vec::new();
        for (index, reply, at_once) in deferred {
            match q.schedule.after_transient(arrival, now, attempts, q.backoff.is_some()) {
                Some(at) => {
                    let at = if at_once { now } else { at };
                    q.deferred += 1;
                    q.last_error = Some(reply.to_string());
                    retry.push((index, reply, at));
                }
                None => {
                    q.bounced += 1;
                    // Past bounce-after the status says so (message-expired); under
                    // bounce-on-4xx-status the receiver's own reply is the reason.
                    let reason = if q.schedule.expired(arrival, now) { expired(&reply) } else { reply };
                    bounced.push((index, reason));
                }
            }
        }
        if let Some(plan) = &q.ramp {
            let counts = [delivered.len(), retry.len(), bounced.len()].map(|n| n as u64);
            self.ramps.observe(&key.to_string(), plan, now, counts[0], counts[1], counts[2]);
        }
        let settings = Arc::clone(&q.settings);
        // Backoff entered or ended by these replies holds on every node of a cluster.
        self.share_mode(key, &before);
        let group_retry: BTreeMap<u64, Vec<usize>> = retry.iter().fold(BTreeMap::new(), |mut m, (i, _, at)| {
            m.entry(*at).or_default().push(*i);
            m
        });
        for (at, recipients) in &group_retry {
            let q = self.queues.get_mut(key).expect("present");
            q.waiting.entry(*at).or_default().push(Job {
                envelope: Arc::clone(&job.envelope),
                recipients: recipients.clone(),
                attempts,
            });
        }
        self.reporter.delivered(&self.spool, &job, &delivered, remote, key, &settings);
        self.reporter.deferred(&self.spool, &job, &retry, attempts, remote, key, &settings, &self.config);
        for (index, reply) in bounced {
            self.reporter.bounce(&self.spool, &job, &[index], &reply, remote, Some(key), Some(&settings), &self.config);
        }
        if let Some(reply) = bounce_queue {
            // bounce-queue: everything this queue holds bounces with the reply that asked for it.
            let q = self.queues.get_mut(key).expect("present");
            q.record("bounce-queue", format!("\"{reply}\" matched a bounce-queue rule"), None);
            self.bounce_all(key, &reply, remote);
        }
    }

    /// Bounces everything a queue holds, ready or waiting for a retry.
    pub(super) fn bounce_all(&mut self, key: &QueueKey, reply: &Reply, remote: &Remote) {
        let Some(q) = self.queues.get_mut(key) else { return };
        let jobs: Vec<Job> = q.ready.drain(..).chain(std::mem::take(&mut q.waiting).into_values().flatten()).collect();
        let settings = Arc::clone(&q.settings);
        for job in jobs {
            self.reporter.bounce(
                &self.spool,
                &job,
                &job.recipients,
                reply,
                remote,
                Some(key),
                Some(&settings),
                &self.config,
            );
        }
    }

    pub(super) fn connection_ended(
        &mut self,
        worker: WorkerId,
        key: &QueueKey,
        source: Option<std::net::IpAddr>,
        mut failure: Option<QueueFailure>,
    ) {
        self.total_connections = self.total_connections.saturating_sub(1);
        if let Some(n) = self.vmta_connections.get_mut(&key.vmta) {
            *n = n.saturating_sub(1);
        }
        if let Some(q) = self.queues.get_mut(key) {
            q.connections = q.connections.saturating_sub(1);
            if let Some(ip) = source {
                q.sources.close(ip);
            }
        }
        if self.draining {
            // Shutting down: nothing more is tried; what is queued stays safe on disk.
            self.check_drained();
            return;
        }
        let Some(q) = self.queues.get_mut(key) else { return };
        let (changed, push_back) = q.adapt_to_connection_end(worker, failure.as_ref().map(|f| &f.reply));
        if changed {
            let learned = q.adaptive.as_ref().map(|a| a.learned()).unwrap_or_default();
            self.learned.update(key, learned);
        }
        let Some(q) = self.queues.get_mut(key) else { return };
        if push_back && let Some(f) = failure.take() {
            // Adaptive delivery took the refusal as a connection push-back: the other connections
            // go on under the lower cap; the queue itself is not failing.
            q.last_error = Some(f.reply.to_string());
        }
        if let Some(f) = failure {
            let source = f.remote.source_ip.parse().ok();
            let _ = q.react(&f.reply, source, Some(&f.remote.mx));
            q.proven = false;
            q.last_error = Some(f.reply.to_string());
            self.reporter.queue_failure(key, &f, &q.settings);
            if f.permanent {
                // The route itself is refused (no such domain, null MX, 5xx greeting): everything
                // queued for it bounces now, not one retry at a time.
                self.bounce_all(key, &f.reply, &f.remote);
                return;
            }
            // Queue-level failure: retry mode, and recipients past bounce-after bounce now.
            let wait = if f.dns {
                q.schedule.retry_after_dns_error
            } else {
                q.schedule.queue_retry(q.retry_step, q.backoff.is_some())
            };
            q.retry_step += 1;
            q.retry_until = Some(self.clock.now_secs() + wait.as_secs().max(1));
            let now = self.clock.now_secs();
            // bounce-upon-no-mx TIME: mail queued that long bounces with the domain's own reason.
            let too_old = |arrival: u64| {
                f.bounce_older.as_ref().filter(|(age, _)| now.saturating_sub(arrival) >= age.as_secs()).map(|(_, r)| r)
            };
            let (old, keep): (Vec<Job>, Vec<Job>) = q.ready.drain(..).partition(|j| {
                let arrival = j.envelope.arrival_ms / 1000;
                q.schedule.expired(arrival, now) || too_old(arrival).is_some()
            });
            // Still waiting: recipients that asked for delay DSNs get one when it is due.
            for job in &keep {
                let later: Vec<(usize, Reply, u64)> = job.recipients.iter().map(|&i| (i, f.reply.clone(), 0)).collect();
                self.reporter.delay_dsns(&self.spool, job, &later, &f.remote, key, &q.settings, &self.config);
            }
            q.ready.extend(keep);
            for job in old {
                let reply = too_old(job.envelope.arrival_ms / 1000).cloned().unwrap_or_else(|| expired(&f.reply));
                let settings = Some(&*q.settings);
                self.reporter.bounce(
                    &self.spool,
                    &job,
                    &job.recipients,
                    &reply,
                    &f.remote,
                    Some(key),
                    settings,
                    &self.config,
                );
            }
            return;
        }
        let total_cap = self.config.policy.total_max_smtp_out;
        if self.total_connections + 1 >= total_cap {
            // Connection slots are scarce: the freed one goes to the queue that ranks first.
            for key in self.ready_by_priority() {
                self.start_workers(&key);
            }
        } else {
            self.start_workers(key);
        }
    }
}

impl Manager {
    /// A complaint about mail to a domain: every queue of the domain (or of its rollup) with
    /// adaptive delivery counts it for the source IP the report names.
    pub(super) fn complaint(&mut self, c: &crate::events::feedback::Complaint) {
        let name = self.rollups.current(&c.domain).unwrap_or(&c.domain).to_string();
        let keys: Vec<QueueKey> = self.queues.keys().filter(|k| k.name == name).cloned().collect();
        for key in keys {
            let Some(q) = self.queues.get_mut(&key) else { continue };
            if q.adapt_to_complaint(c.source_ip) {
                let learned = q.adaptive.as_ref().map(|a| a.learned()).unwrap_or_default();
                self.learned.update(&key, learned);
            }
        }
    }
}

/// The reason a recipient bounces at `bounce-after`: the last reply, with status 4.4.7.
fn expired(last: &Reply) -> Reply {
    Reply::new(last.code, "4.4.7", last.text.clone())
}
