//! The state of one queue: its work (ready and waiting jobs), its mode (normal, retry,
//! backoff) with the reasons behind it, its rate limiters, and the operator's changes. The
//! manager owns every `Queue`; nothing here spawns tasks or touches the network.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::backoff::{Effect, Rules, Trigger};
use super::limits::{Limiter, SourceLimits, Unit, data_gcra, data_rate, take_all};
use super::manager::{Command, Job, NextJob};
use super::rate::Gcra;
use super::schedule::Schedule;
use crate::clock::Clock;
use crate::config::resolve::QueueSettings;
use crate::config::values::Rate;
use crate::config::{Config, Dir};
use crate::smtp::Reply;

/// A change of a queue's mode, kept for `show queues` and `explain`.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModeEvent {
    pub time: u64,
    pub mode: String,
    pub reason: String,
    pub until: Option<u64>,
}

/// A queue in backoff: fewer connections, a lower rate, until `until`.
#[derive(Clone, Debug)]
pub(super) struct Backoff {
    pub(super) until: Option<u64>,
    pub(super) max_smtp_out: usize,
    pub(super) rate: Option<Gcra>,
    /// The rate as configured, for the other nodes of a cluster.
    pub(super) rate_spec: Option<Rate>,
    pub(super) rate_text: String,
    pub(super) reason: String,
    /// `backoff-max-connect-rate` and `backoff-max-data-volume-rate` (else the normal ones).
    pub(super) connect_rate: Option<Gcra>,
    pub(super) data_rate: Option<Gcra>,
}

impl Backoff {
    fn new(
        settings: &QueueSettings,
        until: Option<u64>,
        max_smtp_out: usize,
        rate: Option<Rate>,
        reason: String,
    ) -> Self {
        let s = &settings.settings;
        let data = data_rate(s, Dir::BackoffMaxDataVolumeRate).or_else(|| data_rate(s, Dir::MaxDataVolumeRate));
        Backoff {
            until,
            max_smtp_out,
            rate: rate.map(|r| Gcra::new(r, 1)),
            rate_spec: rate,
            rate_text: rate.map_or_else(|| "unlimited".to_string(), |r| r.to_string()),
            reason,
            connect_rate: settings.policy.backoff_max_connect_rate.map(|r| Gcra::new(r, 1)),
            data_rate: data.and_then(data_gcra),
        }
    }
}

/// The backoff reason of `backoff-upon-all-sources-disabled`.
pub(super) const ALL_SOURCES_DISABLED: &str =
    "every source IP is disabled for this queue (backoff-upon-all-sources-disabled)";

/// Most mode changes kept per queue (PowerMTA keeps 10).
pub(super) const MODE_EVENTS: usize = 10;

