//! Shared limits: connection leases for `max-smtp-out` and GCRA reservations for every rate a
//! message meets, each one script run in Redis (one round trip), with Redis's own clock so that
//! the nodes' clocks do not matter. While the node is degraded the same calls are answered from
//! its share (`fallback.rs`).

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Script;

use super::redis::key;
use super::{Cluster, LEASE_TTL};

/// How far ahead a message may reserve its slot: a connection refused further than this waits
/// without holding anything, so a slot is never kept for a connection that may be gone by then.
pub(super) const HORIZON_MS: f64 = 1000.0;
/// How long a worker waits for a connection lease before it lets the queue manager decide again.
const LEASE_PATIENCE: Duration = Duration::from_secs(60);

/// Reserves one message's slot on every rate it meets: the first instant all of them allow is
/// found, all are charged for it, and the wait until then is the answer (ms, as text so Lua's
/// numbers keep their fraction). Refused, charging nothing, when the wait passes the horizon.
/// KEYS: the rates; ARGV[1]: the horizon (ms); ARGV[2i], ARGV[2i+1]: rate i's interval (ms per
/// unit) and units.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local at = now
local tats = {}
for i, k in ipairs(KEYS) do
  tats[i] = tonumber(redis.call('GET', k) or '0') or 0
  if tats[i] > at then at = tats[i] end
end
local wait = at - now
if wait > tonumber(ARGV[1]) then return {0, string.format('%.3f', wait)} end
for i, k in ipairs(KEYS) do
  local units = math.max(tonumber(ARGV[2 * i + 1]), 1)
  local tat = math.max(tats[i], at) + tonumber(ARGV[2 * i]) * units
  redis.call('SET', k, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
return {1, string.format('%.3f', wait)}
",
    )
});

/// Records slots granted on a node's share while the nodes rejoin (the rejoin grace), so that the
/// GCRAs in Redis go on after every node's last local slot. KEYS: the rates; ARGV[1]: the wait
/// (ms) before the slot; ARGV[1+i]: rate i's interval times units (ms).
static MIRROR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i, k in ipairs(KEYS) do
  local tat = math.max(tonumber(redis.call('GET', k) or '0') or 0, now + tonumber(ARGV[1]) + tonumber(ARGV[1 + i]))
  redis.call('SET', k, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
return 1
",
    )
});

/// Takes or renews a connection lease. KEYS[1]: the leases of one identity and queue (a sorted
/// set, scored by expiry); KEYS[2..]: the connect rates a new connection pays. ARGV: the member
/// (node, instance, worker), the cap, the lease's lifetime (ms), then each connect rate's
/// interval (ms). Answers {1, 0} when held, or {0, ms} with the wait before asking again.
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local wait = ttl
    if first[2] then wait = tonumber(first[2]) - now end
    return {0, string.format('%.3f', wait)}
  end
  local at = now
  for i = 2, #KEYS do
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
    if tat > at then at = tat end
  end
  if at > now then return {0, string.format('%.3f', at - now)} end
  for i = 2, #KEYS do
    local tat = now + tonumber(ARGV[i + 2])
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
  end
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return {1, '0'}
",
    )
});

/// One rate limiter a message (or a connection) is charged on, shared by every node.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedRate {
    /// The Redis key: the identity and queue where the limit is per queue, the holder where it is
    /// a virtual MTA's or a pool's, and the limiter's name with its rate.
    pub key: String,
    /// Milliseconds per unit.
    pub interval_ms: f64,
    pub units: u32,
}

/// The shared rates one message or connection is charged on. Empty outside cluster mode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Demand {
    pub rates: Vec<SharedRate>,
}

