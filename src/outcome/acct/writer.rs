//! The thread behind each accounting output: formats batches of records into CSV rows and
//! appends them to a file or a pipe; rotates files (`move-interval`, `max-size`, on demand) and
//! deletes rotated files after `delete-after`.
//!
//! File writers are registered by path, so one process never has two writers on one file (see
//! the module doc of `acct.rs`). Every function here runs on the writer's own thread, except
//! the `Writer` handle's methods, which only send it messages.

use crate::answer::Answer;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use crate::config::settings::Settings;
use crate::config::value::Value;
use crate::config::{Config, Dir};
use crate::time;

use super::layout::Layout;
use super::pipe::{PipeOptions, PipeSink};
use super::{AcctError, Clock, Record};

/// How often an idle writer looks at the clock (for `move-interval` and `delete-after`).
const TICK: Duration = Duration::from_secs(1);
/// `max-size` is at least 1M, as in PowerMTA.
const MIN_MAX_SIZE: u64 = 1 << 20;
/// A batch is written once it holds this many records, even if more are waiting.
const BATCH: usize = 1024;
/// After a write, the writer gathers records this long before it looks again. Records then
/// arrive while it sleeps rather than waking it one by one: under load the manager's sends cost
/// no system call and the writer makes one write per window instead of one per few records (the
/// relay profile counted about one wake-up of this thread per message). The file is never more
/// than this behind the deliveries it records.
const GATHER: Duration = Duration::from_millis(5);
/// How often `delete-after` is checked besides after each rotation.
const CLEANUP_EVERY: u64 = 3600;

/// The file options of an `<acct-file>`.
#[derive(Clone)]
pub(super) struct FileOptions {
    max_size: Option<u64>,
    interval: Option<u64>,
    move_to: Option<PathBuf>,
    delete_after: Option<u64>,
    world_readable: bool,
    sync: bool,
    clock: Clock,
}

impl FileOptions {
    pub fn from_settings(config: &Config, settings: &Settings, clock: Clock) -> FileOptions {
        FileOptions {
            max_size: settings.size(Dir::MaxSize).map(|s| s.max(MIN_MAX_SIZE)),
            interval: settings.interval(Dir::MoveInterval).map(|d| d.as_secs()).filter(|s| *s > 0),
            move_to: settings.path(Dir::MoveTo).map(|p| config.path(p)),
            delete_after: match settings.effective(Dir::DeleteAfter) {
                Some(Value::Interval(i)) => Some(i.seconds()),
                _ => None,
            },
            world_readable: settings.flag(Dir::WorldReadable),
            sync: settings.flag(Dir::Sync),
            clock,
        }
    }

    fn mode(&self) -> u32 {
        if self.world_readable { 0o644 } else { 0o640 }
    }
}

enum Msg {
    /// A record, and whether it is written only because of `log-delivery-failures`.
    Record(Record, bool),
    Flush(Sender<()>),
    Rotate(Sender<Result<Option<PathBuf>, AcctError>>),
    /// A reload: the file's new layout and options.
    Configure(Box<(Layout, FileOptions)>, Sender<Result<(), AcctError>>),
}

/// The handle the `Accounting` of each configuration generation holds.
pub(super) struct Writer {
    tx: Sender<Msg>,
    is_file: bool,
    pub(super) stats: Arc<WriterStats>,
}

/// What a writer has done since it started (for `/metrics`).
#[derive(Default, Debug)]
pub struct WriterStats {
    /// Records appended to the file or pipe.
    pub written: AtomicU64,
    /// Records in batches that failed to be written.
    pub lost: AtomicU64,
}

/// The live file writers of this process, by absolute path.
static FILE_WRITERS: LazyLock<Mutex<HashMap<PathBuf, Weak<Writer>>>> = LazyLock::new(Default::default);

