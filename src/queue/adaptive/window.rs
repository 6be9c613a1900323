//! Counts of what happened in a sliding time window, kept as sparse buckets: memory follows the
//! traffic (one bucket per slice of time that saw an event, at most window / slice of them),
//! never the number of events, so a queue sending thousands of messages a second keeps a few
//! hundred small entries.

use std::collections::VecDeque;

/// What a window counts, one slot each.
pub const ATTEMPTS: usize = 0;
pub const ACCEPTED: usize = 1;
pub const DEFERRED: usize = 2;
pub const BOUNCED: usize = 3;
pub const COMPLAINTS: usize = 4;
const SLOTS: usize = 5;

#[derive(Clone, Debug)]
pub struct Window {
    /// Length of one bucket, in seconds.
    slice: f64,
    /// How far back the window reaches, in seconds.
    span: f64,
    /// (bucket number, counts), oldest first.
    buckets: VecDeque<(i64, [u64; SLOTS])>,
    /// The counts of every bucket still in `buckets`.
    totals: [u64; SLOTS],
}

impl Window {
    pub fn new(slice: f64, span: f64) -> Window {
        Window { slice, span: span.max(slice), buckets: VecDeque::new(), totals: [0; SLOTS] }
    }

    fn bucket(&self, now: f64) -> i64 {
        (now / self.slice).floor() as i64
    }

    /// Adds `n` to `slot` at `now` (times never go backwards).
    pub fn add(&mut self, now: f64, slot: usize, n: u64) {
        self.prune(now);
        let b = self.bucket(now);
        match self.buckets.back_mut() {
            Some((last, counts)) if *last == b => counts[slot] += n,
            _ => {
                let mut counts = [0; SLOTS];
                counts[slot] = n;
                self.buckets.push_back((b, counts));
            }
        }
        self.totals[slot] += n;
    }

    /// Drops the buckets that fell out of the window.
    pub fn prune(&mut self, now: f64) {
        let oldest = self.bucket(now - self.span);
        while let Some((b, counts)) = self.buckets.front() {
            if *b > oldest {
                break;
            }
            for (t, c) in self.totals.iter_mut().zip(counts) {
                *t -= c;
            }
            self.buckets.pop_front();
        }
    }

    /// The count of `slot` over the whole window.
    pub fn total(&mut self, now: f64, slot: usize) -> u64 {
        self.prune(now);
        self.totals[slot]
    }

    /// The count of `slot` over the last `secs` seconds (at most the window), to the bucket.
    pub fn recent(&self, now: f64, slot: usize, secs: f64) -> u64 {
        let from = self.bucket(now - secs);
        self.buckets.iter().rev().take_while(|(b, _)| *b > from).map(|(_, c)| c[slot]).sum()
    }

    /// Starts over: a trigger that fired needs a new sample before it fires again.
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.totals = [0; SLOTS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_of_the_window() {
        let mut w = Window::new(1.0, 10.0);
        w.add(0.5, ACCEPTED, 3);
        w.add(5.2, ACCEPTED, 2);
        w.add(5.7, DEFERRED, 1);
        assert_eq!(w.total(9.0, ACCEPTED), 5);
        assert_eq!(w.recent(9.0, ACCEPTED, 5.0), 2);
        assert_eq!(w.total(11.0, ACCEPTED), 2, "the bucket of 0.5 left at 11");
        assert_eq!(w.total(16.0, DEFERRED), 0);
        assert!(w.buckets.is_empty());
    }
}
