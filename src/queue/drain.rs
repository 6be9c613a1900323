//! `ember drain`: retiring a node without losing or delaying its mail. The caller (the
//! management API) has closed the SMTP intake and marked the node draining in the cluster; this
//! module then runs one of two modes and keeps the progress the API and the CLI show:
//!
//! - **hand-over**: delivery stops (open connections finish the message they carry), then the
//!   queued mail is handed to the live peers of the cluster — or to the relay given with
//!   `--to` — pass after pass (`handover.rs`) until the spool is empty. What no peer takes stays
//!   queued here and is offered again every [`RETRY`].
//! - **wait**: delivery goes on as usual; the drain ends when the spool is empty.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::handover::{self, Peer};
use super::manager::{Operation, QueueHandle};
use crate::spool::Spool;

/// How long a hand-over waits before offering again what no peer took.
pub const RETRY: Duration = Duration::from_secs(5);
/// How often the wait mode looks at the spool.
const POLL: Duration = Duration::from_millis(500);

/// What was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Hand the queue over to the cluster's live peers, or to `to` when given.
    HandOver { to: Option<String> },
    /// Deliver as usual until the queue is empty.
    Wait,
}

/// One peer's share of a hand-over.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PeerTotals {
    pub peer: String,
    pub messages: u64,
    pub recipients: u64,
}

/// The drain as the API shows it.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct DrainStatus {
    /// `ember drain` was asked: the node takes no new mail.
    pub draining: bool,
    /// `hand-over` or `wait` (empty when not draining).
    pub mode: String,
    /// The relay given with `--to`, when the mail goes there instead of to cluster peers.
    pub to: Option<String>,
    /// `stopping` (connections finishing), `handing-over`, `waiting` (for the queue to empty),
    /// `done`.
    pub phase: String,
    /// The spool is empty.
    pub done: bool,
    /// Messages and recipients handed over so far, and to whom.
    pub handed_messages: u64,
    pub handed_recipients: u64,
    pub peers: Vec<PeerTotals>,
    /// What the spool still holds.
    pub queued_messages: u64,
    pub queued_recipients: u64,
    /// Recipients no peer took in the last pass, and the last refusal: they stay here and are
    /// offered again.
    pub kept: u64,
    pub kept_reason: Option<String>,
    /// Hand-over passes made.
    pub passes: u64,
}

/// Why a drain cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(
        "a hand-over needs cluster peers (cluster-redis) or a relay to hand over to (--to HOST:PORT); `ember drain --wait` delivers the queue here instead"
    )]
    NoPeers,
    #[error("--to {to:?}: {why}")]
    Target { to: String, why: String },
}

/// The drain of this node; one per process.
#[derive(Default)]
pub struct Drain {
    status: Mutex<DrainStatus>,
}

/// What a drain works with.
#[derive(Clone)]
pub struct Parts {
    pub queues: QueueHandle,
    pub spool: Spool,
    pub cluster: Option<crate::cluster::Cluster>,
    /// The name this node greets peers with.
    pub helo: String,
}

