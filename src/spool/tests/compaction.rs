//! Segment life: dead segments go, sparse ones are compacted, and nothing dead comes back.

use super::*;
use crate::message::RecipientState::{Bounced, Delivered};

/// Body size of `fill`'s messages: their records are ~700 bytes, six to a 4 KiB segment, so one
/// live message leaves a segment ~17 % live — clearly below the 25 % compaction threshold.
const BODY: usize = 600;

/// Stores `n` one-recipient messages.
async fn fill(spool: &Spool, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(spool.store(envelope(&["r@example.com"]), body(i, BODY)).await.unwrap());
    }
    ids
}

#[tokio::test]
async fn segments_of_delivered_messages_are_deleted_and_stay_dead_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = reopen(opts(dir.path(), 4096)).unwrap();
    let ids = fill(&spool, 24).await;
    let first = segment_files(dir.path());
    assert!(first.len() >= 4, "{first:?}");
    for id in &ids {
        spool.update(vec![change(*id, 0, Delivered)]).await.unwrap();
    }
    // Deletion runs after every batch; only the active segment may remain.
    spool.flush().await.unwrap();
    let left = segment_files(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!first.contains(&left[0]) || first.last() == Some(&left[0]));
    assert!(spool.stats().segments_deleted as usize >= first.len() - 1);
    spool.close().await;

    let (spool, rec) = reopen(opts(dir.path(), 4096)).unwrap();
    assert_eq!((rec.messages, rec.recipients), (0, 0));
    assert!(spool.live().is_empty());
}

#[tokio::test]
async fn a_live_message_in_the_oldest_segment_keeps_newer_segments_and_nothing_resurrects() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 4096);
    o.compact_live_ratio = 0.0; // never compact: this test is about deletion order alone
    let (spool, _) = reopen(o.clone()).unwrap();
    let ids = fill(&spool, 24).await;
    // Every message but the very first is delivered; their state records land in later segments.
    for id in &ids[1..] {
        spool.update(vec![change(*id, 0, Delivered)]).await.unwrap();
    }
    spool.flush().await.unwrap();
    let kept = segment_files(dir.path());
    assert_eq!(kept[0], segment_of(&spool, ids[0]), "the oldest segment is pinned by its live message");
    assert!(kept.len() >= 4, "dead segments behind a live oldest one must stay: {kept:?}");
    spool.close().await;

    let (spool, rec) = reopen(o.clone()).unwrap();
    assert_eq!(rec.messages, 1);
    assert_eq!(live_states(&spool), [(ids[0].0, vec![fresh()])]);
    spool.update(vec![change(ids[0], 0, Bounced)]).await.unwrap();
    spool.flush().await.unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    spool.close().await;
    assert_eq!(reopen(o).unwrap().1.messages, 0);
}

#[tokio::test]
async fn compaction_moves_live_messages_with_their_states_and_frees_the_old_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 4096);
    o.compact_live_ratio = 0.0; // only the forced compaction below
    let (spool, _) = reopen(o.clone()).unwrap();
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(spool.store(envelope(&["a@example.com", "b@example.org"]), body(i, BODY)).await.unwrap());
    }
    let oldest = segment_of(&spool, ids[0]);
    // ids[0] is deferred on one recipient, delivered on the other; everything else is delivered.
    spool.update(vec![change(ids[0], 0, deferred(2_000_000_000)), change(ids[0], 1, Delivered)]).await.unwrap();
    for id in &ids[1..] {
        spool.update(vec![change(*id, 0, Delivered), change(*id, 1, Delivered)]).await.unwrap();
    }
    let report = spool.compact().await.unwrap();
    assert_eq!(report.messages_moved, 1);
    assert!(!oldest.exists(), "the compacted segment is deleted");
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(spool.read_body(ids[0]).unwrap(), body(0, BODY));
    let expect = [(ids[0].0, vec![deferred(2_000_000_000), Delivered])];
    assert_eq!(live_states(&spool), expect);
    spool.close().await;

    // Reopen: the copy carries the states (the state records before it are gone with their
    // segments); a change after the copy applies on top.
    let (spool, rec) = reopen(o.clone()).unwrap();
    assert_eq!((rec.messages, rec.quarantined), (1, 0));
    assert_eq!(live_states(&spool), expect);
    assert_eq!(spool.read_body(ids[0]).unwrap(), body(0, BODY));
    spool.update(vec![change(ids[0], 0, deferred(2_100_000_000))]).await.unwrap();
    spool.close().await;
    let (spool, _) = reopen(o).unwrap();
    assert_eq!(live_states(&spool), [(ids[0].0, vec![deferred(2_100_000_000), Delivered])]);
}

