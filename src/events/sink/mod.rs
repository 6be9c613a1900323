//! One task per `<event-sink>`: reads durable events after its cursor, keeps the types it takes,
//! batches them (`batch-size`, or fewer once the oldest has waited `max-delay`), delivers the
//! batch (`http.rs`, `nats.rs`, `file.rs`), and only then moves its cursor. A failed batch is
//! sent again, the same events under the same batch id, after a backoff that doubles from one
//! second up to five minutes, for as long as the log retains its events; events retention
//! deleted first are counted lost and skipped.
//!
//! A sink never touches the path of a message: it reads the log's files, and a sink that is
//! behind (or down for days) only grows its lag, shown per sink in `show status`, `/metrics`
//! and the dashboard. Nor does it take the CPU mail needs: every sink runs on one thread of
//! its own (`event-sinks`, a single-threaded runtime; its blocking reads and cursor writes on
//! `event-sinks-io` threads) in the kernel's SCHED_IDLE class, so the sinks use only the CPU
//! that mail leaves spare, a woken mail thread preempts them at once, and when the machine is
//! saturated they catch up after the burst (their lag shows it). On a machine with spare CPU
//! the class changes nothing but who waits.

pub mod file;
pub mod http;
pub mod nats;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cursor::Cursor;
use super::event::{EventKind, KindSet};
use super::log::{EventLog, LogError, Stored};
use crate::config::event_sinks::{EventSinkSpec, SinkTarget};

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The sinks' threads' nice value, besides SCHED_IDLE (where the kernel ignores it): where
/// SCHED_IDLE cannot be had, they still run below the rest of Ember's threads (0).
const SINK_NICENESS: i32 = 10;
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// While a sink is busy its cursor is written at most this often (and again whenever it has
/// caught up): each write is two fsyncs, and one per batch would compete with the spool's own
/// syncs for the disk. After a crash the sink sends again at most this much of what it had
/// delivered (at-least-once; receivers de-duplicate by event id).
const CURSOR_STORE_EVERY: Duration = Duration::from_secs(1);

/// Why a batch was not delivered; the batch is retried.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("{0}")]
    Http(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("{}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A batch: consecutive log ids `first..=last` (some filtered out), and the events it carries.
pub struct Batch {
    pub first: u64,
    pub last: u64,
    pub events: Vec<Stored>,
}

impl Batch {
    /// `X-Ember-Batch-Id`: the same for every retry of the batch.
    pub fn id(&self) -> String {
        format!("{}-{}", self.first, self.last)
    }

    /// The events as one JSON array (the stored JSON, not re-encoded).
    pub fn json_array(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&e.json);
        }
        body.push(b']');
        body
    }
}

/// One sink's figures (shared with `status`).
#[derive(Debug)]
pub struct SinkStats {
    pub name: String,
    pub kind: &'static str,
    /// The last id delivered (or skipped as not taken).
    pub cursor: AtomicU64,
    /// The time of the oldest event not delivered yet (Unix ms; 0 when caught up).
    pub oldest_pending_ms: AtomicU64,
    pub delivered: AtomicU64,
    pub batches: AtomicU64,
    pub failures: AtomicU64,
    /// Events retention deleted before the sink could deliver them.
    pub lost: AtomicU64,
    pub last_error: Mutex<String>,
}

/// What `status` shows of a sink.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SinkStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub cursor: u64,
    /// Durable events after the cursor.
    pub lag_events: u64,
    /// How long the oldest undelivered event has waited.
    pub lag_seconds: f64,
    pub delivered: u64,
    pub batches: u64,
    /// Failed delivery attempts (each is retried).
    pub failures: u64,
    pub lost: u64,
    /// The last failure, empty when the last attempt succeeded.
    pub last_error: String,
}

