//! The queue manager: one task owning every queue. It files new messages into queues, hands
//! messages to connection workers, applies each recipient's outcome (spool state, accounting,
//! DSN, retry time), puts queues in retry mode after connection failures, and starts as many
//! connections as a queue's backlog and caps allow (`max-smtp-out`, the VMTA's `max-smtp-out`,
//! `total-max-smtp-out`). Answering a connection is `dispatch`, the end of an attempt `outcomes`,
//! operators' commands `ops`.

mod connections;
pub(super) mod dispatch;
mod handle;
mod handover;
mod ops;
mod outcomes;
pub mod rollup;
mod settings_cache;
mod shared;
mod status;
mod table;
#[cfg(test)]
mod tests;
mod warm;

use crate::answer::Answer;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::QueueKey;
use super::dest_limits::DestLimits;
use super::limits::SharedRates;
use super::ramp::Ramps;
use super::report::Reporter;
use super::rollup::Rollups;
use super::state::new_queue;
use super::state_file::StateSaver;
use super::supervisor::{self, InFlight, WorkerFn, WorkerId};
use super::vmta::Rotation;
use super::warmup::Warmup;
use super::worker::{QueueFailure, Remote};
use crate::clock::Clock;
use crate::config::resolve::QueueSettings;
use crate::config::{Config, Dir};
use crate::delivery::mx::MxResolver;
use crate::message::{Envelope, RecipientState};
use crate::smtp::Reply;
use crate::spool::Spool;

pub use handle::{EVENT_CAPACITY, Events, QueueHandle, Stopped};
pub use ops::{Filter, Operation, OperationResult};
use settings_cache::SettingsCache;
pub use status::QueueStatus;
use table::QueueTable;

/// Some recipients of one message, all in one queue.
#[derive(Clone, Debug)]
pub struct Job {
    pub envelope: Arc<Envelope>,
    /// Indexes into `envelope.recipients`.
    pub recipients: Vec<usize>,
    /// Attempts made so far for these recipients.
    pub attempts: u32,
}

/// What a worker gets when it asks for work.
#[derive(Debug)]
pub enum NextJob {
    /// A message, and the shared rates (cluster mode) it was charged on locally, which the
    /// worker then reserves cluster-wide.
    Job(Job, crate::cluster::Demand),
    /// The queue's rate allows the next message in this many seconds: keep the connection.
    Wait(f64),
    /// Nothing for this connection: close it.
    Done,
}

/// What an operator can tell queues (PowerMTA's `set queue --mode`, `disable source`,
/// `enable source`).
#[derive(Clone, Debug)]
pub enum Command {
    Backoff,
    Normal,
    DisableSource {
        ip: std::net::IpAddr,
        until: Option<u64>,
    },
    EnableSource {
        ip: std::net::IpAddr,
    },
    /// `pause queue`: no new connections; open ones close after their current message.
    Pause,
    /// `resume queue`.
    Resume,
    /// `schedule`: end the queue's retry wait now; with `recipients`, recipients waiting for
    /// their own retry time too (`--retry-recipients`).
    Schedule {
        recipients: bool,
    },
}

/// `domain/vmta`, `domain` (every VMTA), with `*` for either part.
fn queue_matches(pattern: &str, key: &QueueKey) -> bool {
    let (d, v) = pattern.split_once('/').unwrap_or((pattern, "*"));
    (d == "*" || d.eq_ignore_ascii_case(&key.name)) && (v == "*" || v == key.vmta)
}

