//! Tests of the spool as operator stories: store, crash (by cutting or damaging files), restart,
//! and check what came back. Shared helpers live here; each file covers one concern.

mod basic;
mod bench;
mod blanks;
mod compaction;
mod crash;
mod diskfull;
mod prop;
mod recovery;
mod unwaited;

use std::path::{Path, PathBuf};

use super::*;
use crate::message::{Recipient, RecipientState};

/// Options for one directory with a small segment size, so tests roll segments quickly. No
/// blank segments: a roll to a blank happens when the blank's thread is done, so it would change
/// the segment layout from run to run. Tests of blanks turn them on. No grace before compaction:
/// tests of compaction see it at once.
pub fn opts(dir: &Path, segment_size: u64) -> SpoolOptions {
    SpoolOptions {
        segment_size,
        blank_segments: false,
        compact_grace: Duration::ZERO,
        ..SpoolOptions::new(vec![SpoolDir::new(dir)])
    }
}

pub fn open(dir: &Path) -> (Spool, Recovery) {
    reopen(opts(dir, DEFAULT_SEGMENT_SIZE)).expect("spool opens")
}

/// `Spool::open`, for a spool this test closed (or dropped) a moment ago. The lock is an
/// `flock` on an open file description, and a child process another test of this process
/// spawns (python3, smtp-sink, an accounting pipe) shares every descriptor between its fork and
/// its exec, close-on-exec or not: until that child execs, the lock outlives our `close`. No
/// event says when it has, so a refusal for that reason is retried for a bounded time. (A
/// daemon opens its spool once per process, so only tests meet this.)
pub fn reopen(options: SpoolOptions) -> Result<(Spool, Recovery), SpoolError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Spool::open(options.clone()) {
            Err(SpoolError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

pub fn envelope(rcpts: &[&str]) -> Envelope {
    Envelope {
        id: MessageId(0),
        sender: "bounces@feeder.example".into(),
        recipients: rcpts.iter().map(|r| Recipient::new(*r)).collect(),
        vmta: Some("pool-a".into()),
        job_id: Some("job-7".into()),
        env_id: Some("env-1".into()),
        ret: None,
        eight_bit: false,
        smtputf8: false,
        arrival_ms: 1_700_000_000_000,
        priority: None,
        dkim_options: None,
        origin: crate::message::Origin {
            kind: "smtp".into(),
            helo: "feeder.example".into(),
            client_ip: Some("198.51.100.4".parse().unwrap()),
            local_ip: None,
            auth_user: None,
            sources: Vec::new(),
        },
    }
}

pub fn body(tag: usize, len: usize) -> Vec<u8> {
    let mut b = format!("Subject: message {tag}\r\n\r\n").into_bytes();
    while b.len() < len {
        b.push(b'a' + (b.len() % 26) as u8);
    }
    b
}

pub fn change(id: MessageId, recipient: usize, state: RecipientState) -> StateChange {
    StateChange { id, recipient, state }
}

/// The state of a recipient never tried.
pub fn fresh() -> RecipientState {
    RecipientState::Pending { not_before: 0, attempts: 0 }
}

pub fn deferred(until: u64) -> RecipientState {
    RecipientState::Pending { not_before: until, attempts: 1 }
}

/// Segment files of `dir`, in sequence order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// (offset, length) of a live message's record.
pub fn location(spool: &Spool, id: MessageId) -> (u64, u64) {
    let index = spool.index();
    let e = &index.messages[&id.0];
    (e.offset, u64::from(e.len))
}

/// Path of the segment holding a live message.
pub fn segment_of(spool: &Spool, id: MessageId) -> PathBuf {
    let index = spool.index();
    index.segments[&index.messages[&id.0].seg].path.clone()
}

/// Live set as (id, states), for comparisons.
pub fn live_states(spool: &Spool) -> Vec<(u64, Vec<RecipientState>)> {
    spool.live().into_iter().map(|e| (e.id.0, e.recipients.iter().map(|r| r.state).collect())).collect()
}
