//! Degraded mode: what a node may use of each shared limit while Redis is away. Every node
//! takes its share among the live nodes it last saw, so the shares add up to the limit:
//!
//! - a rate is divided evenly (`1200/m` among three nodes is `400/m` each: the interval between
//!   two units is multiplied by the number of nodes);
//! - connections are whole: `max-smtp-out N` among `n` nodes gives each `N / n`, and the first
//!   `N mod n` nodes in name order one more, so the shares add up to exactly `N`; a node whose
//!   share is 0 waits for Redis.
//!
//! A new connection in degraded mode waits until the leases taken in Redis before the outage
//! have expired (`LEASE_TTL` after it began): until then the other nodes' connections may still
//! be open, and only their expiry (or the end of their message, for those over their node's
//! share) hands the capacity over. Connections already open keep going if they fit in their
//! node's share.

use std::collections::HashMap;
use std::sync::Mutex;

use super::limits::{Reservation, SharedRate};
use super::membership::NodeInfo;

/// This node's place among the live nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Live nodes, this one included (at least 1).
    pub live: usize,
    /// This node's position among them in name order.
    pub rank: usize,
}

impl Share {
    /// This node's share among the live nodes of `view` (which need not include it yet).
    pub fn among(view: &[NodeInfo], node: &str) -> Share {
        let mut names: Vec<&str> = view.iter().filter(|n| n.live).map(|n| n.name.as_str()).collect();
        if !names.contains(&node) {
            names.push(node);
        }
        names.sort_unstable();
        names.dedup();
        let rank = names.iter().position(|n| *n == node).unwrap_or(0);
        Share { live: names.len(), rank }
    }

    /// This node's whole share of `cap` connections.
    pub fn connections(self, cap: usize) -> usize {
        let live = self.live.max(1);
        cap / live + usize::from(self.rank < cap % live)
    }

    /// The interval between two units of this node's share of a rate whose interval is `interval`.
    pub fn interval(self, interval: f64) -> f64 {
        interval * self.live.max(1) as f64
    }
}

/// The local limiters of degraded mode.
#[derive(Default)]
pub struct Fallback {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Theoretical arrival time (Unix ms on this node's clock) of each shared rate's next unit.
    tats: HashMap<String, f64>,
    /// Connections this node holds per lease key while degraded.
    leases: HashMap<String, usize>,
    /// No unit before this (Unix ms): slots other nodes reserved in Redis before it went away
    /// may still be ahead.
    not_before: f64,
}

impl Fallback {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain numbers behind: still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The same reservation as the Redis script, on this node's share of each rate.
    pub fn reserve(&self, rates: &[SharedRate], share: Share, now_ms: f64, horizon_ms: f64) -> Reservation {
        let mut state = self.state();
        let at = rates
            .iter()
            .map(|r| state.tats.get(&r.key).copied().unwrap_or(0.0))
            .fold(now_ms.max(state.not_before), f64::max);
        let wait = at - now_ms;
        if wait > horizon_ms {
            return Reservation::Refused { wait_ms: wait };
        }
        for r in rates {
            let tat = state.tats.entry(r.key.clone()).or_insert(0.0);
            *tat = tat.max(at) + share.interval(r.interval_ms) * f64::from(r.units.max(1));
        }
        Reservation::Granted { wait_ms: wait }
    }

    /// A slot Redis granted for `due_ms` (this node's clock): should Redis go away, this node's
    /// share starts after it, so the switch adds no burst.
    pub fn note_granted(&self, rates: &[SharedRate], share: Share, due_ms: f64) {
        let mut state = self.state();
        for r in rates {
            let next = due_ms + share.interval(r.interval_ms) * f64::from(r.units.max(1));
            let tat = state.tats.entry(r.key.clone()).or_insert(0.0);
            *tat = tat.max(next);
        }
    }