impl Demand {
    /// Adds a limiter: `scope` says who shares it (`v1|127.0.0.2|example.com` for a queue's
    /// limits, empty for a virtual MTA's or pool's, whose name says it), `interval` is in seconds
    /// per unit.
    pub fn push(&mut self, scope: &str, name: &str, interval: f64, units: u32) {
        self.rates.push(SharedRate {
            key: key("rate", &format!("{scope}|{name}")),
            interval_ms: interval * 1000.0,
            units,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }
}

/// What a reservation came to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reservation {
    /// The slot is taken; it comes after this wait.
    Granted { wait_ms: f64 },
    /// Too far ahead: nothing was charged; ask again after this wait less the horizon.
    Refused { wait_ms: f64 },
}

/// The scope of a queue's limits for one identity: virtual MTA, source IP, destination queue.
pub fn scope(vmta: &str, source: Option<std::net::IpAddr>, queue: &str) -> String {
    let source = source.map_or_else(|| "any".to_string(), |ip| ip.to_string());
    format!("{vmta}|{source}|{queue}")
}

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn parse_answer((granted, wait): (i64, String)) -> (bool, f64) {
    (granted == 1, wait.parse().unwrap_or(0.0))
}

async fn sleep_ms(ms: f64) {
    // No wait is no sleep: tokio rounds a deadline up to its next millisecond tick, so even a
    // zero-length sleep would cost every granted message up to a millisecond.
    if ms <= 0.0 {
        return;
    }
    tokio::time::sleep(Duration::from_secs_f64(ms.clamp(0.0, 60_000.0) / 1000.0)).await;
}

impl Cluster {
    /// Waits until every shared rate of `demand` allows the message, having charged them all.
    pub async fn permit(&self, demand: &Demand) {
        if demand.is_empty() {
            return;
        }
        loop {
            let reservation = if self.limits_local() {
                let local = self.inner.fallback.reserve(&demand.rates, self.share(), now_ms(), HORIZON_MS);
                if let (Reservation::Granted { wait_ms }, false) = (local, self.degraded())
                    && let Err(e) = self.mirror(demand, wait_ms).await
                {
                    self.mark_degraded(&e);
                }
                local
            } else {
                match self.reserve_in_redis(demand).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.mark_degraded(&e);
                        continue;
                    }
                }
            };
            match reservation {
                Reservation::Granted { wait_ms } => return sleep_ms(wait_ms).await,
                Reservation::Refused { wait_ms } => sleep_ms((wait_ms - HORIZON_MS).max(10.0)).await,
            }
        }
    }

    async fn mirror(&self, demand: &Demand, wait_ms: f64) -> Result<(), super::redis::CallError> {
        let mut call = MIRROR.prepare_invoke();
        call.arg(wait_ms);
        for r in &demand.rates {
            call.key(&r.key).arg(r.interval_ms * f64::from(r.units.max(1)));
        }
        self.inner.redis.script::<i64>(&call).await.map(drop)
    }

    async fn reserve_in_redis(&self, demand: &Demand) -> Result<Reservation, super::redis::CallError> {
        let mut call = RESERVE.prepare_invoke();
        call.arg(HORIZON_MS);
        for r in &demand.rates {
            call.key(&r.key).arg(r.interval_ms).arg(r.units);
        }
        let (granted, wait_ms) = parse_answer(self.inner.redis.script(&call).await?);
        if !granted {
            return Ok(Reservation::Refused { wait_ms });
        }
        self.inner.fallback.note_granted(&demand.rates, self.share(), now_ms() + wait_ms);
        Ok(Reservation::Granted { wait_ms })
    }

    /// Waits for one of the `cap` connections of `scope` (see [`scope`]), paying the connect
    /// rates of `connect`; `None` when none came free within a minute (the queue manager then
    /// decides again whether the connection is still wanted).
    pub async fn lease(&self, scope: &str, cap: usize, connect: &Demand, worker: u64) -> Option<Lease> {
        let state = Arc::new(LeaseState {
            cluster: self.clone(),
            key: key("lease", scope),
            member: format!("{}/{}/{worker}", self.inner.node, self.inner.instance),
            cap,
            lost: AtomicBool::new(false),
            local: AtomicBool::new(false),
        });
        let give_up = tokio::time::Instant::now() + LEASE_PATIENCE;
        while tokio::time::Instant::now() < give_up {
            let poll = 50.0 + f64::from(rand::random::<u8>()) / 2.0;
            if self.limits_local() {
                if self.take_local_lease(&state) {
                    self.permit(connect).await;
                    return Some(Lease::start(state));
                }
                sleep_ms(poll * 4.0).await;
                continue;
            }
            match state.in_redis(&connect.rates).await {
                Ok((true, _)) => return Some(Lease::start(state)),
                Ok((false, wait)) => sleep_ms(wait.min(poll)).await,
                Err(e) => self.mark_degraded(&e),
            }
        }
        None
    }

    /// A lease on this node's share, once the leases of before the outage have run out.
    fn take_local_lease(&self, state: &LeaseState) -> bool {
        let since = self.inner.degraded_since_ms.load(Ordering::Relaxed) as f64;
        if now_ms() < since + LEASE_TTL.as_secs_f64() * 1000.0 {
            return false;
        }
        let share = self.share();
        let taken = self.inner.fallback.take_lease(&state.key, share.connections(state.cap));
        if taken {
            tracing::info!(lease = %state.key, "cluster: connection on this node's share ({} of {} among {} nodes)", share.connections(state.cap), state.cap, share.live);
        }
        state.local.store(taken, Ordering::Relaxed);
        taken
    }
}

