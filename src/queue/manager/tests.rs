//! The manager driven with stand-in workers on a manual clock: a real spool, accounting file and
//! configuration; connections replaced by closures that speak the manager's event protocol; time
//! moved by the test and the manager's timer work run on demand (`QueueHandle::tick`), so rate
//! windows, retries, backoff and warm-up steps are checked in virtual time, exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Command, Event, Job, Manager, NextJob, QueueHandle, QueueStatus};
use crate::clock::Clock;
use crate::config::{FileCheck, load_str};
use crate::delivery::mx::MxResolver;
use crate::message::{Envelope, Recipient};
use crate::outcome::acct::Accounting;
use crate::queue::report::Reporter;
use crate::queue::supervisor::WorkerFn;
use crate::queue::worker::{Remote, WorkerSetup};
use crate::smtp::Reply;
use crate::spool::{Spool, SpoolDir, SpoolOptions};
use crate::telemetry::Telemetry;

struct Harness {
    dir: tempfile::TempDir,
    clock: Clock,
    spool: Spool,
    queues: QueueHandle,
    telemetry: Arc<Telemetry>,
}

/// A manager over a fresh spool in a temporary directory, its connections run by `worker`, its
/// time read from `clock`.
fn start(config_text: &str, clock: Clock, worker: WorkerFn) -> Harness {
    start_with_state(config_text, clock, worker, false)
}

/// `start`, keeping the manager's small state files in `state/` when `state` is set.
fn start_with_state(config_text: &str, clock: Clock, worker: WorkerFn, state: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = state.then(|| dir.path().join("state"));
    if let Some(d) = &state_dir {
        std::fs::create_dir(d).unwrap();
    }
    let loaded = load_str("test.conf", config_text, dir.path(), FileCheck::Require);
    assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
    let config = Arc::new(loaded.config);
    let (spool, _) = Spool::open(SpoolOptions::new(vec![SpoolDir::new(dir.path().join("spool"))])).unwrap();
    let resolver = MxResolver::new(&[]).unwrap();
    let pending = Manager::start_pending(Arc::clone(&config), spool.clone(), resolver, state_dir, Default::default())
        .with_worker(worker)
        .with_clock(clock.clone());
    let telemetry = Arc::new(Telemetry::default());
    let accounting = Accounting::open(&config).unwrap();
    let reporter = Reporter::new(&config, accounting, "mta.test".into()).with_telemetry(Arc::clone(&telemetry));
    let queues = pending.run(reporter);
    Harness { dir, clock, spool, queues, telemetry }
}

impl Harness {
    async fn inject(&self, recipients: &[&str]) {
        self.inject_with(recipients, None, 0).await;
    }

    async fn inject_via(&self, vmta: Option<&str>, recipients: &[&str]) {
        self.inject_with(recipients, vmta, 0).await;
    }

    /// A message through `vmta`, with a body of about `size` bytes; the size the spool counts.
    async fn inject_with(&self, recipients: &[&str], vmta: Option<&str>, size: usize) -> u64 {
        let envelope = Envelope {
            vmta: vmta.map(str::to_string),
            arrival_ms: self.clock.now_secs() * 1000,
            ..Envelope::new("sender@example.net".into(), recipients.iter().map(|r| Recipient::new(*r)).collect())
        };
        let mut body = b"Subject: t\r\n\r\n".to_vec();
        body.resize(body.len().max(size), b'x');
        let id = self.spool.store(envelope, body).await.unwrap();
        let stored = self.spool.message_size(id).unwrap();
        self.queues.submit(self.spool.envelope(id).unwrap()).await.unwrap();
        stored
    }