#[tokio::test]
async fn state_records_older_than_a_copy_are_dropped_newer_ones_applied() {
    // Message b's original is in segment 1, a state record of b in segment 2 (kept alive by its
    // own messages), b's copy in segment 3. After segment 1 is compacted away, recovery meets
    // b's state record before any record of b, then the copy, then a change made after the copy.
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = reopen(opts(dir.path(), 4096)).unwrap();
    let first = fill(&spool, 6).await;
    let b = first[1];
    let seg1 = segment_of(&spool, b);
    spool.update(vec![change(b, 0, deferred(7))]).await.unwrap();
    let second = fill(&spool, 6).await;
    let seg2 = segment_of(&spool, second[0]);
    assert_ne!(seg1, seg2);
    spool.update(vec![change(b, 0, deferred(9))]).await.unwrap();
    for id in first.iter().filter(|&&id| id != b) {
        spool.update(vec![change(*id, 0, Delivered)]).await.unwrap();
    }
    spool.flush().await.unwrap();
    assert!(!seg1.exists(), "segment 1 was compacted");
    assert!(seg2.exists());
    assert_ne!(segment_of(&spool, b), seg2);
    spool.update(vec![change(b, 0, deferred(10))]).await.unwrap();
    spool.close().await;

    let (spool, rec) = reopen(opts(dir.path(), 4096)).unwrap();
    assert_eq!((rec.messages, rec.quarantined), (7, 0));
    let states = live_states(&spool);
    assert_eq!(states[0], (b.0, vec![deferred(10)]));
    assert!(states[1..].iter().all(|(_, s)| s == &[fresh()]));
}

#[tokio::test]
async fn a_crash_between_the_copy_and_the_deletion_neither_duplicates_nor_reverts() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = reopen(opts(dir.path(), 4096)).unwrap();
    let ids = fill(&spool, 3).await;
    let original = segment_of(&spool, ids[0]);
    for id in &ids[1..] {
        spool.update(vec![change(*id, 0, Delivered)]).await.unwrap();
    }
    spool.update(vec![change(ids[0], 0, deferred(11))]).await.unwrap();
    // Every segment as it is before compaction: the state records of ids[1..] may lie in a later
    // one than their messages (a roll to a blank segment, say), which compaction deletes too.
    let saved: Vec<(PathBuf, Vec<u8>)> =
        segment_files(dir.path()).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    spool.compact().await.unwrap();
    spool.update(vec![change(ids[0], 0, deferred(12))]).await.unwrap();
    spool.close().await;
    // As if the unlink of the compacted segment had not reached the disk: then neither had any
    // later one (each waits for the directory fsync of the one before).
    assert!(!original.exists());
    for (path, bytes) in saved.iter().filter(|(p, _)| !p.exists()) {
        std::fs::write(path, bytes).unwrap();
    }

    let (spool, rec) = reopen(opts(dir.path(), 4096)).unwrap();
    assert_eq!(rec.messages, 1);
    assert_eq!(live_states(&spool), [(ids[0].0, vec![deferred(12)])]);
    assert_eq!(spool.read_body(ids[0]).unwrap(), body(0, BODY));
    spool.update(vec![change(ids[0], 0, Delivered)]).await.unwrap();
    spool.flush().await.unwrap();
    assert!(!original.exists(), "the now dead oldest segment is deleted again");
    spool.close().await;
    assert_eq!(reopen(opts(dir.path(), 4096)).unwrap().1.messages, 0);
}

/// Stores 12 messages and delivers all but the first; returns them and the first one's segment,
/// which that leaves sparse.
async fn one_live_in_twelve(spool: &Spool) -> (Vec<MessageId>, PathBuf) {
    let ids = fill(spool, 12).await;
    let oldest = segment_of(spool, ids[0]);
    for id in &ids[1..] {
        spool.update(vec![change(*id, 0, Delivered)]).await.unwrap();
    }
    (ids, oldest)
}