impl SinkStats {
    pub fn status(&self, head: u64) -> SinkStatus {
        let cursor = self.cursor.load(Relaxed);
        let oldest = self.oldest_pending_ms.load(Relaxed);
        let lag_events = head.saturating_sub(cursor);
        let lag_seconds = if lag_events == 0 || oldest == 0 {
            0.0
        } else {
            crate::time::now_millis().saturating_sub(oldest) as f64 / 1000.0
        };
        SinkStatus {
            name: self.name.clone(),
            kind: self.kind.to_string(),
            cursor,
            lag_events,
            lag_seconds,
            delivered: self.delivered.load(Relaxed),
            batches: self.batches.load(Relaxed),
            failures: self.failures.load(Relaxed),
            lost: self.lost.load(Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// Where a sink delivers.
enum Target {
    Http(http::HttpSink),
    Nats(nats::NatsSink),
    File(file::FileSink),
}

impl Target {
    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        match self {
            Target::Http(s) => s.deliver(batch).await,
            Target::Nats(s) => s.deliver(batch).await,
            Target::File(s) => s.deliver(batch).await,
        }
    }
}

/// Starts a sink's task. `start_at` is the log's head when it was opened: where a sink that has
/// never delivered begins. Errors name what cannot be used (an unreadable cursor, a bad URL).
pub fn start(log: &EventLog, spec: &EventSinkSpec, start_at: u64) -> Result<Arc<SinkStats>, String> {
    let cursor = Cursor::new(log.dir(), &spec.name);
    let last = cursor.load().map_err(|e| e.to_string())?.unwrap_or(start_at);
    let target = match &spec.target {
        SinkTarget::Http { url, secret } => Target::Http(http::HttpSink::new(url, secret.as_deref())?),
        SinkTarget::Nats { url, subject } => Target::Nats(nats::NatsSink::new(url, subject)),
        SinkTarget::File { path, max_size } => Target::File(file::FileSink::new(path.clone(), *max_size)),
    };
    let stats = Arc::new(SinkStats {
        name: spec.name.clone(),
        kind: spec.target.kind(),
        cursor: AtomicU64::new(last),
        oldest_pending_ms: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        batches: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        last_error: Mutex::new(String::new()),
    });
    let runner = Runner {
        log: log.clone(),
        kinds: KindSet::of_names(&spec.events),
        batch_size: spec.batch_size.max(1),
        max_delay: spec.max_delay,
        cursor,
        target,
        stats: Arc::clone(&stats),
        next: last + 1,
    };
    sink_runtime()?.spawn(runner.run());
    Ok(stats)
}

/// The runtime every sink runs on (started by the first sink): one thread in the SCHED_IDLE
/// class.
fn sink_runtime() -> Result<tokio::runtime::Handle, String> {
    static RUNTIME: Mutex<Option<tokio::runtime::Handle>> = Mutex::new(None);
    let mut runtime = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = runtime.as_ref() {
        return Ok(handle.clone());
    }
    let (ready, handle) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("event-sinks".into())
        .spawn(move || {
            lower_priority();
            // The runtime's blocking threads (log reads, cursor writes) get the same priority:
            // reading events back is sink work too.
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("event-sinks-io")
                .on_thread_start(lower_priority)
                .build()
            {
                Ok(runtime) => {
                    if ready.send(Ok(runtime.handle().clone())).is_ok() {
                        runtime.block_on(std::future::pending::<()>());
                    }
                }
                Err(e) => {
                    // The starter is waiting for this answer; it reports the error.
                    let _ = ready.send(Err(format!("event sinks: cannot start their runtime: {e}")));
                }
            }
        })
        .map_err(|e| format!("event sinks: cannot start their thread: {e}"))?;
    let started = handle.recv().map_err(|_| "event sinks: their thread stopped at start".to_string())??;
    *runtime = Some(started.clone());
    Ok(started)
}

/// Puts the calling thread in the SCHED_IDLE class (and at [`SINK_NICENESS`]). On Linux both
/// belong to the thread, so this lowers only the sinks' threads.
fn lower_priority() {
    // SCHED_IDLE: the thread runs only on a core no other thread wants, and a woken thread of
    // mail preempts it at once (a nice value only shrinks its share, and still lets it delay
    // the wake-ups of the delivery path). rustix has no sched_setscheduler, hence libc.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid parameter.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!("event sinks: cannot lower their threads' scheduling class: {e}");
    }
    if let Err(e) = rustix::process::setpriority_process(None, SINK_NICENESS) {
        tracing::warn!("event sinks: cannot lower their thread's priority: {e}");
    }
}

struct Runner {
    log: EventLog,
    kinds: KindSet,
    batch_size: usize,
    max_delay: Duration,
    cursor: Cursor,
    target: Target,
    stats: Arc<SinkStats>,
    /// The first id not yet delivered or skipped.
    next: u64,
}

/// Why a read gave no events.
enum Unread {
    /// The events before this id are no longer in the log.
    Gone(u64),
    /// The log could not be read (logged, retried).
    Failed,
}

#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: EventKind,
}

impl Runner {
    async fn run(mut self) {
        let mut head = self.log.subscribe();
        let mut stored = self.next - 1;
        let mut last_store = std::time::Instant::now();
        loop {
            while *head.borrow_and_update() < self.next {
                self.stats.oldest_pending_ms.store(0, Relaxed);
                if stored < self.next - 1 {
                    // Caught up: the cursor is written exactly.
                    stored = self.next - 1;
                    self.store_cursor(stored).await;
                    last_store = std::time::Instant::now();
                    continue;
                }
                if head.changed().await.is_err() {
                    return;
                }
            }
            let Some(batch) = self.gather(&mut head).await else { continue };
            if batch.last < batch.first {
                // Nothing could be read although the head is past the cursor: never spin.
                tokio::time::sleep(BACKOFF_FIRST).await;
                continue;
            }
            // A batch of nothing this sink takes is passed over like a delivered one.
            if !batch.events.is_empty() && self.deliver(&batch).await {
                self.stats.delivered.fetch_add(batch.events.len() as u64, Relaxed);
                self.stats.batches.fetch_add(1, Relaxed);
            }
            self.next = batch.last + 1;
            self.stats.cursor.store(batch.last, Relaxed);
            if last_store.elapsed() >= CURSOR_STORE_EVERY {
                stored = batch.last;
                self.store_cursor(stored).await;
                last_store = std::time::Instant::now();
            }
        }
    }