    /// Waits for the queues to reach a state; the manager answers each look in order with the
    /// events before it, so this polls its replies, never a timer standing in for an event.
    async fn until(&self, what: &str, check: impl Fn(&[QueueStatus]) -> bool) -> Vec<QueueStatus> {
        for _ in 0..2000 {
            let snapshot = self.queues.snapshot().await;
            if check(&snapshot) {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the queues never reached: {what}: {:?}", self.queues.snapshot().await);
    }

    fn accounting(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("acct.csv")).unwrap_or_default()
    }
}

/// Waits for something written outside the manager (the spool's and the accounting file's own
/// writers) to show.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..2000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

/// Asks the manager for the next job the way a connection does.
async fn next(setup: &WorkerSetup) -> Option<crate::queue::manager::Job> {
    let (tx, rx) = oneshot::channel();
    let ask =
        Event::Next { worker: setup.worker, key: setup.key.clone(), source: None, mx: "mx.test".into(), reply: tx };
    setup.events.send(ask).await.ok()?;
    match rx.await.ok()? {
        NextJob::Job(job, _) => Some(job),
        NextJob::Wait(_) | NextJob::Done => None,
    }
}

/// The first connection panics while it holds a message; later ones deliver everything.
fn flaky() -> WorkerFn {
    let starts = Arc::new(AtomicUsize::new(0));
    Arc::new(move |setup: WorkerSetup| {
        let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first {
                let _held = next(&setup).await.expect("a job for the first connection");
                panic!("injected failure in the middle of a transaction");
            }
            while let Some(job) = next(&setup).await {
                let replies = vec![Reply::new(250, "2.0.0", "ok"); job.recipients.len()];
                report(&setup, job, replies).await;
            }
            ended(&setup).await;
        })
    })
}

async fn report(setup: &WorkerSetup, job: Job, replies: Vec<Reply>) {
    let done = Event::Outcome { worker: setup.worker, key: setup.key.clone(), job, replies, remote: Remote::default() };
    setup.events.send(done).await.unwrap();
}

async fn ended(setup: &WorkerSetup) {
    let ended = Event::ConnectionEnded { worker: setup.worker, key: setup.key.clone(), source: None, failure: None };
    setup.events.send(ended).await.unwrap();
}

/// What scripted connections did, in seconds on the manual clock since its start.
#[derive(Default)]
struct Entries {
    /// (when, the job's attempts before this one)
    attempts: Vec<(f64, u32)>,
    /// (when, the wait the rate limiters asked for)
    waits: Vec<(f64, f64)>,
}

#[derive(Default)]
struct Log {
    entries: Mutex<Entries>,
    /// The test moved the clock: a connection told to wait asks again.
    moved: tokio::sync::Notify,
}

impl Log {
    fn attempts(&self) -> Vec<f64> {
        self.entries.lock().unwrap().attempts.iter().map(|(t, _)| *t).collect()
    }

    fn last_wait(&self) -> Option<(f64, f64)> {
        self.entries.lock().unwrap().waits.last().copied()
    }
}

/// Connections that answer each recipient with `reply(job)`; told to wait, they ask again when
/// the test moves the clock (a real connection sleeps for the wait).
fn scripted(clock: &Clock, log: &Arc<Log>, reply: fn(&Job) -> Reply) -> WorkerFn {
    let (clock, log) = (clock.clone(), Arc::clone(log));
    Arc::new(move |setup: WorkerSetup| {
        let (clock, log) = (clock.clone(), Arc::clone(&log));
        Box::pin(async move {
            loop {
                let (tx, rx) = oneshot::channel();
                let ask = Event::Next {
                    worker: setup.worker,
                    key: setup.key.clone(),
                    source: None,
                    mx: "mx.test".into(),
                    reply: tx,
                };
                setup.events.send(ask).await.unwrap();
                match rx.await {
                    Ok(NextJob::Job(job, _)) => {
                        log.entries.lock().unwrap().attempts.push((clock.elapsed(), job.attempts));
                        let replies = vec![reply(&job); job.recipients.len()];
                        report(&setup, job, replies).await;
                    }
                    Ok(NextJob::Wait(wait)) => {
                        // Listening before the wait shows, so a move right after it is not missed.
                        let moved = log.moved.notified();
                        tokio::pin!(moved);
                        moved.as_mut().enable();
                        log.entries.lock().unwrap().waits.push((clock.elapsed(), wait));
                        moved.await;
                    }
                    Ok(NextJob::Done) | Err(_) => break,
                }
            }
            ended(&setup).await;
        })
    })
}

/// A manual clock at the start of a UTC hour close to now (so arrival times are plausible and
/// hourly warm-up windows begin with the test).
fn hour_clock() -> Clock {
    Clock::manual(crate::time::now_secs() / 3600 * 3600)
}