impl Writer {
    /// The writer of an accounting file: the running one for this path (reconfigured), else a
    /// new one.
    pub fn file(path: &Path, layout: Layout, options: FileOptions) -> Result<Arc<Writer>, AcctError> {
        let key = absolute(path);
        let mut registry = FILE_WRITERS.lock().unwrap_or_else(|e| e.into_inner());
        registry.retain(|_, w| w.strong_count() > 0);
        let (layout, options) = match registry.get(&key).and_then(Weak::upgrade) {
            Some(running) => {
                let (ack, answer) = channel();
                match running.tx.send(Msg::Configure(Box::new((layout, options)), ack)) {
                    Ok(()) => match answer.recv() {
                        Ok(result) => return result.map(|()| running),
                        Err(_) => return Err(AcctError::WriterGone(key)),
                    },
                    // The writer is gone (it can only stop by panicking): start another.
                    Err(std::sync::mpsc::SendError(Msg::Configure(pair, _))) => *pair,
                    Err(_) => unreachable!("the message sent was Configure"),
                }
            }
            None => (layout, options),
        };
        let sink = FileSink::open(&key, layout.header_line(), options)?;
        let writer = Writer::start(Worker { layout, sink: Sink::File(Box::new(sink)), stats: Arc::default() }, true)?;
        registry.insert(key, Arc::downgrade(&writer));
        Ok(writer)
    }

    /// A pipe output: the command is started now and fed the header line.
    pub fn pipe(command: &str, layout: Layout, options: PipeOptions) -> Result<Arc<Writer>, AcctError> {
        let sink = PipeSink::start(command, &layout.header_line(), options)?;
        Writer::start(Worker { layout, sink: Sink::Pipe(sink), stats: Arc::default() }, false)
    }

    fn start(worker: Worker, is_file: bool) -> Result<Arc<Writer>, AcctError> {
        // Unbounded on purpose: records come from the queue manager, which must never wait on a
        // disk (that would stall every queue); the writer batches a whole backlog per write, so
        // the queue of records stays as short as one write takes, and the spool (bounded by its
        // own sessions and connections) produces them no faster than it delivers.
        let (tx, rx) = channel();
        let stats = Arc::clone(&worker.stats);
        std::thread::Builder::new()
            .name("ember-acct".into())
            .spawn(move || worker.run(rx))
            .map_err(AcctError::Thread)?;
        Ok(Arc::new(Writer { tx, is_file, stats }))
    }

    pub fn record(&self, record: Record, forced: bool) {
        // A writer that stopped has logged why; accounting must never block or fail delivery.
        if self.tx.send(Msg::Record(record, forced)).is_err() {
            tracing::debug!("an accounting record was not written: its writer has stopped");
        }
    }

    pub fn flush(&self) {
        let (ack, done) = channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }

    pub fn rotate(&self) -> Result<Option<PathBuf>, AcctError> {
        if !self.is_file {
            return Ok(None);
        }
        let (ack, done) = channel();
        self.tx.send(Msg::Rotate(ack)).map_err(|_| AcctError::Stopped)?;
        done.recv().map_err(|_| AcctError::Stopped)?
    }
}

/// The path as the registry knows it: absolute, its directory resolved through symlinks.
fn absolute(path: &Path) -> PathBuf {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    match (path.parent().and_then(|p| p.canonicalize().ok()), path.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => path,
    }
}

struct Worker {
    layout: Layout,
    sink: Sink,
    stats: Arc<WriterStats>,
}

enum Sink {
    File(Box<FileSink>),
    Pipe(PipeSink),
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut pending: Vec<(Record, bool)> = Vec::new();
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    match &mut self.sink {
                        Sink::File(f) => f.tick(),
                        Sink::Pipe(p) => p.tick(),
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            for msg in std::iter::once(first).chain(rx.try_iter()) {
                match msg {
                    Msg::Record(r, forced) => {
                        pending.push((r, forced));
                        if pending.len() >= BATCH {
                            self.write(&mut pending);
                        }
                    }
                    other => {
                        self.write(&mut pending);
                        self.control(other);
                    }
                }
            }
            if self.write(&mut pending) {
                std::thread::sleep(GATHER);
            }
        }
        self.write(&mut pending);
        // The configuration that started the pipe is gone: its command gets end of input and
        // is waited for.
        if let Sink::Pipe(p) = self.sink {
            p.close();
        }
    }

    /// Writes what is pending; true when there was something to write.
    fn write(&mut self, pending: &mut Vec<(Record, bool)>) -> bool {
        if pending.is_empty() {
            return false;
        }
        let rows = self.layout.rows(pending.iter().map(|(r, f)| (r, *f)));
        pending.clear();
        if rows.is_empty() {
            return false;
        }
        let count = rows.iter().filter(|b| **b == b'\n').count() as u64;
        let ok = match &mut self.sink {
            Sink::File(f) => {
                // The clock may have passed a boundary since the batch began.
                f.tick();
                f.append(&rows)
            }
            Sink::Pipe(p) => p.write(&rows),
        };
        let counter = if ok { &self.stats.written } else { &self.stats.lost };
        counter.fetch_add(count, Ordering::Relaxed);
        true
    }

    fn control(&mut self, msg: Msg) {
        match msg {
            Msg::Record(..) => unreachable!("records are batched by run"),
            Msg::Flush(ack) => {
                if let Sink::File(f) = &mut self.sink {
                    f.tick();
                }
                ack.answer(());
            }
            Msg::Rotate(ack) => {
                let result = match &mut self.sink {
                    Sink::File(f) => {
                        let now = (f.options.clock)();
                        f.rotate(now)
                    }
                    Sink::Pipe(_) => Ok(None),
                };
                ack.answer(result);
            }
            Msg::Configure(pair, ack) => {
                let (layout, options) = *pair;
                let result = match &mut self.sink {
                    Sink::File(f) => f.reconfigure(layout.header_line(), options),
                    Sink::Pipe(_) => Ok(()),
                };
                if result.is_ok() {
                    self.layout = layout;
                }
                ack.answer(result);
            }
        }
    }
}

