//! Filing a fresh job whose queue may divert it: warm-up's cold-VMTA diversion (`warmup.rs`,
//! with the cluster's allowance in cluster mode) and the warm-up schedule's overflow VMTA. In
//! cluster mode a job that needs a block of the cluster's allowance waits here, off the queues,
//! for the reservation's answer (one Redis round trip; the manager never waits for it), and the
//! warm-up schedules' calls to Redis (`ramp.rs`) are made from here, their answers coming back as
//! events.

use std::sync::Arc;

use super::{Diverted, Event, Job, Manager, QueueKey};
use crate::config::resolve::QueueSettings;
use crate::queue::warmup::{Ask, Decision, Shared};

/// A job held for a reservation of `counter`. Their number is bounded by the fresh mail of warm
/// queues that arrives during one reservation (at most `cluster::CALL_TIMEOUT`).
pub(super) struct Awaiting {
    counter: String,
    warm: String,
    pub(super) key: QueueKey,
    settings: Arc<QueueSettings>,
    pub(super) job: Job,
    not_before: u64,
}

impl Manager {
    /// Files `job` of queue `key` (selected for virtual MTA `warm`), diverted to a cold VMTA
    /// while the warm-up allowance lasts, or to the warm-up schedule's overflow VMTA.
    pub(super) fn place(
        &mut self,
        warm: &str,
        mut key: QueueKey,
        mut settings: Arc<QueueSettings>,
        job: Job,
        not_before: u64,
        fresh: bool,
    ) {
        // Warm-up: today's first messages of a warm VMTA's queue go to its cold VMTA.
        if fresh && job.attempts == 0 {
            let shared = self.cluster.as_ref().map(|c| Shared { local: c.limits_local(), live: c.share().live });
            let today = self.clock.now_secs() / 86_400;
            match self.warmup.decide(&self.config, warm, &key.name, &settings, today, shared) {
                Decision::Divert(cold) => {
                    if let Some(cold_settings) = self.settings(&key.name, &cold) {
                        tracing::info!("warm-up: {} for {} goes to cold virtual-mta {cold}", job.envelope.id, key);
                        key.vmta = cold;
                        settings = cold_settings;
                        // Diversions are few (a warm-up allowance): each is handed to the saver at
                        // once, and its job waits, off the queue, until the saver reports it
                        // durable. A crash before that loses the count but also the diversion
                        // (recovered mail is not fresh and goes to the warm VMTA), so no message
                        // leaves through the cold VMTA uncounted and a restart never grants the
                        // day's allowance twice. The manager itself does not wait: the write and
                        // its fsync run on the saver's thread.
                        if let Some(ticket) = self.warmup.save() {
                            self.diverted.push(Diverted { ticket, key, settings, job, not_before });
                            return;
                        }
                    }
                }
                Decision::Keep => {}
                Decision::Wait { counter, ask } => {
                    if let Some(ask) = ask {
                        self.reserve(ask);
                    }
                    let warm = warm.to_string();
                    self.awaiting.push(Awaiting { counter, warm, key, settings, job, not_before });
                    return;
                }
            }
        }
        // A warm-up schedule whose step is spoken for sends the rest to its overflow VMTA.
        if let Some(plan) = crate::queue::ramp::Plan::from_settings(&settings)
            && let Some(overflow) = &plan.overflow
        {
            let queued = self.queues.get(&key).map_or(0, |q| q.ready.len() as u64);
            if self.ramps.remaining(&key.to_string(), &plan, self.clock.now_secs()) <= queued
                && let Ok(member) = self.rotation.member(&self.config, Some(overflow))
                && member != key.vmta
                && let Some(overflow_settings) = self.settings(&key.name, &member)
            {
                tracing::debug!("warm-up: {key} is at its cap; {} goes to {member}", job.envelope.id);
                key.vmta = member;
                settings = overflow_settings;
            }
        }
        self.file(key, settings, job, not_before, fresh);
    }

    /// Cluster mode: tells the ramps whether Redis answers, and makes the calls they ask for.
    pub(super) fn sync_ramps(&mut self, now: u64) {
        let Some(cluster) = self.cluster.clone() else { return };
        self.ramps.set_cluster(Some(Shared { local: cluster.limits_local(), live: cluster.share().live }));
        for ask in self.ramps.asks(now) {
            let (cluster, events) = (cluster.clone(), self.events.clone());
            tokio::spawn(async move {
                let answer = cluster.sync_ramp(&ask.key, now, &ask.rules, ask.report).await.ok();
                if events.send(Event::RampSynced { ask, answer }).await.is_err() {
                    tracing::debug!("a warm-up schedule's call was answered after the queue manager stopped");
                }
            });
        }
    }

    /// Reserves a block of the cluster's allowance; the answer comes back as an event.
    fn reserve(&self, ask: Ask) {
        let Some(cluster) = self.cluster.clone() else { return };
        let events = self.events.clone();
        tokio::spawn(async move {
            let granted = cluster.reserve_allowance(&ask.counter, ask.today, &ask.ramp, ask.want).await.ok();
            let answer = Event::Allowance { counter: ask.counter, day: ask.today, granted: granted.map(|g| g.granted) };
            if events.send(answer).await.is_err() {
                tracing::debug!("a warm-up reservation was answered after the queue manager stopped");
            }
        });
    }

    /// A reservation was answered: the jobs that waited for it are placed again.
    pub(super) fn allowance(&mut self, counter: &str, day: u64, granted: Option<u64>) {
        self.warmup.granted(counter, day, granted);
        let (ready, later): (Vec<Awaiting>, Vec<Awaiting>) =
            std::mem::take(&mut self.awaiting).into_iter().partition(|a| a.counter == counter);
        self.awaiting = later;
        for a in ready {
            self.place(&a.warm, a.key, a.settings, a.job, a.not_before, true);
        }
    }
}
