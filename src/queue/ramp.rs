//! The warm-up schedule (beyond PowerMTA): `warmup-schedule 50/day,100/day,200/day,…` caps what
//! one virtual MTA sends to one queue per step, and a step advances only when the step before it
//! carried mail and stayed under `warmup-max-deferral-rate` and `warmup-max-bounce-rate`. When it
//! did not, the ramp holds (the cap stays; the mail does not stop: it overflows to
//! `warmup-overflow-virtual-mta`, or waits for the next step) and says why.
//!
//! A step lasts the period its entry is written with (`/day` = one UTC day, `/h` an hour), and
//! windows are aligned on multiples of that period since the epoch, so `/day` steps turn at
//! midnight UTC like the cold-VMTA counters. Every function takes `now` so the arithmetic is
//! tested in virtual time; the state is saved beside the spool so a restart neither repeats nor
//! skips a step.
//!
//! In cluster mode the ramp is the cluster's (`cluster/ramp.rs`): the step, the window's use and
//! the outcomes live in Redis. This node spends blocks of the step's cap it reserved there
//! (`remaining` is its block), reports its outcomes with each call, and takes the step and the
//! verdict from the answers. The calls are made by the queue manager outside this module
//! ([`Ramps::asks`], [`Ramps::answered`]); nothing here waits. While Redis is away the node sends
//! its share of the cap (cap / live nodes) and reports what it spent when Redis is back.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::state_file::StateFile;
use super::warmup::Shared;
use crate::cluster::ramp::{RampAnswer, RampReport, RampRules, WindowCounts};
use crate::config::Dir;
use crate::config::resolve::QueueSettings;
use crate::config::value::Value;
use crate::config::values::Rate;

/// A queue's warm-up schedule as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    steps: Vec<Rate>,
    max_deferral_pct: u64,
    max_bounce_pct: u64,
    /// Where mail beyond the cap goes; `None`: it waits for the next step.
    pub overflow: Option<String>,
}

impl Plan {
    /// The plan of a queue's effective settings, when it has a usable `warmup-schedule`
    /// (`check-config` refuses empty, zero and unlimited steps; they are skipped here too).
    pub fn from_settings(queue: &QueueSettings) -> Option<Plan> {
        let settings = &queue.settings;
        let steps: Vec<Rate> = match settings.effective(Dir::WarmupSchedule) {
            Some(Value::RateList(list)) => list.iter().flatten().copied().collect(),
            _ => return None,
        };
        if steps.is_empty() {
            return None;
        }
        Some(Plan {
            steps,
            max_deferral_pct: queue.policy.warmup_max_deferral_pct,
            max_bounce_pct: queue.policy.warmup_max_bounce_pct,
            overflow: settings.text(Dir::WarmupOverflowVirtualMta).map(str::to_string),
        })
    }

    fn step(&self, index: usize) -> Rate {
        self.steps[index.min(self.steps.len() - 1)]
    }

    fn rules(&self) -> RampRules {
        RampRules {
            steps: self.steps.iter().map(|r| (r.count, r.period.max(1))).collect(),
            max_deferral_pct: self.max_deferral_pct,
            max_bounce_pct: self.max_bounce_pct,
        }
    }
}

/// One VMTA × queue on its ramp.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct RampState {
    /// Index into the plan's steps.
    step: usize,
    /// The window being counted: `now / period` of the current step.
    window: u64,
    used: u64,
    delivered: u64,
    deferred: u64,
    bounced: u64,
    /// Why the last finished window did not advance the ramp.
    held: Option<String>,
}

impl RampState {
    /// Starts the window `now` falls in, judging the one that ended first.
    fn roll(&mut self, plan: &Plan, now: u64) -> bool {
        let period = plan.step(self.step).period.max(1);
        let window = now / period;
        if window == self.window {
            return false;
        }
        self.held = self.verdict(plan);
        if self.held.is_none() {
            self.step = (self.step + 1).min(plan.steps.len() - 1);
        }
        // The next step may have another period: count in its window.
        self.window = now / plan.step(self.step).period.max(1);
        self.used = 0;
        self.delivered = 0;
        self.deferred = 0;
        self.bounced = 0;
        true
    }