pub(super) struct Queue {
    pub(super) settings: Arc<QueueSettings>,
    pub(super) schedule: Schedule,
    pub(super) ready: VecDeque<Job>,
    /// Jobs waiting for their retry time (Unix seconds).
    pub(super) waiting: BTreeMap<u64, Vec<Job>>,
    pub(super) connections: usize,
    pub(super) retry_until: Option<u64>,
    pub(super) retry_step: usize,
    pub(super) last_error: Option<String>,
    pub(super) delivered: u64,
    pub(super) bounced: u64,
    pub(super) deferred: u64,
    pub(super) rules: Rules,
    /// `max-msg-rate`, counted in recipients.
    pub(super) rate: Option<Gcra>,
    pub(super) rate_text: String,
    /// `max-connect-rate`.
    pub(super) connect_rate: Option<Gcra>,
    /// `max-data-volume-rate`, in bytes.
    pub(super) data_rate: Option<Gcra>,
    /// Connections and rates per local source IP (`source-ip-max-*`).
    pub(super) sources: SourceLimits,
    pub(super) backoff: Option<Backoff>,
    pub(super) events: VecDeque<ModeEvent>,
    /// The limit a worker last had to wait for, while it holds.
    pub(super) rate_limited: Option<String>,
    /// Recent match times of rules with a `trigger=` threshold.
    pub(super) matches: HashMap<String, VecDeque<u64>>,
    /// `backoff-to-normal-after-delivery`.
    pub(super) normal_after_delivery: bool,
    /// TLS sessions of this queue's connections, resumed by the next ones under
    /// `reuse-ssl-session yes`.
    pub(super) tls_sessions: Arc<crate::delivery::client::SessionCache>,
    /// A connection to this queue's hosts has carried a transaction since the last connection
    /// failure; until then the queue opens one connection at a time.
    pub(super) proven: bool,
    /// When the queue last opened a connection (`smtp-out-rampup-interval`).
    /// When the last connection opened (`Clock::elapsed`), for `smtp-out-rampup-interval`.
    pub(super) last_connect: Option<f64>,
    /// The manager's clock: every time this state records or compares comes from it.
    pub(super) clock: Clock,
    /// Connections waiting for mail (`connection-idle-timeout`).
    pub(super) idle: VecDeque<super::manager::dispatch::IdleConnection>,
    /// `warmup-schedule`, when this VMTA is warming up for this queue.
    pub(super) ramp: Option<super::ramp::Plan>,
    /// MX hosts a `skip-mx` rule set aside, with the time they may be used again.
    pub(super) skipped_mx: HashMap<String, u64>,
    /// Source IPs an operator disabled for this queue, with the time they come back.
    pub(super) disabled_sources: HashMap<std::net::IpAddr, Option<u64>>,
    /// Paused by an operator: no connections until resumed.
    pub(super) paused: bool,
    /// Work of paused jobs, released by `resume job`.
    pub(super) held: Vec<Job>,
    /// Mode changes to mail to `backoff-notify` / `disabled-source-ip-notify` (queue/notify.rs),
    /// sent by the manager's next tick.
    pub(super) notices: Vec<super::notify::Notice>,
    /// Whether the last notice sent said the queue is in backoff, so leaving it is noticed once.
    pub(super) noticed_backoff: bool,
    /// `adaptive-delivery`: the learned limits per source IP (src/queue/adaptive/).
    pub(super) adaptive: Option<super::adaptive::per_queue::QueueAdaptive>,
    /// Attempts and matches of `<smtp-pattern-list>` rules with a ratio trigger, by rule.
    pub(super) rule_ratios: HashMap<String, super::adaptive::window::Window>,
}

impl Queue {
    /// Adds ready work in `recipient-priority` order (higher first; 50 when unset, PowerMTA's
    /// middle), first come first served within a priority.
    pub(super) fn enqueue(&mut self, job: Job) {
        let priority = |j: &Job| j.envelope.priority.unwrap_or(50);
        let p = priority(&job);
        if self.ready.back().is_none_or(|last| priority(last) >= p) {
            self.ready.push_back(job);
            return;
        }
        let at = self.ready.iter().position(|j| priority(j) < p).unwrap_or(self.ready.len());
        self.ready.insert(at, job);
    }

    pub(super) fn connection_cap(&self) -> usize {
        let normal = self.settings.policy.max_smtp_out;
        self.backoff.as_ref().map_or(normal, |b| b.max_smtp_out.min(normal))
    }

    pub(super) fn record(&mut self, mode: &str, reason: String, until: Option<u64>) {
        tracing::info!("queue mode {mode}: {reason}");
        let left_backoff = mode == "normal" && self.noticed_backoff && self.backoff.is_none();
        if mode == "backoff" || left_backoff {
            self.noticed_backoff = mode == "backoff";
        }
        let recipients = super::notify::recipients(&self.settings.settings, mode, left_backoff);
        if !recipients.is_empty() {
            self.notices.push(super::notify::Notice {
                queue: self.settings.name(),
                mode: mode.to_string(),
                reason: reason.clone(),
                until,
                time: self.clock.now_secs(),
                recipients,
            });
        }
        if crate::events::enabled() {
            let mut e = crate::events::Event::new(crate::events::EventKind::Adaptive);
            e.queue = Some(self.settings.name());
            e.vmta = Some(self.settings.vmta.clone());
            e.mode = Some(mode.to_string());
            e.reason = Some(reason.clone());
            crate::events::emit(e);
        }
        self.events.push_back(ModeEvent { time: self.clock.now_secs(), mode: mode.to_string(), reason, until });
        while self.events.len() > MODE_EVENTS {
            self.events.pop_front();
        }
    }

