//! Cluster mode: several Ember nodes behind the same sending identities, sharing their limits and
//! operator state through one Redis (`cluster-redis`). Without that directive nothing here runs
//! and every limit stays in process.
//!
//! What is shared, and how it stays exact:
//!
//! - **Connections** (`max-smtp-out`) are leases: one sorted set per identity (virtual MTA and
//!   source IP) and destination queue, each member a connection scored by its expiry. A worker
//!   takes its lease before it connects (`limits.rs`, one script that also charges
//!   `max-connect-rate`), renews it while the connection lives and removes it when the connection
//!   ends; a node that dies stops renewing and its leases expire ([`LEASE_TTL`]).
//! - **Rates** (`max-msg-rate`, `max-data-volume-rate`, their backoff variants, the source-IP
//!   rates and the virtual MTA and pool rates) are GCRAs whose state lives in Redis. The queue
//!   manager keeps checking its local limiters as before (it is one synchronous task and never
//!   waits for Redis); with each message it hands out it names the limiters it charged
//!   ([`Demand`]), and the worker then reserves the message's slot on every one of them in one
//!   script run (one round trip): the script reads Redis's clock, finds the first instant all of
//!   them allow, charges them all for that instant and answers how long to wait. A connection
//!   never gives a reserved slot back, so the cluster can send less than the limit but never
//!   more; burst is 1 everywhere, as in the local limiters.
//! - **Membership** (`membership.rs`): every node writes a heartbeat with a TTL; the live nodes are
//!   what the fallback divides limits by.
//! - **Degraded mode** (`fallback.rs`): when a Redis call fails or times out, the node uses its
//!   share of every shared limit among the live nodes it last saw, keeps accepting and queueing,
//!   says so once in the log and in `/metrics` and `GET /api/v1/cluster`, and goes back to Redis
//!   when the heartbeat gets through again. The GCRA state in Redis is the truth on return, so
//!   there is no burst.
//! - **Daily allowances** (`allowance.rs`): the cold-VMTA diversions of warm-up, counted per
//!   day in Redis and spent by each node in blocks it reserves.
//! - **Warm-up schedules** (`ramp.rs`): a `warmup-schedule`'s step, its window's use and the
//!   outcomes that decide the next step, in one Redis hash per ramp; nodes spend the step's cap
//!   in blocks.
//! - **Shared state** (`state.rs`): backoff, operator pause, resume and mode, and the global
//!   suppression list travel on a Redis stream that every node reads from its own cursor.
//!
//! Nothing on the SMTP ingress path waits for Redis: the suppression check reads the local copy,
//! and every Redis call has a timeout ([`CALL_TIMEOUT`]).

pub mod allowance;
pub mod fallback;
pub mod limits;
pub mod membership;
pub mod ramp;
pub mod redis;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use limits::{Demand, Lease, SharedRate};
pub use membership::{NodeInfo, NodeTotals};

/// How long a connection lease lives without renewal: a node that dies gives its connections
/// back after this long.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// How long a node's heartbeat lives: a node not heard from for this long is not live.
pub const NODE_TTL: Duration = Duration::from_secs(5);
/// After Redis comes back, limits stay on the node's share this long: every node rejoins within
/// a heartbeat or two and re-registers the connections it opened meanwhile, and only then may
/// Redis hand out new leases (it would not know of those connections before).
pub const REJOIN_GRACE: Duration = Duration::from_secs(3);
/// Every Redis call gives up after this long and the node goes degraded.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// The cluster as this node sees it; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    /// Tells this process apart from an earlier (or a duplicate) node of the same name.
    instance: String,
    redis: redis::Redis,
    /// Set while Redis is unreachable: limits fall back to this node's share.
    degraded: AtomicBool,
    /// Unix milliseconds since when it is degraded (for new leases, see `fallback.rs`).
    degraded_since_ms: AtomicU64,
    /// Unix milliseconds since when Redis answers again (see [`REJOIN_GRACE`]).
    healthy_since_ms: AtomicU64,
    /// Wakes the lease renewals when Redis is back, so they re-register at once.
    rejoined: tokio::sync::Notify,
    /// The degraded state was logged (a node starts degraded, and says so on its first failure).
    announced: AtomicBool,
    /// Redis answered at least once since the start.
    connected_once: AtomicBool,
    /// This node's heartbeat was accepted (it is a member).
    member: AtomicBool,
    /// Another live node holds this node's name.
    refused: AtomicBool,
    /// The nodes the last heartbeat saw (live or recently gone), this one included.
    view: ArcSwap<Vec<NodeInfo>>,
    fallback: fallback::Fallback,
    /// What this node says about itself in its heartbeat.
    about: membership::About,
    /// Changes for the other nodes (`state.rs`).
    outbox: state::Outbox,
    /// This node is being drained (`ember drain`): its heartbeat says so, and the others do not
    /// hand mail to it.
    draining: AtomicBool,
}

