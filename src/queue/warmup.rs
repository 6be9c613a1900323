//! IP warm-up by cold-VMTA diversion (docs/operations.md, "Shaping"): the first N messages a day
//! per destination queue of a warm virtual MTA go to its `cold-virtual-mta` (round robin among
//! several), N from `max-cold-virtual-mta-msg N/day[,N/day…]` — one value per day of the ramp, the
//! last repeating. Counters are kept in a small JSON file beside the spool (written by
//! `state_file`), so a restart does not start the day over; they reset at midnight (UTC).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::state_file::StateFile;

use crate::config::Config;
use crate::config::Dir;
use crate::config::resolve::QueueSettings;
use crate::config::value::Value;

/// One warm VMTA × queue.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Counter {
    /// The UTC day (days since 1970) of the first diversion: day 0 of the ramp.
    first_day: u64,
    /// The day `used` counts.
    day: u64,
    used: u64,
}

#[derive(Debug, Default)]
pub struct Warmup {
    file: Option<StateFile>,
    counters: HashMap<String, Counter>,
    next_cold: usize,
    dirty: bool,
}

impl Warmup {
    /// Loads the counters from `file` (a missing file is a fresh start; a damaged one is logged
    /// and replaced).
    pub fn load(file: Option<StateFile>) -> Warmup {
        let counters = file.as_ref().and_then(|f| f.load("warm-up counters")).unwrap_or_default();
        Warmup { file, counters, next_cold: 0, dirty: false }
    }

    /// Where a message for `queue` selected for `warm` should go: `Some(cold VMTA)` while today's
    /// allowance lasts. `today` is the UTC day number.
    pub fn divert(
        &mut self,
        config: &Config,
        warm: &str,
        queue: &str,
        settings: &QueueSettings,
        today: u64,
    ) -> Option<String> {
        let colds: Vec<String> = config
            .vmta(warm)?
            .settings
            .all(Dir::ColdVirtualMta)
            .iter()
            .filter_map(|e| match &e.value {
                Value::Text(name) if config.vmta(name).is_some() => Some(name.clone()),
                _ => None,
            })
            .collect();
        if colds.is_empty() {
            return None;
        }
        let ramp: Vec<u64> = match settings.settings.effective(Dir::MaxColdVirtualMtaMsg) {
            Some(Value::RateList(l)) => l.iter().map(|r| r.map_or(0, |r| r.count * 86_400 / r.period.max(1))).collect(),
            _ => return None,
        };
        if ramp.iter().all(|n| *n == 0) {
            return None;
        }
        let key = format!("{warm}/{queue}");
        let c = self.counters.entry(key).or_insert(Counter { first_day: today, day: today, used: 0 });
        if c.day != today {
            c.day = today;
            c.used = 0;
        }
        let step = (today.saturating_sub(c.first_day) as usize).min(ramp.len() - 1);
        if c.used >= ramp[step] {
            return None;
        }
        c.used += 1;
        self.dirty = true;
        let cold = colds[self.next_cold % colds.len()].clone();
        self.next_cold = self.next_cold.wrapping_add(1);
        Some(cold)
    }

    /// Hands the counters to the saver if they changed; the ticket that reports them durable,
    /// when there is a file to write.
    pub fn save(&mut self) -> Option<u64> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.file.as_ref().map(|f| f.save(&self.counters))
    }

    /// Today's use and allowance per warm VMTA × queue, for the queue view.
    pub fn used(&self, warm: &str, queue: &str) -> Option<u64> {
        self.counters.get(&format!("{warm}/{queue}")).map(|c| c.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileCheck, load_str};
    use crate::queue::state_file::StateSaver;
    use std::path::Path;

    const CONFIG: &str = "\
<virtual-mta cold>
    smtp-source-host 127.0.0.3 cold.example
</virtual-mta>
<virtual-mta warm>
    smtp-source-host 127.0.0.2 warm.example
    cold-virtual-mta cold
    <domain *>
        max-cold-virtual-mta-msg 2/day,3/day
    </domain>
</virtual-mta>
";

    #[test]
    fn ramps_by_day_and_persists() {
        let c = load_str("w.conf", CONFIG, Path::new("."), FileCheck::Warn).config;
        let q = c.queue_settings("example.com", Some("warm")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let saver = StateSaver::start(|_| {});
        let file = saver.file(dir.path().join("warmup.json"));
        let mut w = Warmup::load(Some(file.clone()));
        let day = 20_000;
        let picks: Vec<Option<String>> = (0..3).map(|_| w.divert(&c, "warm", "example.com", &q, day)).collect();
        assert_eq!(picks, [Some("cold".into()), Some("cold".into()), None]);
        assert!(w.save().is_some());
        assert_eq!(w.save(), None, "nothing changed since");
        saver.flush();
        // A restart the same day keeps the count.
        let mut w = Warmup::load(Some(file));
        assert_eq!(w.divert(&c, "warm", "example.com", &q, day), None);
        // The next day: the second step of the ramp; then the last value repeats.
        assert_eq!((0..4).filter(|_| w.divert(&c, "warm", "example.com", &q, day + 1).is_some()).count(), 3);
        assert_eq!((0..4).filter(|_| w.divert(&c, "warm", "example.com", &q, day + 5).is_some()).count(), 3);
        // A VMTA without a cold partner never diverts.
        let cold_q = c.queue_settings("example.com", Some("cold")).unwrap();
        assert_eq!(w.divert(&c, "cold", "example.com", &cold_q, day), None);
    }
}
