//! The event log: segmented, checksummed, fsync'd, with ids that increase by one per event.
//!
//! - **Group commit on its own thread.** Producers hand events to a bounded channel and return;
//!   the writer thread takes everything waiting, gives each event its id, writes the batch with
//!   one `write` and one `fdatasync`, files the events in the index, and only then publishes the
//!   new head id (sinks read only up to it, so they never send an event a crash could unsay).
//! - **Segments** are started at `segment_size` bytes, named after their first id, and deleted
//!   whole once every event in them is older than the retention.
//! - **Recovery** at start scans every segment. A damaged end of the newest segment is a write a
//!   crash interrupted: it is cut off (the file truncated to its last good record) and reported.
//!   Damage in an older segment is reported and the rest of that segment skipped; the file is
//!   left as it is for the operator to look at.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::event::{Event, rfc3339_ms};
use super::index::{Index, SegmentIndex, key_hash};
use super::segment;

/// Segments are started again past this size.
pub const SEGMENT_SIZE: u64 = 64 << 20;
/// Most events one group commit takes (more wait for the next, already gathering).
const BATCH_MAX: usize = 4096;
/// After a commit that did not fill a batch, the writer gathers events this long before the
/// next: they queue while it sleeps (a send to a sleeping thread costs no system call), and
/// the log makes at most about ten `fdatasync`s a second instead of one per handful of events.
/// Each of its syncs queues behind or ahead of the spool's own on the same disk, and the
/// spool's sync is what every `250` waits for: at 10 ms the relay lost about 5% of its rate to
/// them. Nothing waits on the log but the sinks, which see events at most this much later.
const GATHER: Duration = Duration::from_millis(100);
/// How often the writer looks for expired segments when idle or busy.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Events before `oldest` are gone: deleted by retention, or in a damaged segment skipped at start.
    #[error("events before {oldest} are no longer in the log")]
    Gone { oldest: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

/// How the log is opened.
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub dir: PathBuf,
    pub retain: Duration,
    pub segment_size: u64,
    /// Room in the producers' channel, in events.
    pub capacity: usize,
}

impl LogOptions {
    pub fn new(dir: PathBuf, retain: Duration) -> LogOptions {
        LogOptions { dir, retain, segment_size: SEGMENT_SIZE, capacity: 65_536 }
    }
}

/// What the scan at start found.
#[derive(Debug, Default)]
pub struct Recovery {
    pub events: u64,
    pub segments: usize,
    /// The newest segment's damaged end that was cut off: the file and how many bytes.
    pub truncated: Option<(PathBuf, u64)>,
    /// Older segments with damage: the file and the bytes skipped.
    pub damaged: Vec<(PathBuf, u64)>,
}

/// The log's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct LogStats {
    pub written: AtomicU64,
    /// Events dropped because the channel was full (the writer could not keep up).
    pub dropped: AtomicU64,
    /// Events in batches whose write or sync failed.
    pub lost: AtomicU64,
    pub batches: AtomicU64,
}

pub(super) enum Msg {
    Event(Box<Event>, u64),
    /// Answered once everything sent before it is durable.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The open log: readers' side (sinks, history) and the producers' channel.
#[derive(Clone)]
pub struct EventLog {
    pub(super) index: Arc<RwLock<Index>>,
    pub(super) head: Arc<tokio::sync::watch::Sender<u64>>,
    pub(super) tx: SyncSender<Msg>,
    pub stats: Arc<LogStats>,
    pub(super) dir: PathBuf,
}

impl EventLog {
    /// Scans the directory, repairs a torn end, and starts the writer thread. Blocking.
    pub fn open(options: LogOptions) -> Result<(EventLog, Recovery), LogError> {
        let dir = options.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let (index, recovery) = recover(&dir)?;
        let mut index = index;
        let newest = index.newest().map(|s| s.path.clone());
        let active = match newest {
            Some(path) => Active::append(path)?,
            None => {
                let path = dir.join(segment::file_name(1));
                index.push_segment(SegmentIndex::new(1, path.clone()));
                Active::create(path)?
            }
        };
        let head = index.next_id() - 1;
        let (tx, rx) = std::sync::mpsc::sync_channel(options.capacity.max(1));
        let log = EventLog {
            index: Arc::new(RwLock::new(index)),
            head: Arc::new(tokio::sync::watch::Sender::new(head)),
            tx,
            stats: Arc::default(),
            dir,
        };
        let writer = Writer { log: log.clone(), active, options };
        std::thread::Builder::new().name("event-log".into()).spawn(move || writer.run(rx)).map_err(io(&log.dir))?;
        Ok((log, recovery))
    }

