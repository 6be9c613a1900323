//! The time the queues live by: wall-clock seconds (retry times, backoff ends, warm-up days,
//! which the spool and the operator see) and a monotonic reading (rate limiters, idle timeouts).
//!
//! The daemon runs on the system clock. Unit tests of the queue manager and the queue state run
//! on a manual clock that moves only when the test moves it, so rate windows, retry schedules,
//! backoff cycles and warm-up steps are tested in virtual time instead of by waiting and measuring.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone)]
pub struct Clock(Arc<Source>);

enum Source {
    System {
        started: Instant,
    },
    /// Starts at `epoch_secs`; `millis` is the time since then, set by the test.
    Manual {
        epoch_secs: u64,
        millis: AtomicU64,
    },
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::System { .. } => f.write_str("Clock::System"),
            Source::Manual { .. } => write!(f, "Clock::Manual({})", self.now_secs()),
        }
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Source::System { started: Instant::now() }))
    }

    /// A clock at `epoch_secs` (Unix time) that stands still until `set` moves it.
    pub fn manual(epoch_secs: u64) -> Clock {
        Clock(Arc::new(Source::Manual { epoch_secs, millis: AtomicU64::new(0) }))
    }

    /// Moves a manual clock to `secs` after its start (never backwards: both readings are
    /// monotonic for their users). Does nothing to the system clock.
    pub fn set(&self, secs: f64) {
        if let Source::Manual { millis, .. } = &*self.0 {
            millis.fetch_max((secs * 1000.0).round() as u64, Ordering::SeqCst);
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> u64 {
        match &*self.0 {
            Source::System { .. } => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            Source::Manual { epoch_secs, millis } => epoch_secs + millis.load(Ordering::SeqCst) / 1000,
        }
    }

    /// Seconds since the clock was made, on a monotonic scale.
    pub fn elapsed(&self) -> f64 {
        match &*self.0 {
            Source::System { started } => started.elapsed().as_secs_f64(),
            Source::Manual { millis, .. } => millis.load(Ordering::SeqCst) as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_forward_and_only_when_set() {
        let clock = Clock::manual(1_000_000);
        assert_eq!((clock.now_secs(), clock.elapsed()), (1_000_000, 0.0));
        let copy = clock.clone();
        clock.set(90.5);
        assert_eq!((copy.now_secs(), copy.elapsed()), (1_000_090, 90.5), "clones share the time");
        clock.set(10.0);
        assert_eq!(clock.elapsed(), 90.5, "never backwards");
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let clock = Clock::system();
        clock.set(1e9);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(clock.now_secs().abs_diff(wall) <= 1);
        assert!(clock.elapsed() < 1e6, "set does not move the system clock");
    }
}
