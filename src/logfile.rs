//! The main log (`log-file`): where the daemon's log lines go.
//!
//! Until a configuration is loaded, and whenever it names no `log-file`, lines go to stderr (a
//! service manager's journal). With `log-file PATH` they are appended to PATH, created `0640`
//! (`0644` with `log-file-world-readable`), and the file is rotated as PowerMTA does: at
//! midnight (UTC, like every other day boundary in Ember) when `log-auto-rotation` is on, and
//! on demand (`ember rotate log`, `POST /api/v1/log/rotate`, e.g. from a logrotate
//! `postrotate` script). Rotation renames PATH to PATH.1, PATH.1 to PATH.2, … and keeps
//! `log-rotate` of them.
//!
//! A reload may name another file: it is opened before the new configuration is applied, so a
//! path the daemon cannot write refuses the reload instead of losing the log. The file is opened
//! with `O_APPEND` and written in whole lines, so lines are never interleaved. A line the file
//! refuses (a full disk) goes to stderr instead of vanishing.
//!
//! Lines are written by a thread of their own (`Writer`), fed through a bounded channel: the
//! threads that log (the runtime's among them) never wait for a disk or for each other, and the
//! writer writes whatever has queued up in one go. When the channel is full a line is dropped
//! and counted rather than blocking a runtime thread; the count is written where the gap is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::config::value::Value;
use crate::config::{Config, Dir};
use crate::outcome::acct::{Clock, system_clock};

const DAY: u64 = 86_400;

/// Where lines go now. Locked by the writer thread per batch, and by reloads and rotations.
static TARGET: Mutex<Option<OpenLog>> = Mutex::new(None);
/// The writer thread of the process's log, started by the first line.
static WRITER: OnceLock<Writer> = OnceLock::new();
/// Lines the channel holds before new ones are dropped: a burst of a few megabytes of log.
const QUEUED_LINES: usize = 16_384;
/// Lines written in one go at most, so a rotation or reload waits for one batch only.
const BATCH_LINES: usize = 1024;
/// After a write, the writer gathers lines this long before it looks again: lines then queue
/// while it sleeps instead of waking it one by one (a send to a sleeping, not waiting, thread
/// costs no system call), so a busy server writes once per window. 16,384 queued lines in 5 ms
/// would be over three million lines a second: the gathering never makes the queue overflow.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);
/// Whether the formatter was set up to colour lines (only for a terminal on stderr): colour
/// codes are taken out again for a file a later reload names.
static COLOURED: AtomicBool = AtomicBool::new(false);

/// An open `log-file`.
struct OpenLog {
    settings: LogSettings,
    file: File,
    /// The UTC day (days since 1970) the file's lines belong to.
    day: u64,
    clock: Clock,
}

/// What the configuration says about the main log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    pub path: PathBuf,
    /// Rotated files kept.
    pub keep: u64,
    pub midnight: bool,
    pub world_readable: bool,
}

impl LogSettings {
    /// The configuration's `log-file` settings, or `None` when it names no file.
    pub fn from_config(config: &Config) -> Option<LogSettings> {
        let path = match config.global.get(Dir::LogFile).map(|e| &e.value) {
            Some(Value::Path(p)) if !p.as_os_str().is_empty() => config.path(p),
            _ => return None,
        };
        Some(LogSettings {
            path,
            keep: config.policy.log_rotate,
            midnight: config.global.flag(Dir::LogAutoRotation),
            world_readable: config.global.flag(Dir::LogFileWorldReadable),
        })
    }

    fn mode(&self) -> u32 {
        if self.world_readable { 0o644 } else { 0o640 }
    }
}