    /// Reads events from `next` until the batch is full, or the log's end is reached and the
    /// oldest event taken has waited `max_delay`.
    async fn gather(&mut self, head: &mut tokio::sync::watch::Receiver<u64>) -> Option<Batch> {
        let mut batch = Batch { first: self.next, last: self.next - 1, events: Vec::new() };
        loop {
            let want = (self.batch_size - batch.events.len()) as u64;
            let read = match self.read(batch.last + 1, want.max(64)).await {
                Ok(read) => read,
                Err(Unread::Gone(oldest)) if batch.last + 1 == self.next => {
                    self.skip_to(oldest);
                    return None;
                }
                // Send what was gathered; the next round meets the gap first.
                Err(Unread::Gone(_)) => break,
                Err(Unread::Failed) => return None,
            };
            let Some(last_read) = read.last().map(|s| s.id) else { break };
            for stored in read {
                let taken = self.kinds.is_all()
                    || serde_json::from_slice::<TypeOnly>(&stored.json).is_ok_and(|t| self.kinds.contains(t.kind));
                batch.last = stored.id;
                if taken {
                    if batch.events.is_empty() {
                        self.stats.oldest_pending_ms.store(stored.time_ms, Relaxed);
                    }
                    batch.events.push(stored);
                    if batch.events.len() >= self.batch_size {
                        return Some(batch);
                    }
                }
            }
            if last_read < *head.borrow() {
                continue;
            }
            let Some(oldest) = batch.events.first().map(|e| e.time_ms) else { break };
            let due = oldest + u64::try_from(self.max_delay.as_millis()).unwrap_or(u64::MAX);
            let now = crate::time::now_millis();
            if now >= due {
                break;
            }
            tokio::select! {
                changed = head.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(Duration::from_millis(due - now)) => break,
            }
        }
        Some(batch)
    }

    /// Durable events from `from`.
    async fn read(&mut self, from: u64, max: u64) -> Result<Vec<Stored>, Unread> {
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.read(from, max)).await {
            Ok(Ok(events)) => Ok(events),
            Ok(Err(LogError::Gone { oldest })) => Err(Unread::Gone(oldest)),
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                tokio::time::sleep(BACKOFF_FIRST).await;
                Err(Unread::Failed)
            }
            Err(e) => {
                self.failed(&format!("reading the log: {e}"));
                Err(Unread::Failed)
            }
        }
    }

    /// Moves past events that are no longer in the log, counting them lost.
    fn skip_to(&mut self, oldest: u64) {
        let lost = oldest.saturating_sub(self.next);
        self.stats.lost.fetch_add(lost, Relaxed);
        tracing::error!(
            "event sink {}: {lost} events were gone from the log (retention, or a damaged segment) before they could be sent",
            self.stats.name
        );
        self.next = oldest;
    }

    /// Sends the batch until it is taken, or its events are no longer retained (false).
    async fn deliver(&mut self, batch: &Batch) -> bool {
        let mut wait = BACKOFF_FIRST;
        loop {
            match self.target.deliver(batch).await {
                Ok(()) => {
                    self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    return true;
                }
                Err(e) => {
                    let failures = self.stats.failures.fetch_add(1, Relaxed) + 1;
                    let text = format!("batch {}: {e}", batch.id());
                    if failures.is_power_of_two() || wait >= BACKOFF_MAX {
                        tracing::warn!("event sink {}: {text}; retrying in {}s", self.stats.name, wait.as_secs());
                    }
                    *self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = text;
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(BACKOFF_MAX);
            if self.log.oldest_id() > batch.first {
                let lost = batch.events.len() as u64;
                self.stats.lost.fetch_add(lost, Relaxed);
                tracing::error!(
                    "event sink {}: batch {} ({lost} events) is past the log's retention and is dropped",
                    self.stats.name,
                    batch.id()
                );
                return false;
            }
        }
    }

    fn failed(&self, text: &str) {
        self.stats.failures.fetch_add(1, Relaxed);
        tracing::warn!("event sink {}: {text}", self.stats.name);
        *self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = text.to_string();
    }

    async fn store_cursor(&self, id: u64) {
        self.stats.cursor.store(id, Relaxed);
        let cursor = self.cursor.clone();
        match tokio::task::spawn_blocking(move || cursor.store(id)).await {
            Ok(Ok(())) => {}
            // The batch is delivered; after a restart it is sent again (at-least-once).
            Ok(Err(e)) => tracing::error!("event sink {}: {e}", self.stats.name),
            Err(e) => tracing::error!("event sink {}: cursor write: {e}", self.stats.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_a_json_array_of_the_stored_events_with_a_stable_id() {
        let stored = |id: u64, json: &str| Stored { id, time_ms: 0, json: json.as_bytes().to_vec() };
        let batch = Batch { first: 3, last: 5, events: vec![stored(3, r#"{"id":3}"#), stored(5, r#"{"id":5}"#)] };
        assert_eq!(batch.json_array(), br#"[{"id":3},{"id":5}]"#);
        assert_eq!(batch.id(), "3-5");
    }
}
