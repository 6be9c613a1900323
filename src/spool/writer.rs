//! The single writer: one OS thread that owns the active segment and performs every write,
//! fdatasync, segment roll, deletion and compaction. Every function here runs on that thread.
//!
//! # Group commit
//!
//! Callers send requests over a channel and wait on a oneshot. The writer takes everything that is
//! queued (up to [`MAX_BATCH_OPS`] requests or [`MAX_BATCH_BYTES`]), writes it with one vectored
//! `write` (headers and bodies are separate buffers: nothing is copied), issues ONE `fdatasync`,
//! updates the index, and only then answers every request of the batch. No timer is needed:
//! while one fdatasync runs (0.2–1.4 ms on this VM, more on a busy disk), new requests pile up in
//! the channel and form the next batch, so the batch size adapts to the load by itself.
//!
//! # Changes nobody waits for
//!
//! Delivery outcomes (`Spool::record`) are not requests: they are put in a shared buffer, with no
//! wake-up, and the next batch takes them (under load, the next new message's), so they cost
//! neither a wake-up nor an fdatasync of their own. When no batch comes, the writer, which looks
//! every [`UNWAITED_SYNC`] while outcomes keep coming, writes and syncs them itself; once they
//! stop it dozes, and the next `record` nudges it. Before, each outcome was a request with its
//! own batch more often than not: the relay benchmark made 11,000–12,000 fdatasyncs for 20,000
//! messages, and makes 6,400–6,700 now.
//!
//! # Segments
//!
//! The active segment is, when possible, a blank made ahead of use (see `blank`): its batches
//! overwrite zeros, which is cheaper to sync than growing the file.
//!
//! # Failures
//!
//! A failed `write` is undone (the file is cut back to its last durable length) and fails only
//! that batch: a full disk must not take the spool down (and when no new segment can be created,
//! writing goes on in the current one, so outcomes are still recorded). A failed `fdatasync` is
//! different: after one, Linux may have dropped the dirty pages, and a retry can report success
//! for data that is gone. The writer then refuses all further writes (`SpoolError::Failed`)
//! until a restart, whose recovery re-reads what really is on disk.
//!
//! A failed compaction step is undone the same way and retried a minute later. A failed
//! directory fsync after a deletion stops deletions until a restart: that deletion may not be
//! durable, and deleting a newer segment before it is could bring dead messages back.
//!
//! Maintenance (deleting and compacting segments) lives in `compact`.

use crate::answer::Answer;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

mod compact;

use super::blank::{self, Blanks};
use super::closer::Closer;
use super::index::{Entry, Segment};
use super::record;
use super::segment;
use super::{Compaction, Shared, SpoolDir, SpoolError, StateChange};
use crate::message::{MessageId, RecipientState};

/// At most this many requests share one fdatasync.
pub const MAX_BATCH_OPS: usize = 4096;
/// A batch stops growing past this many bytes.
pub const MAX_BATCH_BYTES: usize = 32 << 20;
/// Maintenance (deletion, compaction) also runs after this much idle time.
const IDLE: Duration = Duration::from_secs(1);
/// Pause after a failed segment creation before trying again.
const ROLL_RETRY: Duration = Duration::from_secs(10);
/// `writev` takes at most this many buffers (IOV_MAX on Linux is 1024).
const IOV_MAX: usize = 1024;
/// State changes nobody waits for go with the next batch, or are written and synced after at
/// most about this long when none comes.
pub const UNWAITED_SYNC: Duration = Duration::from_millis(20);