    /// Redis went away at `now_ms`: what the others reserved there reaches at most `horizon_ms`
    /// ahead, and nothing of this node's share goes before that has passed.
    pub fn hold_until(&self, ms: f64) {
        let mut state = self.state();
        state.not_before = state.not_before.max(ms);
    }

    /// Takes one of this node's `share` connections of `key`; `false` when they are all in use.
    pub fn take_lease(&self, key: &str, share: usize) -> bool {
        let mut state = self.state();
        let used = state.leases.entry(key.to_string()).or_insert(0);
        if *used >= share {
            return false;
        }
        *used += 1;
        true
    }

    pub fn release_lease(&self, key: &str) {
        let mut state = self.state();
        if let Some(used) = state.leases.get_mut(key) {
            *used = used.saturating_sub(1);
            if *used == 0 {
                state.leases.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, live: bool) -> NodeInfo {
        NodeInfo { name: name.into(), live, ..NodeInfo::default() }
    }

    #[test]
    fn connection_shares_add_up_to_the_cap_and_a_zero_share_waits() {
        let view = [node("a", true), node("b", true), node("c", true), node("gone", false)];
        let shares: Vec<usize> = ["a", "b", "c"].iter().map(|n| Share::among(&view, n).connections(2)).collect();
        assert_eq!(shares, [1, 1, 0], "two connections among three nodes: the third waits");
        for cap in 0..10 {
            let total: usize = ["a", "b", "c"].iter().map(|n| Share::among(&view, n).connections(cap)).sum();
            assert_eq!(total, cap);
        }
        // A node that saw nobody (Redis away since its start) counts only itself.
        assert_eq!(Share::among(&[], "a"), Share { live: 1, rank: 0 });
        assert_eq!(Share::among(&[node("b", true)], "a"), Share { live: 2, rank: 0 });
    }

    #[test]
    fn a_rate_share_spaces_units_by_the_number_of_nodes() {
        let share = Share { live: 3, rank: 2 };
        // 1200/m is one every 50 ms; a third of it one every 150 ms.
        assert_eq!(share.interval(50.0), 150.0);
        let f = Fallback::default();
        let rate = [SharedRate { key: "k".into(), interval_ms: 50.0, units: 1 }];
        assert_eq!(f.reserve(&rate, share, 1000.0, 500.0), Reservation::Granted { wait_ms: 0.0 });
        assert_eq!(f.reserve(&rate, share, 1000.0, 500.0), Reservation::Granted { wait_ms: 150.0 });
        // Beyond the horizon nothing is charged.
        assert_eq!(f.reserve(&rate, share, 1000.0, 100.0), Reservation::Refused { wait_ms: 300.0 });
        assert_eq!(f.reserve(&rate, share, 1300.0, 100.0), Reservation::Granted { wait_ms: 0.0 });
    }

    #[test]
    fn a_slot_granted_by_redis_delays_the_first_fallback_slot() {
        let share = Share { live: 2, rank: 0 };
        let f = Fallback::default();
        let rate = [SharedRate { key: "k".into(), interval_ms: 100.0, units: 1 }];
        f.note_granted(&rate, share, 5000.0);
        assert_eq!(f.reserve(&rate, share, 5000.0, 1000.0), Reservation::Granted { wait_ms: 200.0 });
    }

    #[test]
    fn after_redis_goes_away_nothing_goes_before_the_others_reservations_have_passed() {
        let f = Fallback::default();
        f.hold_until(2000.0);
        let rate = [SharedRate { key: "k".into(), interval_ms: 10.0, units: 1 }];
        assert_eq!(
            f.reserve(&rate, Share { live: 1, rank: 0 }, 1500.0, 1000.0),
            Reservation::Granted { wait_ms: 500.0 }
        );
    }

    #[test]
    fn local_leases_stop_at_the_share() {
        let f = Fallback::default();
        assert!(f.take_lease("q", 1));
        assert!(!f.take_lease("q", 1));
        f.release_lease("q");
        assert!(f.take_lease("q", 1));
        assert!(!f.take_lease("other", 0), "a zero share waits");
    }
}
