//! Blank segments (zero-filled ahead of use): what is stored in them survives a close and a
//! reopen like anything else, and neither zeros nor blank files are left behind.

use super::*;

fn with_blanks(dir: &Path, segment_size: u64) -> SpoolOptions {
    SpoolOptions { blank_segments: true, ..opts(dir, segment_size) }
}

/// Stores until `n` segments have been made from blanks (the writer takes each as soon as it is
/// ready); returns the ids and body numbers.
async fn store_through_blanks(spool: &Spool, n: u64) -> Vec<(MessageId, usize)> {
    let mut stored = Vec::new();
    for i in 0.. {
        let id = spool.store(envelope(&["a@example.com"]), body(i, 3000)).await.unwrap();
        stored.push((id, i));
        if spool.stats().segments_from_blanks >= n {
            return stored;
        }
    }
    unreachable!()
}

#[tokio::test]
async fn messages_in_segments_made_from_blanks_are_recovered_and_no_zeros_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = reopen(with_blanks(dir.path(), 1 << 20)).unwrap();
    let stored = store_through_blanks(&spool, 3).await;
    // The next blank is being filled or waits for its turn.
    spool.close().await;
    assert!(!dir.path().join(blank::BLANK_FILE).exists(), "a blank left after close");
    for seg in segment_files(dir.path()) {
        let bytes = std::fs::read(&seg).unwrap();
        assert_ne!(bytes.last(), Some(&0), "{} ends in zeros after close", seg.display());
    }
    let (spool, rec) = reopen(with_blanks(dir.path(), 1 << 20)).unwrap();
    assert_eq!((rec.messages, rec.quarantined, rec.torn_tail_truncated), (stored.len(), 0, None));
    for (id, i) in stored {
        assert_eq!(spool.read_body(id).unwrap(), body(i, 3000));
    }
    spool.close().await;
}

#[tokio::test]
async fn a_blank_left_by_a_crash_is_removed_and_an_abandoned_segment_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = reopen(with_blanks(dir.path(), 1 << 20)).unwrap();
    let stored = store_through_blanks(&spool, 1).await;
    // What a kill -9 leaves: the active segment (from a blank) with zeros after its records,
    // and a half-filled blank.
    let active = segment_of(&spool, stored.last().unwrap().0);
    let len_on_disk = std::fs::metadata(&active).unwrap().len();
    let used = location(&spool, stored.last().unwrap().0);
    assert_eq!(len_on_disk, 1 << 20, "the active segment is a whole blank");
    assert!(used.0 + used.1 < len_on_disk);
    let image = std::fs::read(&active).unwrap();
    spool.close().await;
    std::fs::write(&active, &image).unwrap();
    std::fs::write(dir.path().join(blank::BLANK_FILE), vec![0u8; 4096]).unwrap();

    let (spool, rec) = reopen(opts(dir.path(), 1 << 20)).unwrap();
    assert_eq!((rec.messages, rec.quarantined, rec.torn_tail_truncated), (stored.len(), 0, None));
    assert!(!dir.path().join(blank::BLANK_FILE).exists());
    assert_eq!(std::fs::metadata(&active).unwrap().len(), used.0 + used.1, "zeros cut");
    for (id, i) in stored {
        assert_eq!(spool.read_body(id).unwrap(), body(i, 3000));
    }
    spool.close().await;
}
