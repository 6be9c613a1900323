//! Adaptive delivery in one queue: a controller per local source IP, which connection is whose,
//! the last decisions for `explain`, and what the queue shows and saves.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use super::{Controller, Decision, Learned, Observed, Tuning, rate_text};
use crate::queue::supervisor::WorkerId;

/// Decisions kept per queue for `explain` and the API.
const DECISIONS_KEPT: usize = 10;

/// The name a source IP goes by in saved state and views (`default` when the connection leaves
/// from the system's choice).
pub fn source_name(source: Option<IpAddr>) -> String {
    source.map_or_else(|| "default".to_string(), |ip| ip.to_string())
}

/// A decision, when and for which source IP.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionRecord {
    pub time: u64,
    pub source_ip: String,
    #[serde(flatten)]
    pub decision: Decision,
    /// Unix time until which the new limit holds before it may rise.
    pub until: u64,
}

/// What a queue shows of its learned limits, per source IP.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LearnedStatus {
    pub source_ip: String,
    /// `7.2/s`, or the configured rate while nothing was learned (`learned` false).
    pub rate: String,
    /// Messages a second; `None`: unlimited.
    pub rate_per_second: Option<f64>,
    pub rate_learned: bool,
    pub connections: usize,
    pub connections_open: usize,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AdaptiveStatus {
    pub sources: Vec<LearnedStatus>,
    /// The newest last.
    pub decisions: Vec<DecisionRecord>,
    pub min_rate: String,
    pub max_rate: String,
    pub min_connections: usize,
    pub max_connections: usize,
    pub interval_secs: f64,
}

pub struct QueueAdaptive {
    pub tuning: Tuning,
    sources: HashMap<Option<IpAddr>, Controller>,
    /// Each open connection's source, and whether it was greeted.
    workers: HashMap<WorkerId, (Option<IpAddr>, bool)>,
    decisions: VecDeque<DecisionRecord>,
    /// Learned limits saved before a restart, taken by each source's controller when it starts.
    saved: HashMap<String, Learned>,
}

impl QueueAdaptive {
    pub fn new(tuning: Tuning, saved: HashMap<String, Learned>) -> QueueAdaptive {
        QueueAdaptive { tuning, sources: HashMap::new(), workers: HashMap::new(), decisions: VecDeque::new(), saved }
    }

    /// A reload changed the settings: new bounds, the learned values kept (within them).
    pub fn retune(&mut self, tuning: Tuning, now: f64) {
        let learned: HashMap<Option<IpAddr>, Learned> = self.sources.iter().map(|(ip, c)| (*ip, c.learned())).collect();
        self.tuning = tuning;
        for (ip, c) in &mut self.sources {
            let (opening, up) = c.counts();
            *c = Controller::new(&self.tuning, learned.get(ip).copied(), now);
            c.set_counts(opening, up);
        }
    }

    pub fn controller(&mut self, source: Option<IpAddr>, now: f64) -> &mut Controller {
        let (tuning, saved) = (&self.tuning, &mut self.saved);
        self.sources.entry(source).or_insert_with(|| Controller::new(tuning, saved.remove(&source_name(source)), now))
    }

    pub fn opened(&mut self, worker: WorkerId, source: Option<IpAddr>, now: f64) {
        self.controller(source, now).opened(now);
        self.workers.insert(worker, (source, false));
    }

    /// The controller key for an address a report names: that address if the queue sends from
    /// it, else the system-chosen source's.
    pub fn source_for(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        ip.filter(|ip| self.sources.contains_key(&Some(*ip)))
    }

    /// The source a connection was opened from.
    pub fn source_of(&self, worker: WorkerId) -> Option<Option<IpAddr>> {
        self.workers.get(&worker).map(|(source, _)| *source)
    }

    /// A connection asked for mail: it is up. Returns whether it is now one too many.
    pub fn greeted(&mut self, worker: WorkerId, now: f64) -> bool {
        let Some((source, greeted)) = self.workers.get_mut(&worker) else { return false };
        let source = *source;
        if !*greeted {
            *greeted = true;
            self.controller(source, now).greeted();
        }
        self.controller(source, now).over_cap()
    }

    /// A connection ended; returns its source and whether it had been greeted.
    pub fn closed(&mut self, worker: WorkerId, now: f64) -> Option<(Option<IpAddr>, bool)> {
        let (source, greeted) = self.workers.remove(&worker)?;
        self.controller(source, now).closed(greeted);
        Some((source, greeted))
    }

    /// Connections of `source` that are up.
    pub fn up(&mut self, source: Option<IpAddr>, now: f64) -> usize {
        let c = self.controller(source, now);
        c.open() - c.counts().0
    }

    pub fn observe(&mut self, source: Option<IpAddr>, now: f64, unix: u64, what: &Observed) -> Option<DecisionRecord> {
        let (tuning, saved) = (&self.tuning, &mut self.saved);
        let controller = self
            .sources
            .entry(source)
            .or_insert_with(|| Controller::new(tuning, saved.remove(&source_name(source)), now));
        let decision = controller.observe(tuning, now, what)?;
        let record = DecisionRecord {
            time: unix,
            source_ip: source_name(source),
            until: unix + decision.hold.ceil() as u64,
            decision,
        };
        self.decisions.push_back(record.clone());
        while self.decisions.len() > DECISIONS_KEPT {
            self.decisions.pop_front();
        }
        Some(record)
    }

    /// The learned limits worth saving (those that differ from the configuration).
    pub fn learned(&self) -> HashMap<String, Learned> {
        let mut out = self.saved.clone();
        for (ip, c) in &self.sources {
            let l = c.learned();
            if l.rate.is_some() || l.connections < self.tuning.max_conns {
                out.insert(source_name(*ip), l);
            } else {
                out.remove(&source_name(*ip));
            }
        }
        out
    }

    pub fn status(&self) -> AdaptiveStatus {
        let t = &self.tuning;
        let mut sources: Vec<LearnedStatus> = self
            .sources
            .iter()
            .map(|(ip, c)| LearnedStatus {
                source_ip: source_name(*ip),
                rate: rate_text(c.rate().or(t.max_rate)),
                rate_per_second: c.rate().or(t.max_rate),
                rate_learned: c.rate().is_some(),
                connections: c.connections(),
                connections_open: c.open(),
            })
            .collect();
        sources.sort_by(|a, b| a.source_ip.cmp(&b.source_ip));
        AdaptiveStatus {
            sources,
            decisions: self.decisions.iter().cloned().collect(),
            min_rate: rate_text(Some(t.min_rate)),
            max_rate: rate_text(t.max_rate),
            min_connections: t.min_conns,
            max_connections: t.max_conns,
            interval_secs: t.interval,
        }
    }
}
