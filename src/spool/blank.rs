//! Blank segments: segment files written full of zeros and fdatasync'd ahead of use, by a thread
//! of their own, so that the writer's batches overwrite blocks that already exist.
//!
//! # Why
//!
//! Every `250` waits for the writer's `fdatasync`. On ext4 and XFS, a sync after a write that
//! grows a file also writes the file's new size and block allocation (through the journal, or as
//! an inode write without one); a sync after overwriting blocks already written only flushes the
//! data. On the benchmark VM (ext4 on
//! virtio) that halves the cost of each sync (100 KiB batches: 2,200–3,000 syncs/s growing the
//! file, 5,200–5,400 overwriting zeros). `fallocate` does not give the same: its unwritten extents
//! are converted, a metadata change again, when they are first written. Zero-filling inside the
//! writer was tried too: the sync after each fill then flushes the zeros with a batch that waits
//! on it, and p99 time to `250` rose by half. Here the zeros are written out on another
//! thread, in chunks of [`CHUNK`], pausing between chunks as long as each took, so that the disk
//! is never busy with zeros for long while a batch waits. The chunks go to the disk without a
//! cache flush; one `fdatasync` at the end makes the blank durable (`write_out`).
//!
//! On tmpfs, ramfs and copy-on-write file systems (btrfs, ZFS, bcachefs) overwriting costs as much
//! as appending, so no blanks are made there. Nor in a directory with less than two segments'
//! room above its `min-free-space`: a blank holds disk space before it holds mail.
//!
//! # Life of a blank
//!
//! The preparer fills `DIR/next-segment.blank` (one per directory at most). The writer, when it
//! rolls to that directory, adopts it: writes the segment's start record over its first bytes,
//! fdatasyncs, renames it to its segment name and fsyncs the directory, the same durability as a
//! segment created empty. A blank found at start-up was left by a crash, half filled perhaps, and
//! is removed. Recovery takes the zeros after a segment's last record as unused space
//! (`recovery`), and the writer cuts them off a segment it leaves early.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{SpoolError, record, segment};

/// File name of a directory's blank while it is being filled and until it is adopted.
pub const BLANK_FILE: &str = "next-segment.blank";
/// Zeros written out at a time, resting between chunks as long as each took.
const CHUNK: usize = 256 << 10;

/// `statfs` magic numbers of file systems where a blank buys nothing (see the module comment).
const NO_GAIN_FS: [i64; 5] = [
    0x0102_1994,            // tmpfs
    0x8584_58f6,            // ramfs
    0x9123_683e,            // btrfs
    0x2fc1_2fc1,            // zfs
    0xca45_1a4e_u32 as i64, // bcachefs
];

/// A filled, synced blank waiting to be adopted.
pub struct Blank {
    path: PathBuf,
    file: File,
    len: u64,
}

/// What the preparer is asked to make.
struct Job {
    dir: usize,
    dir_path: PathBuf,
    len: u64,
    min_free_space: u64,
}

#[derive(Default)]
struct Slots {
    queued: Vec<Job>,
    /// Directories with a blank queued or being filled.
    busy: Vec<usize>,
    ready: HashMap<usize, Blank>,
    stop: bool,
}