#[tokio::test]
async fn a_segment_just_sealed_is_not_compacted_but_deleted_at_once_when_dead() {
    let dir = tempfile::tempdir().unwrap();
    let o = SpoolOptions { compact_grace: Duration::from_secs(3600), ..opts(dir.path(), 4096) };
    let (spool, _) = reopen(o).unwrap();
    let (ids, oldest) = one_live_in_twelve(&spool).await;
    // As sparse as in the test below, but sealed within the grace: left alone.
    spool.flush().await.unwrap();
    assert!(oldest.exists());
    assert_eq!(spool.stats().messages_compacted, 0);
    // Its last message delivered, it is dead: deleted without waiting, nothing copied.
    spool.update(vec![change(ids[0], 0, Delivered)]).await.unwrap();
    spool.flush().await.unwrap();
    assert!(!oldest.exists());
    assert_eq!(spool.stats().messages_compacted, 0);
    // A forced compaction does not wait either.
    let (more, sealed) = one_live_in_twelve(&spool).await;
    spool.compact().await.unwrap();
    assert!(!sealed.exists());
    assert!(spool.stats().messages_compacted >= 1);
    assert_eq!(spool.read_body(more[0]).unwrap(), body(0, BODY));
    spool.close().await;
}

#[tokio::test]
async fn a_sparse_oldest_segment_is_compacted_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = reopen(opts(dir.path(), 4096)).unwrap();
    let (ids, oldest) = one_live_in_twelve(&spool).await;
    // The oldest segment is now one live message in six: below the 25 % default.
    spool.flush().await.unwrap();
    assert!(!oldest.exists());
    assert!(spool.stats().messages_compacted >= 1);
    assert_eq!(spool.read_body(ids[0]).unwrap(), body(0, BODY));
    spool.close().await;
    let (spool, _) = reopen(opts(dir.path(), 4096)).unwrap();
    assert_eq!(live_states(&spool), [(ids[0].0, vec![fresh()])]);
}

#[tokio::test]
async fn deliver_only_directories_are_drained_and_never_written() {
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    let (spool, _) = reopen(opts(old.path(), 4096)).unwrap();
    let ids = fill(&spool, 4).await;
    spool.close().await;
    let before = segment_files(old.path());

    let mut drain = SpoolDir::new(old.path());
    drain.deliver_only = true;
    let o = SpoolOptions {
        segment_size: 4096,
        blank_segments: false,
        ..SpoolOptions::new(vec![drain, SpoolDir::new(new.path())])
    };
    let (spool, rec) = reopen(o.clone()).unwrap();
    assert_eq!(rec.messages, 4);
    assert_eq!(segment_files(old.path()), before, "no new segment in a deliver-only directory");
    let id = spool.store(envelope(&["n@example.com"]), body(9, 100)).await.unwrap();
    assert!(segment_of(&spool, id).starts_with(new.path()));
    spool.update(vec![change(ids[0], 0, Delivered)]).await.unwrap();
    spool.compact().await.unwrap();
    assert!(segment_files(old.path()).is_empty(), "drained: {:?}", segment_files(old.path()));
    for (i, id) in ids[1..].iter().enumerate() {
        assert_eq!(spool.read_body(*id).unwrap(), body(i + 1, BODY));
    }
    spool.close().await;
    assert_eq!(reopen(o).unwrap().1.messages, 4);
}

#[tokio::test]
async fn a_large_compaction_proceeds_in_steps_between_batches_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 24 << 20);
    let (spool, _) = reopen(o.clone()).unwrap();
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(spool.store(envelope(&["r@example.com"]), body(i, 256 << 10)).await.unwrap());
    }
    let first = segment_of(&spool, ids[0]);
    // Keep every fifth message of the first segment: ~5 MiB live, more than one 4 MiB step.
    // (Compaction starts as soon as the segment falls below 25 % live, so it may also move a few
    // messages that are delivered afterwards.)
    let in_first: Vec<MessageId> = ids.iter().copied().filter(|id| segment_of(&spool, *id) == first).collect();
    let keep: Vec<MessageId> = in_first.iter().copied().step_by(5).collect();
    for id in in_first.iter().filter(|id| !keep.contains(id)) {
        spool.update(vec![change(*id, 0, Delivered)]).await.unwrap();
    }
    for _ in 0..3 {
        spool.flush().await.unwrap();
    }
    assert!(!first.exists(), "the first segment was compacted away");
    assert!(spool.stats().messages_compacted as usize >= keep.len());
    spool.close().await;
    let (spool, rec) = reopen(o).unwrap();
    assert_eq!(rec.messages, ids.len() - in_first.len() + keep.len());
    for (i, id) in ids.iter().enumerate() {
        if keep.contains(id) || !in_first.contains(id) {
            assert_eq!(spool.read_body(*id).unwrap(), body(i, 256 << 10));
        }
    }
}