    /// Why the window just finished may not advance the ramp, if it may not.
    fn verdict(&self, plan: &Plan) -> Option<String> {
        let attempts = self.delivered + self.deferred + self.bounced;
        if self.used == 0 || attempts == 0 {
            return Some("the last step carried no mail".into());
        }
        let pct = |n: u64| n * 100 / attempts;
        if pct(self.deferred) > plan.max_deferral_pct {
            return Some(format!(
                "the last step deferred {}% ({} of {attempts} attempts), above warmup-max-deferral-rate {}%",
                pct(self.deferred),
                self.deferred,
                plan.max_deferral_pct
            ));
        }
        if pct(self.bounced) > plan.max_bounce_pct {
            return Some(format!(
                "the last step bounced {}% ({} of {attempts} attempts), above warmup-max-bounce-rate {}%",
                pct(self.bounced),
                self.bounced,
                plan.max_bounce_pct
            ));
        }
        None
    }
}

/// What `show queues` and `explain` say about a ramp.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RampStatus {
    /// 1-based, of `steps`.
    pub step: usize,
    pub steps: usize,
    /// This step's cap and what it is written as.
    pub cap: u64,
    pub per: String,
    pub used: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    /// Unix time this step's window ends (the next step may begin).
    pub window_ends: u64,
    /// Why the ramp did not advance at the last turn.
    pub held: Option<String>,
}

impl RampStatus {
    /// The queue's wait, in the words `explain` uses, when the cap is reached.
    pub fn waiting_reason(&self) -> Option<String> {
        (self.used >= self.cap).then(|| {
            let held = self.held.as_ref().map_or_else(String::new, |h| format!("; ramp paused: {h}"));
            format!(
                "warm-up cap: step {} of {} allows {}, all used; the next window opens at {}{held}",
                self.step,
                self.steps,
                self.per,
                crate::time::acct(self.window_ends)
            )
        })
    }
}

/// Every ramp, keyed `vmta/queue`, persisted as JSON.
#[derive(Debug, Default)]
pub struct Ramps {
    file: Option<StateFile>,
    states: HashMap<String, RampState>,
    dirty: bool,
    /// Cluster mode, as the manager last saw it; `None` on a single node.
    cluster: Option<Shared>,
    /// Cluster mode: each ramp's block and unreported outcomes (not persisted: a restart reserves
    /// again, and a block it held is lost for its window).
    shared: HashMap<String, SharedRamp>,
}

/// A ramp's cluster-side bookkeeping on this node.
#[derive(Debug)]
struct SharedRamp {
    plan: Plan,
    /// Messages this node may still send in `window`.
    block: u64,
    window: u64,
    /// Outcomes, and messages sent on the node's share while Redis was away, not yet reported.
    unreported: RampReport,
    spent_alone: u64,
    /// A call is out.
    asking: bool,
    /// The block ran low: ask for more.
    wants_more: bool,
    /// No call before this time (s): after a refusal or a failure, and between reports.
    next_call: u64,
    /// The last answer.
    answer: Option<RampAnswer>,
}

/// One call the manager makes for a ramp (`Cluster::sync_ramp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RampAsk {
    pub key: String,
    pub rules: RampRules,
    pub report: RampReport,
}

/// How often a ramp with outcomes to report calls Redis at most, when it needs no block (s).
const REPORT_EVERY: u64 = 1;

impl Ramps {
    pub fn load(file: Option<StateFile>) -> Ramps {
        let states = file.as_ref().and_then(|f| f.load("warm-up schedule state")).unwrap_or_default();
        Ramps { file, states, dirty: false, ..Ramps::default() }
    }

    /// Cluster mode as the manager sees it now (`None`: a single node).
    pub fn set_cluster(&mut self, cluster: Option<Shared>) {
        self.cluster = cluster;
    }

    /// Redis answers: the ramp's truth is the cluster's.
    fn clustered(&self) -> bool {
        self.cluster.is_some_and(|c| !c.local)
    }

    fn shared_ramp(&mut self, key: &str, plan: &Plan) -> &mut SharedRamp {
        let s = self.shared.entry(key.to_string()).or_insert_with(|| SharedRamp {
            plan: plan.clone(),
            block: 0,
            window: 0,
            unreported: RampReport::default(),
            spent_alone: 0,
            asking: false,
            wants_more: false,
            next_call: 0,
            answer: None,
        });
        // A reload may change the schedule; cloning it on every call would allocate per message.
        if s.plan != *plan {
            s.plan = plan.clone();
        }
        s
    }

    fn state(&mut self, key: &str, plan: &Plan, now: u64) -> &mut RampState {
        let state = self.states.entry(key.to_string()).or_insert_with(|| {
            // A new ramp starts on its first step, counting from the current window.
            RampState { window: now / plan.step(0).period.max(1), ..RampState::default() }
        });
        if state.roll(plan, now) {
            match &state.held {
                Some(why) => tracing::info!("warm-up {key}: ramp holds at step {}: {why}", state.step + 1),
                None => tracing::info!("warm-up {key}: step {} of {}", state.step + 1, plan.steps.len()),
            }
            self.dirty = true;
        }
        state
    }

