//! The handle the rest of the daemon holds on the queue manager: its bounded inbox, and the
//! requests that go through it (submit, recover, reload, commands, snapshots).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Command, Event, QueueStatus};
use crate::config::Config;
use crate::message::Envelope;
use crate::queue::report::Reporter;

/// The manager's inbox. Bounded: a producer that outruns the manager (sessions submitting,
/// workers reporting) waits for room, so a burst slows the SMTP answers instead of growing
/// memory; `ember_queue_manager_backlog` shows how full it is.
pub type Events = mpsc::Sender<Event>;

/// Events the manager's inbox holds before producers wait: about a second of relay traffic at
/// full speed, which absorbs bursts without hiding a stalled manager for long.
pub const EVENT_CAPACITY: usize = 8192;

/// The handle the rest of the daemon holds.
#[derive(Clone)]
pub struct QueueHandle {
    pub(super) tx: Events,
}

/// The manager has stopped (the daemon is shutting down): what was sent stays in the spool and is
/// queued again at the next start.
#[derive(Debug, thiserror::Error)]
#[error("the queue manager has stopped")]
pub struct Stopped;

impl QueueHandle {
    /// What takes complaints for adaptive delivery (`events::feedback::install`): into the
    /// inbox if there is room, else dropped with a log line (a complaint must never hold up the
    /// session that reported it; the complaint itself is already recorded and suppressed).
    pub fn complaint_tap(&self) -> impl Fn(crate::events::feedback::Complaint) + Send + Sync + 'static {
        let tx = self.tx.clone();
        move |c| {
            if let Err(e) = tx.try_send(Event::Complaint(c)) {
                tracing::warn!("a complaint was not counted by adaptive delivery: {e}");
            }
        }
    }

    /// Files a stored message into its queues; waits while the manager's inbox is full.
    pub async fn submit(&self, envelope: Envelope) -> Result<(), Stopped> {
        self.tx.send(Event::Submit(Box::new(envelope), true)).await.map_err(|_| Stopped)
    }

    /// Files a message recovered from the spool at start, from a blocking thread (recovery walks
    /// the spool's index synchronously).
    pub fn recover_blocking(&self, envelope: Envelope) -> Result<(), Stopped> {
        self.tx.blocking_send(Event::Submit(Box::new(envelope), false)).map_err(|_| Stopped)
    }

    /// Switches to a new configuration generation: queue settings are recomputed, messages whose
    /// VMTA no longer exists bounce with 5.3.5.
    pub async fn reload(&self, config: Arc<Config>, reporter: Reporter) -> Result<(), Stopped> {
        let reporter = reporter.with_events(self.tx.clone());
        self.tx.send(Event::Reload(config, reporter)).await.map_err(|_| Stopped)
    }

    /// Events waiting in the manager's inbox.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Applies an operator's command to the queues matching `queues`; how many matched.
    pub async fn command(&self, queues: &str, command: Command) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Event::Command { queues: queues.to_string(), command, reply: tx }).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Runs the manager's timer work now (unit tests on a manual clock).
    /// Runs the timer work now; how many queues it looked at.
    #[cfg(test)]
    pub async fn tick(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Event::Tick(tx)).await.expect("manager running");
        rx.await.expect("manager answers")
    }

    /// (queues looked at on every tick, queues with a timer armed).
    #[cfg(test)]
    pub async fn agenda(&self) -> (usize, usize) {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Event::Agenda(tx)).await.expect("manager running");
        rx.await.expect("manager answers")
    }

    /// Applies a queue mode another node of the cluster changed.
    pub async fn apply_shared(&self, from: &str, change: crate::cluster::state::Change) {
        if self.tx.send(Event::Shared { from: from.to_string(), change }).await.is_err() {
            tracing::debug!("a cluster change arrived after the queue manager stopped");
        }
    }

    /// Where a domain's mail goes, its most preferred MX hosts being `hosts` (`ember explain
    /// DOMAIN`); `None` when the manager has stopped.
    pub async fn domain_route(&self, domain: &str, hosts: Vec<String>) -> Option<super::rollup::DomainRoute> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Event::Route { domain: domain.to_string(), hosts, reply: tx }).await.ok()?;
        rx.await.ok()
    }

    pub async fn snapshot(&self) -> Vec<QueueStatus> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Event::Snapshot(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}
