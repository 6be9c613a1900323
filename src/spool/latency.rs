//! Latency histograms of the spool: how long a message waits for its durable `250` (from the
//! session's request to the writer's answer back in the session) and how long each
//! `fdatasync` takes. Exported on `/metrics` as `ember_spool_store_seconds` and
//! `ember_spool_sync_seconds`.
//!
//! Hand-written rather than prometheus-client's `Histogram` because the spool knows nothing of
//! Prometheus, and because that type takes a lock per observation; here an observation is two
//! relaxed atomic additions, cheap enough for every message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: 50 us to 1 s, about three per decade. The `250`
/// of a relay on a quiet disk waits 0.3-2 ms; a slow or failing disk shows up in the tail.
pub const BOUNDS: [f64; 14] =
    [0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0];

/// A fixed-bucket histogram of durations, safe to observe from any thread.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket, not cumulative; the last one is above every bound.
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `(upper bound in seconds, observations in that bucket)`, not cumulative; the last bound
    /// is `f64::MAX` (Prometheus's `+Inf`).
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counts as they are now. Observations landing during the read may be counted in a
    /// bucket and not yet in the sum, as with any lock-free histogram; the next scrape agrees.
    pub fn snapshot(&self) -> Snapshot {
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        Snapshot { buckets, count, sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(30)); // <= 50 us
        h.observe(Duration::from_micros(50)); // <= 50 us: bounds are inclusive
        h.observe(Duration::from_micros(700)); // <= 1 ms
        h.observe(Duration::from_secs(3)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), BOUNDS.len() + 1);
        assert_eq!(s.buckets[0], (0.000_05, 2));
        assert_eq!(s.buckets[4], (0.001, 1));
        assert_eq!(s.buckets[BOUNDS.len()], (f64::MAX, 1));
        assert!((s.sum_seconds - 3.00078).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
