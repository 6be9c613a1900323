//! Retry and expiry arithmetic (docs/operations.md, "Delivery"): the queue's `retry-after` list,
//! the per-recipient `retry-recipients-after` floor, `bounce-after` expiry, and the field dialect's
//! `bounce-on-4xx-status`. Pure functions of settings and times (Unix seconds), so they are tested
//! in virtual time.

use std::time::Duration;

use crate::config::policy::QueuePolicy;

/// The timing settings of one queue, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// `retry-after`: the last entry repeats.
    pub retry_after: Vec<Duration>,
    /// `backoff-retry-after`: the list used instead of `retry-after` while the queue is in backoff.
    pub backoff_retry_after: Vec<Duration>,
    pub retry_recipients_after: Duration,
    pub retry_after_dns_error: Duration,
    pub bounce_after: Duration,
    /// `bounce-on-4xx-status yes`: a 4xx after the last step of `retry-after` bounces at once.
    pub bounce_on_4xx: bool,
}

impl Schedule {
    pub fn from_policy(p: &QueuePolicy) -> Schedule {
        Schedule {
            retry_after: p.retry_after.clone(),
            backoff_retry_after: p.backoff_retry_after.clone(),
            retry_recipients_after: p.retry_recipients_after,
            retry_after_dns_error: p.retry_after_dns_error,
            bounce_after: p.bounce_after,
            bounce_on_4xx: p.bounce_on_4xx_status,
        }
    }

    /// How long a queue waits in retry mode after its `step`-th consecutive queue-level failure
    /// (0-based); the last interval repeats. In backoff, `backoff-retry-after` is the list.
    pub fn queue_retry(&self, step: usize, backoff: bool) -> Duration {
        let list = self.list(backoff);
        list[step.min(list.len() - 1)]
    }

    fn list(&self, backoff: bool) -> &[Duration] {
        if backoff { &self.backoff_retry_after } else { &self.retry_after }
    }

    /// Whether a message that arrived at `arrival` (Unix seconds) has expired at `now`.
    pub fn expired(&self, arrival: u64, now: u64) -> bool {
        now >= arrival.saturating_add(self.bounce_after.as_secs())
    }

    /// What happens to a recipient that got a 4xx at `now` on its `attempts`-th attempt (1-based):
    /// retry at the returned time, or bounce (`None`). `backoff`: the queue is in backoff.
    pub fn after_transient(&self, arrival: u64, now: u64, attempts: u32, backoff: bool) -> Option<u64> {
        if self.expired(arrival, now) {
            return None;
        }
        if self.bounce_on_4xx && attempts as usize >= self.retry_after.len() {
            return None;
        }
        let list = self.list(backoff);
        let step = list[(attempts as usize).saturating_sub(1).min(list.len() - 1)];
        let wait = step.max(self.retry_recipients_after).as_secs();
        let next = now.saturating_add(wait);
        // Never schedule past expiry: the last try happens at the deadline, then the bounce.
        Some(next.min(arrival.saturating_add(self.bounce_after.as_secs())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(list: &[u64], floor: u64, bounce_after: u64, bounce_on_4xx: bool) -> Schedule {
        Schedule {
            retry_after: list.iter().map(|s| Duration::from_secs(*s)).collect(),
            backoff_retry_after: vec![Duration::from_secs(3600)],
            retry_recipients_after: Duration::from_secs(floor),
            retry_after_dns_error: Duration::from_secs(60),
            bounce_after: Duration::from_secs(bounce_after),
            bounce_on_4xx,
        }
    }

    #[test]
    fn queue_retries_step_through_the_list_and_repeat_the_last() {
        let s = schedule(&[600, 600, 3600], 0, 86_400, false);
        assert_eq!(s.queue_retry(0, false).as_secs(), 600);
        assert_eq!(s.queue_retry(2, false).as_secs(), 3600);
        assert_eq!(s.queue_retry(9, false).as_secs(), 3600);
    }

    #[test]
    fn recipient_retries_respect_the_floor_and_expiry() {
        // examples/hot.conf's Microsoft queue: retry-after 30m, retry-recipients-after 15m, bounce-after 4d.
        let s = schedule(&[1800], 900, 4 * 86_400, false);
        assert_eq!(s.after_transient(0, 100, 1, false), Some(1900));
        let floor = schedule(&[60], 900, 86_400, false);
        assert_eq!(floor.after_transient(0, 100, 1, false), Some(1000));
        // Near expiry the retry is pulled in to the deadline, and at the deadline it bounces.
        assert_eq!(s.after_transient(0, 4 * 86_400 - 10, 7, false), Some(4 * 86_400));
        assert_eq!(s.after_transient(0, 4 * 86_400, 8, false), None);
    }

    #[test]
    fn bounce_on_4xx_status_bounces_after_the_last_step() {
        let s = schedule(&[60, 120], 0, 86_400, true);
        assert_eq!(s.after_transient(0, 10, 1, false), Some(70));
        assert_eq!(s.after_transient(0, 200, 2, false), None);
        let patient = schedule(&[60, 120], 0, 86_400, false);
        assert_eq!(patient.after_transient(0, 200, 2, false), Some(320));
    }

    #[test]
    fn backoff_uses_its_own_list() {
        let s = schedule(&[60], 0, 86_400, false);
        assert_eq!(s.queue_retry(0, true).as_secs(), 3600);
        assert_eq!(s.after_transient(0, 100, 1, true), Some(3700));
        assert_eq!(s.after_transient(0, 100, 1, false), Some(160));
    }
}
