use super::*;
use crate::events::event::{EventKind, some};
use crate::events::history::{self, Query};

fn options(dir: &Path) -> LogOptions {
    LogOptions { segment_size: 4096, ..LogOptions::new(dir.to_path_buf(), Duration::from_secs(3600)) }
}

fn append(log: &EventLog, n: u64, rcpt: &str, time_ms: u64) {
    for i in 0..n {
        let mut e = Event::new(if i % 2 == 0 { EventKind::Reception } else { EventKind::Bounce });
        e.rcpt = some(rcpt);
        e.message_id = some(format!("{i:016x}"));
        log.sender().send(Msg::Event(Box::new(e), time_ms)).unwrap();
    }
    log.flush();
}

#[test]
fn ids_increase_by_one_across_segments_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, recovery) = EventLog::open(options(dir.path())).unwrap();
    assert_eq!((recovery.events, log.head()), (0, 0));
    for _ in 0..10 {
        append(&log, 10, "a@example.com", crate::time::now_millis());
    }
    assert_eq!(log.head(), 100);
    assert!(log.read_index().segments() > 1, "4 KiB segments roll between batches");
    let mut next = 1;
    while next <= 100 {
        let batch = log.read(next, 7).unwrap();
        for s in &batch {
            assert_eq!(s.id, next);
            let e: Event = serde_json::from_slice(&s.json).unwrap();
            assert_eq!(e.id, next);
            next += 1;
        }
    }
    drop(log);
    let (log, recovery) = EventLog::open(options(dir.path())).unwrap();
    assert_eq!((recovery.events, log.head()), (100, 100));
    assert!(recovery.truncated.is_none());
    append(&log, 1, "b@example.com", crate::time::now_millis());
    assert_eq!(log.head(), 101);
}

#[test]
fn a_torn_tail_is_cut_off_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(LogOptions::new(dir.path().to_path_buf(), Duration::from_secs(3600))).unwrap();
    append(&log, 3, "a@example.com", 1);
    drop(log);
    let path = dir.path().join(segment::file_name(1));
    let good = std::fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[7u8; 40]).unwrap();
    drop(f);
    let (log, recovery) = EventLog::open(LogOptions::new(dir.path().to_path_buf(), Duration::from_secs(3600))).unwrap();
    assert_eq!(recovery.events, 3);
    assert_eq!(recovery.truncated, Some((path.clone(), 40)));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
    append(&log, 1, "a@example.com", 2);
    assert_eq!(log.read(4, 1).unwrap()[0].id, 4, "ids go on after the last good record");
}

#[test]
fn history_finds_a_recipients_events_and_retention_expires_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(options(dir.path())).unwrap();
    append(&log, 40, "old@example.com", 1_000);
    append(&log, 40, "noise@example.com", 2_000);
    append(&log, 2, "New@Example.com", crate::time::now_millis());
    let q = Query::new(Some("new@example.com".into()), None, None, None, None).unwrap();
    let found = history::run(&log, &q).unwrap();
    assert_eq!(found.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Reception, EventKind::Bounce]);
    let q = Query::new(None, Some("0000000000000001".into()), None, None, Some(5)).unwrap();
    assert_eq!(history::run(&log, &q).unwrap().len(), 3, "one per recipient batch");
    let q = Query::new(None, None, None, Some("2"), Some(1000)).unwrap();
    assert_eq!(history::run(&log, &q).unwrap().len(), 82 - 40, "since 2 s: the 1 000 ms events are older");
    assert!(Query::new(None, None, None, None, None).is_err());

    let segments = log.read_index().segments();
    let gone = log.index.write().unwrap().expire(1_500);
    assert!(!gone.is_empty() && log.read_index().segments() < segments);
    let q = Query::new(Some("old@example.com".into()), None, None, None, None).unwrap();
    let left = history::run(&log, &q).unwrap();
    assert!(left.len() < 40, "expired segments no longer answer");
    assert!(matches!(log.read(1, 1), Err(LogError::Gone { .. })));
}

#[test]
fn damage_in_an_older_segment_is_reported_and_its_events_read_as_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(options(dir.path())).unwrap();
    for _ in 0..4 {
        append(&log, 40, "a@example.com", crate::time::now_millis());
    }
    drop(log);
    let segments = segment::list(dir.path()).unwrap();
    assert!(segments.len() >= 3);
    let (first, ref path) = segments[0];
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();

    let (log, recovery) = EventLog::open(options(dir.path())).unwrap();
    assert_eq!(recovery.damaged.len(), 1, "{recovery:?}");
    assert!(recovery.truncated.is_none(), "only the newest segment is cut");
    let second = segments[1].0;
    let readable = log.read(first, 1000).unwrap().len() as u64;
    assert!(readable < second - first, "the damaged part is not read");
    match log.read(first + readable, 1) {
        Err(LogError::Gone { oldest }) => assert_eq!(oldest, second),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert_eq!(log.read(second, 1).unwrap()[0].id, second);
}
