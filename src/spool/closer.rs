//! Closes deleted segment files on a thread of their own, never on the writer's, and gives their
//! blocks back a few MiB at a time.
//!
//! Closing the last descriptor of an unlinked file is when the file system frees its blocks.
//! For a full 64 MiB segment on ext4 that `close` took 17.6 ms in a traced relay run
//! (`strace -T` on the writer thread, 2026-12-07), and while the writer was in it every session
//! waiting for its `250` waited too: the slowest 0.1% of `250`s were those. Here the writer only
//! hands the file over.
//!
//! Moving the `close` was not enough on a file system mounted with `discard` (the benchmark
//! VM's ext4 is): freeing 64 MiB at once sends the device one large discard, and the writer's
//! next `fdatasync` queued behind it for 12-17 ms. So the file is first shrunk by [`STEP`] at a
//! time, resting between steps as long as each took, and closed once empty: the longest a sync
//! can queue behind is one step's discard.
//!
//! A reader still holding the file (a body being read as the segment goes) keeps it open, as
//! before; the last holder closes it, wherever that is, in one go.

use std::fs::File;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Bytes given back per step while a deleted file is shrunk.
const STEP: u64 = 4 << 20;

/// The closing thread, started on the first file handed over. Dropping it closes every file
/// handed over and stops the thread.
#[derive(Default)]
pub struct Closer {
    started: Option<(mpsc::Sender<Arc<File>>, JoinHandle<()>)>,
}

impl Closer {
    /// Drops the writer's reference to a deleted (already unlinked) segment's file, off this
    /// thread. If no thread can be started, the file is closed here, as it was before this existed.
    pub fn close(&mut self, file: Arc<File>) {
        if self.started.is_none() {
            let (tx, rx) = mpsc::channel::<Arc<File>>();
            match std::thread::Builder::new()
                .name("spool-closer".into())
                .spawn(move || rx.into_iter().for_each(release))
            {
                Ok(thread) => self.started = Some((tx, thread)),
                Err(e) => tracing::debug!("spool: no thread to close deleted segments ({e}); closing in place"),
            }
        }
        match &self.started {
            // A send fails only if the thread is gone; the file comes back and is closed here.
            Some((tx, _)) => drop(tx.send(file)),
            None => drop(file),
        }
    }
}

/// Shrinks a deleted file step by step if this is its last reference, then closes it.
fn release(file: Arc<File>) {
    let Ok(file) = Arc::try_unwrap(file) else { return };
    let Ok(mut len) = file.metadata().map(|m| m.len()) else { return };
    while len > 0 {
        // Down to a multiple of STEP first, then a whole step at a time.
        len -= match len % STEP {
            0 => STEP,
            part => part,
        };
        let started = Instant::now();
        if let Err(e) = file.set_len(len) {
            tracing::debug!("spool: a deleted segment could not be shrunk ({e}); closing it whole");
            return;
        }
        std::thread::sleep(started.elapsed());
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.started.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_file_is_shrunk_to_nothing_before_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let file = File::options().read(true).write(true).create_new(true).open(&path).unwrap();
        file.set_len(3 * STEP + 12345).unwrap();
        // Another descriptor of the same file sees its length after the closer is done with it.
        let other = File::open(&path).unwrap();
        let mut closer = Closer::default();
        closer.close(Arc::new(file));
        drop(closer);
        assert_eq!(other.metadata().unwrap().len(), 0);
    }

    #[test]
    fn every_file_handed_over_is_closed_by_the_time_the_closer_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let file = Arc::new(File::create(&path).unwrap());
        // The weak reference sees the moment the last strong one, the closer's, is dropped.
        let watch = Arc::downgrade(&file);
        let mut closer = Closer::default();
        closer.close(file);
        drop(closer);
        assert!(watch.upgrade().is_none(), "the file is still open after the closer stopped");
    }
}
