//! Membership: every node writes a heartbeat (name, addresses, version, configuration hash, queue
//! totals) that lives [`NODE_TTL`](super::NODE_TTL), and reads everybody's back. The heartbeat is
//! also the health check: the first one that gets through ends degraded mode.
//!
//! A name is held by the instance that wrote it: a second process under the same name while the
//! first is live is refused membership (logged once, shown in its cluster view) and keeps
//! retrying, so it joins when the holder is gone. Its connections still take their leases and
//! rates in Redis, which name the instance, so the limits stay exact.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::redis::key;
use super::{Cluster, NODE_TTL};

/// How often a node says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node gone longer than this leaves the view.
const FORGET_AFTER_MS: u64 = 3_600_000;

/// Writes this node's heartbeat unless another instance holds the name; answers nil, or the
/// holder's heartbeat. KEYS: the node's key, the set of names; ARGV: instance, heartbeat, TTL
/// (ms), name.
static HEARTBEAT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('GET', KEYS[1])
if held then
  local ok, holder = pcall(cjson.decode, held)
  if ok and holder.instance ~= ARGV[1] then return held end
end
local t = redis.call('TIME')
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[4])
return false
",
    )
});

/// What this node says about itself.
#[derive(Clone, Debug, Default)]
pub struct About {
    pub name: String,
    /// The first SMTP listener.
    pub smtp: String,
    /// The management API, when it listens.
    pub mgmt: String,
    /// A hash of the configuration text, to flag nodes configured differently.
    pub config_hash: String,
}

/// Queue totals for the heartbeat.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeTotals {
    pub messages: u64,
    pub recipients: u64,
}

pub type TotalsFn = Arc<dyn Fn() -> NodeTotals + Send + Sync>;

/// One node as the cluster view shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct NodeInfo {
    pub name: String,
    /// Which process holds the name.
    pub instance: String,
    /// SMTP listener address.
    pub smtp: String,
    /// Management API address.
    pub mgmt: String,
    pub version: String,
    pub config_hash: String,
    /// Messages and recipients queued on the node.
    pub messages: u64,
    pub recipients: u64,
    /// Unix time of its last heartbeat.
    pub last_seen: u64,
    /// Heard from within the heartbeat's lifetime.
    #[serde(default)]
    pub live: bool,
    /// Its configuration hash differs from this node's.
    #[serde(default)]
    pub config_differs: bool,
    /// It is being drained (`ember drain`): it takes no new mail and hands its queue over.
    #[serde(default)]
    pub draining: bool,
}

fn heartbeat(cluster: &Cluster, totals: &TotalsFn) -> NodeInfo {
    let about = &cluster.inner.about;
    let t = totals();
    NodeInfo {
        name: about.name.clone(),
        instance: cluster.inner.instance.clone(),
        smtp: about.smtp.clone(),
        mgmt: about.mgmt.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: about.config_hash.clone(),
        messages: t.messages,
        recipients: t.recipients,
        last_seen: crate::time::now_secs(),
        live: true,
        config_differs: false,
        draining: cluster.draining(),
    }
}

/// Heartbeats until the daemon stops.
pub async fn run(cluster: Cluster, totals: TotalsFn) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match beat(&cluster, &totals).await {
            Ok(view) => {
                cluster.mark_healthy();
                let view = if cluster.limits_local() { merged(&cluster.view(), view) } else { view };
                cluster.inner.view.store(Arc::new(view));
            }
            Err(e) => cluster.mark_degraded(&e),
        }
    }
}

/// The view while nodes rejoin after an outage: a Redis that restarted empty lists only the
/// nodes whose heartbeat got through so far, and a share computed from that would be too large;
/// the nodes live before stay counted until the rejoin grace ends.
fn merged(before: &[NodeInfo], mut now: Vec<NodeInfo>) -> Vec<NodeInfo> {
    for old in before.iter().filter(|o| o.live) {
        if !now.iter().any(|n| n.name == old.name && n.live) {
            now.retain(|n| n.name != old.name);
            now.push(old.clone());
        }
    }
    now
}

