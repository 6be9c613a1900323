//! What the running daemon has done, as counters and recent events: written by the ingress (a
//! message stored) and by the queues' reporter (a recipient delivered, deferred, bounced or
//! deleted; a queue failure), read by the management API, `/metrics` and the dashboard.
//!
//! Owns no decisions: nothing here changes what happens to a message. Counters are
//! `prometheus-client` families (lock-free increments); the recent-event lists and per-minute
//! throughput sit behind short mutexes never held across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Labels as prometheus-client encodes them.
pub type Labels = Vec<(String, String)>;

/// Recipient events kept per queue under `track-recipient-events yes` (PowerMTA's queue detail
/// shows the last 50).
pub const RECENT_EVENTS: usize = 50;
/// Errors kept per queue by default (`max-events-recorded`, PowerMTA's default 10).
pub const RECENT_ERRORS: usize = 10;

/// How many recent events one queue keeps: its recipient events (`track-recipient-events`) and
/// its errors (`max-events-recorded`). The queue's reporter reads them from its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventCaps {
    pub events: usize,
    pub errors: usize,
}

impl Default for EventCaps {
    /// PowerMTA's defaults: no recipient events, the last 10 errors.
    fn default() -> EventCaps {
        EventCaps { events: 0, errors: RECENT_ERRORS }
    }
}
/// Minutes of throughput kept for the dashboard's charts.
pub const MINUTES: usize = 60;
/// Jobs whose totals are kept; past it the job seen longest ago is forgotten.
pub const MAX_JOBS: usize = 10_000;

/// One recipient's outcome, as `show queues` and the queue detail list it.
#[derive(Clone, Debug, Serialize)]
pub struct RecipientEvent {
    pub time: u64,
    /// `delivered`, `deferred`, `bounced`, `deleted`.
    pub kind: &'static str,
    pub rcpt: String,
    pub job_id: Option<String>,
    pub source_ip: String,
    pub remote_ip: String,
    pub diag: String,
}

/// Counts of one minute (Unix minute `minute`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Minute {
    pub minute: u64,
    pub received_msgs: u64,
    pub received_rcpts: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
}

/// Totals of one job id (`show jobs`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobTotals {
    pub received_msgs: u64,
    pub received_rcpts: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub deleted: u64,
    pub first_seen: u64,
    pub last_seen: u64,
}

#[derive(Default)]
struct Recent {
    events: HashMap<String, VecDeque<RecipientEvent>>,
    errors: HashMap<String, VecDeque<RecipientEvent>>,
    minutes: VecDeque<Minute>,
    jobs: HashMap<String, JobTotals>,
    /// Since start (`minute` unused).
    totals: Minute,
}

/// The daemon's counters. One per process, shared by `Arc`.
#[derive(Default)]
pub struct Telemetry {
    received_msgs: Family<Labels, Counter>,
    received_rcpts: Family<Labels, Counter>,
    received_bytes: Family<Labels, Counter>,
    delivered: Family<Labels, Counter>,
    deferred: Family<Labels, Counter>,
    bounced: Family<Labels, Counter>,
    deleted: Family<Labels, Counter>,
    queue_failures: Family<Labels, Counter>,
    worker_failures: Family<Labels, Counter>,
    worker_failures_total: std::sync::atomic::AtomicU64,
    recent: Mutex<Recent>,
}