/// Why the log file could not be opened or rotated. Every text starts `log-file PATH: `.
#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    #[error("log-file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("log-file {}: cannot create its directory: {source}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("log-file {}: cannot set its mode: {source}", path.display())]
    Mode {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A step of rotation; `action` is stat, remove or rename.
    #[error("log-file {}: {action}: {source}", path.display())]
    Rotate {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A log target opened for a configuration and not yet in use: see [`prepare`].
pub struct Prepared(Option<OpenLog>);

/// Opens what a configuration names (creating the file and its directory), without switching
/// to it: the caller installs it once the rest of the configuration is accepted.
pub fn prepare(config: &Config) -> Result<Prepared, LogFileError> {
    prepare_with_clock(config, system_clock())
}

pub fn prepare_with_clock(config: &Config, clock: Clock) -> Result<Prepared, LogFileError> {
    let Some(settings) = LogSettings::from_config(config) else { return Ok(Prepared(None)) };
    let mut current = target();
    // The file already open stays open (a reload that does not change it must not reopen it:
    // its day would start over); new settings for the same file apply to it.
    if let Some(open) = current.as_mut().filter(|o| o.settings.path == settings.path) {
        let file =
            open.file.try_clone().map_err(|source| LogFileError::Open { path: settings.path.clone(), source })?;
        return Ok(Prepared(Some(OpenLog { settings, file, day: open.day, clock })));
    }
    drop(current);
    let file = open(&settings)?;
    let day = clock() / DAY;
    Ok(Prepared(Some(OpenLog { settings, file, day, clock })))
}

impl Prepared {
    /// Where this target writes (`None`: stderr).
    pub fn path(&self) -> Option<&Path> {
        self.0.as_ref().map(|o| o.settings.path.as_path())
    }

    /// Sends every log line from now on to this target.
    pub fn install(self) {
        *target() = self.0;
    }
}

/// Rotates the log now; the name the old lines went to, or `None` when there is no log file
/// (lines go to stderr) or it was empty.
pub fn rotate() -> Result<Option<PathBuf>, LogFileError> {
    let mut current = target();
    match current.as_mut() {
        Some(open) => open.rotate(),
        None => Ok(None),
    }
}

/// The tracing writer: one per log line.
pub struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        WRITER.get_or_init(|| Writer::start(QUEUED_LINES, write_batch)).line(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Waits until every line logged so far is written. For the end of the process (and tests):
/// it blocks, so not for runtime threads.
pub fn flush() {
    if let Some(w) = WRITER.get() {
        w.flush();
    }
}

/// Writes a batch of lines to the current target, or stderr.
fn write_batch(lines: &[u8]) {
    let mut current = target();
    let written = match current.as_mut() {
        Some(open) => open.write_line(lines, COLOURED.load(Ordering::Relaxed)),
        None => Err(io::ErrorKind::NotFound.into()),
    };
    drop(current);
    if written.is_err() {
        let _ = io::stderr().write_all(lines);
    }
}

enum Msg {
    /// A line, and how many lines were dropped just before it.
    Line(Vec<u8>, u64),
    /// Answered once everything sent before it is written.
    Flush(SyncSender<()>),
}

/// A thread writing lines in batches, fed by a bounded channel.
struct Writer {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn start(capacity: usize, sink: impl FnMut(&[u8]) + Send + 'static) -> Writer {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        std::thread::Builder::new()
            .name("ember-log-writer".into())
            .spawn(move || write_lines(&rx, sink))
            .expect("spawn the log writer thread");
        Writer { tx, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// Queues a line; never waits. A full channel (the disk is slower than the logging) drops
    /// the line and counts it: logging must not stall the threads that deliver mail. The next
    /// line that gets through carries the count, so the log says where lines are missing.
    fn line(&self, line: &[u8]) {
        let dropped = match self.dropped.load(Ordering::Relaxed) {
            0 => 0,
            _ => self.dropped.swap(0, Ordering::Relaxed),
        };
        match self.tx.try_send(Msg::Line(line.to_vec(), dropped)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                let _ = io::stderr().write_all(line);
            }
        }
    }

    fn flush(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

/// The writer thread: takes what has queued up (at least one line), writes it with one call.
fn write_lines(rx: &Receiver<Msg>, mut sink: impl FnMut(&[u8])) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut lines = 0;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(line, dropped) => {
                    if dropped > 0 {
                        batch.extend_from_slice(
                            format!("ember: {dropped} log lines dropped here: the log writer fell behind\n").as_bytes(),
                        );
                    }
                    batch.extend_from_slice(&line);
                    lines += 1;
                }
                Msg::Flush(done) => flushes.push(done),
            }
            if lines < BATCH_LINES {
                next = rx.try_recv().ok();
            }
        }
        let wrote = !batch.is_empty();
        if wrote {
            sink(&batch);
            batch.clear();
        }
        for done in flushes.drain(..) {
            // A flusher that stopped waiting needs no answer, and the log's own writer cannot
            // log that it found none (the `Answer` trait would).
            let _ = done.send(());
        }
        if wrote {
            std::thread::sleep(GATHER);
        }
    }
}

/// Installs the process's log subscriber, writing to the target the configuration names
/// (`RUST_LOG` chooses what is logged; `info` by default). Lines are coloured only for a
/// terminal on stderr.
pub fn init(target: Prepared) {
    let coloured = target.path().is_none() && io::IsTerminal::is_terminal(&io::stderr());
    COLOURED.store(coloured, Ordering::Relaxed);
    target.install();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LineWriter)
        .with_target(false)
        .with_ansi(coloured)
        .try_init();
}

impl OpenLog {
    /// Appends one line, rotating first when a midnight has passed since the last one.
    fn write_line(&mut self, line: &[u8], coloured: bool) -> io::Result<()> {
        let today = (self.clock)() / DAY;
        if self.settings.midnight && today != self.day {
            if let Err(e) = self.rotate() {
                let _ = writeln!(io::stderr(), "ember: cannot rotate the log at midnight: {e}");
            }
            self.day = today;
        }
        if coloured { self.file.write_all(&without_colour(line)) } else { self.file.write_all(line) }
    }

    /// PATH → PATH.1 → … → PATH.keep, then a new PATH. An empty file is left as it is. When
    /// PATH is no longer the open file (logrotate moved it away), only a new PATH is opened.
    fn rotate(&mut self) -> Result<Option<PathBuf>, LogFileError> {
        let path = &self.settings.path;
        let failed =
            |action: &'static str, source: io::Error| LogFileError::Rotate { path: path.clone(), action, source };
        let open_inode = self.file.metadata().map_err(|e| failed("stat", e))?.ino();
        if fs::metadata(path).map(|m| m.ino()).ok() != Some(open_inode) {
            self.file = open(&self.settings)?;
            return Ok(None);
        }
        if self.file.metadata().map_err(|e| failed("stat", e))?.len() == 0 {
            return Ok(None);
        }
        let numbered = |n: u64| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let moved = if self.settings.keep == 0 {
            fs::remove_file(path).map_err(|e| failed("remove", e))?;
            None
        } else {
            // The oldest one is replaced by the rename below it; a gap in the chain is fine.
            for n in (1..self.settings.keep).rev() {
                match fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(failed("rename", e)),
                    _ => {}
                }
            }
            fs::rename(path, numbered(1)).map_err(|e| failed("rename", e))?;
            Some(numbered(1))
        };
        self.file = open(&self.settings)?;
        Ok(moved)
    }
}

fn open(settings: &LogSettings) -> Result<File, LogFileError> {
    let path = &settings.path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| LogFileError::Directory { path: path.clone(), source })?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(settings.mode())
        .open(path)
        .map_err(|source| LogFileError::Open { path: path.clone(), source })?;
    // An existing file gets the mode the configuration asks for, too.
    file.set_permissions(fs::Permissions::from_mode(settings.mode()))
        .map_err(|source| LogFileError::Mode { path: path.clone(), source })?;
    Ok(file)
}

fn target() -> MutexGuard<'static, Option<OpenLog>> {
    // A panic while a line was written leaves nothing half-done that matters: keep logging.
    TARGET.lock().unwrap_or_else(|p| p.into_inner())
}

/// A line without its terminal colour codes (`ESC [ … m`).
fn without_colour(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = memchr::memchr(0x1b, rest) {
        out.extend_from_slice(&rest[..at]);
        let code = &rest[at..];
        match code.iter().position(|&b| b == b'm').filter(|_| code.get(1) == Some(&b'[')) {
            Some(end) => rest = &code[end + 1..],
            None => {
                out.push(0x1b);
                rest = &code[1..];
            }
        }
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests;
