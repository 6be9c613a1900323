//! The durable spool: messages and recipient states on disk, group-committed, recovered at start.
//!
//! Knows nothing about SMTP, queues or the configuration file: the ingress hands it an
//! [`Envelope`] and a body and gets a [`MessageId`] back once both are on disk; the queue manager
//! reports recipient outcomes with [`Spool::update`] and rebuilds its queues from
//! [`Spool::for_each_live`] at start. Nothing outside this module touches a spool file.
//!
//! # "A 250 is a promise"
//!
//! [`Spool::store`] and [`Spool::update`] resolve only after their record is fdatasync'd. They
//! are cheap anyway because of group commit: a single writer thread (see `writer`) writes
//! everything queued while the previous fdatasync ran, then syncs once for all of it.
//! [`Spool::record`] (delivery outcomes, which nobody waits for) rides along with the next batch,
//! or is synced within about 20 ms: a crash in between can only make a delivery be tried again.
//!
//! # On disk
//!
//! Each `<spool DIR>` holds `ember.lock` (an `flock`, so two daemons cannot share a spool),
//! segment files `{seq:016x}.seg` and, if damage was ever found, `quarantine/`. The segments of all
//! directories, sorted by their global sequence number, form ONE append-only log holding both
//! new messages and recipient state changes, so a batch mixing injections and delivery outcomes
//! costs one fdatasync. Record layout and encodings: see `record`. Recovery rules: `recovery`.
//! Which segments may be deleted or compacted, and why delivered messages never come back:
//! `writer`.
//!
//! Several directories: a new segment goes to the highest-priority directory with room for it
//! (`min-free-space` plus a segment), round robin among equal priorities; `deliver_only`
//! directories are read, drained by compaction and emptied, never written. A deliver-only
//! directory is taken to belong to this spool's log (same sequence and id space); attaching the
//! spool of another server is refused when segment numbers collide.
//!
//! # In memory
//!
//! An index entry per live message (see `index`): location of its record, pending count, and the
//! encoded envelope with current states. Bodies are read back with `pread` by
//! [`Spool::read_body`], checksum verified (from the page cache, for fresh messages).
//!
//! # Departures from the first plan (see docs/architecture.md)
//!
//! State changes share the message log instead of a separate journal: a batch holding both
//! needs one fdatasync, not two, and their relative order is the log order. There is no batch
//! window: batches form while the previous fdatasync runs, so a lone session pays one fsync and
//! no timer, and a loaded spool batches by itself.
//!
//! # Figures (2-core VM, ext4 on virtio; fdatasync 0.2–1.4 ms depending on neighbours' load)
//!
//! `cargo test --release --lib spool::tests::bench -- --ignored --nocapture --test-threads 1`:
//!
//! | load | stores/s | fdatasync per message |
//! |---|---|---|
//! | 1 session, 5 KiB | 700–4,700 (one fsync each) | 1 |
//! | 20 sessions, 5 KiB | 20,000–41,000 | 0.09–0.10 |
//! | 200 sessions, 5 KiB | 55,000–76,000 | 0.01 |
//!
//! Recovery (`spool::tests::bench::recovery`, `EMBER_BENCH_MESSAGES`, `EMBER_BENCH_DIR`):
//! 1,000,000 messages with 400-byte bodies (900,000 live, 532 MiB in 9 segments) in 0.55 s with
//! the files in the page cache, 1.0–1.5 s after `echo 3 > /proc/sys/vm/drop_caches` (100,000:
//! 0.06 s). The index costs ~200 bytes of RSS per live one-recipient message.

mod blank;
mod closer;
mod index;
pub mod latency;
/// The on-disk record layout. Public only so the fuzz targets in `fuzz/` can frame records with
/// valid checksums; nothing outside the spool writes or reads spool files.
#[doc(hidden)]
pub mod record;
mod recovery;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::message::{Envelope, MessageId, RecipientState};
use index::Index;
use writer::{Op, Writer};

/// Default size past which the writer starts a new segment file.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Default `SpoolOptions::compact_live_ratio`.
pub const DEFAULT_COMPACT_LIVE_RATIO: f64 = 0.25;
/// Default `SpoolOptions::compact_grace`.
pub const DEFAULT_COMPACT_GRACE: Duration = Duration::from_secs(2);

