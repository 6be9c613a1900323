//! GCRA (the generic cell rate algorithm) for `max-msg-rate`, `max-connect-rate` and the backoff
//! rates: `5000/h` becomes one recipient every 0.72 s, evenly spaced, instead of 5000 at the top
//! of the hour. Times are seconds on a caller-supplied monotonic clock, so tests run in virtual
//! time.

use crate::config::values::Rate;

#[derive(Clone, Debug, PartialEq)]
pub struct Gcra {
    /// Seconds per unit.
    interval: f64,
    /// How many units may go at once after a quiet spell.
    burst: f64,
    /// Theoretical arrival time of the next unit.
    tat: f64,
}

impl Gcra {
    /// A limiter for `rate`, allowing `burst` units back to back (at least 1).
    pub fn new(rate: Rate, burst: u32) -> Gcra {
        Gcra { interval: rate.period as f64 / rate.count.max(1) as f64, burst: f64::from(burst.max(1)), tat: f64::MIN }
    }

    /// A limiter of `per_second` units a second (a learned rate, not a configured one).
    pub fn per_second(per_second: f64, burst: u32) -> Gcra {
        Gcra { interval: 1.0 / per_second.max(f64::MIN_POSITIVE), burst: f64::from(burst.max(1)), tat: f64::MIN }
    }

    /// Changes the rate, keeping what was already taken.
    pub fn set_rate(&mut self, per_second: f64) {
        self.interval = 1.0 / per_second.max(f64::MIN_POSITIVE);
    }

    /// Takes `units` at `now`, or says how many seconds to wait before they fit. A request larger
    /// than the burst is allowed when the limiter is idle (it is paid for afterwards), so one big
    /// message never blocks a queue for ever.
    pub fn take(&mut self, now: f64, units: u32) -> Result<(), f64> {
        self.check(now)?;
        self.tat = self.tat.max(now) + f64::from(units.max(1)) * self.interval;
        Ok(())
    }

    /// Whether a request would be allowed at `now`, without taking it (to check several
    /// limiters before charging any). As in `take`, the size of a request only affects what comes
    /// after it.
    pub fn check(&self, now: f64) -> Result<(), f64> {
        let tolerance = (self.burst - 1.0) * self.interval;
        let tat = self.tat.max(now);
        if tat - now > tolerance { Err(tat - tolerance - now) } else { Ok(()) }
    }

    pub fn interval(&self) -> f64 {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u64, period: u64) -> Rate {
        Rate { count, period }
    }

    #[test]
    fn evenly_spaced_without_burst() {
        // 120/m: one every half second.
        let mut g = Gcra::new(rate(120, 60), 1);
        assert!(g.take(0.0, 1).is_ok());
        assert_eq!(g.take(0.1, 1), Err(0.4));
        assert!(g.take(0.5, 1).is_ok());
        let mut sent = 2;
        let mut t = 0.5;
        while t < 60.0 {
            match g.take(t, 1) {
                Ok(()) => sent += 1,
                Err(wait) => t += wait,
            }
        }
        // Over a minute: the configured 120, give or take the edge.
        assert!((120..=122).contains(&sent), "{sent}");
    }

    #[test]
    fn burst_then_steady() {
        let mut g = Gcra::new(rate(10, 1), 5);
        for _ in 0..5 {
            assert!(g.take(100.0, 1).is_ok());
        }
        assert!(g.take(100.0, 1).is_err());
        assert!(g.take(100.1, 1).is_ok());
    }

    #[test]
    fn several_units_cost_several_intervals() {
        let mut g = Gcra::new(rate(60, 60), 1);
        assert!(g.take(0.0, 10).is_ok());
        assert_eq!(g.take(1.0, 1), Err(9.0));
        assert!(g.take(10.0, 1).is_ok());
    }
}
