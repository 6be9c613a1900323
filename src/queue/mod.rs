//! Queues: every accepted recipient waits in the queue of its (destination queue name, virtual
//! MTA), and the queue manager decides when and over how many connections each queue is
//! worked (docs/architecture.md, "Queues and shaping"). Knows how work is chosen; how bytes reach a
//! socket is `delivery`.
//!
//! `manager` owns all queue state in one task (no locks on the hot path); `worker` is one
//! outbound connection draining a queue; `schedule` is the retry arithmetic; `vmta` picks pool
//! members and source hosts; `warmup` (cold-VMTA diversion) and `ramp` (warm-up schedules) cap
//! what a new IP sends; `report` turns outcomes into spool updates, accounting records and
//! DSNs; `rollup` is MX rollup (`<mx-rollup-list>`, `auto-mx-rollup`: provider-wide queues chosen by MX); `no_mx` is
//! `bounce-upon-no-mx`; `drain` and `handover` are `ember drain` (hand the queue to cluster peers,
//! or wait until it is empty); `dest_limits` caps connections per destination across queues; `supervisor` watches workers and
//! returns what a dead one held; `state_file` writes their small persistent state off the
//! manager's task.

pub mod adaptive;
pub mod backoff;
pub mod dest_limits;
pub mod drain;
pub mod handover;
pub mod limits;
pub mod manager;
pub mod no_mx;
pub mod notify;
pub mod ramp;
pub mod rate;
pub mod report;
pub mod rollup;
pub mod schedule;
pub mod state;
pub mod state_file;
pub mod supervisor;
pub mod vmta;
pub mod warmup;
pub mod worker;

pub use manager::{QueueHandle, QueueStatus};

/// A queue: the queue name (recipient domain after `queue-to`) and the virtual MTA.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub name: String,
    pub vmta: String,
}

impl std::fmt::Display for QueueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.vmta)
    }
}