/// How to open a spool. `SpoolOptions::new(dirs)` fills in the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolOptions {
    /// From the `<spool DIR>` blocks; at least one.
    pub dirs: Vec<SpoolDir>,
    /// Roll to a new segment file past this many bytes (default 64 MiB).
    pub segment_size: u64,
    /// Offline inspection (`ember show queues`): no lock, no truncation, no quarantine copies, no
    /// writer; `store`, `update` and `compact` answer [`SpoolError::ReadOnly`].
    pub read_only: bool,
    /// Compact the oldest segment when its live bytes fall below this fraction of its size
    /// (default 0.25), or when the whole spool's do.
    pub compact_live_ratio: f64,
    /// `spool-delete-corrupted yes`: a corrupt record is dropped without a copy in
    /// `DIR/quarantine/` (its bytes go when the segment is compacted); no: copied there.
    pub delete_corrupted: bool,
    /// Zero-fill segments ahead of use on a thread of their own (default yes; see `blank`), so
    /// that syncing a batch does not also commit the file's growth. Off in tests that need the
    /// same segment layout on every run.
    pub blank_segments: bool,
    /// Automatic compaction leaves a segment alone this long after it is sealed (default 2 s):
    /// what is live in a segment just left is mostly mail being delivered that moment. Zero in
    /// tests of compaction itself.
    pub compact_grace: Duration,
}

impl SpoolOptions {
    pub fn new(dirs: Vec<SpoolDir>) -> Self {
        SpoolOptions { dirs, ..SpoolOptions::default() }
    }
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            dirs: Vec::new(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            read_only: false,
            compact_live_ratio: DEFAULT_COMPACT_LIVE_RATIO,
            delete_corrupted: false,
            blank_segments: true,
            compact_grace: DEFAULT_COMPACT_GRACE,
        }
    }
}

/// One `<spool DIR>` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolDir {
    pub path: PathBuf,
    /// Bytes; 0 = no floor. Below it, `store` answers [`SpoolError::Full`].
    pub min_free_space: u64,
    /// Higher is used first (PowerMTA: 1–100, default 1).
    pub priority: u32,
    /// Drain only: never receives new segments.
    pub deliver_only: bool,
}

impl SpoolDir {
    /// A directory with PowerMTA's defaults: priority 1, no floor, writable.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SpoolDir { path: path.into(), min_free_space: 0, priority: 1, deliver_only: false }
    }
}

/// A recipient's new state, for [`Spool::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub id: MessageId,
    /// Index into `Envelope::recipients`.
    pub recipient: usize,
    pub state: RecipientState,
}

/// What [`Spool::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Live messages and their pending recipients.
    pub messages: usize,
    pub recipients: usize,
    /// The last segment ended in an interrupted write: its path and the bytes cut off (only
    /// reported, not cut, in read-only mode).
    pub torn_tail_truncated: Option<(PathBuf, u64)>,
    /// Damaged regions copied to `DIR/quarantine/` (each also logged).
    pub quarantined: usize,
    /// Segment files scanned.
    pub segments: usize,
    pub elapsed: Duration,
}

/// A snapshot of the spool's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpoolStats {
    pub live_messages: usize,
    /// Recipients not yet delivered, bounced or deleted.
    pub live_recipients: u64,
    pub segments: usize,
    pub bytes_on_disk: u64,
    /// Damaged records quarantined, at recovery or since.
    pub quarantined: u64,
    /// fdatasync calls for batches and compactions since open (not segment creation).
    pub fsyncs: u64,
    /// Batches committed since open.
    pub batches: u64,
    pub messages_stored: u64,
    pub messages_compacted: u64,
    pub segments_deleted: u64,
    /// Segments started from a blank (zero-filled ahead of use) since open.
    pub segments_from_blanks: u64,
    /// Memory held by the in-memory index (estimate: table slots plus envelopes).
    pub index_bytes: u64,
    /// What each stored message waited for: from its request until the writer's answer was
    /// back in the session, ready for the `250`.
    pub store_wait: latency::Snapshot,
    /// Each `fdatasync` of a batch or a compaction.
    pub sync_time: latency::Snapshot,
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    pub segments_deleted: usize,
    pub messages_moved: usize,
    pub bytes_moved: u64,
    pub bytes_reclaimed: u64,
}