    /// How many more messages the current step allows (in cluster mode: this node's block, or
    /// its share of the cap while Redis is away).
    pub fn remaining(&mut self, key: &str, plan: &Plan, now: u64) -> u64 {
        let cluster = self.cluster;
        let clustered = self.clustered();
        let state = self.state(key, plan, now);
        let (step, used) = (state.step, state.used);
        match cluster {
            None => plan.step(step).count.saturating_sub(used),
            Some(c) if !clustered => (plan.step(step).count / c.live.max(1) as u64).saturating_sub(used),
            Some(_) => {
                let s = self.shared_ramp(key, plan);
                let step = s.answer.map_or(0, |a| a.step);
                if s.window != now / plan.step(step).period.max(1) {
                    // The window turned: what was left of the block is gone with it.
                    s.block = 0;
                }
                if s.block <= block_size(plan.step(step).count, cluster) / 2 {
                    s.wants_more = true;
                }
                s.block
            }
        }
    }

    /// Counts one message handed to a connection. Handed to the saver at once, so a crash loses
    /// at most the charges of the one small write in flight (the worker does not wait for it:
    /// its connection is open and holding it back would cost more than the few messages a crash
    /// in that window could let the step send again); never a whole step already spent.
    pub fn charge(&mut self, key: &str, plan: &Plan, now: u64) {
        self.state(key, plan, now).used += 1;
        self.dirty = true;
        self.save();
        match self.cluster {
            Some(_) if self.clustered() => {
                let s = self.shared_ramp(key, plan);
                s.block = s.block.saturating_sub(1);
            }
            Some(_) => self.shared_ramp(key, plan).spent_alone += 1,
            None => {}
        }
    }

    /// Gives back a charge whose message never left (its connection was gone).
    pub fn refund(&mut self, key: &str, plan: &Plan, now: u64) {
        let state = self.state(key, plan, now);
        state.used = state.used.saturating_sub(1);
        self.dirty = true;
        match self.cluster {
            Some(_) if self.clustered() => self.shared_ramp(key, plan).block += 1,
            Some(_) => {
                let s = self.shared_ramp(key, plan);
                s.spent_alone = s.spent_alone.saturating_sub(1);
            }
            None => {}
        }
    }

    /// Counts recipients' outcomes towards the step's deferral and bounce rates.
    pub fn observe(&mut self, key: &str, plan: &Plan, now: u64, delivered: u64, deferred: u64, bounced: u64) {
        let state = self.state(key, plan, now);
        state.delivered += delivered;
        state.deferred += deferred;
        state.bounced += bounced;
        self.dirty = true;
        if self.cluster.is_some() {
            let r = &mut self.shared_ramp(key, plan).unreported;
            r.delivered += delivered;
            r.deferred += deferred;
            r.bounced += bounced;
        }
    }

    /// The calls to make now (cluster mode): a ramp whose block ran low asks for more, one with
    /// outcomes to report reports them (at most every [`REPORT_EVERY`]). Marks them asked.
    pub fn asks(&mut self, now: u64) -> Vec<RampAsk> {
        if !self.clustered() {
            return Vec::new();
        }
        let cluster = self.cluster;
        let mut asks = Vec::new();
        for (key, s) in &mut self.shared {
            let has_news = s.unreported != RampReport::default() || s.spent_alone > 0;
            if s.asking || now < s.next_call || !(s.wants_more || has_news) {
                continue;
            }
            let step = s.answer.map_or(0, |a| a.step);
            let want = if s.wants_more { block_size(s.plan.step(step).count, cluster) } else { 0 };
            let spent = std::mem::take(&mut s.spent_alone);
            let report = RampReport { want, spent, ..std::mem::take(&mut s.unreported) };
            s.asking = true;
            s.wants_more = false;
            asks.push(RampAsk { key: key.clone(), rules: s.plan.rules(), report });
        }
        asks
    }