impl Drain {
    pub fn status(&self) -> DrainStatus {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DrainStatus> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts `mode` unless it already runs (asking again shows the progress). A hand-over may
    /// follow a wait; a wait asked during a hand-over leaves the hand-over running.
    pub async fn start(self: &Arc<Self>, mode: Mode, parts: Parts) -> Result<DrainStatus, DrainError> {
        let target = match &mode {
            Mode::HandOver { to: Some(to) } => Some(resolve(to).await?),
            Mode::HandOver { to: None } if parts.cluster.is_none() => return Err(DrainError::NoPeers),
            _ => None,
        };
        {
            let mut s = self.lock();
            let running = s.draining;
            if running && (s.mode == "hand-over" || mode == Mode::Wait) {
                return Ok(s.clone());
            }
            s.draining = true;
            s.done = false;
            match &mode {
                Mode::HandOver { to } => {
                    s.mode = "hand-over".into();
                    s.to = to.clone();
                    s.phase = "stopping".into();
                }
                Mode::Wait => {
                    s.mode = "wait".into();
                    s.phase = "waiting".into();
                }
            }
        }
        // The answer says what there is to drain (the spool's live counts, read from memory).
        self.count_spool(&parts.spool);
        let this = Arc::clone(self);
        match mode {
            Mode::HandOver { .. } => {
                tracing::warn!("drain: this node takes no new mail and hands its queue over");
                tokio::spawn(async move { this.hand_over(parts, target).await });
            }
            Mode::Wait => {
                tracing::warn!("drain: this node takes no new mail and delivers its queue until it is empty");
                tokio::spawn(async move { this.wait(parts).await });
            }
        }
        Ok(self.status())
    }

    fn count_spool(&self, spool: &Spool) -> bool {
        let stats = spool.stats();
        let mut s = self.lock();
        s.queued_messages = stats.live_messages as u64;
        s.queued_recipients = stats.live_recipients;
        stats.live_messages == 0
    }

    fn finish(&self) {
        let mut s = self.lock();
        if !s.done {
            s.done = true;
            s.phase = "done".into();
            s.kept = 0;
            s.kept_reason = None;
            tracing::warn!(
                "drain: done; the spool is empty ({} messages, {} recipients handed over)",
                s.handed_messages,
                s.handed_recipients
            );
        }
    }

    async fn wait(self: Arc<Self>, parts: Parts) {
        while !self.count_spool(&parts.spool) {
            if self.lock().mode != "wait" {
                // A hand-over took over.
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        if self.lock().mode == "wait" {
            self.finish();
        }
    }

    async fn hand_over(self: Arc<Self>, parts: Parts, target: Option<Peer>) {
        // Open connections finish the message they carry; no new one opens.
        parts.queues.operate(Operation::Drain).await;
        loop {
            self.lock().phase = "handing-over".into();
            let peers = match (&target, &parts.cluster) {
                (Some(t), _) => vec![t.clone()],
                (None, Some(cluster)) => cluster_peers(cluster).await,
                (None, None) => Vec::new(),
            };
            let report = handover::pass(&parts.queues, &parts.spool, &peers, &parts.helo).await;
            let empty = report.queued_messages == 0;
            let progress = report.handed_recipients() > 0;
            {
                let mut s = self.lock();
                s.passes += 1;
                for (peer, (messages, recipients)) in &report.handed {
                    s.handed_messages += messages;
                    s.handed_recipients += recipients;
                    match s.peers.iter_mut().find(|p| &p.peer == peer) {
                        Some(p) => {
                            p.messages += messages;
                            p.recipients += recipients;
                        }
                        None => s.peers.push(PeerTotals {
                            peer: peer.clone(),
                            messages: *messages,
                            recipients: *recipients,
                        }),
                    }
                }
                s.kept = report.kept;
                s.kept_reason = report.kept_reason.clone();
            }
            if report.kept > 0 {
                tracing::warn!(
                    "drain: {} recipients stay queued here, no peer took them ({}); offered again in {}s",
                    report.kept,
                    report.kept_reason.as_deref().unwrap_or("no reason given"),
                    RETRY.as_secs()
                );
            }
            if empty && self.count_spool(&parts.spool) {
                self.finish();
                return;
            }
            if !empty {
                self.count_spool(&parts.spool);
            }
            if !progress {
                // Nothing moved (no peer took anything, or the spool is still recording the
                // last outcomes): look again a little later.
                tokio::time::sleep(if empty { POLL } else { RETRY }).await;
            }
        }
    }
}

/// The cluster's live peers, their SMTP addresses resolved.
async fn cluster_peers(cluster: &crate::cluster::Cluster) -> Vec<Peer> {
    let mut peers = Vec::new();
    for node in cluster.peers() {
        match tokio::net::lookup_host(&node.smtp).await.map(|mut a| a.next()) {
            Ok(Some(addr)) => peers.push(Peer { name: node.name, addr }),
            _ => tracing::warn!(
                "drain: node {} announces an SMTP address that does not resolve: {}",
                node.name,
                node.smtp
            ),
        }
    }
    peers
}

/// The relay `to` (HOST:PORT) names.
pub async fn resolve(to: &str) -> Result<Peer, DrainError> {
    let fail = |why: String| DrainError::Target { to: to.to_string(), why };
    if let Ok(addr) = to.parse::<SocketAddr>() {
        return Ok(Peer { name: to.to_string(), addr });
    }
    if !to.contains(':') {
        return Err(fail("give HOST:PORT".into()));
    }
    match tokio::net::lookup_host(to).await {
        Ok(mut addrs) => match addrs.next() {
            Some(addr) => Ok(Peer { name: to.to_string(), addr }),
            None => Err(fail("no address".into())),
        },
        Err(e) => Err(fail(e.to_string())),
    }
}
