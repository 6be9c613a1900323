//! Cluster mode with a real redis-server and three real Ember nodes sending one queue through
//! one identity (virtual MTA `v`, source IP 127.0.0.2 on every node: the kernel gives each
//! connection its own port), to the scripted receiver, which logs every connection and message
//! with its time. The limits are checked on what the receiver saw.

use std::time::{Duration, Instant};

use crate::support::Ember;
use crate::support::peers::Receiver;
use crate::support::redis::RedisServer;
use serde_json::{Value, json};

/// One node's configuration: its listener on 127.0.0.{n+1}, the shared identity and queue.
fn node_config(n: usize, redis: &str, rx: &Receiver, domain: &str) -> String {
    format!(
        "smtp-listener 127.0.0.{}:0\ncluster-redis {redis}\ncluster-node-name node-{n}\n\
         <source 127.0.0.0/8>\n    always-allow-relaying yes\n    default-virtual-mta v\n</source>\n\
         <spool spool>\n</spool>\n\
         <virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n</virtual-mta>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 1s\n    retry-recipients-after 1s\n{domain}</domain>\n",
        n + 1,
        rx.addr.port()
    )
}

fn start_nodes(redis: &RedisServer, rx: &Receiver, domain: &str) -> Vec<Ember> {
    (1..=3).map(|n| Ember::start(&node_config(n, &redis.url(), rx, domain))).collect()
}

/// Waits until every node has joined the cluster.
fn wait_joined(nodes: &[Ember]) {
    for e in nodes {
        e.wait_log("cluster: node \"node-");
    }
}

/// Injects `n` numbered messages on each node (prefixes n0-, n1-, …).
fn inject_each(nodes: &[Ember], n: usize) {
    for (i, e) in nodes.iter().enumerate() {
        e.inject_numbered(n, &format!("n{i}-"));
    }
}