pub enum Op {
    Store {
        id: u64,
        pending: u32,
        head: Vec<u8>,
        body: Vec<u8>,
        done: oneshot::Sender<Result<MessageId, SpoolError>>,
    },
    Update {
        changes: Vec<StateChange>,
        /// `None`: the changes nobody waits for (`Spool::record`), taken from `Shared::unwaited`.
        done: Option<oneshot::Sender<Result<(), SpoolError>>>,
    },
    /// Sent by `Spool::record` when the writer dozes (see `Writer::wait_for`): changes wait.
    Nudge,
    Compact {
        done: oneshot::Sender<Result<Compaction, SpoolError>>,
    },
    /// Answered once everything sent before it is committed, after one more maintenance step.
    Flush {
        done: oneshot::Sender<()>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

pub struct Writer {
    pub shared: Arc<Shared>,
    pub dirs: Vec<SpoolDir>,
    pub segment_size: u64,
    pub compact_live_ratio: f64,
    /// Directory locks, held for exactly as long as the writer runs.
    pub locks: Vec<File>,
    /// `spool-delete-corrupted`: damaged records found by compaction are not copied aside.
    pub delete_corrupted: bool,
    pub next_seq: u64,
    active: Option<Active>,
    rr: usize,
    /// Set after a failed fdatasync: the reason given to every later request.
    failed: Option<String>,
    /// Set when a deletion may not be durable (a directory fsync failed): deleting anything newer
    /// could then resurrect messages, so maintenance stops until a restart. Files just stay.
    maintenance_stopped: bool,
    /// After any other maintenance failure (a full disk during compaction, say): retry then.
    maintenance_paused_until: Option<Instant>,
    /// After a failure to create a segment: try again then.
    roll_retry_at: Option<Instant>,
    /// When the last changes nobody waited for were taken: until IDLE after it, the writer looks
    /// for more every UNWAITED_SYNC instead of dozing.
    last_unwaited: Option<Instant>,
    /// When maintenance last ran for lack of requests.
    last_idle_maintenance: Instant,
    /// Segments zero-filled ahead of use (`blank`); `None` if its thread could not start.
    blanks: Option<Blanks>,
    /// Closes deleted segments' files, which frees their blocks, off this thread.
    closer: Closer,
    /// When each segment this writer left was sealed, for `compact_grace`.
    sealed_at: HashMap<u64, Instant>,
    /// `SpoolOptions::compact_grace`.
    pub compact_grace: Duration,
}

struct Active {
    seq: u64,
    dir: usize,
    path: PathBuf,
    file: Arc<File>,
    /// Durable length; the file position is always here between batches.
    size: u64,
    /// Length right after its start record.
    empty_size: u64,
    /// Bytes up to here are allocated and written (zeros past `size`), so a write below it does
    /// not grow the file. Equal to `size` in a segment that was not made from a blank.
    prepared: u64,
}

impl Writer {
    pub fn new(shared: Arc<Shared>, dirs: Vec<SpoolDir>, segment_size: u64, ratio: f64, next_seq: u64) -> Self {
        Writer {
            shared,
            dirs,
            segment_size,
            compact_live_ratio: ratio,
            locks: Vec::new(),
            delete_corrupted: false,
            next_seq,
            active: None,
            rr: 0,
            failed: None,
            maintenance_stopped: false,
            maintenance_paused_until: None,
            roll_retry_at: None,
            last_unwaited: None,
            last_idle_maintenance: Instant::now(),
            blanks: None,
            closer: Closer::default(),
            sealed_at: HashMap::new(),
            compact_grace: super::DEFAULT_COMPACT_GRACE,
        }
    }

    /// Starts preparing blank segments (see `blank`). Without it every segment is created empty.
    pub fn start_blanks(&mut self) {
        match Blanks::start() {
            Ok(b) => self.blanks = Some(b),
            Err(e) => tracing::warn!("spool: no thread for blank segments ({e}); segments are created empty"),
        }
        self.request_blank();
    }

    /// The directory the next roll would choose, if nothing changes meanwhile.
    fn next_dir(&self) -> Option<usize> {
        let mut free = |p: &std::path::Path| segment::free_space(p).ok();
        let mut rr = self.rr;
        segment::pick_dir(&self.dirs, &mut free, self.segment_size, &mut rr)
    }

    /// Asks for a blank in the directory of the next segment.
    fn request_blank(&self) {
        let (Some(blanks), Some(dir)) = (&self.blanks, self.next_dir()) else { return };
        let d = &self.dirs[dir];
        blanks.request(dir, &d.path, self.segment_size, d.min_free_space);
    }

    /// Starts a new active segment in the directory chosen by `segment::pick_dir`.
    pub fn roll(&mut self) -> Result<(), SpoolError> {
        let mut free = |p: &std::path::Path| segment::free_space(p).ok();
        let dir = segment::pick_dir(&self.dirs, &mut free, self.segment_size, &mut self.rr).ok_or_else(|| {
            SpoolError::Config("every spool directory is deliver-only: no directory can take new segments".into())
        })?;
        let seq = self.next_seq;
        // Burnt even if creation fails, so that a leftover file cannot block the next try.
        self.next_seq += 1;
        let next_id = self.shared.next_id.load(Ordering::SeqCst);
        let dir_path = &self.dirs[dir].path;
        let adopted = self.blanks.as_ref().and_then(|b| b.take(dir)).and_then(|b| {
            blank::adopt(b, dir_path, seq, next_id)
                .map_err(|e| tracing::warn!("spool: blank segment not used ({e}); creating the segment empty"))
                .ok()
        });
        let (path, file, size, prepared) = match adopted {
            Some(made) => {
                self.shared.counters.segments_from_blanks.fetch_add(1, Ordering::Relaxed);
                made
            }
            None => {
                let (path, file, size) = segment::create_segment(dir_path, seq, next_id)?;
                (path, file, size, size)
            }
        };
        let file = Arc::new(file);
        self.shared
            .index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .segments
            .insert(seq, Segment { dir, path: path.clone(), file: file.clone(), size, live_msgs: 0, live_bytes: 0 });
        let left = self.active.replace(Active { seq, dir, path, file, size, empty_size: size, prepared });
        if let Some(old) = left {
            old.cut_zeros();
            self.sealed_at.insert(old.seq, Instant::now());
        }
        self.request_blank();
        Ok(())
    }

    /// Makes the existing segment `seq` (which begins with its start record) the active one:
    /// the fallback of `Spool::open` when no new segment can be created.
    pub fn resume(&mut self, seq: u64) -> Result<(), SpoolError> {
        let index = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
        let s = index.segments.get(&seq).ok_or(SpoolError::Closed)?;
        if self.dirs[s.dir].deliver_only {
            return Err(SpoolError::Config(format!("{} is in a deliver-only directory", s.path.display())));
        }
        (&*s.file).seek(SeekFrom::Start(s.size)).map_err(|source| SpoolError::Io { path: s.path.clone(), source })?;
        let empty_size = (record::HEADER_LEN + 16) as u64;
        let (file, path) = (s.file.clone(), s.path.clone());
        let a = Active { seq, dir: s.dir, path, file, size: s.size, empty_size, prepared: s.size };
        drop(index);
        self.active = Some(a);
        Ok(())
    }

    pub fn run(mut self, rx: mpsc::Receiver<Op>) {
        self.maintain();
        let mut held: Option<Op> = None;
        loop {
            let first = match held.take() {
                Some(op) => op,
                None => {
                    let wait = self.wait_for();
                    let got = rx.recv_timeout(wait);
                    self.shared.writer_dozing.store(false, Ordering::SeqCst);
                    match got {
                        Ok(op) => op,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.on_timer();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match first {
                Op::Close { done } => {
                    self.close();
                    done.answer(());
                    return;
                }
                Op::Compact { done } => {
                    self.commit(Vec::new());
                    done.answer(self.compact_all());
                    continue;
                }
                Op::Flush { done } => {
                    self.commit(Vec::new());
                    self.maintain();
                    done.answer(());
                    continue;
                }
                op => {
                    let mut batch = vec![op];
                    let mut bytes = 0usize;
                    while batch.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(op @ (Op::Close { .. } | Op::Compact { .. } | Op::Flush { .. })) => {
                                held = Some(op);
                                break;
                            }
                            Ok(op) => {
                                if let Op::Store { head, body, .. } = &op {
                                    bytes += head.len() + body.len();
                                }
                                batch.push(op);
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(batch);
                    self.maintain();
                }
            }
        }
        self.close();
    }

    /// How long to wait for the next request. While changes nobody waits for keep coming
    /// (delivery outcomes), [`UNWAITED_SYNC`]: they are looked for then, never woken for. After
    /// [`IDLE`] without any, the writer dozes until the next idle maintenance, and
    /// `Spool::record` nudges it awake. Both sides set their flag before they look at the other
    /// side's (`SeqCst`), so a change is never left for a whole doze.
    fn wait_for(&mut self) -> Duration {
        if self.last_unwaited.is_some_and(|t| t.elapsed() < IDLE) {
            return UNWAITED_SYNC;
        }
        self.shared.writer_dozing.store(true, Ordering::SeqCst);
        // Pairs with the fence in `Spool::record`: the buffer is read under its mutex, and only
        // fences order a SeqCst store before that read.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.shared.has_unwaited() {
            self.shared.writer_dozing.store(false, Ordering::SeqCst);
            return Duration::ZERO;
        }
        IDLE.saturating_sub(self.last_idle_maintenance.elapsed()).max(UNWAITED_SYNC)
    }

    /// No request came: commits the changes nobody waits for, and maintains once per [`IDLE`].
    fn on_timer(&mut self) {
        self.commit(Vec::new());
        if self.last_idle_maintenance.elapsed() >= IDLE {
            self.last_idle_maintenance = Instant::now();
            self.maintain();
            if self.active.as_ref().is_some_and(|a| a.prepared <= a.size) {
                self.request_blank();
            }
        }
    }

    /// Stops the blanks' thread (removing blanks not used) and the closer's (once every deleted
    /// segment is closed), cuts the active segment's zeros and releases the directory locks.
    fn close(&mut self) {
        self.commit(Vec::new());
        self.blanks = None;
        self.closer = Closer::default();
        if let Some(a) = &self.active {
            a.cut_zeros();
        }
        self.locks.clear();
    }

    /// Writes one batch, with the changes nobody waits for that are buffered, fdatasyncs it,
    /// applies it to the index, answers every request.
    fn commit(&mut self, mut batch: Vec<Op>) {
        let unwaited = self.shared.take_unwaited();
        if !unwaited.is_empty() {
            self.last_unwaited = Some(Instant::now());
            // First: a caller's own order holds (its `update` after a `record` is in this batch
            // or a later one; a `record` after an `update` comes after that batch was answered).
            let waited = std::mem::take(&mut batch);
            batch.extend(unwaited.into_iter().map(|changes| Op::Update { changes, done: None }));
            batch.extend(waited);
        }
        batch.retain(|op| !matches!(op, Op::Nudge));
        if batch.is_empty() {
            return;
        }
        if let Some(why) = &self.failed {
            return fail_all(batch, &|| SpoolError::Failed(why.clone()));
        }
        if let Err(e) = self.ensure_room(&batch) {
            return fail_all(batch, &|| e.duplicate());
        }
        let plan = match self.plan(&batch) {
            Ok(plan) => plan,
            Err(e) => return fail_all(batch, &|| e.duplicate()),
        };
        if plan.end > plan.base {
            let mut bufs: Vec<&[u8]> = Vec::with_capacity(batch.len() * 2);
            for (i, op) in batch.iter().enumerate() {
                match op {
                    Op::Store { head, body, .. } if plan.placed[i].is_some() => {
                        bufs.push(head);
                        bufs.push(body);
                    }
                    Op::Update { .. } => bufs.extend(plan.states[i].as_ref().map(|(rec, _)| &rec[..])),
                    _ => {}
                }
            }
            if let Err(e) = self.append(&bufs, plan.base).and_then(|()| self.sync()) {
                return fail_all(batch, &|| e.duplicate());
            }
        }
        self.apply(&batch, &plan);
        let c = &self.shared.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        for (op, refusal) in batch.into_iter().zip(plan.refused) {
            match op {
                Op::Store { id, done, .. } => {
                    if refusal.is_none() {
                        c.messages_stored.fetch_add(1, Ordering::Relaxed);
                    }
                    done.answer(refusal.map_or(Ok(MessageId(id)), Err));
                }
                Op::Update { done: Some(done), .. } => {
                    done.answer(refusal.map_or(Ok(()), Err));
                }
                Op::Update { done: None, .. } => {
                    if let Some(e) = refusal {
                        unwaited_failed(&e);
                    }
                }
                Op::Compact { .. } | Op::Flush { .. } | Op::Close { .. } | Op::Nudge => {}
            }
        }
    }

    /// Decides what of a batch is written, and where: refuses stores that would take the
    /// directory below its free-space floor and updates that name unknown messages or
    /// recipients, drops changes that change nothing, and gives every record its offset.
    fn plan(&self, batch: &[Op]) -> Result<Plan, SpoolError> {
        let Some(active) = &self.active else { return Err(SpoolError::Closed) };
        let dir = &self.dirs[active.dir];
        let mut free = if dir.min_free_space > 0 && batch.iter().any(|op| matches!(op, Op::Store { .. })) {
            let free = segment::free_space(&dir.path);
            Some(free.map_err(|source| SpoolError::Io { path: dir.path.clone(), source })?)
        } else {
            None
        };
        let mut plan = Plan {
            seq: active.seq,
            base: active.size,
            end: active.size,
            refused: Vec::with_capacity(batch.len()),
            placed: Vec::with_capacity(batch.len()),
            states: Vec::with_capacity(batch.len()),
        };
        let mut overlay: HashMap<(u64, u32), RecipientState> = HashMap::new();
        let index = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
        for op in batch {
            let (mut refused, mut placed, mut states) = (None, None, None);
            match op {
                Op::Store { head, body, .. } => {
                    let len = (head.len() + body.len()) as u64;
                    let needed = dir.min_free_space.saturating_add(len);
                    match free.as_mut() {
                        Some(f) if *f < needed => {
                            refused = Some(SpoolError::Full { dir: dir.path.clone(), free: *f, needed });
                        }
                        _ => {
                            if let Some(f) = free.as_mut() {
                                *f -= len;
                            }
                            placed = Some((plan.end, len as u32));
                            plan.end += len;
                        }
                    }
                }
                Op::Update { changes, .. } => match validate(&index, &mut overlay, changes) {
                    Err(e) => refused = Some(e),
                    Ok(eff) if eff.is_empty() => {}
                    Ok(eff) => {
                        let rec = record::states_record(&eff);
                        plan.end += rec.len() as u64;
                        states = Some((rec, eff));
                    }
                },
                Op::Compact { .. } | Op::Flush { .. } | Op::Close { .. } | Op::Nudge => {}
            }
            plan.refused.push(refused);
            plan.placed.push(placed);
            plan.states.push(states);
        }
        Ok(plan)
    }

    /// Applies a written and fdatasync'd batch to the index.
    fn apply(&mut self, batch: &[Op], plan: &Plan) {
        let mut index = self.shared.index.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = index.segments.get_mut(&plan.seq) {
            s.size = plan.end;
        }
        for (i, op) in batch.iter().enumerate() {
            match op {
                Op::Store { id, pending, head, .. } => {
                    if let Some((offset, len)) = plan.placed[i] {
                        let meta = head[record::HEADER_LEN + 4..].into();
                        index.insert(*id, Entry { seg: plan.seq, offset, len, pending: *pending, meta });
                    }
                }
                Op::Update { .. } => {
                    for &(id, rcpt, state) in plan.states[i].iter().flat_map(|(_, eff)| eff) {
                        index.apply(id, rcpt, state);
                    }
                }
                Op::Compact { .. } | Op::Flush { .. } | Op::Close { .. } | Op::Nudge => {}
            }
        }
        drop(index);
        if let Some(a) = self.active.as_mut() {
            a.size = plan.end;
        }
    }

    /// Rolls to a new segment when the active one is full, or when it sits in a directory below
    /// its free-space floor and another directory has room for this batch's messages. If no
    /// segment can be created, the batch goes to the active one all the same (a segment may
    /// outgrow `segment_size`): state changes must still be recorded on a full disk. After such
    /// a failure, rolling is retried at most every [`ROLL_RETRY`].
    fn ensure_room(&mut self, batch: &[Op]) -> Result<(), SpoolError> {
        let Some(a) = &self.active else { return Err(SpoolError::Closed) };
        let (size, dir) = (a.size, a.dir);
        if self.roll_retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        // A segment made from a blank is cheaper to sync (see `blank`): leave one that grows the
        // file as soon as a blank is ready where the next segment would go.
        let blank_waits = a.prepared <= size
            && self.blanks.as_ref().is_some_and(|b| b.any_ready() && self.next_dir().is_some_and(|d| b.is_ready(d)));
        let wanted = size >= self.segment_size || blank_waits || self.other_dir_has_room(dir, batch);
        if wanted && let Err(e) = self.roll() {
            tracing::warn!("spool: cannot start a new segment ({e}); writing on in {}", self.dirs[dir].path.display());
            self.roll_retry_at = Some(Instant::now() + ROLL_RETRY);
        }
        Ok(())
    }

    /// Is the active directory (`dir`) below its floor for this batch's messages while another
    /// has room for them?
    fn other_dir_has_room(&mut self, dir: usize, batch: &[Op]) -> bool {
        let d = &self.dirs[dir];
        let stores: u64 = batch
            .iter()
            .map(|op| if let Op::Store { head, body, .. } = op { (head.len() + body.len()) as u64 } else { 0 })
            .sum();
        if stores == 0 || d.min_free_space == 0 {
            return false;
        }
        if segment::free_space(&d.path).is_ok_and(|free| free >= d.min_free_space.saturating_add(stores)) {
            return false;
        }
        let mut free_of = |p: &std::path::Path| segment::free_space(p).ok();
        let mut rr = self.rr;
        let Some(other) = segment::pick_dir(&self.dirs, &mut free_of, self.segment_size, &mut rr) else {
            return false;
        };
        let o = &self.dirs[other];
        other != dir && segment::free_space(&o.path).is_ok_and(|f| f >= o.min_free_space.saturating_add(stores))
    }

    /// Writes `bufs` at the file position; on failure cuts the file back to `base` (the durable
    /// length, where the position was before this batch), blank zeros after it included.
    fn append(&mut self, bufs: &[&[u8]], base: u64) -> Result<(), SpoolError> {
        let Some(a) = self.active.as_mut() else { return Err(SpoolError::Closed) };
        let res = write_all_vectored(&a.file, bufs);
        if let Err(source) = res {
            let undo = a.file.set_len(base).and_then(|()| (&*a.file).seek(SeekFrom::Start(base)).map(|_| ()));
            a.prepared = a.prepared.min(base);
            if let Err(e) = undo {
                self.failed = Some(format!("could not undo a failed write to {}: {e}", a.path.display()));
            }
            return Err(SpoolError::Io { path: a.path.clone(), source });
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SpoolError> {
        let Some(a) = &self.active else { return Err(SpoolError::Closed) };
        let started = Instant::now();
        let synced = a.file.sync_data();
        self.shared.counters.sync_time.observe(started.elapsed());
        synced.map_err(|source| {
            let why = format!("fdatasync of {} failed: {source}", a.path.display());
            tracing::error!("spool: {why}; refusing further writes until a restart");
            self.failed = Some(why);
            SpoolError::Io { path: a.path.clone(), source }
        })
    }
}

impl Active {
    /// Cuts the zeros of a blank after the last record, on leaving the segment. Best effort, not
    /// synced: recovery takes zeros at the end of a segment as unused space anyway.
    fn cut_zeros(&self) {
        if self.prepared > self.size
            && let Err(e) = self.file.set_len(self.size)
        {
            tracing::debug!(segment = %self.path.display(), "spool: blank zeros not cut: {e}");
        }
    }
}

/// The changes of one request that do change something, as (id, recipient, new state).
type Effective = Vec<(u64, u32, RecipientState)>;

/// A batch laid out for writing; the vectors run parallel to the batch's requests.
struct Plan {
    /// The active segment and the batch's first and end offsets in it.
    seq: u64,
    base: u64,
    end: u64,
    /// The answer to a refused request.
    refused: Vec<Option<SpoolError>>,
    /// Offset and length of an accepted store's record.
    placed: Vec<Option<(u64, u32)>>,
    /// An update's state record and the changes in it (`None`: refused, or changes nothing).
    states: Vec<Option<(Vec<u8>, Effective)>>,
}

/// Checks the changes of one `update` request against the index as this batch has changed it so
/// far; returns the changes that change something (final states are never left).
fn validate(
    index: &super::index::Index,
    overlay: &mut HashMap<(u64, u32), RecipientState>,
    changes: &[StateChange],
) -> Result<Effective, SpoolError> {
    use super::index::Applied;
    for c in changes {
        let rcpt = u32::try_from(c.recipient).unwrap_or(u32::MAX);
        match index.check(c.id.0, rcpt) {
            Applied::Unknown => return Err(SpoolError::NotFound(c.id)),
            Applied::NoRecipient => return Err(SpoolError::NoSuchRecipient { id: c.id, recipient: c.recipient }),
            _ => {}
        }
    }
    let mut effective = Vec::with_capacity(changes.len());
    for c in changes {
        let key = (c.id.0, c.recipient as u32);
        let current = overlay.get(&key).copied().or_else(|| index.state(key.0, key.1));
        if current.is_none_or(|s| s.is_final()) || current == Some(c.state) {
            continue;
        }
        overlay.insert(key, c.state);
        effective.push((key.0, key.1, c.state));
    }
    Ok(effective)
}

/// Verifies a message record read back from disk; returns its body.
pub fn check_record(rec: &[u8], meta_len: usize) -> Result<&[u8], &'static str> {
    let h = record::parse_header(rec)?;
    if h.total() != rec.len() as u64 || h.kind != record::Kind::Message {
        return Err("record header does not match the index");
    }
    if crc32c::crc32c(&rec[record::HEADER_LEN..]) != h.crc {
        return Err("payload checksum mismatch");
    }
    let start = record::body_offset(meta_len);
    rec.get(start..).ok_or("record shorter than its envelope")
}

fn write_all_vectored(file: &File, bufs: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().filter(|b| !b.is_empty()).map(|b| IoSlice::new(b)).collect();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let n = rest.len().min(IOV_MAX);
        match (&*file).write_vectored(&rest[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn fail_all(batch: Vec<Op>, err: &dyn Fn() -> SpoolError) {
    for op in batch {
        match op {
            Op::Store { done, .. } => {
                done.answer(Err(err()));
            }
            Op::Update { done: Some(done), .. } => {
                done.answer(Err(err()));
            }
            Op::Update { done: None, .. } => unwaited_failed(&err()),
            Op::Compact { done } => {
                done.answer(Err(err()));
            }
            Op::Nudge => {}
            Op::Flush { done } | Op::Close { done } => {
                done.answer(());
            }
        }
    }
}

/// The only report of a failed change nobody waits for. After a restart its recipients are tried
/// again: delivery stays at least once.
fn unwaited_failed(e: &SpoolError) {
    tracing::error!("spool: cannot record delivery outcomes: {e}");
}

pub fn copy_io(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}