    /// Applies what a reply asks for (docs/operations.md, "Shaping"). A rule with a
    /// `trigger=N/INTERVAL` acts only on its Nth match within the interval.
    /// Returns what the manager must still do (bounces); source IPs are disabled here.
    pub(super) fn react(&mut self, reply: &Reply, source: Option<std::net::IpAddr>, mx: Option<&str>) -> Vec<Effect> {
        let Some(matched) = self.rules.check(reply) else { return Vec::new() };
        if let Some(threshold) = matched.threshold {
            let now = self.clock.now_secs();
            let seen = self.matches.entry(matched.rule.clone()).or_default();
            seen.push_back(now);
            while seen.front().is_some_and(|t| now.saturating_sub(*t) >= threshold.period) {
                seen.pop_front();
            }
            if (seen.len() as u64) < threshold.count {
                tracing::info!(
                    "rule {} matched \"{reply}\" ({} of {} within its trigger)",
                    matched.rule,
                    seen.len(),
                    threshold
                );
                return Vec::new();
            }
            seen.clear();
        }
        if let Some(ratio) = matched.ratio {
            use super::adaptive::window::{ATTEMPTS, DEFERRED};
            let now = self.clock.elapsed();
            let Some(w) = self.rule_ratios.get_mut(&matched.rule) else { return Vec::new() };
            w.add(now, DEFERRED, 1);
            let (base, seen) = (w.total(now, ATTEMPTS), w.total(now, DEFERRED));
            if base < ratio.min_sample || seen * 10_000 <= ratio.basis_points * base {
                tracing::info!(
                    "rule {} matched \"{reply}\" ({seen} of {base} attempts, trigger {ratio})",
                    matched.rule
                );
                return Vec::new();
            }
            w.clear();
        }
        let mut effects = Vec::new();
        for effect in matched.effects {
            match effect {
                Effect::DisableSourceIp(reenable) => {
                    if let Some(ip) = source {
                        let until = reenable.map(|d| self.clock.now_secs() + d.as_secs());
                        self.disabled_sources.insert(ip, until);
                        self.record(
                            "source-disabled",
                            format!("{} matched \"{reply}\": source IP {ip} disabled", matched.rule),
                            until,
                        );
                    }
                }
                Effect::SkipMx => {
                    // Set aside until the queue's first retry interval has passed.
                    if let Some(mx) = mx.filter(|m| !m.is_empty()) {
                        let until = self.clock.now_secs() + self.schedule.queue_retry(0, false).as_secs().max(1);
                        self.skipped_mx.insert(mx.to_string(), until);
                        self.record(
                            "skip-mx",
                            format!("{} matched \"{reply}\": MX {mx} skipped", matched.rule),
                            Some(until),
                        );
                    }
                    effects.push(Effect::SkipMx);
                }
                other => effects.push(other),
            }
        }
        let Some(trigger) = matched.trigger else { return effects };
        match trigger {
            Trigger::DeferQueue { rule } => {
                let wait = self.schedule.queue_retry(self.retry_step, self.backoff.is_some());
                self.retry_until = Some(self.clock.now_secs() + wait.as_secs().max(1));
                self.record("retry", format!("{rule} matched \"{reply}\" (defer-queue)"), self.retry_until);
            }
            Trigger::Backoff { duration, max_smtp_out, rate, rule } => {
                let until = duration.map(|d| self.clock.now_secs() + d.as_secs());
                let reason = format!("{rule} matched \"{reply}\"");
                let renewing = self.backoff.as_ref().is_some_and(|b| b.reason == reason);
                let mut backoff = Backoff::new(&self.settings, until, max_smtp_out, rate, reason.clone());
                let rate_text = backoff.rate_text.clone();
                if let Some(old) = self.backoff.take().filter(|_| renewing) {
                    // The same rule again: keep the limiters' state, extend the time.
                    backoff = Backoff { until, ..old };
                }
                self.backoff = Some(backoff);
                if !renewing {
                    self.record(
                        "backoff",
                        format!("{reason}: max-smtp-out {max_smtp_out}, max-msg-rate {rate_text}"),
                        until,
                    );
                }
            }
            Trigger::Normal { rule } if self.backoff.is_some() => {
                self.backoff = None;
                self.record("normal", format!("{rule} matched \"{reply}\""), None);
            }
            Trigger::Normal { .. } => {}
        }
        effects
    }