/// The preparer thread and its finished blanks. Dropping it stops the thread and removes every
/// blank not adopted.
pub struct Blanks {
    slots: Arc<(Mutex<Slots>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Blanks {
    pub fn start() -> io::Result<Blanks> {
        let slots: Arc<(Mutex<Slots>, Condvar)> = Arc::default();
        let theirs = slots.clone();
        let thread = std::thread::Builder::new().name("spool-blanks".into()).spawn(move || prepare_loop(&theirs))?;
        Ok(Blanks { slots, thread: Some(thread) })
    }

    /// Asks for a blank of `len` bytes in directory `dir` unless one is ready or on its way there.
    pub fn request(&self, dir: usize, dir_path: &Path, len: u64, min_free_space: u64) {
        let mut s = lock(&self.slots.0);
        if s.stop || s.busy.contains(&dir) || s.ready.contains_key(&dir) {
            return;
        }
        s.busy.push(dir);
        s.queued.push(Job { dir, dir_path: dir_path.to_path_buf(), len, min_free_space });
        self.slots.1.notify_one();
    }

    pub fn is_ready(&self, dir: usize) -> bool {
        lock(&self.slots.0).ready.contains_key(&dir)
    }

    pub fn any_ready(&self) -> bool {
        !lock(&self.slots.0).ready.is_empty()
    }

    pub fn take(&self, dir: usize) -> Option<Blank> {
        lock(&self.slots.0).ready.remove(&dir)
    }
}

impl Drop for Blanks {
    fn drop(&mut self) {
        lock(&self.slots.0).stop = true;
        self.slots.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for (_, blank) in lock(&self.slots.0).ready.drain() {
            let _ = fs::remove_file(&blank.path);
        }
    }
}

fn lock(m: &Mutex<Slots>) -> MutexGuard<'_, Slots> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn prepare_loop(slots: &(Mutex<Slots>, Condvar)) {
    let stopped = || lock(&slots.0).stop;
    loop {
        let job = {
            let mut s = lock(&slots.0);
            loop {
                if s.stop {
                    return;
                }
                if !s.queued.is_empty() {
                    break s.queued.remove(0);
                }
                s = slots.1.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        };
        let made = if worth_it(&job) { fill(&job, &stopped) } else { Ok(None) };
        let mut s = lock(&slots.0);
        s.busy.retain(|&d| d != job.dir);
        match made {
            Ok(Some(blank)) if !s.stop => {
                s.ready.insert(job.dir, blank);
            }
            Ok(Some(blank)) => {
                let _ = fs::remove_file(&blank.path);
            }
            Ok(None) => {}
            // Not an error for the spool: the writer creates its next segment empty instead.
            Err(e) => tracing::debug!(dir = %job.dir_path.display(), "spool: no blank segment prepared: {e}"),
        }
    }
}

/// Is overwriting cheaper than appending on this directory's file system, and is there room?
fn worth_it(job: &Job) -> bool {
    // `f_type` is an i64 on x86_64 and narrower, or unsigned, elsewhere.
    #[allow(clippy::unnecessary_cast)]
    let fs_gains = rustix::fs::statfs(&job.dir_path).is_ok_and(|st| !NO_GAIN_FS.contains(&(st.f_type as i64)));
    let room = job.min_free_space.saturating_add(job.len.saturating_mul(2));
    fs_gains && segment::free_space(&job.dir_path).is_ok_and(|free| free >= room)
}

/// Fills the directory's blank; `None` when stopped meanwhile. Removes the file on failure.
fn fill(job: &Job, stopped: &dyn Fn() -> bool) -> io::Result<Option<Blank>> {
    let path = job.dir_path.join(BLANK_FILE);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0u64;
    let result = loop {
        if at >= job.len {
            break file.sync_data().map(|()| true);
        }
        if stopped() {
            break Ok(false);
        }
        let started = Instant::now();
        let n = (job.len - at).min(CHUNK as u64) as usize;
        if let Err(e) = file.write_all_at(&zeros[..n], at).and_then(|()| write_out(&file, at, n as u64)) {
            break Err(e);
        }
        at += n as u64;
        // Half the disk's time at most, so that the writer's syncs rarely queue behind ours.
        std::thread::sleep(started.elapsed());
    };
    match result {
        Ok(true) => Ok(Some(Blank { path, file, len: job.len })),
        Ok(false) => {
            let _ = fs::remove_file(&path);
            Ok(None)
        }
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Puts one chunk's zeros on the disk and waits for them, without the cache flush of an
/// `fdatasync`: the device's flush is shared by every file on it, so a flush of ours that the
/// writer's sync queued behind would delay a `250` for zeros nobody waits on. The one
/// `fdatasync` after the last chunk makes the blank's size, allocation and data durable before
/// the writer can adopt it, as a sync per chunk did. Elsewhere than Linux, an `fdatasync`.
fn write_out(file: &File, at: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        let (at, len) = (libc::off64_t::try_from(at), libc::off64_t::try_from(len));
        let (Ok(at), Ok(len)) = (at, len) else { return file.sync_data() };
        // SAFETY: a plain system call on a descriptor this function borrows for its duration.
        if unsafe { libc::sync_file_range(file.as_raw_fd(), at, len, flags) } == 0 {
            return Ok(());
        }
        Err(io::Error::last_os_error())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (at, len);
        file.sync_data()
    }
}

/// Turns a blank into segment `seq` of `dir`: start record over its first bytes, fdatasync,
/// rename, directory fsync. Returns the segment's path, file, length in use and prepared length.
/// On failure the blank is gone and nothing named `seq` is left behind, so the caller can create
/// the segment empty instead.
pub fn adopt(blank: Blank, dir: &Path, seq: u64, next_id: u64) -> Result<(PathBuf, File, u64, u64), SpoolError> {
    let Blank { path: blank_path, mut file, len } = blank;
    let path = dir.join(segment::segment_name(seq));
    let start = record::segment_start(seq, next_id);
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| SpoolError::Io { path: p, source }
    };
    let written = file
        .write_all_at(&start, 0)
        .and_then(|()| file.sync_data())
        .and_then(|()| file.seek(SeekFrom::Start(start.len() as u64)).map(|_| ()))
        .map_err(io_err(&blank_path))
        .and_then(|()| fs::rename(&blank_path, &path).map_err(io_err(&path)));
    if let Err(e) = written {
        let _ = fs::remove_file(&blank_path);
        return Err(e);
    }
    if let Err(e) = segment::sync_dir(dir) {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok((path, file, start.len() as u64, len.max(start.len() as u64)))
}

/// Removes a blank left in `dir` by an earlier run (it may be half filled).
pub fn remove_leftover(dir: &Path) -> Result<(), SpoolError> {
    let path = dir.join(BLANK_FILE);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SpoolError::Io { path, source }),
    }
}