struct LeaseState {
    cluster: Cluster,
    key: String,
    member: String,
    cap: usize,
    /// The lease could not be kept (its share is smaller, or Redis came back full): the
    /// connection ends after its current message.
    lost: AtomicBool,
    /// Held on this node's degraded share rather than in Redis.
    local: AtomicBool,
}

impl LeaseState {
    async fn in_redis(&self, connect: &[SharedRate]) -> Result<(bool, f64), super::redis::CallError> {
        let mut call = LEASE.prepare_invoke();
        call.key(&self.key).arg(&self.member).arg(self.cap).arg(LEASE_TTL.as_millis() as u64);
        for r in connect {
            call.key(&r.key).arg(r.interval_ms);
        }
        Ok(parse_answer(self.cluster.inner.redis.script(&call).await?))
    }

    /// Keeps the lease alive: in Redis while it answers, on the node's share while it does not.
    async fn renew(self: Arc<Self>) {
        let cluster = &self.cluster;
        loop {
            tokio::select! {
                () = tokio::time::sleep(LEASE_TTL / 3) => {}
                () = cluster.inner.rejoined.notified() => {}
            }
            if !cluster.degraded() {
                match self.in_redis(&[]).await {
                    // Registered in Redis; the share stays taken while the others may still
                    // count on it (the rejoin grace).
                    Ok((true, _)) if cluster.limits_local() => {}
                    Ok((true, _)) => {
                        if self.local.swap(false, Ordering::Relaxed) {
                            cluster.inner.fallback.release_lease(&self.key);
                        }
                        continue;
                    }
                    Ok((false, _)) => {
                        // Redis came back without this lease and with others filling the cap.
                        self.lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => cluster.mark_degraded(&e),
                }
            }
            if !self.local.load(Ordering::Relaxed) {
                let share = cluster.share().connections(self.cap);
                if cluster.inner.fallback.take_lease(&self.key, share) {
                    self.local.store(true, Ordering::Relaxed);
                } else {
                    tracing::info!(lease = %self.key, "cluster: degraded share of {share} connection(s) is used up: this connection closes after its message");
                    self.lost.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// One connection's share of a shared `max-smtp-out`, renewed while it lives and given back when
/// dropped.
pub struct Lease {
    state: Arc<LeaseState>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn start(state: Arc<LeaseState>) -> Lease {
        let renewer = tokio::spawn(Arc::clone(&state).renew());
        Lease { state, renewer }
    }

    /// The connection must end after its current message.
    pub fn lost(&self) -> bool {
        self.state.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        let state = Arc::clone(&self.state);
        if state.local.swap(false, Ordering::Relaxed) {
            state.cluster.inner.fallback.release_lease(&state.key);
        }
        if state.cluster.degraded() {
            // Unreachable: the lease expires there by itself.
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let release = redis::cmd("ZREM").arg(&state.key).arg(&state.member).to_owned();
            if let Err(e) = state.cluster.inner.redis.command::<i64>(&release).await {
                tracing::debug!(lease = %state.key, "cluster: lease not released ({e}); it expires by itself");
            }
        });
    }
}