    /// Enters backoff with the queue's `backoff-*` settings (not a rule's), until a mode=normal
    /// reply, `backoff-to-normal-after*`, or an operator ends it.
    pub(super) fn enter_backoff(&mut self, reason: &str) {
        let p = &self.settings.policy;
        let max_smtp_out = p.backoff_max_smtp_out;
        let rate = p.backoff_max_msg_rate;
        let until = p.backoff_to_normal_after.map(|d| self.clock.now_secs() + d.as_secs());
        let backoff = Backoff::new(&self.settings, until, max_smtp_out, rate, reason.to_string());
        let rate_text = backoff.rate_text.clone();
        self.backoff = Some(backoff);
        self.record("backoff", format!("{reason}: max-smtp-out {max_smtp_out}, max-msg-rate {rate_text}"), until);
    }

    /// In backoff because every source IP is disabled (`backoff-upon-all-sources-disabled`):
    /// the disabled IPs carry the queue's mail at the backoff limits.
    pub(super) fn probing_disabled_sources(&self) -> bool {
        self.backoff.as_ref().is_some_and(|b| b.reason == ALL_SOURCES_DISABLED)
    }

    pub(super) fn command(&mut self, command: &Command) {
        match command {
            Command::Backoff => self.enter_backoff("set by an operator (ember set queue --mode=backoff)"),
            Command::Normal => {
                self.backoff = None;
                self.retry_until = None;
                self.record("normal", "set by an operator (ember set queue --mode=normal)".into(), None);
            }
            Command::DisableSource { ip, until } => {
                self.disabled_sources.insert(*ip, *until);
                self.record("source-disabled", format!("source IP {ip} disabled by an operator"), *until);
            }
            Command::Pause => {
                if !self.paused {
                    self.paused = true;
                    self.record("paused", "paused by an operator (ember pause queue)".into(), None);
                }
            }
            Command::Resume => {
                if self.paused {
                    self.paused = false;
                    self.record("normal", "resumed by an operator (ember resume queue)".into(), None);
                }
            }
            Command::Schedule { recipients } => {
                self.retry_until = None;
                if *recipients {
                    for job in std::mem::take(&mut self.waiting).into_values().flatten() {
                        self.enqueue(job);
                    }
                }
            }
            Command::EnableSource { ip } => {
                if self.disabled_sources.remove(ip).is_some() {
                    self.record("source-enabled", format!("source IP {ip} enabled by an operator"), None);
                }
            }
        }
    }

    /// The MX hosts new connections should avoid now (expired entries dropped).
    pub(super) fn skipped_mx_now(&mut self) -> Vec<String> {
        let now = self.clock.now_secs();
        self.skipped_mx.retain(|_, until| *until > now);
        self.skipped_mx.keys().cloned().collect()
    }

    /// Ends the retry wait and the backoff whose time has come.
    pub(super) fn expire(&mut self) {
        let now = self.clock.now_secs();
        if self.retry_until.is_some_and(|t| t <= now) {
            self.retry_until = None;
        }
        if self.backoff.as_ref().is_some_and(|b| b.until.is_some_and(|t| t <= now)) {
            let reason = self.backoff.take().map(|b| b.reason).unwrap_or_default();
            self.record("normal", format!("backoff ended (its time ran out; it began with {reason})"), None);
        }
    }

    /// Whether a source IP may be used for this queue now (re-enabling expired disables).
    pub(super) fn source_allowed(&mut self, ip: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        match self.disabled_sources.get(&ip) {
            None => true,
            Some(Some(until)) if *until <= self.clock.now_secs() => {
                self.disabled_sources.remove(&ip);
                self.record("source-enabled", format!("source IP {ip} re-enabled (its time ran out)"), None);
                true
            }
            Some(_) => false,
        }
    }

