//! IP warm-up by cold-VMTA diversion (docs/operations.md, "Shaping"): the first N messages a day
//! per destination queue of a warm virtual MTA go to its `cold-virtual-mta` (round robin among
//! several), N from `max-cold-virtual-mta-msg N/day[,N/day…]` — one value per day of the ramp, the
//! last repeating. Counters are kept in a small JSON file beside the spool (written by
//! `state_file`), so a restart does not start the day over; they reset at midnight (UTC).
//!
//! In cluster mode the allowance is the cluster's (`cluster::allowance`): a node diverts from
//! blocks it reserved in Redis ([`Decision::Wait`] asks for one), and while Redis is away from
//! its share of the day's allowance among the live nodes, counted by its own counter.

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
    /// Cluster mode: the blocks of the cluster's allowance reserved by this node, per counter.
    blocks: HashMap<String, Block>,
}

/// A block of a day's cluster-wide allowance.
#[derive(Clone, Debug, Default)]
struct Block {
    day: u64,
    left: u64,
    /// Redis said the day's allowance is spent.
    spent: bool,
    /// A reservation is on its way.
    asking: bool,
}

/// How the cluster stands, for a diversion decision.
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    /// Redis is away (or just back): decide on this node's share.
    pub local: bool,
    /// Live nodes, this one included.
    pub live: usize,
}

/// A reservation the manager must make (`Cluster::reserve_allowance`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub counter: String,
    pub today: u64,
    pub ramp: Vec<u64>,
    pub want: u64,
}

/// Where a fresh message of a warm VMTA goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// To this cold VMTA.
    Divert(String),
    /// It stays with the warm VMTA.
    Keep,
    /// Cluster mode, no block left: hold the message until the reservation of `counter` is
    /// answered; `ask` is the reservation to make (`None`: one is on its way).
    Wait { counter: String, ask: Option<Ask> },
}

impl Warmup {
    /// Loads the counters from `file` (a missing file is a fresh start; a damaged one is logged
    /// and replaced).
    pub fn load(file: Option<StateFile>) -> Warmup {
        let counters = file.as_ref().and_then(|f| f.load("warm-up counters")).unwrap_or_default();
        Warmup { file, counters, next_cold: 0, dirty: false, blocks: HashMap::new() }
    }

    /// Where a message for `queue` selected for `warm` should go: `Some(cold VMTA)` while today's
    /// allowance lasts. `today` is the UTC day number. A single node's decision.
    pub fn divert(
        &mut self,
        config: &Config,
        warm: &str,
        queue: &str,
        settings: &QueueSettings,
        today: u64,
    ) -> Option<String> {
        match self.decide(config, warm, queue, settings, today, None) {
            Decision::Divert(cold) => Some(cold),
            _ => None,
        }
    }

    /// Where a message for `queue` selected for `warm` should go, with the cluster's allowance
    /// when `shared` is given.
    pub fn decide(
        &mut self,
        config: &Config,
        warm: &str,
        queue: &str,
        settings: &QueueSettings,
        today: u64,
        shared: Option<Shared>,
    ) -> Decision {
        match self.allowed(config, warm, queue, settings, today, shared) {
            Ok(cold) => Decision::Divert(cold),
            Err(Some(wait)) => wait,
            Err(None) => Decision::Keep,
        }
    }

    fn allowed(
        &mut self,
        config: &Config,
        warm: &str,
        queue: &str,
        settings: &QueueSettings,
        today: u64,
        shared: Option<Shared>,
    ) -> Result<String, Option<Decision>> {
        let colds: Vec<String> = config
            .vmta(warm)
            .ok_or(None)?
            .settings
            .all(Dir::ColdVirtualMta)
            .iter()
            .filter_map(|e| match &e.value {
                Value::Text(name) if config.vmta(name).is_some() => Some(name.clone()),
                _ => None,
            })
            .collect();
        if colds.is_empty() {
            return Err(None);
        }
        let ramp: Vec<u64> = match settings.settings.effective(Dir::MaxColdVirtualMtaMsg) {
            Some(Value::RateList(l)) => l.iter().map(|r| r.map_or(0, |r| r.count * 86_400 / r.period.max(1))).collect(),
            _ => return Err(None),
        };
        if ramp.iter().all(|n| *n == 0) {
            return Err(None);
        }
        let key = format!("{warm}/{queue}");
        let c = self.counters.entry(key.clone()).or_insert(Counter { first_day: today, day: today, used: 0 });
        if c.day != today {
            c.day = today;
            c.used = 0;
        }
        let step = (today.saturating_sub(c.first_day) as usize).min(ramp.len() - 1);
        match shared {
            None if c.used >= ramp[step] => return Err(None),
            // Redis away: this node's share of the day's allowance.
            Some(s) if s.local && c.used >= ramp[step] / s.live.max(1) as u64 => return Err(None),
            None | Some(Shared { local: true, .. }) => {}
            Some(s) => {
                let block = self.blocks.entry(key.clone()).or_default();
                if block.day != today {
                    *block = Block { day: today, asking: block.asking, ..Block::default() };
                }
                if block.left == 0 {
                    if block.spent {
                        return Err(None);
                    }
                    let ask = (!block.asking).then(|| Ask {
                        counter: key.clone(),
                        today,
                        // Small blocks, so what a node reserves and does not spend stays small.
                        want: (ramp[step] / (4 * s.live.max(1) as u64)).clamp(1, 64),
                        ramp: ramp.clone(),
                    });
                    block.asking = true;
                    return Err(Some(Decision::Wait { counter: key, ask }));
                }
                block.left -= 1;
            }
        }
        c.used += 1;
        self.dirty = true;
        let cold = colds[self.next_cold % colds.len()].clone();
        self.next_cold = self.next_cold.wrapping_add(1);
        Ok(cold)
    }

    /// The answer to a reservation of `counter` for `day`: `granted` more diversions, or (0) the
    /// day's allowance is spent; `None` when Redis did not answer (the next decision falls back
    /// to the node's share, the cluster being degraded).
    pub fn granted(&mut self, counter: &str, day: u64, granted: Option<u64>) {
        let block = self.blocks.entry(counter.to_string()).or_default();
        block.asking = false;
        if block.day != day {
            *block = Block { day, ..Block::default() };
        }
        match granted {
            Some(0) => block.spent = true,
            Some(n) => block.left += n,
            None => {}
        }
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
