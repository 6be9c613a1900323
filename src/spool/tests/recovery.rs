//! Crashes and disk damage: torn tails are cut, damaged records quarantined, the rest recovered.

use super::*;
use crate::message::RecipientState::Delivered;
use std::os::unix::fs::FileExt;

fn flip(path: &Path, offset: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[offset as usize] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn quarantined_files(dir: &Path) -> Vec<Vec<u8>> {
    let q = dir.join(segment::QUARANTINE_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(q).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[tokio::test]
async fn a_crash_at_every_byte_of_the_last_message_loses_only_that_message() {
    let src = tempfile::tempdir().unwrap();
    let (spool, _) = open(src.path());
    let id1 = spool.store(envelope(&["a@example.com"]), body(1, 40)).await.unwrap();
    let id2 = spool.store(envelope(&["b@example.com"]), body(2, 40)).await.unwrap();
    let id3 = spool.store(envelope(&["c@example.com"]), body(3, 40)).await.unwrap();
    let (start, len) = location(&spool, id3);
    spool.close().await;
    let files = segment_files(src.path());
    assert_eq!(files.len(), 1);
    let original = std::fs::read(&files[0]).unwrap();
    assert_eq!(original.len() as u64, start + len);
    let name = files[0].file_name().unwrap();

    for cut in start..start + len {
        let d = tempfile::tempdir().unwrap();
        let seg = d.path().join(name);
        std::fs::write(&seg, &original[..cut as usize]).unwrap();
        let (spool, rec) = open(d.path());
        let expected = (cut > start).then(|| (seg.clone(), cut - start));
        assert_eq!(rec.torn_tail_truncated, expected, "cut at {cut}");
        assert_eq!((rec.messages, rec.quarantined), (2, 0), "cut at {cut}");
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), start, "cut at {cut}");
        assert_eq!(spool.read_body(id1).unwrap(), body(1, 40));
        assert_eq!(spool.read_body(id2).unwrap(), body(2, 40));
        assert_eq!(spool.envelope(id3), None);
        // The spool goes on appending after the cut without trouble.
        let id4 = spool.store(envelope(&["d@example.com"]), body(4, 40)).await.unwrap();
        assert!(id4 > id2);
        spool.close().await;
        assert_eq!(open(d.path()).1.messages, 3, "cut at {cut}");
    }
}

#[tokio::test]
async fn a_crash_inside_the_last_state_record_loses_only_that_change() {
    let src = tempfile::tempdir().unwrap();
    let (spool, _) = open(src.path());
    let id = spool.store(envelope(&["a@example.com", "b@example.com"]), body(1, 40)).await.unwrap();
    spool.update(vec![change(id, 0, Delivered)]).await.unwrap();
    let start = spool.stats().bytes_on_disk;
    spool.update(vec![change(id, 1, deferred(1_900_000_000))]).await.unwrap();
    let end = spool.stats().bytes_on_disk;
    spool.close().await;
    let files = segment_files(src.path());
    let original = std::fs::read(&files[0]).unwrap();
    assert_eq!(original.len() as u64, end);

    for cut in start..end {
        let d = tempfile::tempdir().unwrap();
        let seg = d.path().join(files[0].file_name().unwrap());
        std::fs::write(&seg, &original[..cut as usize]).unwrap();
        let (spool, rec) = open(d.path());
        assert_eq!(rec.torn_tail_truncated, (cut > start).then(|| (seg.clone(), cut - start)), "cut at {cut}");
        assert_eq!(live_states(&spool), [(id.0, vec![Delivered, fresh()])], "cut at {cut}");
        spool.close().await;
    }
}

#[tokio::test]
async fn a_damaged_record_in_the_middle_is_quarantined_and_the_others_recovered() {
    for damage_header in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path());
        let id1 = spool.store(envelope(&["a@example.com"]), body(1, 200)).await.unwrap();
        let id2 = spool.store(envelope(&["b@example.com"]), body(2, 200)).await.unwrap();
        let id3 = spool.store(envelope(&["c@example.com"]), body(3, 200)).await.unwrap();
        let seg = segment_of(&spool, id2);
        let (start, len) = location(&spool, id2);
        spool.close().await;
        // Either a body byte (payload checksum fails, header trusted) or the length field (header
        // checksum fails: the scan must search for the next record).
        flip(&seg, if damage_header { start + 9 } else { start + len - 10 });
        let damaged = std::fs::read(&seg).unwrap()[start as usize..(start + len) as usize].to_vec();

        let (spool, rec) = open(dir.path());
        assert_eq!((rec.messages, rec.quarantined, rec.torn_tail_truncated.clone()), (2, 1, None), "{damage_header}");
        assert_eq!(spool.read_body(id1).unwrap(), body(1, 200));
        assert_eq!(spool.read_body(id3).unwrap(), body(3, 200));
        assert_eq!(spool.envelope(id2), None);
        assert_eq!(quarantined_files(dir.path()), [damaged]);
        assert_eq!(spool.stats().quarantined, 1);
        // The segment itself is left as it was: the damage is reported, not erased.
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), start + len + location(&spool, id3).1);
    }
}

