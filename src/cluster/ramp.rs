//! Warm-up schedules counted for the whole cluster (`warmup-schedule`): the step a virtual MTA ×
//! queue is on, the messages its current window has used and the outcomes that decide the next
//! step live in one Redis hash per ramp, so three nodes together send a step's cap, not three
//! times it, and all of them move to the next step (or hold) together.
//!
//! One script does everything in one round trip: it turns the window when the clock has passed
//! it (judging the finished window exactly as a single node would: the step advances only when it
//! carried mail and stayed under the deferral and bounce ceilings), adds the outcomes the node
//! observed since its last call, and hands out a block of what is left of the step's cap. The
//! queue manager spends its block locally and never waits for Redis; a block a node does not spend
//! before the window ends is lost for that window (the cluster sends less, never more).

use std::sync::LazyLock;

use redis::Script;

use super::Cluster;
use super::redis::{CallError, key};

/// A ramp's hash outlives a month without mail, then starts again at its first step.
const RAMP_TTL_MS: u64 = 30 * 86_400_000;

/// KEYS[1]: the ramp's hash. ARGV: now (s), the block wanted, delivered, deferred and bounced since
/// the last call, the deferral and bounce ceilings (%), the hash's TTL (ms), messages spent without
/// a grant, then each step's count and period (s). Answers {granted, step, window, used, delivered, deferred, bounced, judged,
/// prev used, prev delivered, prev deferred, prev bounced} where `judged` is 1 when a finished
/// window has been judged (its counts follow).
static SYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local steps = (#ARGV - 9) / 2
local function count(i) return tonumber(ARGV[10 + 2 * math.min(i, steps - 1)]) end
local function period(i) return math.max(1, tonumber(ARGV[11 + 2 * math.min(i, steps - 1)])) end
local h = redis.call('HMGET', KEYS[1], 'step', 'window', 'used', 'dl', 'df', 'bo', 'judged', 'pu', 'pdl', 'pdf', 'pbo')
local step = tonumber(h[1])
local window, used, dl, df, bo = 0, 0, 0, 0, 0
local judged, pu, pdl, pdf, pbo = 0, 0, 0, 0, 0
if step then
  window, used, dl, df, bo = tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5]), tonumber(h[6])
  judged, pu, pdl, pdf, pbo = tonumber(h[7]), tonumber(h[8]), tonumber(h[9]), tonumber(h[10]), tonumber(h[11])
else
  step = 0
  window = math.floor(now / period(0))
end
step = math.min(step, steps - 1)
if math.floor(now / period(step)) ~= window then
  local attempts = dl + df + bo
  local clean = used > 0 and attempts > 0
    and math.floor(df * 100 / attempts) <= tonumber(ARGV[6])
    and math.floor(bo * 100 / attempts) <= tonumber(ARGV[7])
  judged, pu, pdl, pdf, pbo = 1, used, dl, df, bo
  if clean then step = math.min(step + 1, steps - 1) end
  window = math.floor(now / period(step))
  used, dl, df, bo = 0, 0, 0, 0
end
dl = dl + tonumber(ARGV[3])
df = df + tonumber(ARGV[4])
bo = bo + tonumber(ARGV[5])
used = used + tonumber(ARGV[9])
local give = math.max(0, math.min(tonumber(ARGV[2]), count(step) - used))
used = used + give
redis.call('HSET', KEYS[1], 'step', step, 'window', window, 'used', used, 'dl', dl, 'df', df, 'bo', bo,
  'judged', judged, 'pu', pu, 'pdl', pdl, 'pdf', pdf, 'pbo', pbo)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return {give, step, window, used, dl, df, bo, judged, pu, pdl, pdf, pbo}
",
    )
});

/// What a node sends: the block it wants and the outcomes it saw since its last call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RampReport {
    pub want: u64,
    /// Messages the node sent on its own share while Redis was away: charged to the window.
    pub spent: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
}

/// A ramp's rules, as the script needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RampRules {
    /// Each step's count and period (s); at least one.
    pub steps: Vec<(u64, u64)>,
    pub max_deferral_pct: u64,
    pub max_bounce_pct: u64,
}

/// The counts of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub used: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
}

/// The cluster's ramp after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RampAnswer {
    /// Messages this node may send now in `window`.
    pub granted: u64,
    /// 0-based step.
    pub step: usize,
    pub window: u64,
    /// The whole cluster's counts in the current window.
    pub current: WindowCounts,
    /// The last finished window's counts, once one has been judged.
    pub judged: Option<WindowCounts>,
}

impl Cluster {
    /// Reports outcomes to ramp `name` (a virtual MTA × queue) and reserves up to `report.want`
    /// of its current step's cap. A failed call puts the node in degraded mode.
    pub async fn sync_ramp(
        &self,
        name: &str,
        now: u64,
        rules: &RampRules,
        report: RampReport,
    ) -> Result<RampAnswer, CallError> {
        let mut call = SYNC.prepare_invoke();
        call.key(key("ramp", name))
            .arg(now)
            .arg(report.want)
            .arg(report.delivered)
            .arg(report.deferred)
            .arg(report.bounced)
            .arg(rules.max_deferral_pct)
            .arg(rules.max_bounce_pct)
            .arg(RAMP_TTL_MS)
            .arg(report.spent);
        for (count, period) in &rules.steps {
            call.arg(*count).arg(*period);
        }
        match self.inner.redis.script::<Vec<u64>>(&call).await {
            Ok(v) if v.len() == 12 => Ok(RampAnswer {
                granted: v[0],
                step: usize::try_from(v[1]).unwrap_or(0),
                window: v[2],
                current: WindowCounts { used: v[3], delivered: v[4], deferred: v[5], bounced: v[6] },
                judged: (v[7] == 1).then_some(WindowCounts {
                    used: v[8],
                    delivered: v[9],
                    deferred: v[10],
                    bounced: v[11],
                }),
            }),
            Ok(v) => {
                let e = CallError::Answer(format!("the ramp script gave {} values, not 12", v.len()));
                self.mark_degraded(&e);
                Err(e)
            }
            Err(e) => {
                self.mark_degraded(&e);
                Err(e)
            }
        }
    }
}