/// Where a recipient's outcome happened.
pub struct Outcome<'a> {
    pub domain: &'a str,
    pub vmta: &'a str,
    pub source_ip: &'a str,
    pub remote_ip: &'a str,
    pub rcpt: &'a str,
    pub job_id: Option<&'a str>,
    pub diag: &'a str,
    /// Bounce category (bounces only).
    pub category: &'a str,
    /// What the queue keeps of its recent events.
    pub caps: EventCaps,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Telemetry {
    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message stored by the ingress (SMTP, pickup or HTTP), from `client` (its IP, or the
    /// origin kind when it has none).
    pub fn received(&self, client: &str, recipients: usize, bytes: usize, job_id: Option<&str>) {
        let l = labels(&[("client", client)]);
        self.received_msgs.get_or_create(&l).inc();
        self.received_rcpts.get_or_create(&l).inc_by(recipients as u64);
        self.received_bytes.get_or_create(&l).inc_by(bytes as u64);
        let now = crate::time::now_secs();
        let mut guard = self.recent();
        let r = &mut *guard;
        let m = minute(&mut r.minutes, now);
        m.received_msgs += 1;
        m.received_rcpts += recipients as u64;
        r.totals.received_msgs += 1;
        r.totals.received_rcpts += recipients as u64;
        if let Some(id) = job_id {
            let j = job(&mut r.jobs, id, now);
            j.received_msgs += 1;
            j.received_rcpts += recipients as u64;
        }
    }

    /// A recipient's outcome: `kind` is `delivered`, `deferred`, `bounced` or `deleted`.
    pub fn outcome(&self, kind: &'static str, o: &Outcome<'_>) {
        let family = match kind {
            "delivered" => &self.delivered,
            "deferred" => &self.deferred,
            "bounced" => &self.bounced,
            _ => &self.deleted,
        };
        let l = if kind == "bounced" {
            labels(&[("domain", o.domain), ("vmta", o.vmta), ("source_ip", o.source_ip), ("category", o.category)])
        } else {
            labels(&[("domain", o.domain), ("vmta", o.vmta), ("source_ip", o.source_ip)])
        };
        family.get_or_create(&l).inc();
        let now = crate::time::now_secs();
        let event = RecipientEvent {
            time: now,
            kind,
            rcpt: o.rcpt.to_string(),
            job_id: o.job_id.map(str::to_string),
            source_ip: o.source_ip.to_string(),
            remote_ip: o.remote_ip.to_string(),
            diag: o.diag.to_string(),
        };
        let queue = format!("{}/{}", o.domain, o.vmta);
        let mut guard = self.recent();
        let r = &mut *guard;
        let m = minute(&mut r.minutes, now);
        for m in [m, &mut r.totals] {
            match kind {
                "delivered" => m.delivered += 1,
                "deferred" => m.deferred += 1,
                "bounced" => m.bounced += 1,
                _ => {}
            }
        }
        if let Some(id) = o.job_id {
            let j = job(&mut r.jobs, id, now);
            match kind {
                "delivered" => j.delivered += 1,
                "deferred" => j.deferred += 1,
                "bounced" => j.bounced += 1,
                _ => j.deleted += 1,
            }
        }
        if kind == "deferred" || kind == "bounced" {
            push(&mut r.errors, &queue, event.clone(), o.caps.errors);
        }
        push(&mut r.events, &queue, event, o.caps.events);
    }

    /// A connection-level failure of a queue (no recipient was tried).
    pub fn queue_failure(
        &self,
        domain: &str,
        vmta: &str,
        source_ip: &str,
        remote_ip: &str,
        diag: &str,
        caps: EventCaps,
    ) {
        self.queue_failures.get_or_create(&labels(&[("domain", domain), ("vmta", vmta)])).inc();
        let event = RecipientEvent {
            time: crate::time::now_secs(),
            kind: "queue-failure",
            rcpt: String::new(),
            job_id: None,
            source_ip: source_ip.to_string(),
            remote_ip: remote_ip.to_string(),
            diag: diag.to_string(),
        };
        push(&mut self.recent().errors, &format!("{domain}/{vmta}"), event, caps.errors);
    }

    /// A delivery worker of the queue died (a panic); what it held was deferred.
    pub fn worker_failure(&self, domain: &str, vmta: &str) {
        self.worker_failures.get_or_create(&labels(&[("domain", domain), ("vmta", vmta)])).inc();
        self.worker_failures_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Delivery workers that died, all queues together.
    pub fn worker_failures_total(&self) -> u64 {
        self.worker_failures_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last recipient events and errors of a queue (`domain/vmta`), newest first.
    pub fn queue_detail(&self, queue: &str) -> (Vec<RecipientEvent>, Vec<RecipientEvent>) {
        let r = self.recent();
        let newest = |m: &HashMap<String, VecDeque<RecipientEvent>>| {
            m.get(queue).map(|d| d.iter().rev().cloned().collect()).unwrap_or_default()
        };
        (newest(&r.events), newest(&r.errors))
    }

    /// The last `MINUTES` minutes, oldest first, with empty minutes filled in up to now.
    pub fn minutes(&self) -> Vec<Minute> {
        let now = crate::time::now_secs() / 60;
        let r = self.recent();
        (now + 1 - MINUTES as u64..=now)
            .map(|m| {
                r.minutes.iter().find(|x| x.minute == m).copied().unwrap_or(Minute { minute: m, ..Minute::default() })
            })
            .collect()
    }

    pub fn jobs(&self) -> Vec<(String, JobTotals)> {
        let mut v: Vec<_> = self.recent().jobs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Totals since start.
    pub fn totals(&self) -> Minute {
        self.recent().totals
    }

    /// Registers the event counters in `registry` (a registry built per scrape, next to the
    /// gauges computed at scrape time).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ember_received_messages",
            "Messages accepted and stored, by client IP",
            self.received_msgs.clone(),
        );
        registry.register(
            "ember_received_recipients",
            "Recipients of accepted messages, by client IP",
            self.received_rcpts.clone(),
        );
        registry.register(
            "ember_received_bytes",
            "Bytes of accepted messages, by client IP",
            self.received_bytes.clone(),
        );
        registry.register(
            "ember_delivered_recipients",
            "Recipients delivered (a d accounting record each), by domain (queue name), VMTA and source IP",
            self.delivered.clone(),
        );
        registry.register(
            "ember_deferred_recipients",
            "Transient failures of recipients (t records), by domain, VMTA and source IP",
            self.deferred.clone(),
        );
        registry.register(
            "ember_bounced_recipients",
            "Recipients bounced (b records), by domain, VMTA, source IP and bounce category",
            self.bounced.clone(),
        );
        registry.register(
            "ember_deleted_recipients",
            "Recipients deleted by an operator (ember delete), by domain and VMTA",
            self.deleted.clone(),
        );
        registry.register(
            "ember_queue_failures",
            "Connection-level failures of a queue (tq records), by domain and VMTA",
            self.queue_failures.clone(),
        );
        registry.register(
            "ember_worker_failures",
            "Delivery workers that died (a panic) and whose recipients were deferred, by domain and VMTA",
            self.worker_failures.clone(),
        );
    }
}

/// The totals of job `id`, created (forgetting the job seen longest ago when full) as needed.
fn job<'a>(jobs: &'a mut HashMap<String, JobTotals>, id: &str, now: u64) -> &'a mut JobTotals {
    if !jobs.contains_key(id) && jobs.len() >= MAX_JOBS {
        let oldest = jobs.iter().min_by_key(|(_, t)| t.last_seen).map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            jobs.remove(&k);
        }
    }
    let j = jobs.entry(id.to_string()).or_insert_with(|| JobTotals { first_seen: now, ..JobTotals::default() });
    j.last_seen = now;
    j
}