pub enum Event {
    /// Another node of the cluster changed a queue's mode.
    Shared {
        from: String,
        change: crate::cluster::state::Change,
    },
    /// A stored message; `fresh` when just accepted (only fresh mail counts for warm-up).
    Submit(Box<Envelope>, bool),
    Reload(Arc<Config>, Reporter),
    /// A worker connected from `source` to the MX host `mx` asks for its next message.
    Next {
        worker: WorkerId,
        key: QueueKey,
        source: Option<std::net::IpAddr>,
        mx: String,
        reply: oneshot::Sender<NextJob>,
    },
    Outcome {
        worker: WorkerId,
        key: QueueKey,
        job: Job,
        replies: Vec<Reply>,
        remote: Remote,
    },
    ConnectionEnded {
        worker: WorkerId,
        key: QueueKey,
        /// The local source IP the connection used.
        source: Option<std::net::IpAddr>,
        failure: Option<QueueFailure>,
    },
    /// A worker panicked (reported by its watcher, src/queue/supervisor.rs).
    WorkerFailed {
        worker: WorkerId,
        key: QueueKey,
        source: Option<std::net::IpAddr>,
        reason: String,
    },
    /// A worker of a domain's own queue found the domain's MX hosts in `<mx-rollup-list>` or the
    /// provider table: the queue's mail moves to the rollup (src/queue/rollup/).
    RollUp {
        key: QueueKey,
        matched: super::rollup::Matched,
    },
    /// `auto-mx-rollup`: a worker of a domain's own queue reports the domain's most preferred MX
    /// hosts; the answer says whether the domain now shares a rollup with others of that set.
    MxSeen {
        key: QueueKey,
        hosts: Vec<String>,
        reply: oneshot::Sender<bool>,
    },
    /// `ember explain DOMAIN`: where a domain's mail goes, given its most preferred MX hosts.
    Route {
        domain: String,
        hosts: Vec<String>,
        reply: oneshot::Sender<rollup::DomainRoute>,
    },
    Snapshot(oneshot::Sender<Vec<QueueStatus>>),
    /// An operator's command on the queues matching a pattern; the reply is how many matched.
    Command {
        queues: String,
        command: Command,
        reply: oneshot::Sender<usize>,
    },
    /// Job pauses, deletes and the shutdown drain.
    Operate {
        op: Operation,
        reply: oneshot::Sender<OperationResult>,
    },
    /// The job ids an operator paused.
    PausedJobs(oneshot::Sender<Vec<String>>),
    /// Runs what the timer runs (due work, expiries, new connections) now, then answers: unit
    /// tests move a manual clock and tick.
    #[cfg(test)]
    Tick(oneshot::Sender<usize>),
    /// How many queues are scheduled for every tick and how many have a timer armed.
    #[cfg(test)]
    Agenda(oneshot::Sender<(usize, usize)>),
    /// The state saver wrote every snapshot up to this ticket (src/queue/state_file.rs).
    StateSaved(u64),
    /// A reservation of the cluster's warm-up allowance was answered (`warm.rs`); `granted` is
    /// `None` when Redis did not answer.
    Allowance {
        counter: String,
        day: u64,
        granted: Option<u64>,
    },
    /// A call for a warm-up schedule shared by the cluster came back (`warm.rs`); `answer` is
    /// `None` when Redis did not answer.
    RampSynced {
        ask: crate::queue::ramp::RampAsk,
        answer: Option<crate::cluster::ramp::RampAnswer>,
    },
    /// A feedback-loop complaint about mail to a domain (adaptive delivery's complaint ratio).
    Complaint(crate::events::feedback::Complaint),
    /// Everything queued, for `ember drain` (`handover.rs`).
    Queued(oneshot::Sender<Vec<(QueueKey, Job)>>),
    /// A peer accepted these recipients (`ember drain`): they leave the queue.
    HandedOver {
        key: QueueKey,
        job: Job,
        reply: Reply,
        peer: Remote,
    },
}

/// A job diverted to a cold VMTA, filed once the diversion is durable.
struct Diverted {
    ticket: u64,
    key: QueueKey,
    settings: Arc<QueueSettings>,
    job: Job,
    not_before: u64,
}