/// A cluster that cannot be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster-redis {url:?}: {source}")]
    Url { url: String, source: ::redis::RedisError },
}

impl Cluster {
    /// The cluster named by `cluster-redis`, not yet connected: the first heartbeat connects, and
    /// until it succeeds the node runs degraded.
    pub fn new(url: &str, about: membership::About) -> Result<Cluster, ClusterError> {
        let redis = redis::Redis::new(url).map_err(|source| ClusterError::Url { url: url.to_string(), source })?;
        let inner = Inner {
            node: about.name.clone(),
            instance: format!("{:016x}", rand::random::<u64>()),
            redis,
            // Degraded until the first heartbeat answers: nothing is known of the others yet.
            degraded: AtomicBool::new(true),
            degraded_since_ms: AtomicU64::new(crate::time::now_millis()),
            healthy_since_ms: AtomicU64::new(0),
            rejoined: tokio::sync::Notify::new(),
            announced: AtomicBool::new(false),
            connected_once: AtomicBool::new(false),
            member: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            view: ArcSwap::from_pointee(Vec::new()),
            fallback: fallback::Fallback::default(),
            about,
            outbox: state::Outbox::default(),
            draining: AtomicBool::new(false),
        };
        Ok(Cluster { inner: Arc::new(inner) })
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Whether limits run on this node's share because Redis is away.
    pub fn degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::Relaxed)
    }

    /// Whether limits are decided on this node's share: degraded, or back from it for less than
    /// [`REJOIN_GRACE`].
    pub fn limits_local(&self) -> bool {
        let since = self.inner.healthy_since_ms.load(Ordering::Relaxed);
        self.degraded() || crate::time::now_millis() < since + REJOIN_GRACE.as_millis() as u64
    }

    /// Marks this node as draining: from its next heartbeat on, every node sees it so and no
    /// node picks it for a hand-over.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// The nodes this one may hand its mail to: live members of the last view, not draining, not
    /// itself, with an SMTP listener.
    pub fn peers(&self) -> Vec<NodeInfo> {
        self.view()
            .iter()
            .filter(|n| n.live && !n.draining && n.name != self.inner.node && !n.smtp.is_empty())
            .cloned()
            .collect()
    }

    /// Whether another live node holds this node's name.
    pub fn refused(&self) -> bool {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// The nodes the last heartbeat saw.
    pub fn view(&self) -> Arc<Vec<NodeInfo>> {
        self.inner.view.load_full()
    }

    /// A Redis call failed: run on shares until a heartbeat gets through. Logged once per outage.
    pub(crate) fn mark_degraded(&self, why: &dyn std::fmt::Display) {
        let was = self.inner.degraded.swap(true, Ordering::Relaxed);
        if !was {
            let now = crate::time::now_millis();
            self.inner.degraded_since_ms.store(now, Ordering::Relaxed);
            self.inner.fallback.hold_until(now as f64 + limits::HORIZON_MS);
        }
        if !was || !self.inner.announced.swap(true, Ordering::Relaxed) {
            let share = self.share();
            tracing::warn!(
                "cluster: Redis unreachable ({why}); degraded mode: this node uses its share (1/{}) of every shared limit",
                share.live
            );
        }
    }

    /// A heartbeat got through: Redis is the truth again.
    pub(crate) fn mark_healthy(&self) {
        self.inner.announced.store(true, Ordering::Relaxed);
        if self.inner.degraded.swap(false, Ordering::Relaxed) {
            if self.inner.connected_once.swap(true, Ordering::Relaxed) {
                self.inner.healthy_since_ms.store(crate::time::now_millis(), Ordering::Relaxed);
                self.inner.rejoined.notify_waiters();
                tracing::warn!("cluster: Redis reachable again; shared limits resume from their state in Redis");
            } else {
                tracing::info!("cluster: connected to Redis; limits are shared");
            }
        }
    }

    /// This node's place among the live nodes it last saw.
    pub fn share(&self) -> fallback::Share {
        fallback::Share::among(&self.view(), &self.inner.node)
    }

    /// Starts the heartbeat (membership, health) and the shared-state reader.
    pub fn start(&self, totals: membership::TotalsFn) {
        tokio::spawn(membership::run(self.clone(), totals));
    }
}