    /// The id of the newest durable event (0 when there is none).
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Waits for the head to change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub fn oldest_id(&self) -> u64 {
        self.read_index().oldest_id()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Up to `max` durable events from `from` (fewer at a segment's end). Blocking.
    pub fn read(&self, from: u64, max: u64) -> Result<Vec<Stored>, LogError> {
        let head = self.head();
        if from > head {
            return Ok(Vec::new());
        }
        let span = {
            let index = self.read_index();
            if from < index.oldest_id() {
                return Err(LogError::Gone { oldest: index.oldest_id() });
            }
            match index.span(from, max.min(head - from + 1)) {
                Some(span) => span,
                // A gap left by a damaged segment: the events there are gone.
                None => match index.next_present(from) {
                    Some(next) if next > from => return Err(LogError::Gone { oldest: next }),
                    _ => return Ok(Vec::new()),
                },
            }
        };
        let mut buf = vec![0u8; usize::try_from(span.end - span.start).unwrap_or(0)];
        let file = File::open(&span.path).map_err(io(&span.path))?;
        file.read_exact_at(&mut buf, span.start).map_err(io(&span.path))?;
        let mut out = Vec::with_capacity(span.count as usize);
        let mut at = 0;
        while let Some(r) = buf.get(at..).and_then(segment::decode) {
            out.push(Stored { id: r.id, time_ms: r.time_ms, json: r.payload.to_vec() });
            at += r.len;
        }
        Ok(out)
    }

    /// Reads single events by id (history). Ids no longer retained are skipped. Blocking.
    pub fn read_ids(&self, ids: &[u64]) -> Result<Vec<Stored>, LogError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.read(*id, 1) {
                Ok(mut one) => out.append(&mut one),
                Err(LogError::Gone { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Appends an event, waiting for room in the channel (tools that build a log, and tests;
    /// the daemon's producers use [`crate::events::emit`], which never waits). Blocking.
    pub fn append(&self, event: Event, time_ms: u64) -> Result<(), LogError> {
        self.tx.send(Msg::Event(Box::new(event), time_ms)).map_err(|_| LogError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other("the event log's writer has stopped"),
        })
    }

    /// Waits until every event emitted before the call is durable (at shutdown). Blocking.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }

    pub(super) fn sender(&self) -> SyncSender<Msg> {
        self.tx.clone()
    }
}

/// One event as stored: its id, time and JSON text.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: u64,
    pub time_ms: u64,
    pub json: Vec<u8>,
}

/// Scans every segment into a fresh index.
fn recover(dir: &Path) -> Result<(Index, Recovery), LogError> {
    let mut index = Index::default();
    let mut recovery = Recovery::default();
    let segments = segment::list(dir).map_err(io(dir))?;
    let last = segments.len().saturating_sub(1);
    for (n, (first_id, path)) in segments.iter().enumerate() {
        if *first_id < index.next_id() && index.segments() > 0 {
            // Overlaps the previous segment: damage elsewhere made ids restart. Keep it aside.
            recovery.damaged.push((path.clone(), std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)));
            continue;
        }
        index.push_segment(SegmentIndex::new(*first_id, path.clone()));
        let scan = segment::scan(path, *first_id, |id, offset, time_ms, payload| {
            let keys = keys_of(payload);
            let end = offset + (segment::HEADER + payload.len()) as u64;
            index.add(id, offset, end, time_ms, keys.into_iter());
        })
        .map_err(io(path))?;
        recovery.events += scan.records.len() as u64;
        if scan.good_len < scan.file_len {
            let cut = scan.file_len - scan.good_len;
            if n == last {
                let file = OpenOptions::new().write(true).open(path).map_err(io(path))?;
                file.set_len(scan.good_len).map_err(io(path))?;
                file.sync_all().map_err(io(path))?;
                recovery.truncated = Some((path.clone(), cut));
            } else {
                recovery.damaged.push((path.clone(), cut));
            }
        }
    }
    recovery.segments = index.segments();
    Ok((index, recovery))
}

/// The key hashes of a stored event (only the three fields are parsed).
fn keys_of(json: &[u8]) -> Vec<u64> {
    #[derive(serde::Deserialize)]
    struct Keys<'a> {
        #[serde(borrow, default)]
        rcpt: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        message_id: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        job: Option<std::borrow::Cow<'a, str>>,
    }
    let Ok(k) = serde_json::from_slice::<Keys<'_>>(json) else { return Vec::new() };
    use super::event::KeyKind::*;
    [(Rcpt, k.rcpt), (MessageId, k.message_id), (Job, k.job)]
        .into_iter()
        .filter_map(|(kind, v)| v.filter(|v| !v.is_empty()).map(|v| key_hash(kind, &v)))
        .collect()
}

/// The segment being written.
struct Active {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Active {
    fn create(path: PathBuf) -> Result<Active, LogError> {
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        }
        Ok(Active { file, path, len: 0 })
    }

    fn append(path: PathBuf) -> Result<Active, LogError> {
        let file = OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        Ok(Active { file, path, len })
    }
}

struct Writer {
    log: EventLog,
    active: Active,
    options: LogOptions,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut last_expiry = std::time::Instant::now();
        let mut buf = Vec::new();
        loop {
            let first = match rx.recv_timeout(EXPIRY_EVERY) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    self.expire();
                    last_expiry = std::time::Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut events = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Msg::Event(e, t) => events.push((e, t)),
                    Msg::Flush(done) => flushes.push(done),
                }
                if events.len() < BATCH_MAX {
                    next = rx.try_recv().ok();
                }
            }
            let gather = !events.is_empty() && events.len() < BATCH_MAX;
            if !events.is_empty() {
                self.commit(&mut events, &mut buf);
            }
            for done in flushes {
                let _ = done.send(());
            }
            if last_expiry.elapsed() >= EXPIRY_EVERY {
                self.expire();
                last_expiry = std::time::Instant::now();
            }
            if gather {
                std::thread::sleep(GATHER);
            }
        }
    }