#[tokio::test]
async fn a_worker_that_panics_mid_transaction_loses_nothing() {
    let h = start(
        "<domain *>\n    retry-after 1h\n</domain>\n<acct-file acct.csv>\n    records d,t\n</acct-file>\n",
        hour_clock(),
        flaky(),
    );
    h.inject(&["a@dest.test", "b@dest.test"]).await;

    // The panic: its connection slot is released and both recipients are deferred, not lost.
    let after =
        h.until("the dead worker reaped", |q| q.len() == 1 && q[0].deferred == 2 && q[0].connections == 0).await;
    assert_eq!(after[0].recipients, 2, "{after:?}");
    assert_eq!(h.telemetry.worker_failures_total(), 1);
    // The accounting file is written by its own writer, after the outcome.
    eventually("two t records", || h.accounting().lines().filter(|l| l.starts_with("t,")).count() == 2).await;
    let acct = h.accounting();
    assert!(acct.contains("delivery worker failed: injected failure"), "{acct}");
    let live = h.spool.live();
    assert_eq!(live.len(), 1, "the message is still on disk");

    // The next attempt (an operator's `schedule --retry-recipients`) delivers both.
    assert_eq!(h.queues.command("*", Command::Schedule { recipients: true }).await, 1);
    h.until("both delivered", |q| q[0].delivered == 2 && q[0].recipients == 0 && q[0].connections == 0).await;
    eventually("two d records", || h.accounting().lines().filter(|l| l.starts_with("d,")).count() == 2).await;
    // The reporter writes the spool from a task of its own: its commit follows the outcome.
    eventually("nothing left in the spool", || h.spool.live().is_empty()).await;

    // /metrics counts the death against its queue.
    let mut registry = prometheus_client::registry::Registry::default();
    h.telemetry.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("ember_worker_failures_total{domain=\"dest.test\",vmta=\"{default}\"} 1"), "{text}");
}

/// Moves the clock, runs the timer work, and returns the queues as that left them (before any
/// connection it started has done anything: a new connection shows in `connections`).
async fn at(h: &Harness, log: &Log, secs: f64) -> Vec<QueueStatus> {
    h.clock.set(secs);
    h.queues.tick().await;
    let queues = h.queues.snapshot().await;
    log.moved.notify_waiters();
    queues
}

#[tokio::test]
async fn a_retry_schedule_steps_through_retry_after_in_virtual_time() {
    let log: Arc<Log> = Arc::default();
    let clock = hour_clock();
    // Deferred twice, then taken.
    let worker = scripted(&clock, &log, |job| match job.attempts {
        0 | 1 => Reply::new(451, "4.3.0", "try later"),
        _ => Reply::new(250, "2.0.0", "ok"),
    });
    let h = start("<domain *>\n    retry-after 5m,20m\n    retry-recipients-after 1m\n</domain>\n", clock, worker);
    h.inject(&["a@dest.test"]).await;
    h.until("the first deferral", |q| q[0].deferred == 1 && q[0].connections == 0).await;

    let q = at(&h, &log, 299.0).await;
    assert_eq!((q[0].connections, q[0].messages_waiting), (0, 1), "not due before 5m: {q:?}");
    at(&h, &log, 300.0).await;
    h.until("the second deferral", |q| q[0].deferred == 2 && q[0].connections == 0).await;
    // The second step of retry-after (20m) counts from the second attempt.
    let q = at(&h, &log, 1499.0).await;
    assert_eq!((q[0].connections, q[0].messages_waiting), (0, 1), "not due before 300 s + 20m: {q:?}");
    at(&h, &log, 1500.0).await;
    h.until("delivered", |q| q[0].delivered == 1 && q[0].recipients == 0).await;
    assert_eq!(log.attempts(), [0.0, 300.0, 1500.0]);
}