pub struct Manager {
    config: Arc<Config>,
    spool: Spool,
    resolver: MxResolver,
    reporter: Reporter,
    rotation: Rotation,
    queues: QueueTable,
    total_connections: usize,
    vmta_connections: HashMap<String, usize>,
    events: Events,
    /// Wall-clock and monotonic time for every decision the queues make (a manual clock in tests).
    clock: Clock,
    warmup: Warmup,
    ramps: Ramps,
    /// What adaptive delivery learned, saved across restarts.
    learned: crate::queue::adaptive::store::LearnedStore,
    /// Jobs whose warm-up diversion the saver has not yet made durable.
    diverted: Vec<Diverted>,
    /// Cluster mode: fresh jobs of warm VMTAs held until a block of the cluster's warm-up
    /// allowance is reserved (`warm.rs`).
    awaiting: Vec<warm::Awaiting>,
    /// `max-smtp-msg-rate` and `max-smtp-data-volume-rate` of virtual MTAs and pools.
    shared_rates: SharedRates,
    /// Job ids an operator paused: their work waits in each queue's `held` list.
    paused_jobs: HashSet<String>,
    /// Shutting down: no new connections, no new work for open ones.
    draining: bool,
    drain_waiters: Vec<oneshot::Sender<OperationResult>>,
    /// DKIM keys, swapped by the daemon on reload.
    dkim: crate::dkim::Keys,
    /// `<mx-rollup-list>` and the domains found to belong to a rollup.
    rollups: Rollups,
    /// `mx-connection-limit` / `ip-connection-limit`: connections open per destination.
    dest_limits: Arc<DestLimits>,
    /// What runs a connection (`supervisor::real_worker` but in unit tests).
    run_worker: WorkerFn,
    next_worker: WorkerId,
    /// Jobs handed to workers and not yet reported.
    in_flight: InFlight,
    settings_cache: SettingsCache,
    /// Cluster mode: connections take shared leases and messages shared rates.
    cluster: Option<crate::cluster::Cluster>,
    /// MTA-STS policies and TLS-RPT counts, for every connection.
    tls_policies: Option<Arc<crate::delivery::tls_policy::TlsPolicies>>,
}

/// How often waiting work is checked when nothing else happens.
const TICK: Duration = Duration::from_millis(250);

/// A manager whose handle exists (so the ingress can be built around it) but that waits for its
/// reporter, which needs the same generation's accounting, before it runs.
pub struct Pending {
    pub handle: QueueHandle,
    rx: mpsc::Receiver<Event>,
    config: Arc<Config>,
    spool: Spool,
    resolver: MxResolver,
    state_dir: Option<std::path::PathBuf>,
    dkim: crate::dkim::Keys,
    run_worker: WorkerFn,
    clock: Clock,
    cluster: Option<crate::cluster::Cluster>,
    tls_policies: Option<Arc<crate::delivery::tls_policy::TlsPolicies>>,
}

impl Pending {
    /// Connections apply the recipient domains' MTA-STS policies and count for TLS-RPT.
    pub fn with_tls_policies(mut self, policies: Arc<crate::delivery::tls_policy::TlsPolicies>) -> Pending {
        self.tls_policies = Some(policies);
        self
    }

    /// Shares limits with the other nodes of `cluster`.
    pub fn with_cluster(mut self, cluster: Option<crate::cluster::Cluster>) -> Pending {
        self.cluster = cluster;
        self
    }

    /// Connections run `run` instead of the real worker (unit tests of the manager).
    #[cfg(test)]
    pub fn with_worker(mut self, run: WorkerFn) -> Pending {
        self.run_worker = run;
        self
    }

    /// The manager reads `clock` (a manual one, in unit tests).
    #[cfg(test)]
    pub fn with_clock(mut self, clock: Clock) -> Pending {
        self.clock = clock;
        self
    }

