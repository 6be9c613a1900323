//! "A 250 is a promise", with a real crash: a child process (this test binary, re-run on the
//! ignored test `crash_child`) stores and delivers messages from 50 concurrent tasks and prints
//! every acknowledgement; the parent kills it with SIGKILL mid-flight, recovers the spool, and
//! checks that everything acknowledged is there (stored messages, with their bodies) or gone
//! (delivered ones).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::message::RecipientState::Delivered;

const DIR_VAR: &str = "EMBER_SPOOL_CRASH_DIR";

#[test]
fn everything_acknowledged_before_a_kill_9_is_recovered() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "spool::tests::crash::crash_child", "--ignored", "--nocapture", "--test-threads", "1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut stored, mut delivered) = (Vec::new(), Vec::new());
        let mut from_blanks = 0;
        let started = Instant::now();
        // Kill at a different moment each round, after at least some acknowledgements and once
        // the child writes in a segment made from a blank.
        let kill_after = Duration::from_millis(150 + 100 * round);
        while let Some(Ok(line)) = lines.next() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["STORED", id, i] => stored.push((MessageId(id.parse().unwrap()), i.parse::<usize>().unwrap())),
                ["DELIVERED", id] => delivered.push(MessageId(id.parse().unwrap())),
                ["BLANKS", n] => from_blanks = n.parse().unwrap(),
                _ => {}
            }
            if started.elapsed() > kill_after && stored.len() > 50 && from_blanks > 0 {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(stored.len() > 50, "the child acknowledged only {} messages", stored.len());
        // The kill lands in a segment made from a blank, zeros after its last record.
        assert!(from_blanks > 0, "round {round}: no segment was made from a blank");

        let (spool, rec) = open(dir.path());
        assert_eq!(rec.quarantined, 0, "round {round}: {rec:?}");
        for &(id, i) in &stored {
            if delivered.contains(&id) {
                assert_eq!(spool.envelope(id), None, "round {round}: delivered {id} came back");
            } else if i % 3 == 0 && spool.envelope(id).is_none() {
                // Its delivery was being recorded when the child died (or its acknowledgement
                // was still in the pipe): either outcome is right.
            } else {
                let body_back = spool.read_body(id).unwrap_or_else(|e| panic!("round {round}: {id} lost: {e}"));
                assert_eq!(body_back, body(i, 2000 + i % 3000));
            }
        }
    }
}

/// The child's side; does nothing unless started by the test above.
#[test]
#[ignore]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    // Small segments made from blanks: the child rolls through several before it dies.
    let (spool, _) = reopen(SpoolOptions { blank_segments: true, ..opts(Path::new(&dir), 1 << 20) }).unwrap();
    let blanks_seen = std::sync::atomic::AtomicU64::new(0);
    let blanks_seen = &*Box::leak(Box::new(blanks_seen));
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|t| {
                let spool = spool.clone();
                tokio::spawn(async move {
                    for n in 0.. {
                        let i = n * 50 + t;
                        let id = spool.store(envelope(&["a@example.com"]), body(i, 2000 + i % 3000)).await.unwrap();
                        println!("STORED {} {i}", id.0);
                        let n = spool.stats().segments_from_blanks;
                        if blanks_seen.fetch_max(n, std::sync::atomic::Ordering::Relaxed) < n {
                            println!("BLANKS {n}");
                        }
                        if i % 3 == 0 {
                            spool.update(vec![change(id, 0, Delivered)]).await.unwrap();
                            println!("DELIVERED {}", id.0);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}