impl Compaction {
    fn add(&mut self, o: &Compaction) {
        self.segments_deleted += o.segments_deleted;
        self.messages_moved += o.messages_moved;
        self.bytes_moved += o.bytes_moved;
        self.bytes_reclaimed += o.bytes_reclaimed;
    }
}

/// Spool failures, worded for the operator: they end up in the log and in `452 4.3.1` replies.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "spool directory {} is below its min-free-space: {} free, {} needed to accept this message",
        dir.display(), Bytes(*free), Bytes(*needed)
    )]
    Full { dir: PathBuf, free: u64, needed: u64 },
    #[error("spool I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool directory {} is in use by another ember process (lock file ember.lock); use a read-only inspection instead", .0.display())]
    Locked(PathBuf),
    #[error("message {0} is not in the spool (never stored, or already delivered, bounced or deleted)")]
    NotFound(MessageId),
    #[error("message {id} has no recipient #{recipient}")]
    NoSuchRecipient { id: MessageId, recipient: usize },
    #[error("corrupt spool record in {} at offset {offset}: {reason}", path.display())]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("the spool is closed (ember is shutting down)")]
    Closed,
    #[error("the spool is open read-only")]
    ReadOnly,
    #[error("spool configuration: {0}")]
    Config(String),
    #[error("message refused by the spool: {0}")]
    Invalid(String),
    #[error("spool writes stopped after an unrecoverable error ({0}); restart ember once the disk is checked")]
    Failed(String),
}

impl SpoolError {
    /// The floor was reached or the file system itself is full (ENOSPC, EDQUOT): a condition
    /// that passes when space returns, so the client hears `452 4.3.1`, not a generic failure.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            SpoolError::Full { .. } => true,
            SpoolError::Io { source, .. } => {
                matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
            }
            _ => false,
        }
    }

    /// A copy for each waiter of a failed batch (`io::Error` is not `Clone`).
    fn duplicate(&self) -> SpoolError {
        match self {
            SpoolError::Full { dir, free, needed } => {
                SpoolError::Full { dir: dir.clone(), free: *free, needed: *needed }
            }
            SpoolError::Io { path, source } => SpoolError::Io { path: path.clone(), source: writer::copy_io(source) },
            SpoolError::Locked(p) => SpoolError::Locked(p.clone()),
            SpoolError::NotFound(id) => SpoolError::NotFound(*id),
            SpoolError::NoSuchRecipient { id, recipient } => {
                SpoolError::NoSuchRecipient { id: *id, recipient: *recipient }
            }
            SpoolError::Corrupt { path, offset, reason } => {
                SpoolError::Corrupt { path: path.clone(), offset: *offset, reason: reason.clone() }
            }
            SpoolError::Closed => SpoolError::Closed,
            SpoolError::ReadOnly => SpoolError::ReadOnly,
            SpoolError::Config(s) => SpoolError::Config(s.clone()),
            SpoolError::Invalid(s) => SpoolError::Invalid(s.clone()),
            SpoolError::Failed(s) => SpoolError::Failed(s.clone()),
        }
    }
}

/// Byte counts for operators: `1.5 GiB`, `812 KiB`, `12 bytes`.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} bytes", self.0);
        }
        let mut v = self.0 as f64 / 1024.0;
        let mut u = 0;
        while v >= 1024.0 && u + 1 < UNITS.len() {
            v /= 1024.0;
            u += 1;
        }
        write!(f, "{v:.1} {}", UNITS[u])
    }
}

/// State shared by the handles and the writer thread.
struct Shared {
    index: RwLock<Index>,
    /// The next id to hand out.
    next_id: AtomicU64,
    counters: Counters,
    /// State changes nobody waits for (`Spool::record`), one entry per call (each is all or
    /// nothing on its own), taken by the writer's next batch.
    unwaited: Mutex<Vec<Vec<StateChange>>>,
    /// Set by the writer before it waits long for a request (see `Writer::wait_for`).
    writer_dozing: AtomicBool,
}