    /// Starts the manager task. Events sent to the handle before this are kept.
    pub fn run(self, reporter: Reporter) -> QueueHandle {
        let tx = self.handle.tx.clone();
        // Weak: the saver thread must not keep the manager's channel open.
        let saved = tx.downgrade();
        let saver = self.state_dir.as_ref().map(|_| {
            StateSaver::start(move |ticket| {
                // The saver is a thread of its own: it may wait for room in the inbox.
                if let Some(tx) = saved.upgrade()
                    && tx.blocking_send(Event::StateSaved(ticket)).is_err()
                {
                    tracing::debug!("state saved after the queue manager stopped");
                }
            })
        });
        let state_file = |name: &str| Some(saver.as_ref()?.file(self.state_dir.as_ref()?.join(name)));
        let manager = Manager {
            rollups: Rollups::new(&self.config, self.clock.clone()),
            dest_limits: DestLimits::from_config(&self.config),
            config: self.config,
            spool: self.spool,
            resolver: self.resolver,
            reporter: reporter.with_events(tx.clone()),
            rotation: Rotation::default(),
            queues: QueueTable::default(),
            total_connections: 0,
            vmta_connections: HashMap::new(),
            events: tx,
            clock: self.clock,
            warmup: Warmup::load(state_file("warmup.json")),
            ramps: Ramps::load(state_file("warmup-schedule.json")),
            learned: crate::queue::adaptive::store::LearnedStore::load(state_file("adaptive.json")),
            diverted: Vec::new(),
            awaiting: Vec::new(),
            shared_rates: SharedRates::default(),
            paused_jobs: HashSet::new(),
            draining: false,
            drain_waiters: Vec::new(),
            dkim: self.dkim,
            run_worker: self.run_worker,
            next_worker: 0,
            in_flight: InFlight::default(),
            settings_cache: SettingsCache::default(),
            cluster: self.cluster,
            tls_policies: self.tls_policies,
        };
        tokio::spawn(manager.run(self.rx));
        self.handle
    }
}

impl Manager {
    /// `state_dir` holds small state that must survive restarts (warm-up counters).
    pub fn start_pending(
        config: Arc<Config>,
        spool: Spool,
        resolver: MxResolver,
        state_dir: Option<std::path::PathBuf>,
        dkim: crate::dkim::Keys,
    ) -> Pending {
        let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
        Pending {
            handle: QueueHandle { tx },
            rx,
            config,
            spool,
            resolver,
            state_dir,
            dkim,
            run_worker: supervisor::real_worker(),
            clock: Clock::system(),
            cluster: None,
            tls_policies: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(e) => self.handle(e),
                    None => return,
                },
                _ = tick.tick() => {
                    self.wake();
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Submit(envelope, fresh) => self.submit(Arc::new(*envelope), fresh),
            Event::Reload(config, reporter) => self.reload(config, reporter),
            Event::Next { worker, key, source, mx, reply } => self.answer_next(worker, &key, source, mx, reply),
            Event::Outcome { worker, key, job, replies, remote } => {
                self.in_flight.reported(worker, &job);
                self.outcome(Some(worker), &key, job, &replies, &remote);
            }
            Event::ConnectionEnded { worker, key, source, failure } => {
                self.reap(worker, &key, None);
                self.connection_ended(worker, &key, source, failure);
            }
            Event::WorkerFailed { worker, key, source, reason } => {
                self.reap(worker, &key, Some(&reason));
                self.connection_ended(worker, &key, source, None);
            }
            Event::RollUp { key, matched } => self.roll_up_domain(&key, &matched),
            Event::MxSeen { key, hosts, reply } => {
                let rolled = self.mx_seen(&key, &hosts);
                reply.answer(rolled);
            }
            Event::Route { domain, hosts, reply } => {
                let route = self.route(&domain, &hosts);
                reply.answer(route);
            }
            Event::Snapshot(reply) => {
                reply.answer(self.snapshot());
            }
            Event::Command { queues, command, reply } => {
                let keys: Vec<QueueKey> = self.queues.keys().filter(|k| queue_matches(&queues, k)).cloned().collect();
                for key in &keys {
                    let q = self.queues.get_mut(key).expect("listed");
                    let before = q.shared_mode();
                    q.command(&command);
                    self.share_mode(key, &before);
                    // `schedule` may have made work of a paused job ready: it stays held.
                    self.hold_paused(key);
                    self.start_workers(key);
                }
                reply.answer(keys.len());
            }
            Event::Operate { op, reply } => self.operate(op, reply),
            Event::Shared { from, change } => self.apply_shared(&from, change),
            #[cfg(test)]
            Event::Tick(reply) => {
                reply.answer(self.wake());
            }
            #[cfg(test)]
            Event::Agenda(reply) => reply.answer(self.queues.scheduled()),
            Event::PausedJobs(reply) => {
                let mut jobs: Vec<String> = self.paused_jobs.iter().cloned().collect();
                jobs.sort();
                reply.answer(jobs);
            }
            Event::Allowance { counter, day, granted } => self.allowance(&counter, day, granted),
            Event::RampSynced { ask, answer } => self.ramps.answered(ask, answer, self.clock.now_secs()),
            Event::Queued(reply) => self.answer_queued(reply),
            Event::Complaint(c) => self.complaint(&c),
            Event::HandedOver { key, job, reply, peer } => self.handed_over(&key, job, &reply, &peer),
            Event::StateSaved(done) => {
                let (durable, later) = std::mem::take(&mut self.diverted).into_iter().partition(|d| d.ticket <= done);
                self.diverted = later;
                for d in durable {
                    self.file(d.key, d.settings, d.job, d.not_before, true);
                }
            }
        }
    }