    /// A call came back: `Ok` with the cluster's ramp, or `Err` with what it carried (reported
    /// again with the next call).
    pub fn answered(&mut self, ask: RampAsk, answer: Option<RampAnswer>, now: u64) {
        let Some(s) = self.shared.get_mut(&ask.key) else { return };
        s.asking = false;
        s.next_call = now + REPORT_EVERY;
        let Some(a) = answer else {
            let r = &mut s.unreported;
            r.delivered += ask.report.delivered;
            r.deferred += ask.report.deferred;
            r.bounced += ask.report.bounced;
            s.spent_alone += ask.report.spent;
            return;
        };
        if a.window != s.window {
            s.block = 0;
        }
        s.window = a.window;
        s.block += a.granted;
        if a.granted > 0 {
            // More may be wanted at once; a refusal waits for the next call time.
            s.next_call = now;
        }
        s.answer = Some(a);
        // The local state follows the cluster's step and window (it is what the node falls back
        // on when Redis is away, and what a restart starts from).
        let plan = s.plan.clone();
        let held = a.judged.and_then(|j| judged_verdict(&plan, j));
        let state = self.state(&ask.key, &plan, now);
        if state.step != a.step || state.window != a.window {
            state.step = a.step;
            state.window = a.window;
            state.used = 0;
            state.delivered = 0;
            state.deferred = 0;
            state.bounced = 0;
        }
        state.held = held;
        self.dirty = true;
    }

    pub fn status(&mut self, key: &str, plan: &Plan, now: u64) -> RampStatus {
        let mut s = self.state(key, plan, now).clone();
        // In cluster mode the counts are the cluster's (as of the last answer).
        if let Some(a) = self.shared.get(key).and_then(|r| r.answer).filter(|_| self.clustered()) {
            s.step = a.step;
            s.window = a.window;
            s.used = a.current.used;
            s.delivered = a.current.delivered;
            s.deferred = a.current.deferred;
            s.bounced = a.current.bounced;
        }
        let rate = plan.step(s.step);
        RampStatus {
            step: s.step + 1,
            steps: plan.steps.len(),
            cap: rate.count,
            per: rate.to_string(),
            used: s.used,
            delivered: s.delivered,
            deferred: s.deferred,
            bounced: s.bounced,
            window_ends: (s.window + 1) * rate.period.max(1),
            held: s.held,
        }
    }

    /// Hands the state to the saver if it changed.
    pub fn save(&mut self) {
        if self.dirty {
            self.dirty = false;
            if let Some(f) = &self.file {
                f.save(&self.states);
            }
        }
    }
}

/// How much of a step's cap a node reserves at once: a quarter of its share, at least one, at
/// most 100 (small enough that blocks left unspent cost little, large enough that a busy node
/// calls Redis rarely).
fn block_size(cap: u64, cluster: Option<Shared>) -> u64 {
    let live = cluster.map_or(1, |c| c.live.max(1)) as u64;
    (cap / live / 4).clamp(1, 100)
}

