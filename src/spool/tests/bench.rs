//! Measurements, not checks: ignored by default. Run with
//!
//! ```text
//! cargo test --release --lib spool::tests::bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `EMBER_BENCH_MESSAGES` sets the recovery benchmark's size (default 1,000,000) and
//! `EMBER_BENCH_DIR` where its spool goes (default: a temporary directory). A directory that
//! already holds a spool is recovered as it is, without building one: build once, drop the page
//! cache (`sync; echo 3 > /proc/sys/vm/drop_caches`), run again for a cold-cache figure.

use std::time::Instant;

use super::*;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Sessions storing 5 KiB messages back to back: 1, 20 and 200 at once.
#[test]
#[ignore]
fn stores_per_second_with_20_concurrent_writers() {
    for (writers, total) in [(1, 2_000), (20, 40_000), (200, 100_000)] {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path());
        let rt = runtime();
        let started = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let spool = spool.clone();
                    tokio::spawn(async move {
                        for i in 0..total / writers {
                            spool
                                .store(envelope(&["rcpt@example.com"]), body(w * 1_000_000 + i, 5 * 1024))
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let secs = started.elapsed().as_secs_f64();
        let s = spool.stats();
        println!(
            "{writers:>3} writers, {total} x 5 KiB: {:.0} stores/s, {} fsyncs ({:.3} per message, {:.1} messages per batch)",
            total as f64 / secs,
            s.fsyncs,
            s.fsyncs as f64 / total as f64,
            total as f64 / s.batches as f64
        );
        rt.block_on(spool.close());
    }
}

/// Builds a spool of N small messages (10 % of them delivered), then times its recovery.
#[test]
#[ignore]
fn recovery_time_for_many_small_messages() {
    let n: usize = std::env::var("EMBER_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("EMBER_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| tmp.path().to_path_buf());
    let rt = runtime();
    let reuse = dir.is_dir() && !segment_files(&dir).is_empty();
    if !reuse {
        let started = Instant::now();
        let (spool, _) = open(&dir);
        rt.block_on(async {
            let writers = 256;
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let spool = spool.clone();
                    tokio::spawn(async move {
                        for i in (w..n).step_by(writers) {
                            let id = spool.store(envelope(&["someone@example.com"]), body(i, 400)).await.unwrap();
                            if i % 10 == 0 {
                                spool.update(vec![change(id, 0, RecipientState::Delivered)]).await.unwrap();
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            spool.close().await;
        });
        let s = spool.stats();
        println!(
            "built {n} messages in {:.1} s: {} segments, {} MiB on disk, {} fsyncs",
            started.elapsed().as_secs_f64(),
            s.segments,
            s.bytes_on_disk >> 20,
            s.fsyncs
        );
        drop(spool);
    }

    let before = rss_kib();
    let (spool, rec) = open(&dir);
    let after = rss_kib();
    // RSS is only meaningful in a fresh process (a reused directory): freed memory of the build
    // above stays with the allocator.
    println!(
        "recovered {} messages ({} recipients, {} segments) in {:.2} s; RSS grew {} MiB = {} bytes per message",
        rec.messages,
        rec.recipients,
        rec.segments,
        rec.elapsed.as_secs_f64(),
        (after.saturating_sub(before)) >> 10,
        (after.saturating_sub(before)) * 1024 / rec.messages.max(1) as u64
    );
    let t = Instant::now();
    let mut count = 0;
    spool.for_each_live(|_| count += 1);
    println!("for_each_live over {count} envelopes: {:.2} s", t.elapsed().as_secs_f64());
    if !reuse {
        assert_eq!(rec.messages, n - n.div_ceil(10));
    }
    println!("estimated index heap: {} bytes per live message", spool.stats().index_bytes / rec.messages.max(1) as u64);
    rt.block_on(spool.close());
}
