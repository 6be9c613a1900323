//! The manager driven with stand-in workers: a real spool, accounting file and configuration,
//! connections replaced by functions that speak the manager's event protocol.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Command, Event, Manager, NextJob, QueueHandle, QueueStatus};
use crate::config::{FileCheck, load_str};
use crate::delivery::mx::MxResolver;
use crate::message::{Envelope, Origin, Recipient};
use crate::outcome::acct::Accounting;
use crate::queue::report::Reporter;
use crate::queue::supervisor::WorkerFn;
use crate::queue::worker::{Remote, WorkerSetup};
use crate::smtp::Reply;
use crate::spool::{Spool, SpoolDir, SpoolOptions};
use crate::telemetry::Telemetry;

struct Harness {
    dir: tempfile::TempDir,
    spool: Spool,
    queues: QueueHandle,
    telemetry: Arc<Telemetry>,
}

/// A manager over a fresh spool in a temporary directory, its connections run by `worker`.
fn start(config_text: &str, worker: WorkerFn) -> Harness {
    start_with_state(config_text, worker, false)
}

/// `start`, keeping the manager's small state files in `state/` when `state` is set.
fn start_with_state(config_text: &str, worker: WorkerFn, state: bool) -> Harness {
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
        .with_worker(worker);
    let telemetry = Arc::new(Telemetry::default());
    let accounting = Accounting::open(&config).unwrap();
    let reporter = Reporter::new(&config, accounting, "mta.test".into()).with_telemetry(Arc::clone(&telemetry));
    let queues = pending.run(reporter);
    Harness { dir, spool, queues, telemetry }
}

impl Harness {
    async fn inject(&self, recipients: &[&str]) {
        self.inject_via(None, recipients).await;
    }

    async fn inject_via(&self, vmta: Option<&str>, recipients: &[&str]) {
        let envelope = Envelope {
            id: crate::message::MessageId(0),
            sender: "sender@example.net".into(),
            recipients: recipients.iter().map(|r| Recipient::new(*r)).collect(),
            vmta: vmta.map(str::to_string),
            job_id: None,
            env_id: None,
            ret: None,
            eight_bit: false,
            smtputf8: false,
            arrival_ms: crate::time::now_secs() * 1000,
            priority: None,
            dkim_options: None,
            origin: Origin::default(),
        };
        let id = self.spool.store(envelope, b"Subject: t\r\n\r\nbody\r\n".to_vec()).await.unwrap();
        self.queues.submit(self.spool.envelope(id).unwrap());
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

/// Asks the manager for the next job the way a connection does.
async fn next(setup: &WorkerSetup) -> Option<crate::queue::manager::Job> {
    let (tx, rx) = oneshot::channel();
    let ask =
        Event::Next { worker: setup.worker, key: setup.key.clone(), source: None, mx: "mx.test".into(), reply: tx };
    setup.events.send(ask).ok()?;
    match rx.await.ok()? {
        NextJob::Job(job) => Some(job),
        NextJob::Wait(_) | NextJob::Done => None,
    }
}

static FLAKY_STARTS: AtomicUsize = AtomicUsize::new(0);

/// The first connection panics while it holds a message; later ones deliver everything.
fn flaky(setup: WorkerSetup) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if FLAKY_STARTS.fetch_add(1, Ordering::SeqCst) == 0 {
            let _held = next(&setup).await.expect("a job for the first connection");
            panic!("injected failure in the middle of a transaction");
        }
        while let Some(job) = next(&setup).await {
            let replies = vec![Reply::new(250, "2.0.0", "ok"); job.recipients.len()];
            let done = Event::Outcome {
                worker: setup.worker,
                key: setup.key.clone(),
                job,
                replies,
                remote: Remote::default(),
            };
            setup.events.send(done).unwrap();
        }
        let ended =
            Event::ConnectionEnded { worker: setup.worker, key: setup.key.clone(), source: None, failure: None };
        setup.events.send(ended).unwrap();
    })
}

#[tokio::test]
async fn a_worker_that_panics_mid_transaction_loses_nothing() {
    let h = start(
        "<domain *>\n    retry-after 1h\n</domain>\n<acct-file acct.csv>\n    records d,t\n</acct-file>\n",
        flaky,
    );
    h.inject(&["a@dest.test", "b@dest.test"]).await;

    // The panic: its connection slot is released and both recipients are deferred, not lost.
    let after =
        h.until("the dead worker reaped", |q| q.len() == 1 && q[0].deferred == 2 && q[0].connections == 0).await;
    assert_eq!(after[0].recipients, 2, "{after:?}");
    assert_eq!(h.telemetry.worker_failures_total(), 1);
    let acct = h.accounting();
    assert_eq!(acct.lines().filter(|l| l.starts_with("t,")).count(), 2, "{acct}");
    assert!(acct.contains("delivery worker failed: injected failure"), "{acct}");
    let live = h.spool.live();
    assert_eq!(live.len(), 1, "the message is still on disk");

    // The next attempt (an operator's `schedule --retry-recipients`) delivers both.
    assert_eq!(h.queues.command("*", Command::Schedule { recipients: true }).await, 1);
    h.until("both delivered", |q| q[0].delivered == 2 && q[0].recipients == 0 && q[0].connections == 0).await;
    assert_eq!(h.accounting().lines().filter(|l| l.starts_with("d,")).count(), 2);
    // The reporter writes the spool from a task of its own: its commit follows the outcome.
    for _ in 0..2000 {
        if h.spool.live().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(h.spool.live().is_empty(), "nothing left in the spool");

    // /metrics counts the death against its queue.
    let mut registry = prometheus_client::registry::Registry::default();
    h.telemetry.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("ember_worker_failures_total{domain=\"dest.test\",vmta=\"{default}\"} 1"), "{text}");
}

/// A connection that takes nothing and never ends: the mail it was started for stays ready.
fn idle(_setup: WorkerSetup) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(std::future::pending())
}

#[tokio::test]
async fn a_warm_up_diversion_is_filed_only_once_the_saver_has_written_it() {
    let h = start_with_state(
        "<virtual-mta cold>\n    smtp-source-host 127.0.0.3 cold.test\n</virtual-mta>\n\
         <virtual-mta warm>\n    smtp-source-host 127.0.0.2 warm.test\n    cold-virtual-mta cold\n\
         <domain *>\n        max-cold-virtual-mta-msg 10/day\n    </domain>\n</virtual-mta>\n",
        idle,
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