    pub(super) fn waiting_reason(&self) -> Option<String> {
        if self.paused {
            return Some("paused by an operator (ember resume queue to restart it)".into());
        }
        if let Some(t) = self.retry_until {
            return Some(format!(
                "retry: waiting until {} after a connection failure ({})",
                crate::time::acct(t),
                self.last_error.as_deref().unwrap_or("")
            ));
        }
        if let Some(b) = &self.backoff {
            let until = b
                .until
                .map_or_else(|| "until a mode=normal reply".to_string(), |t| format!("until {}", crate::time::acct(t)));
            return Some(format!(
                "backoff {until}: max-smtp-out {}, max-msg-rate {} ({})",
                b.max_smtp_out, b.rate_text, b.reason
            ));
        }
        if !self.disabled_sources.is_empty() && !self.ready.is_empty() && self.connections == 0 {
            let ips: Vec<String> = self.disabled_sources.keys().map(ToString::to_string).collect();
            return Some(format!("source IPs disabled for this queue: {}", ips.join(", ")));
        }
        if let Some(limit) = self.rate_limited.as_ref().filter(|_| !self.ready.is_empty()) {
            return Some(format!("rate: {limit}"));
        }
        if !self.ready.is_empty() && self.connections >= self.connection_cap() {
            return Some(format!("connections: max-smtp-out {} reached", self.connection_cap()));
        }
        if self.ready.is_empty() && !self.waiting.is_empty() {
            let next = self.waiting.keys().next().copied().unwrap_or(0);
            return Some(format!("recipients wait for their retry time (next at {})", crate::time::acct(next)));
        }
        None
    }

    pub(super) fn recipients(&self) -> usize {
        self.ready.iter().chain(self.waiting.values().flatten()).chain(&self.held).map(|j| j.recipients.len()).sum()
    }
}

/// The next message for a worker of `q` connected from `source`: none when the queue waits
/// (retry mode), when a backoff cut its connections below the ones open, or when it is empty; a
/// wait when a rate says so. Every limiter the message meets (the queue's message and data rates
/// or their backoff values, its source IP's, and the `shared` ones of the VMTA and its pools)
/// must allow it before any is charged. `size` gives a job's size in bytes for data rates.
pub(super) fn next_job(
    q: &mut Queue,
    now: f64,
    shared: Vec<Limiter<'_>>,
    source: Option<std::net::IpAddr>,
    size: impl Fn(&Job) -> u64,
    cluster_scope: Option<&str>,
) -> NextJob {
    if q.retry_until.is_some() || q.paused || q.connections > q.connection_cap() {
        return NextJob::Done;
    }
    let Some(front) = q.ready.front() else { return NextJob::Done };
    let recipients = u32::try_from(front.recipients.len()).unwrap_or(u32::MAX);
    let (msg, data, msg_name) = match q.backoff.as_mut() {
        Some(Backoff { rate, data_rate, rate_text, .. }) => {
            (rate.as_mut(), data_rate.as_mut(), format!("backoff max-msg-rate {rate_text}"))
        }
        None => (q.rate.as_mut(), q.data_rate.as_mut(), format!("max-msg-rate {}", q.rate_text)),
    };
    let mut limiters: Vec<Limiter<'_>> = Vec::new();
    limiters.extend(msg.map(|g| Limiter::new(g, Unit::Recipients, msg_name)));
    limiters.extend(data.map(|g| Limiter::new(g, Unit::Bytes, "max-data-volume-rate")));
    if let Some(ip) = source {
        limiters.extend(q.sources.limiters(&q.settings.settings, ip));
    }
    let mut learned_name = None;
    if let Some(adaptive) = q.adaptive.as_mut()
        && let Some((g, name)) = adaptive.controller(source, now).limiter()
    {
        learned_name = Some(name.clone());
        limiters.push(Limiter::new(g, Unit::Recipients, name));
    }
    let per_queue = limiters.len();
    limiters.extend(shared);
    let needs_size = limiters.iter().any(|l| l.unit == Unit::Bytes);
    let bytes = if needs_size { size(front) } else { 0 };
    if let Err((wait, name)) = take_all(&mut limiters, now, recipients, bytes) {
        drop(limiters);
        if learned_name.as_ref() == Some(&name)
            && let Some(adaptive) = q.adaptive.as_mut()
        {
            adaptive.controller(source, now).rate_bound(now);
        }
        q.rate_limited = Some(name);
        return NextJob::Wait(wait);
    }
    let demand =
        cluster_scope.map(|scope| demand_of(&limiters, per_queue, scope, recipients, bytes)).unwrap_or_default();
    drop(limiters);
    q.rate_limited = None;
    q.ready.pop_front().map_or(NextJob::Done, |job| NextJob::Job(job, demand))
}