/// An open accounting file.
struct FileSink {
    path: PathBuf,
    file: File,
    /// (device, inode) of `file`, to notice the path being moved away by someone else.
    id: (u64, u64),
    size: u64,
    header: Vec<u8>,
    options: FileOptions,
    next_boundary: Option<u64>,
    next_cleanup: u64,
    /// When a write error was last logged (errors are logged at most once a minute).
    last_error: Option<u64>,
}

impl FileSink {
    fn open(path: &Path, header: Vec<u8>, options: FileOptions) -> Result<FileSink, AcctError> {
        let now = (options.clock)();
        let (file, id, size) = open_file(path, options.mode())?;
        let mut sink = FileSink {
            path: path.to_path_buf(),
            file,
            id,
            size,
            header,
            next_boundary: next_boundary(now, options.interval),
            next_cleanup: now,
            options,
            last_error: None,
        };
        sink.adopt(now)?;
        // A file left from before a boundary (the daemon was down at midnight) moves now.
        if let Some(interval) = sink.options.interval {
            let period_start = now / interval * interval;
            let modified = fs::metadata(&sink.path).ok().and_then(|m| u64::try_from(m.mtime()).ok());
            if sink.has_records() && modified.is_some_and(|m| m < period_start) {
                sink.rotate(period_start)?;
            }
        }
        sink.cleanup(now);
        Ok(sink)
    }

    fn has_records(&self) -> bool {
        self.size > self.header.len() as u64
    }

    /// Makes the open file ours: a new file gets the header; a file with another header (the
    /// columns changed) is rotated away first; a torn last line is ended.
    fn adopt(&mut self, now: u64) -> Result<(), AcctError> {
        if self.size == 0 {
            return self.write_header();
        }
        let mut first = vec![0; self.header.len()];
        let same =
            self.size >= first.len() as u64 && self.file.read_exact_at(&mut first, 0).is_ok() && first == self.header;
        if !same {
            self.size = self.size.max(self.header.len() as u64 + 1); // has records: rotate it
            return self.rotate(now).map(|_| ());
        }
        let mut last = [0u8];
        if self.file.read_exact_at(&mut last, self.size - 1).is_ok() && last[0] != b'\n' {
            self.file.write_all(b"\n").map_err(|e| self.error("write to", e))?;
            self.size += 1;
        }
        Ok(())
    }

    fn write_header(&mut self) -> Result<(), AcctError> {
        self.file.write_all(&self.header).map_err(|e| self.error("write to", e))?;
        self.size += self.header.len() as u64;
        if self.options.sync {
            self.file.sync_data().map_err(|e| self.error("sync", e))?;
        }
        Ok(())
    }

    fn error(&self, action: &'static str, e: io::Error) -> AcctError {
        AcctError::file(action, &self.path, e)
    }

    /// Reopens the path when the file was moved or removed behind our back (logrotate, an
    /// operator).
    fn follow_path(&mut self) -> Result<(), AcctError> {
        let current = fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if current == Some(self.id) {
            return Ok(());
        }
        let (file, id, size) = open_file(&self.path, self.options.mode())?;
        (self.file, self.id, self.size) = (file, id, size);
        let now = (self.options.clock)();
        self.adopt(now)
    }