/// Adds `event` to `queue`'s list, keeping its newest `cap` (a lowered cap takes effect at once;
/// a cap of 0 keeps nothing, and no list).
fn push(lists: &mut HashMap<String, VecDeque<RecipientEvent>>, queue: &str, event: RecipientEvent, cap: usize) {
    if cap == 0 {
        lists.remove(queue);
        return;
    }
    let list = lists.entry(queue.to_string()).or_default();
    list.push_back(event);
    while list.len() > cap {
        list.pop_front();
    }
}

/// The counts of the minute holding `now`, created (and old minutes dropped) as needed.
fn minute(minutes: &mut VecDeque<Minute>, now: u64) -> &mut Minute {
    let m = now / 60;
    if minutes.back().is_none_or(|b| b.minute < m) {
        minutes.push_back(Minute { minute: m, ..Minute::default() });
        while minutes.len() > MINUTES {
            minutes.pop_front();
        }
    }
    // A clock step backwards lands in the newest minute rather than reordering the ring.
    minutes.back_mut().expect("pushed above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_label_set() {
        let t = Telemetry::default();
        let o = |ip| Outcome {
            domain: "example.com",
            vmta: "v1",
            source_ip: ip,
            remote_ip: "127.0.0.1",
            rcpt: "a@example.com",
            job_id: Some("j1"),
            diag: "250 ok",
            category: "",
            caps: EventCaps { events: RECENT_EVENTS, errors: RECENT_ERRORS },
        };
        t.outcome("delivered", &o("10.0.0.1"));
        t.outcome("delivered", &o("10.0.0.2"));
        t.outcome("deferred", &o("10.0.0.2"));
        assert_eq!(t.totals().delivered, 2);
        assert_eq!(t.totals().deferred, 1);
        assert_eq!(t.jobs()[0].1.delivered, 2);
        let (events, errors) = t.queue_detail("example.com/v1");
        assert_eq!((events.len(), errors.len()), (3, 1));
        assert_eq!(events[0].kind, "deferred");
        assert_eq!(t.minutes().last().unwrap().delivered, 2);
    }

    #[test]
    fn each_queue_keeps_what_its_caps_say() {
        let t = Telemetry::default();
        let o = |domain, caps| Outcome {
            domain,
            vmta: "v1",
            source_ip: "10.0.0.1",
            remote_ip: "127.0.0.1",
            rcpt: "a@example.com",
            job_id: None,
            diag: "451 later",
            category: "",
            caps,
        };
        let untracked = EventCaps::default();
        let tracked = EventCaps { events: 3, errors: 2 };
        for _ in 0..5 {
            t.outcome("deferred", &o("quiet.example", untracked));
            t.outcome("deferred", &o("tracked.example", tracked));
        }
        let (events, errors) = t.queue_detail("quiet.example/v1");
        assert_eq!((events.len(), errors.len()), (0, 5), "no recipient events by default, errors up to 10");
        let (events, errors) = t.queue_detail("tracked.example/v1");
        assert_eq!((events.len(), errors.len()), (3, 2));
        // Queue failures count against the same error cap.
        t.queue_failure("tracked.example", "v1", "", "", "421 busy", tracked);
        assert_eq!(t.queue_detail("tracked.example/v1").1[0].kind, "queue-failure");
        assert_eq!(t.queue_detail("tracked.example/v1").1.len(), 2);
        // Counters are not affected by what is kept.
        assert_eq!(t.totals().deferred, 10);
    }

    #[test]
    fn job_totals_are_bounded_and_forget_the_job_seen_longest_ago() {
        let mut jobs = HashMap::new();
        for n in 0..MAX_JOBS as u64 {
            job(&mut jobs, &format!("j{n}"), 1000 + n);
        }
        job(&mut jobs, "new", 1_000_000);
        assert_eq!(jobs.len(), MAX_JOBS);
        assert!(!jobs.contains_key("j0") && jobs.contains_key("j1") && jobs.contains_key("new"));
    }
}
