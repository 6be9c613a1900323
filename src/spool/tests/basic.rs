//! Storing, updating, reading back, reopening; the refusals an operator may see.

use super::*;
use crate::message::RecipientState::{Bounced, Deleted, Delivered};

#[tokio::test]
async fn a_stored_message_comes_back_after_restart_with_envelope_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, rec) = open(dir.path());
    assert_eq!(rec.messages, 0);
    let mut env = envelope(&["a@example.com", "b@example.net"]);
    env.ret = Some(crate::message::Ret::Full);
    env.origin.local_ip = Some("::1".parse().unwrap());
    let id = spool.store(env.clone(), body(1, 5000)).await.unwrap();
    let id2 = spool.store(envelope(&["c@example.org"]), Vec::new()).await.unwrap();
    let expected = Envelope { id, ..env };
    assert_eq!(spool.envelope(id), Some(expected.clone()));
    assert_eq!(spool.read_body(id).unwrap(), body(1, 5000));
    spool.close().await;

    let (spool, rec) = open(dir.path());
    assert_eq!((rec.messages, rec.recipients, rec.quarantined, rec.torn_tail_truncated), (2, 3, 0, None));
    assert_eq!(spool.envelope(id), Some(expected));
    assert_eq!(spool.read_body(id).unwrap(), body(1, 5000));
    assert_eq!(spool.read_body(id2).unwrap(), b"");
    assert_eq!(spool.live().iter().map(|e| e.id).collect::<Vec<_>>(), [id, id2]);
    let s = spool.stats();
    assert_eq!((s.live_messages, s.live_recipients), (2, 3));
}

#[tokio::test]
async fn ids_keep_growing_across_restarts_even_when_every_message_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let mut last = MessageId(0);
    for i in 0..3 {
        let id = spool.store(envelope(&["a@example.com"]), body(i, 100)).await.unwrap();
        assert!(id > last, "{id} after {last}");
        last = id;
    }
    for id in 1..=last.0 {
        spool.update(vec![change(MessageId(id), 0, Delivered)]).await.unwrap();
    }
    // Forced compaction deletes every segment that held a message or a state record: only the
    // new segment's start record remembers how far ids went.
    spool.compact().await.unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    spool.close().await;

    let (spool, rec) = open(dir.path());
    assert_eq!(rec.messages, 0);
    let id = spool.store(envelope(&["a@example.com"]), body(9, 100)).await.unwrap();
    assert!(id > last, "id {id} reused after restart (last was {last})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sessions_share_fsyncs_and_all_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let spool = spool.clone();
            tokio::spawn(
                async move { (i, spool.store(envelope(&["x@example.com"]), body(i, 5 * 1024)).await.unwrap()) },
            )
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let s = spool.stats();
    assert_eq!(s.messages_stored, 200);
    assert!(s.fsyncs < 200, "group commit: {} fsyncs for 200 messages", s.fsyncs);
    assert!(s.batches < 200, "{} batches", s.batches);
    let mut unique: Vec<_> = ids.iter().map(|(_, id)| *id).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 200);
    spool.close().await;

    let (spool, rec) = open(dir.path());
    assert_eq!(rec.messages, 200);
    for (i, id) in ids {
        assert_eq!(spool.read_body(id).unwrap(), body(i, 5 * 1024));
    }
}

#[tokio::test]
async fn recipient_states_survive_a_restart_and_a_dead_message_stays_dead() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(envelope(&["a@x.example", "b@y.example", "c@z.example"]), body(0, 300)).await.unwrap();
    spool.update(vec![change(id, 0, Delivered), change(id, 1, deferred(1_800_000_000))]).await.unwrap();
    spool.close().await;

    let (spool, rec) = open(dir.path());
    assert_eq!((rec.messages, rec.recipients), (1, 2));
    let states: Vec<_> = spool.envelope(id).unwrap().recipients.iter().map(|r| r.state).collect();
    assert_eq!(states, [Delivered, deferred(1_800_000_000), fresh()]);
    spool.update(vec![change(id, 1, Bounced), change(id, 2, Deleted)]).await.unwrap();
    assert_eq!(spool.envelope(id), None);
    assert!(matches!(spool.read_body(id), Err(SpoolError::NotFound(_))));
    spool.close().await;

    let (spool, rec) = open(dir.path());
    assert_eq!((rec.messages, rec.recipients), (0, 0));
    assert!(spool.live().is_empty());
}