    /// Whether the rows were written.
    fn append(&mut self, rows: &[u8]) -> bool {
        let now = (self.options.clock)();
        let result = self.follow_path().and_then(|()| {
            if self.options.max_size.is_some_and(|max| self.size >= max) {
                self.rotate(now)?;
            }
            self.file.write_all(rows).map_err(|e| self.error("write to", e))?;
            self.size += rows.len() as u64;
            if self.options.sync {
                self.file.sync_data().map_err(|e| self.error("sync", e))?;
            }
            if self.options.max_size.is_some_and(|max| self.size >= max) {
                self.rotate(now)?;
            }
            Ok(())
        });
        if let Err(e) = &result {
            self.log_error(now, e);
        }
        result.is_ok()
    }

    fn log_error(&mut self, now: u64, e: &AcctError) {
        if self.last_error.is_none_or(|t| now >= t + 60) {
            tracing::error!("accounting: {e}; the records of this batch are lost");
            self.last_error = Some(now);
        }
    }

    /// Time-driven work: `move-interval` rotation and `delete-after`.
    fn tick(&mut self) {
        let now = (self.options.clock)();
        if let (Some(boundary), Some(interval)) = (self.next_boundary, self.options.interval)
            && now >= boundary
        {
            let stamp = now / interval * interval;
            if let Err(e) = self.follow_path().and_then(|()| self.rotate(stamp)) {
                self.log_error(now, &e);
            }
            self.next_boundary = next_boundary(now, self.options.interval);
        }
        if now >= self.next_cleanup {
            self.cleanup(now);
        }
    }

    /// Moves the file to its dated name (in `move-to` if set) and starts a new one. A file with
    /// no records stays. Returns where the file went.
    fn rotate(&mut self, stamp: u64) -> Result<Option<PathBuf>, AcctError> {
        if !self.has_records() {
            return Ok(None);
        }
        if self.options.sync {
            self.file.sync_data().map_err(|e| self.error("sync", e))?;
        }
        let dir = self.rotated_dir();
        let target = unused_name(&dir, &self.path, stamp);
        let moved = match fs::rename(&self.path, &target) {
            Ok(()) => target,
            Err(e) if self.options.move_to.is_some() => {
                // move-to must be on the same volume; keep the file beside the live one.
                let beside = unused_name(self.path.parent().unwrap_or(Path::new(".")), &self.path, stamp);
                tracing::error!(
                    "accounting: cannot move {} to {}: {e}; keeping it as {}",
                    self.path.display(),
                    target.display(),
                    beside.display()
                );
                fs::rename(&self.path, &beside).map_err(|e| self.error("rename", e))?;
                beside
            }
            Err(e) => return Err(self.error("rename", e)),
        };
        let (file, id, size) = open_file(&self.path, self.options.mode())?;
        (self.file, self.id, self.size) = (file, id, size);
        if self.size == 0 {
            self.write_header()?;
        }
        tracing::info!("accounting: {} moved to {}", self.path.display(), moved.display());
        let now = (self.options.clock)();
        self.cleanup(now);
        Ok(Some(moved))
    }

    fn rotated_dir(&self) -> PathBuf {
        match &self.options.move_to {
            Some(dir) => dir.clone(),
            None => self.path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        }
    }

    /// A reload: new options; new columns start a new file.
    fn reconfigure(&mut self, header: Vec<u8>, options: FileOptions) -> Result<(), AcctError> {
        let now = (options.clock)();
        let interval_changed = options.interval != self.options.interval;
        self.options = options;
        if interval_changed {
            self.next_boundary = next_boundary(now, self.options.interval);
        }
        let _ = self.file.set_permissions(fs::Permissions::from_mode(self.options.mode()));
        self.follow_path()?;
        if header != self.header {
            if self.has_records() {
                self.header = header;
                self.rotate(now)?;
            } else {
                self.file.set_len(0).map_err(|e| self.error("truncate", e))?;
                self.size = 0;
                self.header = header;
                self.write_header()?;
            }
        }
        self.cleanup(now);
        Ok(())
    }

