//! Segment files and spool directories: file names, listing, the directory lock, free space,
//! choosing the directory of the next segment, creating a segment durably, quarantine copies.
//!
//! Knows file-system rules, not records' meaning: what goes into a segment is decided by the
//! writer and read back by recovery.
//!
//! A segment is named after its sequence number, `{seq:016x}.seg`. Sequence numbers are global
//! over all spool directories, so the segments of every directory, sorted by number, form one log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{SpoolDir, SpoolError, record};

pub const LOCK_FILE: &str = "ember.lock";
pub const QUARANTINE_DIR: &str = "quarantine";

pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.seg")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The segment files of one directory, unsorted.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let io_err = |source| SpoolError::Io { path: dir.to_path_buf(), source };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            found.push((seq, entry.path()));
        }
    }
    Ok(found)
}

/// Takes the exclusive lock of a spool directory. `flock` is tied to the open file, so the lock
/// lives exactly as long as the returned `File` — and dies with the process, even on `kill -9`.
pub fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SpoolError::Io { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(source)) => Err(SpoolError::Io { path, source }),
    }
}

/// Free space for unprivileged users (`f_bavail`), as `df` shows it: root's reserve is not ours.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Chooses the directory of the next segment: among writable directories, the highest priority
/// group that has one with `min_free_space + segment_size` free, round robin inside the group
/// (`rr` counts choices). With no such directory, the writable one with the most room above its
/// floor, so that state records (which must always be written) still have a home; new messages
/// will then be refused with `Full` by the writer's own check. `None` only without any writable
/// directory.
pub fn pick_dir(
    dirs: &[SpoolDir],
    free: &mut dyn FnMut(&Path) -> Option<u64>,
    segment_size: u64,
    rr: &mut usize,
) -> Option<usize> {
    let writable: Vec<usize> = (0..dirs.len()).filter(|&i| !dirs[i].deliver_only).collect();
    let room: Vec<(usize, i128)> = writable
        .iter()
        .map(|&i| (i, free(&dirs[i].path).map_or(-1, |f| i128::from(f) - i128::from(dirs[i].min_free_space))))
        .collect();
    let mut priorities: Vec<u32> = writable.iter().map(|&i| dirs[i].priority).collect();
    priorities.sort_unstable_by(|a, b| b.cmp(a));
    priorities.dedup();
    for p in priorities {
        let fit: Vec<usize> = room
            .iter()
            .filter(|&&(i, r)| dirs[i].priority == p && r >= i128::from(segment_size))
            .map(|&(i, _)| i)
            .collect();
        if !fit.is_empty() {
            let pick = fit[*rr % fit.len()];
            *rr = rr.wrapping_add(1);
            return Some(pick);
        }
    }
    room.iter().max_by_key(|&&(i, r)| (r, dirs[i].priority)).map(|&(i, _)| i)
}

/// Creates segment `seq` in `dir`, beginning with its start record, and makes both the data and
/// the directory entry durable before returning: a segment that a later deletion relies on must
/// not vanish in a crash.
pub fn create_segment(dir: &Path, seq: u64, next_id: u64) -> Result<(PathBuf, File, u64), SpoolError> {
    let path = dir.join(segment_name(seq));
    let io_err = |source| SpoolError::Io { path: path.clone(), source };
    let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_err)?;
    let start = record::segment_start(seq, next_id);
    let written = file.write_all(&start).and_then(|()| file.sync_data()).map_err(io_err).and_then(|()| sync_dir(dir));
    if let Err(e) = written {
        // Best effort: a partial segment left behind would only be reported at the next start.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok((path, file, start.len() as u64))
}

/// fsync of a directory: makes file creations, deletions and truncations in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| SpoolError::Io { path: dir.to_path_buf(), source })
}

/// Copies damaged bytes to `DIR/quarantine/{seq}-{offset}.bad` (same name on every start, so a
/// region found again is overwritten rather than duplicated).
pub fn quarantine(dir: &Path, seq: u64, offset: u64, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
    let qdir = dir.join(QUARANTINE_DIR);
    let path = qdir.join(format!("{seq:016x}-{offset:016x}.bad"));
    let io_err = |source| SpoolError::Io { path: path.clone(), source };
    fs::create_dir_all(&qdir).map_err(io_err)?;
    let mut f = File::create(&path).map_err(io_err)?;
    f.write_all(bytes).and_then(|()| f.sync_data()).map_err(io_err)?;
    sync_dir(&qdir)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str, priority: u32, deliver_only: bool, min_free_space: u64) -> SpoolDir {
        SpoolDir { path: PathBuf::from(name), min_free_space, priority, deliver_only }
    }

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        assert_eq!(segment_name(0x2a), "000000000000002a.seg");
        assert_eq!(parse_segment_name("000000000000002a.seg"), Some(42));
        assert_eq!(parse_segment_name("2a.seg"), None);
        assert_eq!(parse_segment_name("000000000000002a.seg.tmp"), None);
        assert_eq!(parse_segment_name("00000000000000zz.seg"), None);
    }

    #[test]
    fn highest_priority_first_round_robin_among_equals_never_deliver_only() {
        let dirs =
            [dir("/low", 1, false, 0), dir("/a", 5, false, 0), dir("/b", 5, false, 0), dir("/drain", 9, true, 0)];
        let mut free = |_: &Path| Some(1 << 40);
        let mut rr = 0;
        let picks: Vec<usize> = (0..4).map(|_| pick_dir(&dirs, &mut free, 1 << 20, &mut rr).unwrap()).collect();
        assert_eq!(picks, [1, 2, 1, 2]);
    }

    #[test]
    fn a_full_directory_is_skipped_for_a_lower_priority_one() {
        let dirs = [dir("/low", 1, false, 0), dir("/high", 5, false, 100 << 20)];
        let mut free = |p: &Path| Some(if p == Path::new("/high") { 50 << 20 } else { 1 << 40 });
        assert_eq!(pick_dir(&dirs, &mut free, 1 << 20, &mut 0), Some(0));
    }

    #[test]
    fn with_every_directory_full_the_one_with_most_room_still_takes_state_records() {
        let dirs = [dir("/a", 1, false, 10 << 30), dir("/b", 1, false, 1 << 30), dir("/c", 1, true, 0)];
        let mut free = |_: &Path| Some(2 << 30);
        assert_eq!(pick_dir(&dirs, &mut free, 64 << 20, &mut 0), Some(1));
        let only_drain = [dir("/c", 1, true, 0)];
        assert_eq!(pick_dir(&only_drain, &mut free, 64 << 20, &mut 0), None);
    }
}