#[tokio::test]
async fn damage_at_the_end_of_an_older_segment_is_quarantined_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id1 = spool.store(envelope(&["a@example.com"]), body(1, 100)).await.unwrap();
    let id2 = spool.store(envelope(&["b@example.com"]), body(2, 100)).await.unwrap();
    let seg = segment_of(&spool, id2);
    spool.close().await;
    let (spool, _) = open(dir.path());
    let id3 = spool.store(envelope(&["c@example.com"]), body(3, 100)).await.unwrap();
    spool.close().await;
    let len = std::fs::metadata(&seg).unwrap().len();
    flip(&seg, len - 3);

    let (spool, rec) = open(dir.path());
    assert_eq!((rec.messages, rec.quarantined, rec.torn_tail_truncated), (2, 1, None));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    assert!(spool.envelope(id1).is_some() && spool.envelope(id3).is_some() && spool.envelope(id2).is_none());
}

#[tokio::test]
async fn zeros_after_the_last_record_of_any_segment_are_unused_space_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    spool.store(envelope(&["a@example.com"]), body(1, 100)).await.unwrap();
    spool.close().await;
    let (spool, _) = open(dir.path());
    spool.store(envelope(&["b@example.com"]), body(2, 100)).await.unwrap();
    spool.close().await;
    // What a kill leaves in segments made from blanks: records, then zeros to the end.
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 2, "{segs:?}");
    let lens: Vec<u64> = segs.iter().map(|s| std::fs::metadata(s).unwrap().len()).collect();
    for s in &segs {
        let f = std::fs::OpenOptions::new().write(true).open(s).unwrap();
        f.set_len(f.metadata().unwrap().len() + 70_000).unwrap();
    }
    let (spool, rec) = open(dir.path());
    assert_eq!((rec.messages, rec.quarantined, rec.torn_tail_truncated), (2, 0, None));
    for (s, len) in segs.iter().zip(&lens) {
        assert_eq!(std::fs::metadata(s).unwrap().len(), *len, "{}", s.display());
    }
    assert!(!dir.path().join(segment::QUARANTINE_DIR).exists());
    spool.close().await;
}

#[tokio::test]
async fn a_torn_record_followed_by_zeros_is_still_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    spool.store(envelope(&["a@example.com"]), body(1, 100)).await.unwrap();
    spool.close().await;
    let seg = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // A write of which only the first page reached the disk: a header, then zeros.
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len + 8192).unwrap();
    f.write_all_at(&record::header(record::Kind::Message, 5000, 0x1234_5678), len).unwrap();
    drop(f);
    let (_, rec) = open(dir.path());
    assert_eq!(rec.torn_tail_truncated, Some((seg.clone(), 8192)));
    assert_eq!((rec.messages, rec.quarantined), (1, 0));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
}

#[tokio::test]
async fn a_body_damaged_after_start_is_reported_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(envelope(&["a@example.com"]), body(1, 500)).await.unwrap();
    let (start, len) = location(&spool, id);
    flip(&segment_of(&spool, id), start + len - 1);
    let err = spool.read_body(id).unwrap_err();
    assert!(matches!(err, SpoolError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[tokio::test]
async fn the_same_segment_number_in_two_directories_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (spool, _) = open(a.path());
    spool.close().await;
    let (spool, _) = open(b.path());
    spool.close().await;
    let err = reopen(SpoolOptions::new(vec![SpoolDir::new(a.path()), SpoolDir::new(b.path())])).unwrap_err();
    assert!(err.to_string().contains("two spools cannot be merged"), "{err}");
}

#[tokio::test]
async fn spool_delete_corrupted_drops_a_damaged_record_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id1 = spool.store(envelope(&["a@example.com"]), body(1, 200)).await.unwrap();
    let id2 = spool.store(envelope(&["b@example.com"]), body(2, 200)).await.unwrap();
    let id3 = spool.store(envelope(&["c@example.com"]), body(3, 200)).await.unwrap();
    let seg = segment_of(&spool, id2);
    let (start, len) = location(&spool, id2);
    spool.close().await;
    flip(&seg, start + len - 10);
    let options = SpoolOptions { delete_corrupted: true, ..opts(dir.path(), DEFAULT_SEGMENT_SIZE) };
    let (spool, rec) = reopen(options).unwrap();
    assert_eq!((rec.messages, rec.quarantined), (2, 1));
    assert_eq!(spool.read_body(id1).unwrap(), body(1, 200));
    assert_eq!(spool.read_body(id3).unwrap(), body(3, 200));
    assert_eq!(spool.envelope(id2), None);
    // Dropped, with no copy kept.
    assert!(!dir.path().join(segment::QUARANTINE_DIR).exists());
    spool.close().await;
}
