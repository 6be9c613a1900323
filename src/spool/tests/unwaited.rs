//! State changes nobody waits for (`Spool::record`): applied and made durable by the writer on
//! its own, with the next batch or after a short wait, in order with everything else.

use super::*;
use crate::message::RecipientState::{Bounced, Delivered};

/// Polls the index (the writer applies recorded changes when it writes them; no event says when).
async fn until_gone(spool: &Spool, id: MessageId) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spool.envelope(id).is_some() {
        assert!(std::time::Instant::now() < deadline, "{id} still live: the recorded change was never written");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_recorded_change_on_an_idle_spool_is_written_and_synced_without_a_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let a = spool.store(envelope(&["a@example.com"]), body(1, 100)).await.unwrap();
    let b = spool.store(envelope(&["b@example.com"]), body(2, 100)).await.unwrap();
    let syncs = spool.stats().fsyncs;
    spool.record(vec![change(a, 0, Delivered)]).unwrap();
    until_gone(&spool, a).await;
    assert!(spool.stats().fsyncs > syncs, "written without its fdatasync");
    assert!(spool.envelope(b).is_some());
    // Read back from the files, as after a crash: another process sees what is on disk.
    let copy = tempfile::tempdir().unwrap();
    for seg in segment_files(dir.path()) {
        std::fs::copy(&seg, copy.path().join(seg.file_name().unwrap())).unwrap();
    }
    let (from_disk, rec) = open(copy.path());
    assert_eq!((rec.messages, rec.quarantined), (1, 0));
    assert!(from_disk.envelope(a).is_none() && from_disk.envelope(b).is_some());
    spool.close().await;
}

#[tokio::test]
async fn recorded_changes_keep_their_order_with_waited_ones_and_survive_close() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(envelope(&["a@example.com", "b@example.com"]), body(1, 100)).await.unwrap();
    spool.record(vec![change(id, 0, deferred(5))]).unwrap();
    spool.update(vec![change(id, 0, deferred(6))]).await.unwrap();
    spool.record(vec![change(id, 0, deferred(7)), change(id, 1, Bounced)]).unwrap();
    // A change for a message that is not there is refused (logged), and changes nothing else.
    spool.record(vec![change(MessageId(999_999), 0, Delivered)]).unwrap();
    spool.close().await;
    let (spool, rec) = open(dir.path());
    assert_eq!((rec.messages, rec.quarantined), (1, 0));
    assert_eq!(live_states(&spool), [(id.0, vec![deferred(7), Bounced])]);
    spool.close().await;
}

#[tokio::test]
async fn a_new_message_carries_the_recorded_changes_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let ids: Vec<MessageId> = {
        let mut ids = Vec::new();
        for i in 0..50 {
            ids.push(spool.store(envelope(&["a@example.com"]), body(i, 100)).await.unwrap());
        }
        ids
    };
    for id in &ids {
        spool.record(vec![change(*id, 0, Delivered)]).unwrap();
    }
    // The store is answered after its batch is synced; the changes recorded before it were in
    // that batch or an earlier one, so they are applied by then.
    spool.store(envelope(&["b@example.com"]), body(99, 100)).await.unwrap();
    assert!(ids.iter().all(|id| spool.envelope(*id).is_none()));
    spool.close().await;
}