#[tokio::test]
async fn updates_are_refused_whole_for_unknown_messages_and_final_states_are_never_left() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(envelope(&["a@x.example", "b@x.example"]), body(0, 10)).await.unwrap();
    let err = spool.update(vec![change(id, 1, Delivered), change(MessageId(999), 0, Delivered)]).await.unwrap_err();
    assert!(matches!(err, SpoolError::NotFound(MessageId(999))), "{err}");
    assert!(err.to_string().contains("00000000000003e7"), "{err}");
    let err = spool.update(vec![change(id, 5, Delivered)]).await.unwrap_err();
    assert!(matches!(err, SpoolError::NoSuchRecipient { recipient: 5, .. }), "{err}");
    // Nothing of the refused requests was applied.
    assert_eq!(spool.envelope(id).unwrap().recipients[1].state, fresh());

    spool.update(vec![change(id, 0, Delivered)]).await.unwrap();
    spool.update(vec![change(id, 0, deferred(5))]).await.unwrap();
    assert_eq!(spool.envelope(id).unwrap().recipients[0].state, Delivered);
    spool.close().await;
    let (spool, _) = open(dir.path());
    assert_eq!(spool.envelope(id).unwrap().recipients[0].state, Delivered);
}

#[tokio::test]
async fn below_min_free_space_a_message_is_refused_with_full_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), DEFAULT_SEGMENT_SIZE);
    o.dirs[0].min_free_space = u64::MAX / 4;
    let (spool, _) = reopen(o).unwrap();
    let before = spool.stats().bytes_on_disk;
    let err = spool.store(envelope(&["a@example.com"]), body(0, 1000)).await.unwrap_err();
    let SpoolError::Full { dir: d, free, needed } = &err else { panic!("expected Full, got {err}") };
    assert_eq!(d, dir.path());
    assert!(free < needed);
    let text = err.to_string();
    assert!(text.contains("below its min-free-space") && text.contains("needed"), "{text}");
    let s = spool.stats();
    assert_eq!((s.messages_stored, s.bytes_on_disk, s.live_messages), (0, before, 0));
    let on_disk: u64 = segment_files(dir.path()).iter().map(|p| p.metadata().unwrap().len()).sum();
    assert_eq!(on_disk, before);
}

#[tokio::test]
async fn a_second_daemon_on_the_same_spool_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let err = Spool::open(opts(dir.path(), DEFAULT_SEGMENT_SIZE)).unwrap_err();
    assert!(matches!(&err, SpoolError::Locked(p) if p == dir.path()), "{err}");
    assert!(err.to_string().contains("in use by another ember process"), "{err}");
    spool.close().await;
    let (again, _) = reopen(opts(dir.path(), DEFAULT_SEGMENT_SIZE)).unwrap();
    again.close().await;
}

#[tokio::test]
async fn read_only_inspection_works_beside_the_daemon_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(envelope(&["a@example.com"]), body(0, 700)).await.unwrap();
    let ro = reopen(SpoolOptions { read_only: true, ..opts(dir.path(), DEFAULT_SEGMENT_SIZE) }).unwrap().0;
    assert_eq!(ro.live().len(), 1);
    assert_eq!(ro.read_body(id).unwrap(), body(0, 700));
    assert!(matches!(ro.store(envelope(&["b@example.com"]), vec![]).await, Err(SpoolError::ReadOnly)));
    assert!(matches!(ro.update(vec![change(id, 0, Delivered)]).await, Err(SpoolError::ReadOnly)));
    spool.close().await;

    // A torn tail is reported, not cut; no segment is created.
    let files = segment_files(dir.path());
    let last = files.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&record::MAGIC);
    bytes.extend_from_slice(&[1, 2, 0, 0, 0xff]);
    std::fs::write(last, &bytes).unwrap();
    let (ro, rec) = reopen(SpoolOptions { read_only: true, ..opts(dir.path(), DEFAULT_SEGMENT_SIZE) }).unwrap();
    assert_eq!(rec.torn_tail_truncated, Some((last.clone(), 9)));
    assert_eq!(std::fs::read(last).unwrap(), bytes);
    assert_eq!(segment_files(dir.path()), files);
    assert_eq!(ro.live().len(), 1);
    assert!(!dir.path().join(segment::QUARANTINE_DIR).exists());
}

#[tokio::test]
async fn after_close_writes_are_refused_and_reads_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(envelope(&["a@example.com"]), body(0, 10)).await.unwrap();
    spool.close().await;
    spool.close().await;
    assert!(matches!(spool.store(envelope(&["a@example.com"]), vec![]).await, Err(SpoolError::Closed)));
    assert_eq!(spool.read_body(id).unwrap(), body(0, 10));
}

#[tokio::test]
async fn a_message_without_pending_recipients_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let err = spool.store(envelope(&[]), vec![]).await.unwrap_err();
    assert!(matches!(err, SpoolError::Invalid(_)), "{err}");
}

#[test]
fn an_index_entry_stays_small() {
    assert!(std::mem::size_of::<index::Entry>() <= 40, "{}", std::mem::size_of::<index::Entry>());
    let meta = record::encode_meta(&envelope(&["someone@example.com"]), MessageId(1));
    assert!(meta.len() < 160, "meta of a one-recipient message is {} bytes", meta.len());
}

#[test]
fn the_handle_is_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Spool>();
}

#[test]
fn sizes_are_printed_for_humans() {
    assert_eq!(Bytes(12).to_string(), "12 bytes");
    assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
    assert_eq!(Bytes(3 << 30).to_string(), "3.0 GiB");
}