    /// Writes one batch: ids, one write, one sync, index, head.
    fn commit(&mut self, events: &mut [(Box<Event>, u64)], buf: &mut Vec<u8>) {
        if self.active.len >= self.options.segment_size {
            self.roll();
        }
        let next = self.log.read_index().next_id();
        buf.clear();
        let mut filed = Vec::with_capacity(events.len());
        // One JSON buffer for the whole batch: an event's text is copied into `buf` right away.
        let mut json = Vec::with_capacity(1024);
        for (i, (event, time_ms)) in events.iter_mut().enumerate() {
            let id = next + i as u64;
            event.id = id;
            event.time = rfc3339_ms(*time_ms);
            json.clear();
            if serde_json::to_writer(&mut json, &**event).is_err() {
                json.clear();
            }
            let offset = self.active.len + buf.len() as u64;
            segment::encode(buf, id, *time_ms, &json);
            let keys: Vec<u64> = event.keys().map(|(k, v)| key_hash(k, v)).collect();
            filed.push((id, offset, self.active.len + buf.len() as u64, *time_ms, keys));
        }
        let written =
            self.active.file.write_all(buf).and_then(|()| rustix::fs::fdatasync(&self.active.file).map_err(Into::into));
        if let Err(e) = written {
            // Events are not the record of delivery (the accounting CSV and the spool are):
            // the batch is counted lost and the log goes on in a fresh segment, since the
            // kernel may have dropped part of what this one holds.
            tracing::error!("event log {}: cannot write {} events: {e}", self.active.path.display(), events.len());
            self.log.stats.lost.fetch_add(events.len() as u64, Relaxed);
            if let Ok(meta) = self.active.file.metadata() {
                let _ = self.active.file.set_len(self.active.len.min(meta.len()));
            }
            return;
        }
        self.active.len += buf.len() as u64;
        let last = {
            let mut index = self.log.index.write().unwrap_or_else(|p| p.into_inner());
            for (id, offset, end, time_ms, keys) in filed {
                index.add(id, offset, end, time_ms, keys.into_iter());
            }
            index.next_id() - 1
        };
        self.log.stats.written.fetch_add(events.len() as u64, Relaxed);
        self.log.stats.batches.fetch_add(1, Relaxed);
        self.log.head.send_replace(last);
    }

    /// Starts a new segment at the next id.
    fn roll(&mut self) {
        let next = self.log.read_index().next_id();
        let path = self.log.dir.join(segment::file_name(next));
        match Active::create(path.clone()) {
            Ok(active) => {
                self.active = active;
                let mut index = self.log.index.write().unwrap_or_else(|p| p.into_inner());
                index.push_segment(SegmentIndex::new(next, path));
            }
            Err(e) => tracing::error!(
                "event log: cannot start a new segment: {e}; writing on in {}",
                self.active.path.display()
            ),
        }
    }

    /// Deletes the segments older than the retention.
    fn expire(&mut self) {
        let before = crate::time::now_millis()
            .saturating_sub(u64::try_from(self.options.retain.as_millis()).unwrap_or(u64::MAX));
        let gone = self.log.index.write().unwrap_or_else(|p| p.into_inner()).expire(before);
        for path in gone {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!("event log: deleted {} (older than the retention)", path.display()),
                Err(e) => tracing::warn!("event log: cannot delete {}: {e}", path.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
