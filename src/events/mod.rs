//! Events: every reception, attempt, outcome, complaint, unsubscribe, suppression and queue mode
//! change, appended to a durable log apart from the mail queue and streamed from it to
//! `<event-sink>`s (HTTP webhooks, NATS JetStream, JSON-lines files), each with its own durable
//! cursor; the same log answers history queries (`GET /api/v1/events`, `ember trace`).
//!
//! - **Producers never wait.** [`emit`] stamps the time and puts the event in the log writer's
//!   bounded channel with `try_send`; it never blocks and never touches a sink. When the channel
//!   is full (the log's disk cannot keep up with the mail), the event is dropped and counted
//!   (`ember_events_dropped` in `/metrics`, and a warning at most once a minute). Mail is never
//!   slowed for events: the accounting CSV stays the durable record of outcomes, the spool the
//!   record of messages, and a `250` never waits on an event.
//! - **One log per process**, so the handle producers use is process-wide (installed by the
//!   daemon at start, like the tracing subscriber), and the stages that produce events (ingress,
//!   queue, outcome, hygiene) reach it without a handle threaded through every constructor.
//!   Without an installed log (`event-log no`, or no `<event-sink>`, or a unit test), [`emit`]
//!   does nothing and [`enabled`] is false, so callers can skip building events.
//! - **Sinks** (`sink/`) read durable events only, in id order, batch them (`batch-size`,
//!   `max-delay`), deliver at least once and retry with capped exponential backoff while the log
//!   retains the events (`retain`); their cursors (`cursor.rs`) survive a restart or a SIGKILL.
//!
//! The log itself is in `log.rs` (group commit, segments, recovery, retention), its record format
//! in `segment.rs`, the history index in `index.rs` and queries in `history.rs`.

pub mod cursor;
pub mod event;
pub mod feedback;
pub mod history;
pub mod index;
pub mod log;
pub mod segment;
pub mod sink;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;

pub use event::{Event, EventKind, KindSet};
pub use log::{EventLog, LogError, LogOptions, Recovery};

/// The installed log's channel, and the running sinks' figures.
struct Installed {
    tx: std::sync::mpsc::SyncSender<log::Msg>,
    log: EventLog,
    sinks: Vec<Arc<sink::SinkStats>>,
}

fn installed() -> &'static ArcSwapOption<Installed> {
    static INSTALLED: OnceLock<ArcSwapOption<Installed>> = OnceLock::new();
    INSTALLED.get_or_init(ArcSwapOption::empty)
}

/// Events dropped because the log's channel was full, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// When a drop was last logged (Unix seconds), so a flood is one line a minute.
static DROP_LOGGED: AtomicU64 = AtomicU64::new(0);

/// Makes `log` the process's event log (the daemon, at start).
pub fn install(log: &EventLog, sinks: Vec<Arc<sink::SinkStats>>) {
    installed().store(Some(Arc::new(Installed { tx: log.sender(), log: log.clone(), sinks })));
}

/// Stops taking events (the daemon, at shutdown, after the last flush).
pub fn uninstall() {
    installed().store(None);
}

/// Whether events are being recorded.
pub fn enabled() -> bool {
    installed().load().is_some()
}

/// The installed log, for history queries and status.
pub fn current() -> Option<EventLog> {
    installed().load().as_ref().map(|i| i.log.clone())
}

/// Records an event; never blocks (see the module documentation for what a full channel does).
pub fn emit(event: Event) {
    let guard = installed().load();
    let Some(i) = guard.as_ref() else { return };
    match i.tx.try_send(log::Msg::Event(Box::new(event), crate::time::now_millis())) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            DROPPED.fetch_add(1, Relaxed);
            let now = crate::time::now_secs();
            let last = DROP_LOGGED.load(Relaxed);
            if now >= last + 60 && DROP_LOGGED.compare_exchange(last, now, Relaxed, Relaxed).is_ok() {
                tracing::warn!(
                    "event log cannot keep up: events are being dropped ({} so far); mail is not slowed, the accounting files keep every outcome",
                    DROPPED.load(Relaxed)
                );
            }
        }
    }
}

/// One reception event per recipient of a message the spool has just stored.
pub fn receptions(envelope: &crate::message::Envelope) {
    if !enabled() {
        return;
    }
    let vmta = envelope.vmta.clone().unwrap_or_else(|| "{default}".to_string());
    for r in &envelope.recipients {
        let mut e = Event::new(EventKind::Reception);
        e.rcpt = event::some(r.address.as_str());
        e.orig = event::some(envelope.sender.as_str());
        e.message_id = Some(envelope.id.to_string());
        e.queue = Some(format!("{}/{vmta}", r.domain()));
        e.vmta = Some(vmta.clone());
        e.job = envelope.job_id.clone();
        e.env_id = envelope.env_id.clone();
        e.source = event::some(envelope.origin.kind.as_str());
        e.source_ip = envelope.origin.client_ip.map(|ip| ip.to_string());
        emit(e);
    }
}

/// A suppression entry added (an address, or `@domain`), with what added it.
pub fn suppressed(entry: &str, reason: &str) {
    if !enabled() {
        return;
    }
    let mut e = Event::new(EventKind::Suppression);
    e.rcpt = event::some(entry);
    e.reason = event::some(reason);
    emit(e);
}

/// The log's and each sink's figures, for `show status`, `/metrics` and the dashboard.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EventsStatus {
    /// The newest durable event id.
    pub head: u64,
    /// The oldest event id still retained.
    pub oldest: u64,
    pub written: u64,
    /// Dropped because the log could not keep up (mail was not slowed).
    pub dropped: u64,
    /// In batches the disk refused.
    pub lost: u64,
    pub sinks: Vec<sink::SinkStatus>,
}

/// The figures, or `None` when no log runs.
pub fn status() -> Option<EventsStatus> {
    let guard = installed().load();
    let i = guard.as_ref()?;
    let head = i.log.head();
    Some(EventsStatus {
        head,
        oldest: i.log.oldest_id(),
        written: i.log.stats.written.load(Relaxed),
        dropped: DROPPED.load(Relaxed),
        lost: i.log.stats.lost.load(Relaxed),
        sinks: i.sinks.iter().map(|s| s.status(head)).collect(),
    })
}