    /// Seconds on the monotonic clock the rate limiters use.
    fn monotonic(&self) -> f64 {
        self.clock.elapsed()
    }

    fn settings(&mut self, domain: &str, vmta: &str) -> Option<Arc<QueueSettings>> {
        self.settings_cache.get(&self.config, domain, vmta)
    }

    fn submit(&mut self, envelope: Arc<Envelope>, fresh: bool) {
        let vmta = match self.rotation.member(&self.config, envelope.vmta.as_deref()) {
            Ok(v) => v,
            Err(reply) => {
                let all: Vec<usize> = envelope.live_recipients().map(|(i, _)| i).collect();
                let job = Job { envelope, recipients: all, attempts: 0 };
                self.reporter.bounce(
                    &self.spool,
                    &job,
                    &job.recipients,
                    &reply,
                    &Remote::default(),
                    None,
                    None,
                    &self.config,
                );
                return;
            }
        };
        let mut groups: BTreeMap<String, (Arc<QueueSettings>, Vec<usize>, u32)> = BTreeMap::new();
        for (i, r) in envelope.live_recipients() {
            let Some(settings) = self.settings(&r.domain(), &vmta) else { continue };
            let attempts = match r.state {
                RecipientState::Pending { attempts, .. } => attempts,
                _ => 0,
            };
            let entry =
                groups.entry(settings.queue.clone()).or_insert_with(|| (Arc::clone(&settings), Vec::new(), attempts));
            entry.1.push(i);
            entry.2 = entry.2.max(attempts);
        }
        for (queue, (settings, recipients, attempts)) in groups {
            let not_before = envelope
                .recipients
                .iter()
                .filter_map(|r| match r.state {
                    RecipientState::Pending { not_before, .. } => Some(not_before),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let mut key = QueueKey { name: queue, vmta: vmta.clone() };
            let mut settings = settings;
            // A domain already found to belong to a rollup is filed in the rollup's queue.
            if let Some(rollup) = self.rollups.current(&key.name).map(str::to_string)
                && let Some(rollup_settings) = self.settings(&rollup, &vmta)
            {
                key.name = rollup;
                settings = rollup_settings;
            }
            self.reroute(&mut key, &mut settings);
            let job = Job { envelope: Arc::clone(&envelope), recipients, attempts };
            self.place(&vmta, key, settings, job, not_before, fresh);
        }
    }

    /// Puts a job in its queue: held (paused job), waiting (not due yet) or ready.
    fn file(&mut self, key: QueueKey, settings: Arc<QueueSettings>, job: Job, not_before: u64, fresh: bool) {
        let held = self.held(&job);
        let config = Arc::clone(&self.config);
        let clock = self.clock.clone();
        let learned = &self.learned;
        let q = self.queues.get_or_insert_with(&key, || new_queue(settings, &config, &clock, learned.saved(&key)));
        if held {
            q.held.push(job);
        } else if not_before > self.clock.now_secs() {
            q.waiting.entry(not_before).or_default().push(job);
        } else {
            q.enqueue(job);
            // retry-upon-new-mail: a new message ends the queue's retry wait (not mail
            // recovered at start, nor a retry coming due).
            if fresh && q.retry_until.is_some() && q.settings.policy.retry_upon_new_mail {
                q.retry_until = None;
                q.record("normal", "new mail arrived (retry-upon-new-mail)".into(), None);
            }
        }
        self.start_workers(&key);
    }

    /// Follows `reroute-to-virtual-mta` (always) and `backoff-reroute-to-virtual-mta` (while the
    /// queue is in backoff) to the VMTA that takes a queue's mail. `check-config` refuses loops;
    /// the hop limit guards against one anyway.
    fn reroute(&mut self, key: &mut QueueKey, settings: &mut Arc<QueueSettings>) {
        for _ in 0..8 {
            let s = &settings.settings;
            let in_backoff = self.queues.get(key).is_some_and(|q| q.backoff.is_some());
            let target = s
                .text(Dir::RerouteToVirtualMta)
                .or_else(|| s.text(Dir::BackoffRerouteToVirtualMta).filter(|_| in_backoff))
                .map(str::to_string);
            let Some(target) = target else { return };
            let Ok(member) = self.rotation.member(&self.config, Some(&target)) else { return };
            if member == key.vmta {
                return;
            }
            let Some(next) = self.settings(&key.name, &member) else { return };
            tracing::debug!("{key} reroutes to {member}");
            key.vmta = member;
            *settings = next;
        }
    }

    /// A queue in backoff with `backoff-reroute-to-virtual-mta` hands its ready mail to that VMTA's
    /// queue for the same destination (new mail is routed there by `reroute`).
    fn move_backoff_rerouted(&mut self, key: &QueueKey) {
        let Some(q) = self.queues.get(key) else { return };
        if q.backoff.is_none() || q.ready.is_empty() {
            return;
        }
        let Some(target) = q.settings.settings.text(Dir::BackoffRerouteToVirtualMta).map(str::to_string) else {
            return;
        };
        let Ok(member) = self.rotation.member(&self.config, Some(&target)) else { return };
        let Some(settings) = self.settings(&key.name, &member).filter(|_| member != key.vmta) else { return };
        let to = QueueKey { name: key.name.clone(), vmta: member };
        let q = self.queues.get_mut(key).expect("present");
        let jobs: Vec<Job> = q.ready.drain(..).collect();
        q.record(
            "backoff-reroute",
            format!("{} messages moved to {to} (backoff-reroute-to-virtual-mta)", jobs.len()),
            None,
        );
        let config = Arc::clone(&self.config);
        let clock = self.clock.clone();
        let learned = &self.learned;
        let target = self.queues.get_or_insert_with(&to, || new_queue(settings, &config, &clock, learned.saved(&to)));
        for job in jobs {
            target.enqueue(job);
        }
        self.start_workers(&to);
    }

    fn reload(&mut self, config: Arc<Config>, reporter: Reporter) {
        self.rollups.reload(&config);
        self.dest_limits.reload(&config);
        self.config = config;
        self.settings_cache.clear();
        self.reporter = reporter.continue_from(&self.reporter);
        let keys: Vec<QueueKey> = self.queues.keys().cloned().collect();
        for key in keys {
            let vmta_exists = key.vmta == crate::config::DEFAULT_VMTA || self.config.vmta(&key.vmta).is_some();
            if !vmta_exists {
                let reply = Reply::new(550, "5.3.5", format!("specified VirtualMTA does not exist: \"{}\"", key.vmta));
                self.bounce_all(&key, &reply, &Remote::default());
                continue;
            }
            if let Some(settings) = self.settings(&key.name, &key.vmta) {
                let q = self.queues.get_mut(&key).expect("listed");
                let fresh = new_queue(Arc::clone(&settings), &self.config, &self.clock, HashMap::new());
                q.schedule = fresh.schedule;
                q.rules = fresh.rules;
                if q.rate_text != fresh.rate_text {
                    q.rate = fresh.rate;
                    q.rate_text = fresh.rate_text;
                }
                q.connect_rate = fresh.connect_rate;
                q.data_rate = fresh.data_rate;
                q.sources.reset();
                q.ramp = fresh.ramp;
                q.rule_ratios = fresh.rule_ratios;
                // Adaptive delivery keeps what it learned, within the new bounds.
                match (q.adaptive.as_mut(), fresh.adaptive) {
                    (Some(old), Some(new)) => old.retune(new.tuning, self.clock.elapsed()),
                    (_, new) => q.adaptive = new,
                }
                q.settings = settings;
            }
        }
    }

    /// Moves due work to the ready lists, ends expired retry waits, starts connections: for the
    /// queues the table says need a look (touched, busy or due), not all of them. Returns how many
    /// it looked at.
    fn wake(&mut self) -> usize {
        self.warmup.save();
        self.ramps.save();
        let now = self.clock.now_secs();
        self.sync_ramps(now);
        let mut visit = self.queues.due(now);
        // Higher queue-priority first, so scarce connection slots go to it.
        self.rank(&mut visit);
        let mut notices = Vec::new();
        for key in &visit {
            self.expire_idle(key, false);
            let Some(q) = self.queues.get_mut(key) else { continue };
            q.expire();
            notices.append(&mut q.notices);
            let due: Vec<u64> = q.waiting.range(..=now).map(|(t, _)| *t).collect();
            for t in due {
                if let Some(jobs) = q.waiting.remove(&t) {
                    for job in jobs {
                        if job.envelope.job_id.as_ref().is_some_and(|j| self.paused_jobs.contains(j)) {
                            q.held.push(job);
                        } else {
                            q.enqueue(job);
                        }
                    }
                }
            }
            self.move_backoff_rerouted(key);
            self.start_workers(key);
        }
        // Settled after every look: a later queue's look may have changed an earlier one
        // (backoff-reroute moves mail between queues).
        for key in &visit {
            self.queues.settle(key);
        }
        if !notices.is_empty() {
            super::notify::send(notices, &self.config, self.reporter.host_name(), &self.spool, &self.events);
        }
        visit.len()
    }

    /// Queues with ready work, highest `queue-priority` first.
    fn ready_by_priority(&self) -> Vec<QueueKey> {
        let mut keys: Vec<QueueKey> =
            self.queues.iter().filter(|(_, q)| !q.ready.is_empty()).map(|(k, _)| k.clone()).collect();
        self.rank(&mut keys);
        keys
    }

    /// Orders `keys` highest `queue-priority` first (ties: the most work waiting).
    fn rank(&self, keys: &mut [QueueKey]) {
        keys.sort_by_cached_key(|k| {
            let q = self.queues.get(k);
            std::cmp::Reverse((q.map_or(0, |q| q.settings.policy.queue_priority), q.map_or(0, |q| q.ready.len())))
        });
    }
}