#[tokio::test]
async fn max_msg_rate_opens_its_window_once_a_second_in_virtual_time() {
    let log: Arc<Log> = Arc::default();
    let clock = hour_clock();
    let worker = scripted(&clock, &log, |_| Reply::new(250, "2.0.0", "ok"));
    let h = start("<domain *>\n    max-msg-rate 60/m\n</domain>\n", clock, worker);
    h.inject(&["a@dest.test"]).await;
    h.inject(&["b@dest.test"]).await;
    h.inject(&["c@dest.test"]).await;
    // At 0 s one message goes; the next is a second away.
    h.until("the first delivery", |q| q[0].delivered == 1).await;
    eventually("the connection told to wait", || log.last_wait() == Some((0.0, 1.0))).await;
    // Half a second later: still closed, for the other half.
    at(&h, &log, 0.5).await;
    eventually("told to wait again", || log.last_wait() == Some((0.5, 0.5))).await;
    assert_eq!(h.queues.snapshot().await[0].delivered, 1);
    at(&h, &log, 1.0).await;
    h.until("the second delivery", |q| q[0].delivered == 2).await;
    eventually("told to wait a second", || log.last_wait() == Some((1.0, 1.0))).await;
    at(&h, &log, 2.0).await;
    h.until("the third delivery", |q| q[0].delivered == 3 && q[0].connections == 0).await;
    assert_eq!(log.attempts(), [0.0, 1.0, 2.0]);
}

#[tokio::test]
async fn a_backoff_cycle_cuts_the_queue_ends_on_time_and_the_deferral_retries_on_the_backoff_list() {
    let log: Arc<Log> = Arc::default();
    let clock = hour_clock();
    let worker = scripted(&clock, &log, |job| match job.attempts {
        0 => Reply::new(421, "4.7.0", "[RP-001] temporarily rate limited"),
        _ => Reply::new(250, "2.0.0", "ok"),
    });
    let h = start(
        "<domain *>\n    421 RP-001 *, 2m, 1, 60/m\n    backoff-retry-after 30m\n    retry-recipients-after 1m\n</domain>\n",
        clock.clone(),
        worker,
    );
    h.inject(&["a@dest.test"]).await;
    let q = h.until("backoff", |q| q[0].mode == "backoff" && q[0].connections == 0).await;
    let start = clock.now_secs();
    assert_eq!(q[0].mode_until, Some(start + 120), "{q:?}");
    assert!(q[0].mode_reason.as_deref().is_some_and(|r| r.contains("RP-001")), "{q:?}");
    assert_eq!(at(&h, &log, 119.0).await[0].mode, "backoff");
    assert_eq!(at(&h, &log, 120.0).await[0].mode, "normal", "backoff ends at its expiry");
    // Deferred while in backoff: retried on backoff-retry-after (30m), not before.
    let q = at(&h, &log, 1799.0).await;
    assert_eq!((q[0].connections, q[0].delivered), (0, 0), "{q:?}");
    at(&h, &log, 1800.0).await;
    h.until("delivered", |q| q[0].delivered == 1).await;
    let events: Vec<(String, u64)> =
        h.queues.snapshot().await[0].mode_events.iter().map(|e| (e.mode.clone(), e.time - start)).collect();
    assert_eq!(events, [("backoff".to_string(), 0), ("normal".to_string(), 120)]);
    assert_eq!(log.attempts(), [0.0, 1800.0]);
}

#[tokio::test]
async fn a_warm_up_step_caps_the_hour_then_the_next_step_opens() {
    let log: Arc<Log> = Arc::default();
    let clock = hour_clock();
    let worker = scripted(&clock, &log, |_| Reply::new(250, "2.0.0", "ok"));
    let h = start("<domain *>\n    warmup-schedule 2/h,4/h\n</domain>\n", clock, worker);
    for n in 0..6 {
        h.inject(&[&format!("r{n}@dest.test")]).await;
    }
    let q = h.until("step 1's cap used", |q| q[0].delivered == 2 && q[0].connections == 0).await;
    let ramp = q[0].warmup.as_ref().expect("a warm-up status");
    assert_eq!((ramp.step, ramp.cap, ramp.used), (1, 2, 2), "{q:?}");
    assert!(q[0].waiting_reason.as_deref().is_some_and(|w| w.contains("warm-up cap")), "{q:?}");
    // The last second of the hour: still capped.
    let q = at(&h, &log, 3599.0).await;
    assert_eq!((q[0].connections, q[0].delivered), (0, 2), "{q:?}");
    // The next hour is step 2: four more.
    at(&h, &log, 3600.0).await;
    let q = h.until("step 2's cap used", |q| q[0].delivered == 6 && q[0].connections == 0).await;
    let ramp = q[0].warmup.as_ref().unwrap();
    assert_eq!((ramp.step, ramp.cap, ramp.used), (2, 4, 4), "{q:?}");
    assert_eq!(log.attempts(), [0.0, 0.0, 3600.0, 3600.0, 3600.0, 3600.0]);
}