/// The limiters a message was charged on, as cluster-wide rates: the first `per_queue` are the
/// queue's own (shared by the nodes sending the same identity to the same queue), the rest a
/// virtual MTA's or pool's (their names say whose).
fn demand_of(
    limiters: &[Limiter<'_>],
    per_queue: usize,
    scope: &str,
    recipients: u32,
    bytes: u64,
) -> crate::cluster::Demand {
    let mut demand = crate::cluster::Demand::default();
    for (i, l) in limiters.iter().enumerate() {
        let units = match l.unit {
            Unit::Recipients => recipients,
            Unit::Bytes => u32::try_from(bytes).unwrap_or(u32::MAX),
        };
        demand.push(if i < per_queue { scope } else { "" }, &l.name, l.gcra.interval(), units);
    }
    demand
}

impl Queue {
    /// What the other nodes of a cluster must know of this queue's mode: paused, and backoff's
    /// reason and end.
    pub(super) fn shared_mode(&self) -> (bool, Option<(String, Option<u64>)>) {
        (self.paused, self.backoff.as_ref().map(|b| (b.reason.clone(), b.until)))
    }

    /// Takes a mode another node of the cluster entered; the node that entered it sends the
    /// notices (`backoff-notify`), not every node.
    pub(super) fn apply_shared(&mut self, from: &str, change: crate::cluster::state::Change) {
        use crate::cluster::state::Change;
        let notices = self.notices.len();
        match change {
            Change::Pause { .. } if !self.paused => {
                self.paused = true;
                self.record("paused", format!("paused on node {from}"), None);
            }
            Change::Resume { .. } if self.paused => {
                self.paused = false;
                self.record("normal", format!("resumed on node {from}"), None);
            }
            Change::Backoff { reason, until, max_smtp_out, rate, .. } => {
                let rate = rate.map(|(count, period)| Rate { count, period });
                let backoff = Backoff::new(&self.settings, until, max_smtp_out.max(1), rate, reason.clone());
                let rate_text = backoff.rate_text.clone();
                self.backoff = Some(backoff);
                self.record(
                    "backoff",
                    format!("{reason} (on node {from}): max-smtp-out {max_smtp_out}, max-msg-rate {rate_text}"),
                    until,
                );
            }
            Change::Normal { reason, .. } if self.backoff.is_some() => {
                self.backoff = None;
                self.record("normal", format!("{reason} (on node {from})"), None);
            }
            _ => {}
        }
        self.notices.truncate(notices);
    }

    /// What a connection of this queue shares in cluster mode: its lease (within the queue's
    /// connection cap, backoff's when in backoff) and its connect rate.
    pub(super) fn cluster_link(
        &self,
        cluster: &crate::cluster::Cluster,
        key: &super::QueueKey,
        source: Option<std::net::IpAddr>,
    ) -> super::worker::ClusterLink {
        let scope = crate::cluster::limits::scope(&key.vmta, source, &key.name);
        let mut connect = crate::cluster::Demand::default();
        let (rate, name) = match &self.backoff {
            Some(b) => (b.connect_rate.as_ref(), "backoff max-connect-rate"),
            None => (self.connect_rate.as_ref(), "max-connect-rate"),
        };
        if let Some(g) = rate {
            connect.push(&scope, name, g.interval(), 1);
        }
        super::worker::ClusterLink { cluster: cluster.clone(), cap: self.connection_cap(), scope, connect }
    }
}

/// A queue for `settings`; `learned` is what adaptive delivery had learned for it before a
/// restart (empty for a new queue).
pub(super) fn new_queue(
    settings: Arc<QueueSettings>,
    config: &Config,
    clock: &Clock,
    learned: HashMap<String, super::adaptive::Learned>,
) -> Queue {
    let s = &settings.settings;
    let rate = settings.policy.max_msg_rate;
    let rules = Rules::from_settings(&settings, config);
    Queue {
        adaptive: super::adaptive::Tuning::from_settings(&settings)
            .map(|t| super::adaptive::per_queue::QueueAdaptive::new(t, learned)),
        rule_ratios: rules
            .ratio_rules()
            .map(|(rule, ratio)| {
                let span = ratio.window.seconds().max(1) as f64;
                (rule, super::adaptive::window::Window::new(span / 60.0, span))
            })
            .collect(),
        rules,
        rate: rate.map(|r| Gcra::new(r, 1)),
        rate_text: rate.map_or_else(|| "unlimited".to_string(), |r| r.to_string()),
        connect_rate: settings.policy.max_connect_rate.map(|r| Gcra::new(r, 1)),
        data_rate: data_rate(s, Dir::MaxDataVolumeRate).and_then(data_gcra),
        sources: SourceLimits::default(),
        backoff: None,
        events: VecDeque::new(),
        rate_limited: None,
        matches: HashMap::new(),
        disabled_sources: HashMap::new(),
        skipped_mx: HashMap::new(),
        ramp: super::ramp::Plan::from_settings(&settings),
        idle: VecDeque::new(),
        paused: false,
        held: Vec::new(),
        notices: Vec::new(),
        noticed_backoff: false,
        last_connect: None,
        clock: clock.clone(),
        proven: false,
        normal_after_delivery: settings.policy.backoff_to_normal_after_delivery,
        tls_sessions: Arc::default(),
        schedule: Schedule::from_policy(&settings.policy),
        settings,
        ready: VecDeque::new(),
        waiting: BTreeMap::new(),
        connections: 0,
        retry_until: None,
        retry_step: 0,
        last_error: None,
        delivered: 0,
        bounced: 0,
        deferred: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    /// Moves the queue's manual clock to `t` seconds after its start (Unix time 1,000,000).
    fn at(q: &Queue, t: u64) {
        q.clock.set(t as f64);
    }

    fn queue(domain: &str) -> Queue {
        let text = format!("<domain *>\n    max-smtp-out 20\n{domain}</domain>\n");
        let config = load_str("q.conf", &text, Path::new("."), FileCheck::Warn).config;
        let settings = Arc::new(config.queue_settings("example.com", None).unwrap());
        new_queue(settings, &config, &Clock::manual(1_000_000), HashMap::new())
    }

    fn rp001() -> Reply {
        Reply::new(421, "4.7.0", "[RP-001] temporarily rate limited")
    }

    fn modes(q: &Queue) -> Vec<(String, u64)> {
        q.events.iter().map(|e| (e.mode.clone(), e.time - 1_000_000)).collect()
    }

    #[test]
    fn a_backoff_rule_cuts_the_queue_then_expires_on_time() {
        let mut q = queue("    421 RP-001 *, 2m, 5, 60/m\n");
        at(&q, 0);
        assert_eq!(q.connection_cap(), 20);
        q.react(&rp001(), None, None);
        assert_eq!(q.connection_cap(), 5);
        assert_eq!(q.backoff.as_ref().unwrap().until, Some(1_000_120));
        // The same reply again renews the time without a second event.
        at(&q, 60);
        q.react(&rp001(), None, None);
        at(&q, 179);
        q.expire();
        assert!(q.backoff.is_some(), "renewed until 180");
        at(&q, 180);
        q.expire();
        assert!(q.backoff.is_none());
        assert_eq!(q.connection_cap(), 20);
        assert_eq!(modes(&q), [("backoff".to_string(), 0), ("normal".to_string(), 180)]);
    }

    #[test]
    fn a_threshold_counts_matches_inside_its_window_only() {
        let mut q = queue("    421 RP-001 *, 2m, 5, 60/m, trigger=3/1m\n");
        for t in [0, 30, 61] {
            at(&q, t);
            q.react(&rp001(), None, None);
        }
        assert!(q.backoff.is_none(), "the first match fell out of the window before the third");
        at(&q, 70);
        q.react(&rp001(), None, None);
        assert!(q.backoff.is_some(), "30, 61 and 70 are three matches within a minute");
    }

    #[test]
    fn operator_modes_and_disabled_sources_expire_in_virtual_time() {
        let mut q = queue("    backoff-max-smtp-out 2\n    backoff-to-normal-after 10m\n");
        at(&q, 0);
        q.command(&Command::Backoff);
        assert_eq!(q.connection_cap(), 2);
        at(&q, 600);
        q.expire();
        assert!(q.backoff.is_none(), "backoff-to-normal-after ends an operator's backoff too");
        let ip: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        q.command(&Command::DisableSource { ip, until: Some(q.clock.now_secs() + 60) });
        assert!(!q.source_allowed(Some(ip)));
        at(&q, 660);
        assert!(q.source_allowed(Some(ip)));
        let kinds: Vec<String> = modes(&q).into_iter().map(|(m, _)| m).collect();
        assert_eq!(kinds, ["backoff", "normal", "source-disabled", "source-enabled"]);
    }
}
