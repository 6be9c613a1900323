//! Daily allowances counted for the whole cluster: the cold-VMTA diversions of warm-up
//! (`max-cold-virtual-mta-msg N/day,…`), so three nodes together divert N a day, not 3N. The
//! counter of a day lives in Redis under a key with the day in it and expires after two days;
//! the ramp's first day (which step of the ramp applies) is kept beside it, set by whichever
//! node diverts first.
//!
//! The queue manager never waits for Redis: it asks for a block of the day's allowance, holds
//! the few messages that need an answer meanwhile, and spends the block locally; Redis hands out
//! at most what is left, so the blocks add up to the allowance. A block a node does not spend is
//! lost for the day (the cluster diverts less, never more). When Redis is away the manager
//! falls back to the node's share (allowance / live nodes).

use std::sync::LazyLock;

use redis::Script;

use super::Cluster;
use super::redis::{CallError, key};

/// How long a day's counter is kept (the day, and one more for clocks that disagree).
const COUNTER_TTL_MS: u64 = 2 * 86_400_000;

/// KEYS: the day's counter, the ramp's first day. ARGV: today, the block wanted, the counter's
/// TTL (ms), then the ramp (allowance per day, the last repeating). Answers {granted, allowance}.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local today = tonumber(ARGV[1])
local first = tonumber(redis.call('GET', KEYS[2]) or '')
if not first then
  first = today
  redis.call('SET', KEYS[2], today)
end
local steps = #ARGV - 3
local step = math.max(0, math.min(today - first, steps - 1))
local allowance = tonumber(ARGV[4 + step])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local give = math.min(tonumber(ARGV[2]), allowance - used)
if give <= 0 then return {0, allowance} end
redis.call('INCRBY', KEYS[1], give)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {give, allowance}
",
    )
});

/// What Redis granted of a day's allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Diversions this node may make now (0: the day's allowance is spent).
    pub granted: u64,
    /// The whole cluster's allowance today.
    pub allowance: u64,
}

impl Cluster {
    /// Reserves up to `want` of today's allowance `name` (a warm VMTA × queue), whose ramp is
    /// `ramp` (per day, from the ramp's first day; at least one entry). A failed call puts the
    /// node in degraded mode.
    pub async fn reserve_allowance(&self, name: &str, today: u64, ramp: &[u64], want: u64) -> Result<Grant, CallError> {
        let mut call = RESERVE.prepare_invoke();
        call.key(key("warmup", &format!("{name}:{today}")))
            .key(key("warmup-first", name))
            .arg(today)
            .arg(want)
            .arg(COUNTER_TTL_MS);
        for n in ramp {
            call.arg(*n);
        }
        match self.inner.redis.script::<(u64, u64)>(&call).await {
            Ok((granted, allowance)) => Ok(Grant { granted, allowance }),
            Err(e) => {
                self.mark_degraded(&e);
                Err(e)
            }
        }
    }
}