    /// Deletes rotated files whose date stamp is `delete-after` old.
    fn cleanup(&mut self, now: u64) {
        self.next_cleanup = now + CLEANUP_EVERY;
        let Some(keep) = self.options.delete_after else { return };
        let dir = self.rotated_dir();
        let Ok(entries) = fs::read_dir(&dir) else { return };
        let (stem, ext) = stem_and_ext(&self.path);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stamp) = name.to_str().and_then(|n| rotated_stamp(n, &stem, &ext)) else { continue };
            if stamp.saturating_add(keep) <= now {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!("accounting: deleted {} (delete-after)", entry.path().display()),
                    Err(e) => tracing::warn!("accounting: cannot delete {}: {e}", entry.path().display()),
                }
            }
        }
    }
}

/// Opens (creating) an accounting file for appending; returns it, its (device, inode), size.
fn open_file(path: &Path, mode: u32) -> Result<(File, (u64, u64), u64), AcctError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(mode)
        .open(path)
        .map_err(|e| AcctError::file("open", path, e))?;
    // The mode given at creation is masked by the umask, and an existing file keeps its own.
    let _ = file.set_permissions(fs::Permissions::from_mode(mode));
    let meta = file.metadata().map_err(|e| AcctError::file("read", path, e))?;
    Ok((file, (meta.dev(), meta.ino()), meta.len()))
}

/// The first multiple of `interval` since the epoch after `now`.
fn next_boundary(now: u64, interval: Option<u64>) -> Option<u64> {
    interval.map(|i| (now / i + 1) * i)
}

/// `acct.csv` → (`acct`, `.csv`); `acct` → (`acct`, ``).
fn stem_and_ext(path: &Path) -> (String, String) {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (stem, ext)
}

/// `DIR/acct-2007-09-05-0000.csv`, or `…-0000-1.csv` when that exists.
fn unused_name(dir: &Path, path: &Path, stamp: u64) -> PathBuf {
    let (stem, ext) = stem_and_ext(path);
    let stamp = time::file_stamp(stamp);
    let mut candidate = dir.join(format!("{stem}-{stamp}{ext}"));
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = dir.join(format!("{stem}-{stamp}-{n}{ext}"));
    }
    candidate
}

/// The Unix time in a rotated file's name (`acct-2007-09-05-0000[-N].csv`), if it is one.
fn rotated_stamp(name: &str, stem: &str, ext: &str) -> Option<u64> {
    let middle = name.strip_prefix(stem)?.strip_prefix('-')?.strip_suffix(ext)?;
    let (stamp, counter) = match middle.get(15..) {
        Some("") => (middle, None),
        Some(rest) => (middle.get(..15)?, Some(rest.strip_prefix('-')?)),
        None => return None,
    };
    if counter.is_some_and(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    time::parse_file_stamp(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names() {
        let stamp = 1_188_950_400; // 2007-09-05 00:00:00 UTC
        assert_eq!(rotated_stamp("acct-2007-09-05-0000.csv", "acct", ".csv"), Some(stamp));
        assert_eq!(rotated_stamp("acct-2007-09-05-0107-3.csv", "acct", ".csv"), Some(stamp + 3600 + 420));
        assert_eq!(rotated_stamp("acct-2007-09-05-0000", "acct", ""), Some(stamp));
        assert_eq!(rotated_stamp("acct.csv", "acct", ".csv"), None);
        assert_eq!(rotated_stamp("acct-2007-09-05-0000-.csv", "acct", ".csv"), None);
        assert_eq!(rotated_stamp("acct-2007-09-05-00x0.csv", "acct", ".csv"), None);
        assert_eq!(rotated_stamp("other-2007-09-05-0000.csv", "acct", ".csv"), None);
        assert_eq!(rotated_stamp("acct-notes.csv", "acct", ".csv"), None);
        assert_eq!(stem_and_ext(Path::new("/x/acct.csv")), ("acct".into(), ".csv".into()));
        assert_eq!(stem_and_ext(Path::new("/x/acct")), ("acct".into(), String::new()));
    }

    #[test]
    fn boundaries_are_multiples_of_the_interval() {
        assert_eq!(next_boundary(1_188_950_399, Some(86_400)), Some(1_188_950_400));
        assert_eq!(next_boundary(1_188_950_400, Some(86_400)), Some(1_188_950_400 + 86_400));
        assert_eq!(next_boundary(10, None), None);
    }
}