/// Why a judged window did not advance the ramp (the same verdict a single node gives).
fn judged_verdict(plan: &Plan, counts: WindowCounts) -> Option<String> {
    let window = RampState {
        used: counts.used,
        delivered: counts.delivered,
        deferred: counts.deferred,
        bounced: counts.bounced,
        ..RampState::default()
    };
    window.verdict(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn plan() -> Plan {
        let day = |count| Rate { count, period: DAY };
        Plan { steps: vec![day(2), day(4), day(8)], max_deferral_pct: 10, max_bounce_pct: 5, overflow: None }
    }

    /// Sends `n` messages on day `d` with `deferred` of them deferred and the rest delivered.
    fn send_day(r: &mut Ramps, d: u64, n: u64, deferred: u64) -> u64 {
        let p = plan();
        let now = d * DAY + 3600;
        let mut sent = 0;
        while sent < n && r.remaining("v/q", &p, now) > 0 {
            r.charge("v/q", &p, now);
            sent += 1;
        }
        r.observe("v/q", &p, now, sent - deferred.min(sent), deferred.min(sent), 0);
        sent
    }

    #[test]
    fn advances_a_step_per_clean_day_and_caps_each_day() {
        let mut r = Ramps::default();
        assert_eq!(send_day(&mut r, 100, 10, 0), 2);
        assert_eq!(send_day(&mut r, 101, 10, 0), 4);
        assert_eq!(send_day(&mut r, 102, 10, 0), 8);
        // The last step repeats.
        assert_eq!(send_day(&mut r, 103, 10, 0), 8);
        let s = r.status("v/q", &plan(), 103 * DAY);
        assert_eq!((s.step, s.steps, s.cap, s.used, s.window_ends), (3, 3, 8, 8, 104 * DAY));
    }

    #[test]
    fn a_day_over_the_deferral_ceiling_holds_the_ramp_and_says_why() {
        let mut r = Ramps::default();
        send_day(&mut r, 100, 10, 0);
        // Day two: 4 sent, 1 deferred = 25% > 10%.
        assert_eq!(send_day(&mut r, 101, 10, 1), 4);
        assert_eq!(send_day(&mut r, 102, 10, 0), 4, "held at step 2");
        let s = r.status("v/q", &plan(), 102 * DAY + 5);
        assert_eq!(s.step, 2);
        assert!(s.held.as_deref().unwrap().contains("deferred 25% (1 of 4 attempts)"), "{:?}", s.held);
        assert!(s.waiting_reason().unwrap().contains("ramp paused"));
        // A clean day resumes the ramp.
        assert_eq!(send_day(&mut r, 103, 10, 0), 8);
    }

    #[test]
    fn bounces_over_the_ceiling_hold_too_and_idle_days_do_not_count() {
        let p = plan();
        let mut r = Ramps::default();
        send_day(&mut r, 100, 10, 0);
        let now = 101 * DAY;
        r.charge("v/q", &p, now);
        r.observe("v/q", &p, now, 0, 0, 1);
        assert_eq!(r.status("v/q", &p, 102 * DAY).step, 2);
        assert!(r.status("v/q", &p, 102 * DAY).held.unwrap().contains("warmup-max-bounce-rate"));
        // Days without mail: no advance, however many pass.
        assert_eq!(r.status("v/q", &p, 110 * DAY).step, 2);
        assert_eq!(r.status("v/q", &p, 110 * DAY).held.as_deref(), Some("the last step carried no mail"));
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let saver = crate::queue::state_file::StateSaver::start(|_| {});
        let file = saver.file(dir.path().join("ramps.json"));
        let p = plan();
        let mut r = Ramps::load(Some(file.clone()));
        send_day(&mut r, 100, 1, 0);
        r.save();
        saver.flush();
        let mut r = Ramps::load(Some(file));
        assert_eq!(r.remaining("v/q", &p, 100 * DAY + 7200), 1);
    }

    #[test]
    fn short_periods_turn_on_their_own_boundaries() {
        let p = Plan {
            steps: vec![Rate { count: 3, period: 10 }, Rate { count: 5, period: 10 }],
            max_deferral_pct: 10,
            max_bounce_pct: 5,
            overflow: None,
        };
        let mut r = Ramps::default();
        for _ in 0..3 {
            r.charge("k", &p, 1005);
        }
        r.observe("k", &p, 1005, 3, 0, 0);
        assert_eq!(r.remaining("k", &p, 1009), 0);
        assert_eq!(r.remaining("k", &p, 1010), 5);
    }

    #[test]
    fn in_a_cluster_a_node_spends_blocks_it_was_granted_and_its_share_when_alone() {
        use crate::cluster::ramp::RampAnswer;
        let p = plan();
        let now = 100 * DAY + 60;
        let mut r = Ramps::default();
        r.set_cluster(Some(Shared { local: false, live: 2 }));
        // Nothing granted yet: nothing to send, and a block is asked for.
        assert_eq!(r.remaining("v/q", &p, now), 0);
        let ask = r.asks(now).pop().expect("an ask");
        assert_eq!((ask.report.want, r.asks(now).len()), (1, 0), "one call at a time");
        let window = now / DAY;
        let answer = |granted| RampAnswer { granted, step: 0, window, current: WindowCounts::default(), judged: None };
        r.answered(ask, Some(answer(1)), now);
        assert_eq!(r.remaining("v/q", &p, now), 1);
        r.charge("v/q", &p, now);
        r.observe("v/q", &p, now, 1, 0, 0);
        assert_eq!(r.remaining("v/q", &p, now), 0);
        // The next call reports the delivery.
        let ask = r.asks(now).pop().expect("an ask");
        assert_eq!((ask.report.delivered, ask.report.spent), (1, 0));
        // Redis did not answer: the report is kept for the next call.
        r.answered(ask, None, now);
        assert!(r.asks(now).is_empty(), "not before the next call time");
        assert_eq!(r.asks(now + 1).pop().map(|a| a.report.delivered), Some(1));
        // Redis away: the node's share of the cap (2 / 2 live nodes), minus what it sent.
        r.set_cluster(Some(Shared { local: true, live: 2 }));
        assert_eq!(r.remaining("v/q", &p, now), 0);
        assert_eq!(r.remaining("w/q", &p, now), 1);
        r.charge("w/q", &p, now);
        r.set_cluster(Some(Shared { local: false, live: 2 }));
        r.remaining("w/q", &p, now);
        let ask = r.asks(now).into_iter().find(|a| a.key == "w/q").expect("an ask for w/q");
        assert_eq!(ask.report.spent, 1, "what it sent alone is charged to the window");
    }
}