/// Polls `explain example.com/v --json` on `e` until `ok` holds.
fn explain_until(e: &Ember, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = e.live_cli(&["explain", "example.com/v", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let q: Value = serde_json::from_slice(&out.stdout).unwrap();
        if ok(&q) {
            return q;
        }
        assert!(Instant::now() < deadline, "{what} never held: {q}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The most connections open at once at the receiver, sampled at each connection's start.
fn peak_connections(rx: &Receiver) -> usize {
    let t = |e: &Value| e["t"].as_f64().unwrap();
    let opened: Vec<(i64, f64)> = rx.events("connect").iter().map(|c| (c["conn"].as_i64().unwrap(), t(c))).collect();
    let closed: std::collections::HashMap<i64, f64> =
        rx.events("close").iter().map(|c| (c["conn"].as_i64().unwrap(), t(c))).collect();
    opened
        .iter()
        .map(|(_, at)| opened.iter().filter(|(c, s)| s <= at && closed.get(c).is_none_or(|end| end > at)).count())
        .max()
        .unwrap_or(0)
}

/// Receiver times of the messages, sorted.
fn times(rx: &Receiver) -> Vec<f64> {
    let mut t: Vec<f64> = rx.events("message").iter().map(|m| m["t"].as_f64().unwrap()).collect();
    t.sort_by(f64::total_cmp);
    t
}

/// Polls the receiver until it has `n` messages.
fn wait_messages(rx: &Receiver, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while rx.events("message").len() < n {
        assert!(Instant::now() < deadline, "the receiver has {} of {n} messages", rx.events("message").len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Messages per second between the `skip`-th message and the `skip`-th from the end.
fn steady_rate(t: &[f64], skip: usize) -> f64 {
    let window = &t[skip..t.len() - skip];
    (window.len() - 1) as f64 / (window[window.len() - 1] - window[0])
}

/// The rcpt addresses the receiver got, sorted.
fn delivered(rx: &Receiver) -> Vec<String> {
    let mut out: Vec<String> = rx
        .events("message")
        .iter()
        .flat_map(|m| m["rcpts"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

#[test]
fn three_nodes_share_max_smtp_out_and_max_msg_rate_exactly() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let nodes = start_nodes(&redis, &rx, "    max-smtp-out 2\n    max-msg-rate 1200/m\n");
    wait_joined(&nodes);
    inject_each(&nodes, 120);
    wait_messages(&rx, 360, Duration::from_secs(120));
    assert_eq!(peak_connections(&rx), 2, "{:?}", rx.events("connect"));
    // One identity: every node connected from the same source IP (each node had only its own
    // 120 messages, so all three sent).
    let peers: std::collections::BTreeSet<String> =
        rx.events("connect").iter().filter_map(|c| c["peer"].as_str().map(str::to_string)).collect();
    assert_eq!(peers.iter().collect::<Vec<_>>(), ["127.0.0.2"]);
    let rate = steady_rate(&times(&rx), 40);
    assert!((19.0..=21.0).contains(&rate), "steady rate {rate:.2}/s, the limit is 20/s");
    assert_eq!(delivered(&rx).len(), 360);
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The highest rate over any `n` consecutive messages.
fn peak_rate(t: &[f64], n: usize) -> f64 {
    t.windows(n).map(|w| (n - 1) as f64 / (w[n - 1] - w[0])).fold(0.0, f64::max)
}

#[test]
fn redis_killed_mid_run_limits_hold_nothing_is_lost_and_full_speed_returns() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let nodes = start_nodes(&redis, &rx, "    max-smtp-out 2\n    max-msg-rate 1200/m\n");
    wait_joined(&nodes);
    for (i, e) in nodes.iter().enumerate() {
        e.inject_numbered(150, &format!("n{i}-"));
    }
    wait_messages(&rx, 60, Duration::from_secs(60));
    redis.kill9();
    for e in &nodes {
        e.wait_log("degraded mode: this node uses its share (1/3)");
    }
    // Degraded, the nodes go on sending on their shares.
    let before = rx.events("message").len();
    wait_messages(&rx, before + 30, Duration::from_secs(60));
    redis.restart();
    for e in &nodes {
        e.wait_log("Redis reachable again");
    }
    let back = now();
    wait_messages(&rx, 450, Duration::from_secs(120));
    assert!(peak_connections(&rx) <= 2, "{:?} {:?}", rx.events("connect"), rx.events("close"));
    let t = times(&rx);
    // Degraded, each node spaces its share on its own, so up to one message per node can meet
    // another's: the rate is measured over windows of 100 messages (5 s at the limit).
    let peak = peak_rate(&t, 100);
    assert!(peak <= 21.0, "100 messages in a row at {peak:.2}/s, the limit is 20/s");
    // Full speed once Redis is back (after a second for the leases to come back).
    let after: Vec<f64> = t.iter().copied().filter(|x| *x > back + 1.0).collect();
    assert!(after.len() > 100, "only {} messages after Redis came back", after.len());
    let rate = steady_rate(&after, 10);
    assert!((19.0..=21.0).contains(&rate), "after Redis came back: {rate:.2}/s, the limit is 20/s");
    // Every accepted message was delivered, once.
    let got = delivered(&rx);
    let mut unique = got.clone();
    unique.dedup();
    assert_eq!((got.len(), unique.len()), (450, 450));
}

/// Polls `GET /api/v1/cluster` until `ok` holds for its data.
fn wait_view(e: &Ember, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = crate::support::http::get(e.mgmt.unwrap(), "/api/v1/cluster").data();
        if ok(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "the cluster view never showed {what}: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_unreachable_redis_at_start_runs_degraded_and_says_so_then_joins() {
    // Nothing listens on this port yet.
    let port = crate::support::peers::free_port("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let url = format!("redis://127.0.0.1:{port}/0");
    let e = Ember::start(&node_config(1, &url, &rx, "    max-smtp-out 2\n"));
    e.wait_log("cluster: Redis unreachable");
    e.wait_log("degraded mode: this node uses its share");
    let view = wait_view(&e, "degraded", |v| v["degraded"] == true);
    assert_eq!(view["enabled"], true);
    let metrics = crate::support::http::get(e.mgmt.unwrap(), "/metrics").body;
    assert!(metrics.contains("ember_cluster_degraded 1"), "{metrics}");
    // Mail is still accepted (and, on this node's share of the limits, delivered).
    e.inject_numbered(3, "d");
    wait_messages(&rx, 3, Duration::from_secs(30));
    // Redis comes: the node joins.
    let redis = RedisServer::start_on(port);
    e.wait_log("cluster: connected to Redis");
    let view = wait_view(&e, "the node as a member", |v| v["degraded"] == false && v["nodes"][0]["live"] == true);
    assert_eq!(view["nodes"][0]["name"], "node-1");
    assert!(redis.cli(&["GET", "ember:node:node-1"]).contains("\"name\":\"node-1\""));
}

#[test]
fn a_second_node_under_a_live_nodes_name_is_refused_membership() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let first = Ember::start(&node_config(1, &redis.url(), &rx, ""));
    first.wait_log("cluster: node \"node-1\" joined");
    let second = Ember::start(&node_config(1, &redis.url(), &rx, "").replace("127.0.0.2:0", "127.0.0.3:0"));
    second.wait_log("cluster: node name \"node-1\" is held by a live node");
    assert!(second.log_contains(&format!("(SMTP {}", first.smtp())), "the log line names the holder");
    wait_view(&second, "refused", |v| v["refused"] == true);
    // The holder stays the one member under that name.
    let view = wait_view(&first, "one node", |v| v["nodes"].as_array().is_some_and(|n| n.len() == 1));
    assert_eq!(view["nodes"][0]["smtp"], first.smtp().to_string());
    assert_eq!(view["refused"], false);
}

#[test]
fn every_node_lists_the_cluster_and_flags_a_node_configured_differently() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let nodes: Vec<Ember> = (1..=3)
        .map(|n| {
            let rate = if n == 3 { "    max-msg-rate 10/s\n" } else { "    max-msg-rate 20/s\n" };
            Ember::start(&node_config(n, &redis.url(), &rx, rate))
        })
        .collect();
    let view = wait_view(&nodes[0], "three live nodes", |v| {
        v["nodes"].as_array().is_some_and(|n| n.iter().filter(|n| n["live"] == true).count() == 3)
    });
    let differs: Vec<(&str, bool)> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["config_differs"] == true))
        .collect();
    assert_eq!(differs, [("node-1", false), ("node-2", false), ("node-3", true)]);
    assert_eq!(view["nodes"][1]["smtp"], nodes[1].smtp().to_string());
    assert_eq!(view["nodes"][2]["mgmt"], nodes[2].mgmt.unwrap().to_string());
    // The same cluster from the command line, on another node (once it has seen all three).
    wait_view(&nodes[1], "three live nodes", |v| {
        v["nodes"].as_array().is_some_and(|n| n.iter().filter(|n| n["live"] == true).count() == 3)
    });
    let out = nodes[1].live_cli(&["show", "cluster"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("node node-2 (member); 3 live node(s)"), "{text}");
    let node3 = text.lines().find(|l| l.starts_with("node-3")).unwrap_or_default();
    assert!(node3.contains("DIFFERS"), "{text}");
    // The document describes the route.
    let doc = crate::support::http::get(nodes[0].mgmt.unwrap(), "/api/v1/openapi.json").json();
    assert!(doc["paths"]["/api/v1/cluster"]["get"].is_object());
}

/// The queue `example.com/v` as `show queues` on `e` describes it, once `ok` holds.
fn wait_queue(e: &Ember, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = e.live_cli(&["show", "queues", "--json"]);
        let queues: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let q = queues.as_array().into_iter().flatten().find(|q| q["queue"] == "example.com/v").cloned();
        if let Some(q) = q.filter(|q| ok(q)) {
            return q;
        }
        assert!(Instant::now() < deadline, "example.com/v never {what}: {queues}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first reply to RCPT TO:<to> on `e`'s listener.
fn rcpt_code(e: &Ember, to: &str) -> u64 {
    let out = e.send_with_script("127.0.0.1", "a@example.net", &[to], "Subject: x\r\n\r\nhi\r\n");
    out["rcpt"][to][0].as_u64().unwrap()
}

#[test]
fn backoff_pause_and_suppression_made_on_one_node_hold_on_the_others() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let script = json!({"rcpt_rules": [{"address": "trigger@example.com", "replies": "421 4.7.0 [RP-001] slow down"}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let nodes = start_nodes(&redis, &rx, "    421 RP-001 *, 1h, 1, 60/m\n");
    wait_joined(&nodes);
    // A reply rule puts the queue in backoff on node-1 ...
    nodes[0].send_with_script("127.0.0.1", "a@example.net", &["trigger@example.com"], "Subject: x\r\n\r\nhi\r\n");
    let here = wait_queue(&nodes[0], "in backoff on node-1", |q| q["mode"] == "backoff");
    // ... and it holds on the others, with its reason and its end.
    for e in &nodes[1..] {
        let there = wait_queue(e, "in backoff", |q| q["mode"] == "backoff");
        assert_eq!(there["mode_reason"], here["mode_reason"]);
        let event = there["mode_events"].as_array().unwrap().last().unwrap()["reason"].as_str().unwrap();
        assert!(event.contains("RP-001") && event.contains("(on node node-1)"), "{there}");
        assert_eq!(there["mode_until"], here["mode_until"]);
    }
    // An operator pauses the queue on node-2: paused everywhere; resumed on node-3: everywhere.
    let out = nodes[1].live_cli(&["pause", "queue", "example.com/v"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for e in [&nodes[0], &nodes[2]] {
        let q = wait_queue(e, "paused", |q| q["paused"] == true);
        assert_eq!(q["mode"], "paused");
    }
    let out = nodes[2].live_cli(&["resume", "queue", "example.com/v"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for e in [&nodes[0], &nodes[1]] {
        wait_queue(e, "resumed", |q| q["paused"] == false);
    }
    // An address suppressed on node-3 is refused at RCPT on node-1 and node-2.
    for e in &nodes[..2] {
        assert_eq!(rcpt_code(e, "gone@example.org"), 250);
    }
    let out = nodes[2].live_cli(&["suppression", "add", "gone@example.org"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for e in &nodes[..2] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while rcpt_code(e, "gone@example.org") != 550 {
            assert!(Instant::now() < deadline, "the suppression never reached {}", e.smtp());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn three_nodes_divert_the_clusters_cold_vmta_allowance_not_three_times_it() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    // Warm VMTA v (127.0.0.2) warms up cold VMTA c (127.0.0.3): 6 diversions a day.
    let nodes: Vec<Ember> = (1..=3)
        .map(|n| {
            let config = node_config(n, &redis.url(), &rx, "    max-cold-virtual-mta-msg 6/day\n").replace(
                "<virtual-mta v>\n",
                "<virtual-mta c>\n    smtp-source-host 127.0.0.3 c.ember.test\n</virtual-mta>\n<virtual-mta v>\n    cold-virtual-mta c\n",
            );
            Ember::start(&config)
        })
        .collect();
    wait_joined(&nodes);
    inject_each(&nodes, 10);
    wait_messages(&rx, 30, Duration::from_secs(60));
    let from = |ip: &str| rx.events("message").iter().filter(|m| m["peer"] == ip).count();
    assert_eq!((from("127.0.0.3"), from("127.0.0.2")), (6, 24), "cold and warm deliveries");
    assert_eq!(redis.cli(&["GET", &format!("ember:warmup:v/example.com:{}", now() as u64 / 86_400)]).trim(), "6");
}

#[test]
fn three_nodes_send_a_warm_up_steps_cap_together_not_three_times_it() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let nodes = start_nodes(&redis, &rx, "    warmup-schedule 6/day,12/day\n");
    wait_joined(&nodes);
    inject_each(&nodes, 10);
    wait_messages(&rx, 6, Duration::from_secs(60));
    // Every node's queue ends up waiting at the step's cap, which the cluster has used up.
    for e in &nodes {
        let q = explain_until(e, "the cluster's warm-up cap", |q| {
            q["waiting_reason"].as_str().is_some_and(|w| w.starts_with("warm-up cap"))
        });
        assert_eq!((q["warmup"]["step"].as_u64(), q["warmup"]["cap"].as_u64()), (Some(1), Some(6)), "{q}");
        assert_eq!(q["warmup"]["used"].as_u64(), Some(6), "the cluster's use, on every node: {q}");
    }
    assert_eq!(rx.events("message").len(), 6, "the step's cap, for the three nodes together");
    assert_eq!(redis.cli(&["HGET", "ember:ramp:example.com/v", "used"]).trim(), "6");
}

#[test]
fn a_clean_window_moves_every_node_to_the_next_warm_up_step_together() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let nodes = start_nodes(&redis, &rx, "    warmup-schedule 3/10s,6/10s\n");
    wait_joined(&nodes);
    // Windows are aligned on multiples of their period: start at the beginning of one, so that
    // step one's window is whole.
    let start = now();
    std::thread::sleep(Duration::from_secs_f64(10.0 - start % 10.0 + 0.2));
    inject_each(&nodes, 10);
    // Step one's window lets the cluster send 3; the next, judged clean, more.
    wait_messages(&rx, 4, Duration::from_secs(60));
    for e in &nodes {
        let q = explain_until(e, "step 2", |q| q["warmup"]["step"].as_u64() == Some(2));
        assert_eq!(q["warmup"]["cap"].as_u64(), Some(6), "{q}");
        assert!(q["warmup"]["held"].is_null(), "{q}");
    }
    // The window judged was step one's: the cluster used its cap of 3 there, all delivered.
    let judged = |field: &str| redis.cli(&["HGET", "ember:ramp:example.com/v", field]).trim().to_string();
    assert_eq!((judged("judged"), judged("pu"), judged("pdl")), ("1".into(), "3".into(), "3".into()));
}
