//! Complaints, from the side that reads feedback-loop reports (`hygiene`, on the ingress side)
//! to the side that shapes mail (adaptive delivery's complaint ratio, in `queue`), without either
//! importing the other: the daemon installs the queue manager's receiver at start. Without one
//! (tools, unit tests) a complaint is only what hygiene already records.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// A complaint about mail to `domain`, sent from `source_ip` (the report's Source-IP: one of
/// ours).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Complaint {
    pub domain: String,
    pub source_ip: Option<IpAddr>,
}

type Tap = Arc<dyn Fn(Complaint) + Send + Sync>;

static TAP: RwLock<Option<Tap>> = RwLock::new(None);

/// Where complaints go from now on (the queue manager's inbox).
pub fn install(tap: impl Fn(Complaint) + Send + Sync + 'static) {
    *TAP.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(tap));
}

/// Passes a complaint on, if anything listens. Never waits: the receiver takes it or drops it.
pub fn complaint(c: Complaint) {
    let tap = TAP.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(tap) = tap {
        tap(c);
    }
}
