//! Shared state: operator and reply-rule changes that must hold on every node — a queue paused,
//! resumed, put in backoff (with its reason and expiry) or back to normal, and addresses added to
//! or removed from the global suppression list. Each change is one entry of a Redis stream; every
//! node reads the stream from its own cursor (kept beside the spool, so a restart resumes where
//! it stopped) a few times a second and applies what other nodes wrote. The suppression check at
//! RCPT reads each node's local copy, never Redis.
//!
//! Changes made while Redis is away wait in a bounded local backlog and are written when it
//! returns, oldest first.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::StreamReadReply;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Cluster;
use super::redis::key;

/// A change every node applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    /// `pause queue` (queue as `domain/vmta`).
    Pause {
        queue: String,
    },
    Resume {
        queue: String,
    },
    /// Backoff mode with the limits and the reason it was entered with; `until` is Unix time.
    Backoff {
        queue: String,
        reason: String,
        until: Option<u64>,
        max_smtp_out: usize,
        rate: Option<(u64, u64)>,
    },
    /// Out of backoff (a rule, an operator).
    Normal {
        queue: String,
        reason: String,
    },
    /// Entries (`user@domain`, `@domain`) added to the global suppression list.
    Suppress {
        entries: Vec<String>,
    },
    Unsuppress {
        entries: Vec<String>,
    },
}

/// What applies other nodes' changes here (the daemon: the queue manager and the suppression
/// store live above this module).
pub trait Apply: Send + Sync + 'static {
    fn apply<'a>(&'a self, from: &'a str, change: Change) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Changes waiting to be written; a burst past this is logged and the oldest dropped.
const OUTBOX: usize = 1024;
const BACKLOG: usize = 10_000;
/// Suppression changes are written in pieces of at most this many entries.
pub const CHUNK: usize = 5_000;
/// How often the stream is read.
const POLL: Duration = Duration::from_millis(200);
/// Entries the stream keeps (approximately): a node away for longer resumes from the oldest.
const STREAM_LENGTH: usize = 100_000;

/// The sending half, held by the cluster handle.
pub struct Outbox {
    tx: mpsc::Sender<Change>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<Change>>>,
}

impl Default for Outbox {
    fn default() -> Outbox {
        let (tx, rx) = mpsc::channel(OUTBOX);
        Outbox { tx, rx: std::sync::Mutex::new(Some(rx)) }
    }
}

impl Cluster {
    /// Shares `change` with the other nodes. Never waits: called from the queue manager's task.
    pub fn publish(&self, change: Change) {
        if let Err(e) = self.inner.outbox.tx.try_send(change) {
            let why = e.to_string();
            tracing::error!("cluster: a shared change was not sent to the other nodes ({why}): {:?}", e.into_inner());
        }
    }

    /// Starts writing this node's changes and applying the others'.
    pub fn share_state(&self, apply: Arc<dyn Apply>, cursor_file: Option<PathBuf>) {
        let taken = self.inner.outbox.rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(rx) = taken {
            tokio::spawn(write(self.clone(), rx));
        }
        tokio::spawn(read(self.clone(), apply, cursor_file));
    }
}

fn stream() -> String {
    key("changes", "stream")
}

async fn write(cluster: Cluster, mut rx: mpsc::Receiver<Change>) {
    let mut backlog: VecDeque<Change> = VecDeque::new();
    loop {
        // Wait for a change, or a second to retry the backlog.
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some(change)) => {
                if backlog.len() >= BACKLOG {
                    tracing::error!(
                        "cluster: {BACKLOG} shared changes wait for Redis; the oldest is dropped: {:?}",
                        backlog.front()
                    );
                    backlog.pop_front();
                }
                backlog.push_back(change);
            }
            Ok(None) => return,
            Err(_) => {}
        }
        while let Some(change) = backlog.front() {
            if cluster.degraded() {
                break;
            }
            let text = serde_json::to_string(change).unwrap_or_default();
            let add = redis::cmd("XADD")
                .arg(stream())
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_LENGTH)
                .arg("*")
                .arg("node")
                .arg(cluster.node())
                .arg("instance")
                .arg(&cluster.inner.instance)
                .arg("change")
                .arg(text)
                .to_owned();
            match cluster.inner.redis.command::<String>(&add).await {
                Ok(_) => {
                    backlog.pop_front();
                }
                Err(e) => {
                    cluster.mark_degraded(&e);
                    break;
                }
            }
        }
    }
}

async fn read(cluster: Cluster, apply: Arc<dyn Apply>, cursor_file: Option<PathBuf>) {
    let mut cursor = match &cursor_file {
        Some(f) => tokio::fs::read_to_string(f).await.ok().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
        None => None,
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if cluster.degraded() {
            continue;
        }
        let from = match &cursor {
            Some(c) => c.clone(),
            // First start: what was written before this node existed is not its business.
            None => match last_id(&cluster).await {
                Ok(id) => {
                    cursor = Some(id.clone());
                    id
                }
                Err(e) => {
                    cluster.mark_degraded(&e);
                    continue;
                }
            },
        };
        let read = redis::cmd("XREAD").arg("COUNT").arg(500).arg("STREAMS").arg(stream()).arg(&from).to_owned();
        let reply: Option<StreamReadReply> = match cluster.inner.redis.command(&read).await {
            Ok(r) => r,
            Err(e) => {
                cluster.mark_degraded(&e);
                continue;
            }
        };
        let Some(reply) = reply else { continue };
        let mut last = None;
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let field = |name: &str| entry.get::<String>(name).unwrap_or_default();
            if field("instance") != cluster.inner.instance {
                match serde_json::from_str::<Change>(&field("change")) {
                    Ok(change) => apply.apply(&field("node"), change).await,
                    Err(e) => {
                        tracing::warn!("cluster: change {} from node {} not understood: {e}", entry.id, field("node"))
                    }
                }
            }
            last = Some(entry.id);
        }
        if let Some(id) = last {
            cursor = Some(id.clone());
            if let Some(f) = &cursor_file
                && let Err(e) = tokio::fs::write(f, &id).await
            {
                tracing::warn!("cluster: cannot keep the stream cursor in {}: {e}", f.display());
            }
        }
    }
}

async fn last_id(cluster: &Cluster) -> Result<String, super::redis::CallError> {
    let last = redis::cmd("XREVRANGE").arg(stream()).arg("+").arg("-").arg("COUNT").arg(1).to_owned();
    let reply: redis::streams::StreamRangeReply = cluster.inner.redis.command(&last).await?;
    Ok(reply.ids.into_iter().next().map_or_else(|| "0-0".to_string(), |e| e.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_tagged_json() {
        let c = Change::Backoff {
            queue: "example.com/v".into(),
            reason: "rule matched".into(),
            until: Some(1_800_000_000),
            max_smtp_out: 1,
            rate: Some((10, 60)),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.starts_with(r#"{"kind":"backoff","queue":"example.com/v""#), "{text}");
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), c);
    }
}
