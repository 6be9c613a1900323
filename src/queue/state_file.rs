//! Small state files kept beside the spool (warm-up counters, warm-up schedules): reading them at
//! start, and saving them atomically and durably on a thread of their own, so the queue manager's
//! task never waits for a disk.
//!
//! The manager serializes a snapshot (small) and hands it over; the saver keeps only the latest
//! snapshot per file, so a slow disk costs memory for one snapshot per file, never a growing
//! queue. Each hand-over gets a ticket; after a batch is on disk the saver reports the highest
//! ticket it covers, which is how the manager learns that a given change is durable.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use serde::Serialize;

/// Reads small state saved beside the spool: a missing file is a fresh start, a damaged one is
/// logged and replaced.
pub fn load_json<T: serde::de::DeserializeOwned>(path: Option<&Path>, what: &str) -> Option<T> {
    let bytes = std::fs::read(path?).ok()?;
    serde_json::from_slice(&bytes).map_err(|e| tracing::warn!("{what} unreadable ({e}); starting from zero")).ok()
}

/// Replaces `path` with `bytes` so that a crash at any point leaves either the old or the new
/// content, and the new one survives a power loss once this returns: temporary file, fsync,
/// rename, fsync of the directory (without it the rename itself may be lost).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// What the saver thread and the handles share.
#[derive(Default)]
struct Shared {
    slots: Mutex<Slots>,
    /// Signalled when there is something to write or the saver should stop.
    work: Condvar,
    /// Signalled after each batch is written.
    written: Condvar,
}

#[derive(Default)]
struct Slots {
    /// The latest snapshot per file not yet written, with its ticket.
    pending: HashMap<PathBuf, (u64, Vec<u8>)>,
    last_ticket: u64,
    /// Every ticket up to this one is on disk (or failed and was logged).
    done: u64,
    closing: bool,
}

/// Tells the saver thread to finish when the last handle goes; it writes what is pending first.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.slots.lock().expect("saver lock").closing = true;
        self.0.work.notify_all();
    }
}

/// A handle on the saver thread. Cloning shares the thread.
#[derive(Clone)]
pub struct StateSaver {
    closer: Arc<Closer>,
}

impl std::fmt::Debug for StateSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateSaver")
    }
}

impl StateSaver {
    /// Starts the saver thread; `on_saved(ticket)` runs on it after each batch, with the highest
    /// ticket now durable.
    pub fn start(on_saved: impl Fn(u64) + Send + 'static) -> StateSaver {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ember-state-saver".into())
            .spawn(move || run(&thread_shared, &on_saved))
            .expect("spawn the state saver thread");
        StateSaver { closer: Arc::new(Closer(shared)) }
    }

    /// A file this saver writes.
    pub fn file(&self, path: PathBuf) -> StateFile {
        StateFile { path, saver: self.clone() }
    }

    fn submit(&self, path: &Path, bytes: Vec<u8>) -> u64 {
        let shared = &self.closer.0;
        let mut slots = shared.slots.lock().expect("saver lock");
        slots.last_ticket += 1;
        let ticket = slots.last_ticket;
        slots.pending.insert(path.to_path_buf(), (ticket, bytes));
        drop(slots);
        shared.work.notify_one();
        ticket
    }

    /// Blocks until everything handed over so far is written. Not for runtime threads: tests and
    /// callers already off the runtime.
    pub fn flush(&self) {
        let shared = &self.closer.0;
        let mut slots = shared.slots.lock().expect("saver lock");
        let target = slots.last_ticket;
        while slots.done < target {
            slots = shared.written.wait(slots).expect("saver lock");
        }
    }
}

fn run(shared: &Shared, on_saved: &dyn Fn(u64)) {
    loop {
        let mut slots = shared.slots.lock().expect("saver lock");
        while slots.pending.is_empty() && !slots.closing {
            slots = shared.work.wait(slots).expect("saver lock");
        }
        if slots.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut slots.pending);
        // Tickets are handed out under the lock, so every ticket up to the highest taken here is
        // either in this batch, superseded by a newer snapshot in it, or already written.
        let covered = batch.values().map(|(t, _)| *t).max().unwrap_or(slots.done);
        drop(slots);
        for (path, (_, bytes)) in batch {
            if let Err(e) = write_atomically(&path, &bytes) {
                // Counted as done anyway: whoever waits on the ticket (mail held back until its
                // warm-up diversion is durable) must not wait forever on a broken disk; the next
                // change tries again.
                tracing::error!("cannot save {}: {e}", path.display());
            }
        }
        shared.slots.lock().expect("saver lock").done = covered;
        shared.written.notify_all();
        on_saved(covered);
    }
}

/// One state file and the saver that writes it.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
    saver: StateSaver,
}

impl StateFile {
    pub fn load<T: serde::de::DeserializeOwned>(&self, what: &str) -> Option<T> {
        load_json(Some(&self.path), what)
    }

    /// Hands a snapshot of `value` to the saver; the ticket it returns is reported once the
    /// snapshot (or a newer one) is on disk.
    pub fn save<T: Serialize>(&self, value: &T) -> u64 {
        let bytes = serde_json::to_vec(value).expect("plain data");
        self.saver.submit(&self.path, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn the_latest_snapshot_is_on_disk_when_its_ticket_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let saver = StateSaver::start(move |t| {
            let _ = tx.send(t);
        });
        let a = saver.file(dir.path().join("a.json"));
        let b = saver.file(dir.path().join("b.json"));
        let mut last = 0;
        for n in 0..50u64 {
            last = a.save(&n);
        }
        let b_ticket = b.save(&"b");
        let target = last.max(b_ticket);
        // Whatever the batching, the report covering the last ticket comes, and by then both
        // files hold their latest value and no temporary file is left.
        while rx.recv().unwrap() < target {}
        assert_eq!(a.load::<u64>("a"), Some(49));
        assert_eq!(b.load::<String>("b").as_deref(), Some("b"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn flush_waits_for_the_write_and_dropping_the_saver_writes_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let saver = StateSaver::start(|_| {});
        let file = saver.file(path.clone());
        file.save(&1u32);
        saver.flush();
        assert_eq!(load_json::<u32>(Some(&path), "s"), Some(1));

        let (tx, rx) = mpsc::channel();
        let saver = StateSaver::start(move |t| {
            let _ = tx.send(t);
        });
        let ticket = saver.file(path.clone()).save(&2u32);
        drop(saver);
        // The thread ends after the last write: its report is the last thing sent.
        let reports: Vec<u64> = rx.iter().collect();
        assert_eq!(reports.last(), Some(&ticket));
        assert_eq!(load_json::<u32>(Some(&path), "s"), Some(2));
    }

    #[test]
    fn a_failed_write_is_reported_done_so_nothing_waits_forever() {
        let dir = tempfile::tempdir().unwrap();
        let saver = StateSaver::start(|_| {});
        saver.file(dir.path().join("missing-dir").join("s.json")).save(&1u32);
        saver.flush();
        assert!(!dir.path().join("missing-dir").exists());
    }
}