impl Shared {
    fn take_unwaited(&self) -> Vec<Vec<StateChange>> {
        std::mem::take(&mut *self.unwaited.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn has_unwaited(&self) -> bool {
        !self.unwaited.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    messages_stored: AtomicU64,
    messages_compacted: AtomicU64,
    segments_deleted: AtomicU64,
    segments_from_blanks: AtomicU64,
    quarantined: AtomicU64,
    store_wait: latency::Histogram,
    sync_time: latency::Histogram,
}

/// A handle on an open spool; clones share it. `Send + Sync`.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` when read-only.
    tx: Option<mpsc::Sender<Op>>,
    closed: AtomicBool,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool").field("read_only", &self.inner.tx.is_none()).finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens the spool: creates missing directories (unless read-only), locks every directory,
    /// scans every segment (truncating a torn tail, quarantining damage), rebuilds the index,
    /// starts a fresh segment (on a full disk: goes on appending to the last one) and the writer
    /// thread. Returns what recovery found. Blocking (it reads the whole spool): from async code,
    /// call it in `spawn_blocking`.
    pub fn open(options: SpoolOptions) -> Result<(Spool, Recovery), SpoolError> {
        let SpoolOptions {
            dirs,
            segment_size,
            read_only,
            compact_live_ratio,
            delete_corrupted,
            blank_segments,
            compact_grace,
        } = options;
        if dirs.is_empty() {
            return Err(SpoolError::Config("no <spool DIR> directory configured".into()));
        }
        for (i, d) in dirs.iter().enumerate() {
            if dirs[..i].iter().any(|o| o.path == d.path) {
                return Err(SpoolError::Config(format!("spool directory {} is listed twice", d.path.display())));
            }
        }
        let mut locks = Vec::new();
        for d in &dirs {
            if !read_only {
                std::fs::create_dir_all(&d.path).map_err(|source| SpoolError::Io { path: d.path.clone(), source })?;
                locks.push(segment::lock_dir(&d.path)?);
                blank::remove_leftover(&d.path)?;
            } else if !d.path.is_dir() {
                let source = io::Error::new(io::ErrorKind::NotFound, "no such directory");
                return Err(SpoolError::Io { path: d.path.clone(), source });
            }
        }
        let rec = recovery::recover(&dirs, read_only, delete_corrupted)?;
        let shared = Arc::new(Shared {
            index: RwLock::new(rec.index),
            next_id: AtomicU64::new(rec.next_id),
            counters: Counters::default(),
            unwaited: Mutex::default(),
            writer_dozing: AtomicBool::new(false),
        });
        shared.counters.quarantined.store(rec.report.quarantined as u64, Ordering::Relaxed);
        let report = rec.report;
        tracing::info!(
            messages = report.messages,
            recipients = report.recipients,
            segments = report.segments,
            quarantined = report.quarantined,
            elapsed_ms = report.elapsed.as_millis() as u64,
            read_only,
            "spool recovered"
        );
        if read_only {
            let inner = Inner { shared, tx: None, closed: AtomicBool::new(true) };
            return Ok((Spool { inner: Arc::new(inner) }, report));
        }
        let mut w = Writer::new(shared.clone(), dirs, segment_size.max(4096), compact_live_ratio, rec.next_seq);
        w.locks = locks;
        w.delete_corrupted = delete_corrupted;
        w.compact_grace = compact_grace;
        if let Err(e) = w.roll() {
            // A full disk must not keep the daemon from starting and draining its queue.
            let full = e.is_out_of_space();
            match rec.resumable {
                Some(seq) if full => {
                    tracing::warn!("spool: {e}; appending to the last segment instead");
                    w.resume(seq)?;
                }
                _ => return Err(e),
            }
        }
        if blank_segments {
            w.start_blanks();
        }
        // Unbounded, and it cannot grow past its callers: every request waits for its answer, so
        // it holds at most one store per SMTP session (capped by total-max-smtp-in) and one
        // update per recipient outcome in flight (capped by the open connections).
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|source| SpoolError::Io { path: PathBuf::from("spool writer thread"), source })?;
        let inner = Inner { shared, tx: Some(tx), closed: AtomicBool::new(false) };
        Ok((Spool { inner: Arc::new(inner) }, report))
    }

    /// Stores a new message and resolves once envelope and body are fdatasync'd. Assigns the id
    /// (monotonic, never reused across restarts; `envelope.id` is ignored). Refused with `Full`,
    /// without writing anything, when the directory would fall below its `min-free-space`.
    pub async fn store(&self, mut envelope: Envelope, body: Vec<u8>) -> Result<MessageId, SpoolError> {
        let tx = self.sender()?;
        let pending = envelope.recipients.iter().filter(|r| !r.state.is_final()).count();
        if pending == 0 {
            return Err(SpoolError::Invalid("the message has no pending recipient".into()));
        }
        if envelope.recipients.len() > u32::MAX as usize {
            return Err(SpoolError::Invalid("too many recipients".into()));
        }
        let id = self.inner.shared.next_id.fetch_add(1, Ordering::SeqCst);
        envelope.id = MessageId(id);
        let meta = record::encode_meta(&envelope, envelope.id);
        if 4 + meta.len() + body.len() > record::MAX_PAYLOAD {
            return Err(SpoolError::Invalid(format!(
                "message of {} is too large for the spool",
                Bytes(body.len() as u64)
            )));
        }
        let head = record::message_head(&meta, &body);
        let (done, rx) = oneshot::channel();
        let asked = std::time::Instant::now();
        tx.send(Op::Store { id, pending: pending as u32, head, body, done }).map_err(|_| SpoolError::Closed)?;
        let answer = rx.await.map_err(|_| SpoolError::Closed)?;
        self.inner.shared.counters.store_wait.observe(asked.elapsed());
        answer
    }

    /// Records recipient state changes and resolves once they are fdatasync'd (group-committed
    /// with everything else). All or nothing: an unknown message (`NotFound`, also for one that
    /// is already dead) or recipient refuses the whole request. A change to a recipient already
    /// delivered, bounced or deleted is ignored: final states are never left. A message whose
    /// last pending recipient becomes final leaves the spool.
    pub async fn update(&self, changes: Vec<StateChange>) -> Result<(), SpoolError> {
        let tx = self.sender()?;
        if changes.is_empty() {
            return Ok(());
        }
        let (done, rx) = oneshot::channel();
        tx.send(Op::Update { changes, done: Some(done) }).map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Records recipient state changes without waiting: what the queue manager does with every
    /// delivery outcome. No wake-up and no fdatasync of their own: the changes join the writer's
    /// next batch (the next new message, under load) and are synced with it, or are written and
    /// synced within about [`writer::UNWAITED_SYNC`] (20 ms) when no batch comes. They apply to
    /// the index when written. A crash before then can only make a recipient be tried again:
    /// delivery stays at least once. What [`Spool::update`] would refuse is logged instead.
    pub fn record(&self, changes: Vec<StateChange>) -> Result<(), SpoolError> {
        let tx = self.sender()?;
        if changes.is_empty() {
            return Ok(());
        }
        let shared = &self.inner.shared;
        shared.unwaited.lock().unwrap_or_else(|e| e.into_inner()).push(changes);
        // Pairs with the fence in `Writer::wait_for`: either the writer sees the changes before
        // it dozes, or this sees it dozing and nudges it.
        std::sync::atomic::fence(Ordering::SeqCst);
        if shared.writer_dozing.swap(false, Ordering::SeqCst) {
            tx.send(Op::Nudge).map_err(|_| SpoolError::Closed)?;
        }
        Ok(())
    }

    /// About how many bytes a live message's body has (its record less the envelope: a small
    /// fixed header more), for data-volume rates; no disk access.
    pub fn message_size(&self, id: MessageId) -> Option<u64> {
        let index = self.index();
        let e = index.messages.get(&id.0)?;
        Some(u64::from(e.len).saturating_sub(e.meta.len() as u64))
    }

    /// Reads a live message's body back from its segment (`pread`), checksum verified.
    pub fn read_body(&self, id: MessageId) -> Result<Vec<u8>, SpoolError> {
        let (file, path, offset, len, meta_len) = {
            let index = self.index();
            let e = index.messages.get(&id.0).ok_or(SpoolError::NotFound(id))?;
            let s = index.segments.get(&e.seg).ok_or(SpoolError::NotFound(id))?;
            (s.file.clone(), s.path.clone(), e.offset, e.len as usize, e.meta.len())
        };
        let mut rec = vec![0u8; len];
        file.read_exact_at(&mut rec, offset).map_err(|source| SpoolError::Io { path: path.clone(), source })?;
        let start = match writer::check_record(&rec, meta_len) {
            Ok(body) => len - body.len(),
            Err(why) => return Err(SpoolError::Corrupt { path, offset, reason: format!("message {id}: {why}") }),
        };
        rec.copy_within(start.., 0);
        rec.truncate(len - start);
        Ok(rec)
    }

    /// The current envelope (with recipient states) of a live message.
    pub fn envelope(&self, id: MessageId) -> Option<Envelope> {
        self.index().envelope(id.0)
    }

    /// Every live message's envelope, in id (= arrival) order. Materialises them all; for a large
    /// spool prefer [`Spool::for_each_live`].
    pub fn live(&self) -> Vec<Envelope> {
        let mut all = Vec::with_capacity(self.index().messages.len());
        self.for_each_live(|e| all.push(e));
        all
    }

    /// Calls `f` with every live message's envelope, in id order, decoding 1024 at a time under
    /// a short read lock (the writer is never held up for long, and `f` runs with no lock held).
    /// Messages that die meanwhile may be skipped; ones stored meanwhile are not visited.
    pub fn for_each_live(&self, mut f: impl FnMut(Envelope)) {
        let mut ids: Vec<u64> = self.index().messages.keys().copied().collect();
        ids.sort_unstable();
        for chunk in ids.chunks(1024) {
            let envs: Vec<Envelope> = {
                let index = self.index();
                chunk.iter().filter_map(|&id| index.envelope(id)).collect()
            };
            envs.into_iter().for_each(&mut f);
        }
    }

    pub fn stats(&self) -> SpoolStats {
        let c = &self.inner.shared.counters;
        // Every sync is timed, so the histogram's count is the number of syncs.
        let sync_time = c.sync_time.snapshot();
        let index = self.index();
        SpoolStats {
            live_messages: index.messages.len(),
            live_recipients: index.pending,
            segments: index.segments.len(),
            bytes_on_disk: index.bytes_on_disk(),
            quarantined: c.quarantined.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            messages_stored: c.messages_stored.load(Ordering::Relaxed),
            messages_compacted: c.messages_compacted.load(Ordering::Relaxed),
            segments_deleted: c.segments_deleted.load(Ordering::Relaxed),
            segments_from_blanks: c.segments_from_blanks.load(Ordering::Relaxed),
            index_bytes: index.heap_bytes(),
            store_wait: c.store_wait.snapshot(),
            fsyncs: sync_time.count,
            sync_time,
        }
    }

    /// Compacts now, whatever the ratios (`ember spool compact`, tests): starts a new segment,
    /// then copies the live messages of every older segment into it and deletes the old files.
    pub async fn compact(&self) -> Result<Compaction, SpoolError> {
        let tx = self.sender()?;
        let (done, rx) = oneshot::channel();
        tx.send(Op::Compact { done }).map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Resolves once every request sent before it is committed and the housekeeping that
    /// follows a batch (deleting dead segments, one step of automatic compaction) has run, plus
    /// one more such step. For tests and tools that want to observe the files; the daemon never
    /// needs it.
    pub async fn flush(&self) -> Result<(), SpoolError> {
        let tx = self.sender()?;
        let (done, rx) = oneshot::channel();
        tx.send(Op::Flush { done }).map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)
    }

    /// Stops the writer after committing everything already queued, and releases the directory
    /// locks. Reads keep working; writes answer `Closed`. Idempotent.
    pub async fn close(&self) {
        let Some(tx) = &self.inner.tx else { return };
        self.inner.closed.store(true, Ordering::SeqCst);
        let (done, rx) = oneshot::channel();
        if tx.send(Op::Close { done }).is_ok() {
            let _ = rx.await;
        }
    }

    fn sender(&self) -> Result<&mpsc::Sender<Op>, SpoolError> {
        let tx = self.inner.tx.as_ref().ok_or(SpoolError::ReadOnly)?;
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(SpoolError::Closed);
        }
        Ok(tx)
    }

    /// Recipients not yet final (delivered, bounced or deleted): what `spool-max-recipients`
    /// caps. One read of the index, no scan.
    pub fn queued_recipients(&self) -> u64 {
        self.index().pending
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner.shared.index.read().unwrap_or_else(|e| e.into_inner())
    }
}
