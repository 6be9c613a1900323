//! A full disk, for real: a small tmpfs is mounted for each test (skipped, with a note, where
//! mounting is not permitted).

use std::process::Command;

use super::*;
use crate::message::RecipientState::Delivered;

/// A tmpfs of a few MiB, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every free byte.
    fn fill(&self) {
        let _ = std::fs::write(self.path().join("filler"), vec![0u8; 64 << 20]);
    }

    /// Takes all but about `left` free bytes.
    fn fill_leaving(&self, left: u64) {
        let free = segment::free_space(self.path()).unwrap();
        std::fs::write(self.path().join("filler"), vec![0u8; free.saturating_sub(left) as usize]).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn is_enospc(e: &SpoolError) -> bool {
    matches!(e, SpoolError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
}

#[tokio::test]
async fn a_full_disk_fails_the_write_not_the_spool_and_leaves_no_torn_record() {
    let Some(fs) = SmallFs::mount("2m") else { return };
    let dir = fs.path().join("spool");
    let (spool, _) = reopen(opts(&dir, 1 << 30)).unwrap();
    let mut stored = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        match spool.store(envelope(&["a@example.com", "b@example.com"]), body(i, 50_000)).await {
            Ok(id) => stored.push((i, id)),
            Err(e) => {
                assert!(is_enospc(&e), "{e}");
                assert!(e.to_string().contains("No space left on device"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0 && stored.len() > 10, "{} stored, {refused} refused", stored.len());
    // The failed writes were cut back: a small state record still fits, and the spool works on.
    spool.update(vec![change(stored[0].1, 0, Delivered)]).await.unwrap();
    spool.close().await;

    let (spool, rec) = reopen(opts(&dir, 1 << 30)).unwrap();
    assert_eq!((rec.messages, rec.torn_tail_truncated, rec.quarantined), (stored.len(), None, 0));
    assert_eq!(spool.envelope(stored[0].1).unwrap().recipients[0].state, Delivered);
    for (i, id) in &stored {
        assert_eq!(spool.read_body(*id).unwrap(), body(*i, 50_000));
    }
}

#[tokio::test]
async fn the_daemon_starts_on_a_full_disk_and_drains_its_queue() {
    let Some(fs) = SmallFs::mount("1m") else { return };
    let dir = fs.path().join("spool");
    let (spool, _) = reopen(opts(&dir, 1 << 30)).unwrap();
    let a = spool.store(envelope(&["a@example.com"]), body(1, 10_000)).await.unwrap();
    let b = spool.store(envelope(&["b@example.com"]), body(2, 10_000)).await.unwrap();
    spool.close().await;
    fs.fill();

    // No room for a new segment: the last one is appended to instead.
    let (spool, rec) = reopen(opts(&dir, 1 << 30)).unwrap();
    assert_eq!(rec.messages, 2);
    assert_eq!(segment_files(&dir).len(), 1);
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    spool.update(vec![change(a, 0, Delivered)]).await.unwrap();
    let c = spool.store(envelope(&["c@example.com"]), body(3, 100)).await.unwrap();
    assert!(c > b);
    spool.close().await;
    let (spool, _) = reopen(opts(&dir, 1 << 30)).unwrap();
    assert_eq!(spool.live().iter().map(|e| e.id).collect::<Vec<_>>(), [b, c]);
}

#[tokio::test]
async fn a_compaction_that_runs_out_of_space_changes_nothing_and_succeeds_later() {
    let Some(fs) = SmallFs::mount("2m") else { return };
    let dir = fs.path().join("spool");
    let mut o = opts(&dir, 64 << 10);
    o.compact_live_ratio = 0.0;
    let (spool, _) = reopen(o.clone()).unwrap();
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(spool.store(envelope(&["a@example.com"]), body(i, 10_000)).await.unwrap());
    }
    for id in ids.iter().skip(1).step_by(2) {
        spool.update(vec![change(*id, 0, Delivered)]).await.unwrap();
    }
    let before = segment_files(&dir);
    // Room for a new segment and a copy or two, not for the 30 live messages.
    fs.fill_leaving(24 << 10);
    let err = spool.compact().await.unwrap_err();
    assert!(is_enospc(&err), "{err}");
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let live: Vec<MessageId> = ids.iter().copied().step_by(2).collect();
    assert_eq!(spool.live().iter().map(|e| e.id).collect::<Vec<_>>(), live);
    assert!(segment_files(&dir).len() <= before.len() + 1);
    spool.compact().await.unwrap();
    spool.close().await;

    let (spool, rec) = reopen(o).unwrap();
    assert_eq!((rec.messages, rec.quarantined, rec.torn_tail_truncated), (live.len(), 0, None));
    for (i, id) in ids.iter().enumerate().step_by(2) {
        assert_eq!(spool.read_body(*id).unwrap(), body(i, 10_000));
    }
}

#[tokio::test]
async fn on_a_full_disk_outcomes_are_still_recorded_in_a_full_segment() {
    let Some(fs) = SmallFs::mount("1m") else { return };
    let dir = fs.path().join("spool");
    let o = opts(&dir, 4096);
    let (spool, _) = reopen(o.clone()).unwrap();
    // 5 KB: the segment is past its 4 KiB size, so the next batch wants a new one.
    let id = spool.store(envelope(&["a@example.com", "b@example.com"]), body(1, 5000)).await.unwrap();
    fs.fill();
    // No new segment can be created; the change goes into the slack of the current one.
    spool.update(vec![change(id, 0, Delivered)]).await.unwrap();
    assert_eq!(segment_files(&dir).len(), 1);
    spool.close().await;
    let (spool, _) = reopen(o).unwrap();
    assert_eq!(live_states(&spool), [(id.0, vec![Delivered, fresh()])]);
}