#[tokio::test]
async fn a_virtual_mtas_rate_is_shared_by_its_queues_in_virtual_time() {
    let log: Arc<Log> = Arc::default();
    let clock = hour_clock();
    let worker = scripted(&clock, &log, |_| Reply::new(250, "2.0.0", "ok"));
    let config = "<virtual-mta v>\n    smtp-source-host 127.0.0.2 v.test\n    max-smtp-msg-rate 60/m\n</virtual-mta>\n<domain *>\n</domain>\n";
    let h = start(config, clock, worker);
    for domain in ["a.test", "b.test"] {
        h.inject_with(&[&format!("r@{domain}")], Some("v"), 0).await;
        h.inject_with(&[&format!("s@{domain}")], Some("v"), 0).await;
    }
    let total = |q: &[QueueStatus]| q.iter().map(|q| q.delivered).sum::<u64>();
    // Two queues, one rate: one message a second between them.
    for (n, t) in [(1, 0.0), (2, 1.0), (3, 2.0), (4, 3.0)] {
        at(&h, &log, t).await;
        h.until("the next delivery", |q| total(q) == n).await;
        if n < 4 {
            let q = h
                .until("both queues told to wait", |q| {
                    q.iter().all(|q| q.connections == 0 || q.waiting_reason.is_some())
                })
                .await;
            assert_eq!(total(&q), n, "nothing else before the next second: {q:?}");
        }
    }
    assert_eq!(log.attempts(), [0.0, 1.0, 2.0, 3.0]);
    let q = h.queues.snapshot().await;
    assert_eq!(q.iter().map(|q| q.delivered).collect::<Vec<_>>(), [2, 2], "{q:?}");
}

#[tokio::test]
async fn max_data_volume_rate_spaces_messages_by_their_size_in_virtual_time() {
    let log: Arc<Log> = Arc::default();
    let clock = hour_clock();
    let worker = scripted(&clock, &log, |_| Reply::new(250, "2.0.0", "ok"));
    let h = start("<domain *>\n    max-data-volume-rate 1K/s\n</domain>\n", clock, worker);
    let size = h.inject_with(&["a@dest.test"], None, 3000).await as f64;
    h.inject_with(&["b@dest.test"], None, 3000).await;
    h.until("the first delivery", |q| q[0].delivered == 1).await;
    // The first message's bytes at 1024 a second decide when the second may go.
    let wait = size / 1024.0;
    let told = |w: Option<(f64, f64)>| w.is_some_and(|(t, w)| t == 0.0 && (w - wait).abs() < 1e-9);
    eventually("told to wait for the first one's bytes", || told(log.last_wait())).await;
    let q = h.queues.snapshot().await;
    assert_eq!(q[0].waiting_reason.as_deref(), Some("rate: max-data-volume-rate"), "{q:?}");
    // The manual clock counts milliseconds: the first one at or after the wait.
    let due = (wait * 1000.0).ceil() / 1000.0;
    at(&h, &log, due - 0.001).await;
    let early = |w: Option<(f64, f64)>| w.is_some_and(|(t, wait)| (t - (due - 0.001)).abs() < 1e-9 && wait > 0.0);
    eventually("a millisecond early: told to wait", || early(log.last_wait())).await;
    at(&h, &log, due).await;
    h.until("the second delivery", |q| q[0].delivered == 2).await;
    assert_eq!(log.attempts(), [0.0, due]);
}

#[tokio::test]
async fn a_full_inbox_makes_producers_wait_until_the_manager_reads() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(load_str("test.conf", "", dir.path(), FileCheck::Require).config);
    let (spool, _) = Spool::open(SpoolOptions::new(vec![SpoolDir::new(dir.path().join("spool"))])).unwrap();
    let pending =
        Manager::start_pending(Arc::clone(&config), spool, MxResolver::new(&[]).unwrap(), None, Default::default());
    let handle = pending.handle.clone();
    // Envelopes without recipients: the manager files them nowhere, it only has to read them.
    let empty = || Envelope::new(String::new(), Vec::new());
    for _ in 0..super::EVENT_CAPACITY {
        handle.submit(empty()).await.unwrap();
    }
    assert_eq!(handle.backlog(), super::EVENT_CAPACITY);
    let mut blocked = std::pin::pin!(handle.submit(empty()));
    let waited = tokio::select! {
        biased;
        _ = &mut blocked => false,
        () = std::future::ready(()) => true,
    };
    assert!(waited, "a producer must wait while the inbox is full");
    let reporter = Reporter::new(&config, Accounting::open(&config).unwrap(), "mta.test".into());
    let _running = pending.run(reporter);
    blocked.await.unwrap();
    handle.snapshot().await;
    assert_eq!(handle.backlog(), 0, "the manager read everything before answering the snapshot");
}