async fn beat(cluster: &Cluster, totals: &TotalsFn) -> Result<Vec<NodeInfo>, super::redis::CallError> {
    let me = heartbeat(cluster, totals);
    let text = serde_json::to_string(&me).unwrap_or_default();
    let members = key("nodes", "all");
    let mut call = HEARTBEAT_SCRIPT.prepare_invoke();
    call.key(key("node", &me.name))
        .key(&members)
        .arg(&me.instance)
        .arg(text)
        .arg(NODE_TTL.as_millis() as u64)
        .arg(&me.name);
    let holder: Option<String> = cluster.inner.redis.script(&call).await?;
    let refused = holder.is_some();
    let was_member = cluster.inner.member.swap(!refused, Ordering::Relaxed);
    if cluster.inner.refused.swap(refused, Ordering::Relaxed) != refused || (!refused && !was_member) {
        match holder.as_deref().map(serde_json::from_str::<NodeInfo>) {
            Some(Ok(h)) => tracing::error!(
                "cluster: node name {:?} is held by a live node (SMTP {}, management {}); this node is refused membership until it is gone: give it its own cluster-node-name",
                me.name,
                h.smtp,
                h.mgmt
            ),
            Some(Err(_)) => tracing::error!(
                "cluster: node name {:?} is held by a live node; this node is refused membership: give it its own cluster-node-name",
                me.name
            ),
            None => tracing::info!("cluster: node {:?} joined", me.name),
        }
    }
    let now_ms = crate::time::now_millis();
    cluster
        .inner
        .redis
        .command::<i64>(
            redis::cmd("ZREMRANGEBYSCORE").arg(&members).arg("-inf").arg(now_ms.saturating_sub(FORGET_AFTER_MS)),
        )
        .await?;
    let names: Vec<(String, f64)> =
        cluster.inner.redis.command(redis::cmd("ZRANGE").arg(&members).arg(0).arg(-1).arg("WITHSCORES")).await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = names.iter().map(|(n, _)| key("node", n)).collect();
    let beats: Vec<Option<String>> = cluster.inner.redis.command(redis::cmd("MGET").arg(&keys)).await?;
    let mut view: Vec<NodeInfo> = names
        .into_iter()
        .zip(beats)
        .map(|((name, seen_ms), beat)| {
            match beat.as_deref().map(serde_json::from_str::<NodeInfo>) {
                Some(Ok(info)) => NodeInfo { live: true, config_differs: info.config_hash != me.config_hash, ..info },
                // Gone (its heartbeat expired) or unreadable: listed with when it was last seen.
                _ => NodeInfo { name, last_seen: (seen_ms / 1000.0) as u64, ..NodeInfo::default() },
            }
        })
        .collect();
    view.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(view)
}

/// A hash of what nodes sharing identities should agree on: the domain, virtual MTA and pool
/// blocks and the top-level queue defaults, as values (not file names or line numbers).
/// Listeners, spool directories and the node's own name may differ from node to node.
pub fn config_hash(config: &crate::config::Config) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let mut settings = |head: &str, s: &crate::config::settings::Settings| {
        let _ = writeln!(text, "<{head}>");
        for (dir, entries) in s.iter() {
            for e in entries {
                let _ = writeln!(text, "{} {}", dir.def().name, e.value);
            }
        }
    };
    settings("defaults", &config.queue_defaults);
    for d in &config.domains {
        settings(&format!("domain {}", d.pattern), &d.settings);
    }
    for v in &config.vmtas {
        settings(&format!("virtual-mta {}", v.name), &v.settings);
        for d in &v.domains {
            settings(&format!("virtual-mta {} domain {}", v.name, d.pattern), &d.settings);
        }
    }
    for p in &config.pools {
        settings(&format!("virtual-mta-pool {}", p.name), &p.settings);
        for d in &p.domains {
            settings(&format!("virtual-mta-pool {} domain {}", p.name, d.pattern), &d.settings);
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, live: bool) -> NodeInfo {
        NodeInfo { name: name.into(), live, ..NodeInfo::default() }
    }

    #[test]
    fn a_rejoining_view_keeps_the_nodes_live_before_until_they_beat_again() {
        let before = [node("a", true), node("b", true), node("c", false)];
        let view = merged(&before, vec![node("a", true)]);
        let live: Vec<&str> = view.iter().filter(|n| n.live).map(|n| n.name.as_str()).collect();
        assert_eq!(live, ["a", "b"]);
        // A node gone before the outage is not brought back.
        assert!(!view.iter().any(|n| n.name == "c" && n.live));
    }
}