/// A connection that takes nothing and never ends: the mail it was started for stays ready.
fn idle() -> WorkerFn {
    Arc::new(|_setup: WorkerSetup| Box::pin(std::future::pending()))
}

#[tokio::test]
async fn a_warm_up_diversion_is_filed_only_once_the_saver_has_written_it() {
    let h = start_with_state(
        "<virtual-mta cold>\n    smtp-source-host 127.0.0.3 cold.test\n</virtual-mta>\n\
         <virtual-mta warm>\n    smtp-source-host 127.0.0.2 warm.test\n    cold-virtual-mta cold\n\
         <domain *>\n        max-cold-virtual-mta-msg 10/day\n    </domain>\n</virtual-mta>\n",
        hour_clock(),
        idle(),
        true,
    );
    let state = h.dir.path().join("state");
    let cold = |q: &[QueueStatus]| q.iter().find(|s| s.queue == "dest.test/cold").map_or(0, |s| s.recipients);
    let used = || {
        let text = std::fs::read_to_string(state.join("warmup.json")).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        json["warm/dest.test"]["used"].as_u64()
    };

    // Once the diverted message is in the cold queue, the count that diverted it is on disk.
    h.inject_via(Some("warm"), &["a@dest.test"]).await;
    h.until("the first diversion filed", |q| cold(q) == 1).await;
    assert_eq!(used(), Some(1));

    // A write that cannot finish (a FIFO where the temporary file goes: creating it blocks until
    // someone reads) keeps the next diverted message out of every queue, without stopping the
    // manager, which still answers.
    let fifo = state.join("warmup.json.tmp");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o600), 0).unwrap();
    h.inject_via(Some("warm"), &["b@dest.test"]).await;
    let now = h.queues.snapshot().await;
    assert_eq!(cold(&now), 1, "{now:?}");
    assert_eq!(now.iter().map(|s| s.recipients).sum::<usize>(), 1, "{now:?}");

    // The saver gets through (its fsync of a FIFO fails and is logged): the message is filed
    // rather than held for ever.
    let written = tokio::task::spawn_blocking(move || std::fs::read(fifo).unwrap()).await.unwrap();
    assert!(String::from_utf8_lossy(&written).contains("\"used\":2"), "{written:?}");
    h.until("the second diversion filed", |q| cold(q) == 2).await;
}

fn loaded(text: &str) -> crate::config::Config {
    let loaded = load_str("test.conf", text, std::path::Path::new("/"), FileCheck::Warn);
    assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
    loaded.config
}

#[test]
fn settings_resolve_once_per_domain_and_vmta_in_a_generation() {
    let config = loaded("<domain example.com>\n    max-smtp-out 3\n</domain>\n");
    let mut cache = super::SettingsCache::default();
    let first = cache.get(&config, "example.com", crate::config::DEFAULT_VMTA).unwrap();
    // A thousand recipients at one domain: one resolution, one shared value.
    for _ in 0..1000 {
        let again = cache.get(&config, "example.com", crate::config::DEFAULT_VMTA).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
    assert_eq!(cache.resolved, 1);
    assert_eq!(first.policy.max_smtp_out, 3);
    // Another domain, or an unknown VMTA (remembered as such), is a resolution of its own.
    assert_eq!(cache.get(&config, "other.test", crate::config::DEFAULT_VMTA).unwrap().policy.max_smtp_out, 20);
    assert!(cache.get(&config, "example.com", "nope").is_none());
    assert!(cache.get(&config, "example.com", "nope").is_none());
    assert_eq!(cache.resolved, 3);

    // The next generation resolves again, with its own values.
    cache.clear();
    let next = loaded("<domain example.com>\n    max-smtp-out 5\n</domain>\n");
    assert_eq!(cache.get(&next, "example.com", crate::config::DEFAULT_VMTA).unwrap().policy.max_smtp_out, 5);
    assert_eq!(cache.resolved, 4);
}

#[tokio::test]
async fn mail_submitted_after_a_reload_is_filed_by_the_new_generation() {
    let h = start("", hour_clock(), idle());
    h.inject(&["a@example.com"]).await;
    h.until("filed in its own queue", |q| q.iter().any(|s| s.queue == "example.com/{default}")).await;

    let text = "<domain example.com>\n    queue-to moved.test\n</domain>\n";
    let config = Arc::new(load_str("test.conf", text, h.dir.path(), FileCheck::Require).config);
    let reporter = Reporter::new(&config, Accounting::open(&config).unwrap(), "mta.test".into());
    h.queues.reload(config, reporter).await.unwrap();
    h.inject(&["b@example.com"]).await;
    // The first generation's settings for example.com are not reused.
    h.until("filed by queue-to", |q| q.iter().any(|s| s.queue == "moved.test/{default}" && s.recipients == 1)).await;
}

#[tokio::test]
async fn deferred_queues_sleep_until_their_retry_time_instead_of_being_visited_every_tick() {
    let log: Arc<Log> = Arc::default();
    let clock = hour_clock();
    // Deferred once, then taken.
    let worker = scripted(&clock, &log, |job| match job.attempts {
        0 => Reply::new(451, "4.3.0", "try later"),
        _ => Reply::new(250, "2.0.0", "ok"),
    });
    let h = start("<domain *>\n    retry-after 10m\n</domain>\n", clock, worker);
    let domains: Vec<String> = (0..40).map(|i| format!("r@d{i}.test")).collect();
    for rcpt in &domains {
        h.inject(&[rcpt.as_str()]).await;
    }
    h.until("forty deferrals", |q| {
        q.len() == 40 && q.iter().all(|q| q.deferred == 1 && q.connections == 0 && q.messages_waiting == 1)
    })
    .await;
    // One look settles them: none is busy, each has its retry time armed.
    h.queues.tick().await;
    assert_eq!(h.queues.agenda().await, (0, 40));
    // Before the retry time a tick looks at no queue at all.
    h.clock.set(599.0);
    assert_eq!(h.queues.tick().await, 0);
    assert_eq!(h.queues.agenda().await, (0, 40));
    // At it, every queue is looked at once and delivers.
    h.clock.set(600.0);
    assert_eq!(h.queues.tick().await, 40);
    h.until("all delivered", |q| q.iter().all(|q| q.delivered == 1 && q.recipients == 0 && q.connections == 0)).await;
    // Delivered and empty: the queues keep their counts for `show queues` and need no timer.
    h.queues.tick().await;
    assert_eq!(h.queues.agenda().await, (0, 0));
}

/// Connections that take one job and hold it (and their slot) until the test ends.
fn holding(release: &Arc<tokio::sync::Notify>) -> WorkerFn {
    let release = Arc::clone(release);
    Arc::new(move |setup: WorkerSetup| {
        let release = Arc::clone(&release);
        Box::pin(async move {
            let _job = next(&setup).await;
            release.notified().await;
        })
    })
}

#[tokio::test]
async fn a_virtual_mta_caps_its_queues_together_only_with_its_own_max_smtp_out() {
    for (vmta_cap, expected) in [("", 25), ("    max-smtp-out 3\n", 3)] {
        let release = Arc::new(tokio::sync::Notify::new());
        let config = format!(
            "<virtual-mta v>\n    smtp-source-host 127.0.0.2 v.test\n{vmta_cap}</virtual-mta>\n<domain *>\n</domain>\n"
        );
        let h = start(&config, hour_clock(), holding(&release));
        for i in 0..25 {
            h.inject_via(Some("v"), &[&format!("r@d{i}.test")]).await;
        }
        let open = |q: &[QueueStatus]| q.iter().map(|q| q.connections).sum::<usize>();
        h.until("the connections the cap allows", |q| q.len() == 25 && open(q) == expected).await;
        // Another look starts nothing more.
        h.queues.tick().await;
        assert_eq!(open(&h.queues.snapshot().await), expected, "with {vmta_cap:?}");
    }
}
