//! `ember drain` with real nodes: three Ember nodes on a real redis-server, node-1 holding mail
//! its receiver does not take yet, drained to node-2 and node-3, which deliver it once the
//! receiver listens; and a relay that refuses everything, which leaves the mail on the node.

use std::time::{Duration, Instant};

use crate::support::Ember;
use crate::support::peers::{Receiver, free_port, read_acct};
use crate::support::redis::RedisServer;
use serde_json::{Value, json};

/// A node: listener on 127.0.0.{n+1}; virtual MTA `v` sends from 127.0.0.2, `w` from 127.0.0.3;
/// every node relays for the others and takes X-Virtual-MTA and X-Job from them.
fn node_config(n: usize, cluster: &str, receiver_port: u16) -> String {
    format!(
        "smtp-listener 127.0.0.{}:0\n{cluster}\
         <source 127.0.0.0/8>\n    always-allow-relaying yes\n    default-virtual-mta v\n    process-x-virtual-mta yes\n    process-x-job yes\n</source>\n\
         <spool spool>\n</spool>\n\
         <acct-file acct.csv>\n    records d,b\n    record-fields d *,dlvType,dsnMta,vmta,jobId\n</acct-file>\n\
         <virtual-mta v>\n    smtp-source-host 127.0.0.2 a.ember.test\n</virtual-mta>\n\
         <virtual-mta w>\n    smtp-source-host 127.0.0.3 b.ember.test\n</virtual-mta>\n\
         <domain *>\n    smtp-hosts [127.0.0.1]:{receiver_port}\n    retry-after 1s\n    retry-recipients-after 1s\n</domain>\n",
        n + 1,
    )
}

fn cluster_lines(redis: &RedisServer, n: usize) -> String {
    format!("cluster-redis {}\ncluster-node-name node-{n}\n", redis.url())
}

/// Injects `n` messages, one recipient each (`{prefix}{i}@example.com`); odd ones name virtual
/// MTA `w`, all carry job `spring`.
fn inject(e: &Ember, n: usize, prefix: &str) {
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
for i in range(int(sys.argv[2])):
    vmta = "X-Virtual-MTA: w\r\n" if i % 2 else ""
    s.sendmail("a@example.net", ["%s%d@example.com" % (sys.argv[3], i)],
               "%sX-Job: spring\r\nSubject: %d\r\n\r\nbody %d\r\n" % (vmta, i, i))
s.quit()
"#;
    let out = crate::support::python(script, &[e.smtp().to_string(), n.to_string(), prefix.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The first reply a new SMTP session on `e` gets.
fn greeting(e: &Ember) -> String {
    let script = r#"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
print(s.makefile().readline().strip())
"#;
    let out = crate::support::python(script, &[e.smtp().to_string()]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn api(e: &Ember, path: &str) -> Value {
    crate::support::http::get(e.mgmt.unwrap(), path).data()
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_drained_node_hands_its_queue_to_the_live_peers_which_deliver_it_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here yet: the mail stays queued.
    let port = free_port("127.0.0.1");
    let nodes: Vec<Ember> = (1..=3).map(|n| Ember::start(&node_config(n, &cluster_lines(&redis, n), port))).collect();
    wait_until("three live nodes seen by node-1", Duration::from_secs(30), || {
        api(&nodes[0], "/api/v1/cluster")["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["live"] == true).count() == 3)
    });
    inject(&nodes[0], 20, "r");
    wait_until("20 messages queued on node-1", Duration::from_secs(30), || {
        api(&nodes[0], "/api/v1/drain")["queued_messages"] == 20
    });

    let out = nodes[0].live_cli(&["drain"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("drain done: the spool is empty; handed over 20 messages (20 recipients)"), "{text}");
    // Spread over both peers.
    assert!(text.contains("handed over to node-2") && text.contains("handed over to node-3"), "{text}");

    // node-1: empty, refusing new mail, shown draining to every node.
    let status = api(&nodes[0], "/api/v1/drain");
    assert_eq!((status["done"].clone(), status["queued_messages"].clone()), (json!(true), json!(0)), "{status}");
    let status = api(&nodes[0], "/api/v1/status");
    assert_eq!(status["spool"]["messages"], 0, "{status}");
    assert!(greeting(&nodes[0]).starts_with("421 4.3.2"), "{}", greeting(&nodes[0]));
    wait_until("node-2 sees node-1 draining", Duration::from_secs(10), || {
        api(&nodes[1], "/api/v1/cluster")["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["name"] == "node-1" && n["draining"] == true))
    });
    assert_eq!(api(&nodes[0], "/api/v1/cluster")["draining"], true);

    // Every handed recipient has a d record that names the peer.
    let (_, rows) = read_acct(&nodes[0].path("acct.csv"));
    let handed: Vec<_> = rows.iter().filter(|r| r["type"] == "d" && r["dlvType"] == "handover").collect();
    assert_eq!(handed.len(), 20, "{rows:?}");
    assert!(
        handed.iter().all(|r| r["dsnMta"].starts_with("node-2") || r["dsnMta"].starts_with("node-3")),
        "{handed:?}"
    );

    // The receiver comes: node-2 and node-3 deliver everything, each recipient once, from the
    // virtual MTA it was injected with.
    let rx = Receiver::start_on(&format!("127.0.0.1:{port}"), &json!({}), dir.path(), None);
    wait_until("20 messages at the receiver", Duration::from_secs(60), || rx.events("message").len() >= 20);
    // Once the peers' spools are empty nothing more can arrive: the count below is final.
    for e in &nodes[1..] {
        wait_until("a peer's spool empty", Duration::from_secs(30), || {
            api(e, "/api/v1/status")["spool"]["messages"] == 0
        });
    }
    let messages = rx.events("message");
    let mut rcpts: Vec<String> = messages
        .iter()
        .flat_map(|m| m["rcpts"].as_array().cloned().unwrap_or_default())
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    rcpts.sort();
    let mut unique = rcpts.clone();
    unique.dedup();
    assert_eq!((rcpts.len(), unique.len()), (20, 20), "{rcpts:?}");
    for m in &messages {
        let data = m["data"].as_str().unwrap();
        let i: usize =
            m["rcpts"][0].as_str().unwrap().trim_start_matches('r').split('@').next().unwrap().parse().unwrap();
        let want = if i % 2 == 1 { "127.0.0.3" } else { "127.0.0.2" };
        assert_eq!(m["peer"], want, "message {i} left from the wrong virtual MTA");
        assert!(data.contains(&format!("body {i}")), "{data}");
        assert!(
            !data.contains("X-Virtual-MTA") && !data.contains("X-Job"),
            "control headers reached the receiver: {data}"
        );
    }
    // The peers' own records keep the job.
    let peer_records: Vec<_> =
        nodes[1..].iter().flat_map(|e| read_acct(&e.path("acct.csv")).1).filter(|r| r["type"] == "d").collect();
    assert_eq!(peer_records.len(), 20);
    assert!(peer_records.iter().all(|r| r["jobId"] == "spring"), "{peer_records:?}");
}

#[test]
fn mail_a_relay_refuses_stays_on_the_node_and_a_single_node_needs_a_relay() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");
    let e = Ember::start(&node_config(1, "", port));
    // Without cluster-redis a hand-over needs --to.
    let out = e.live_cli(&["drain"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs cluster peers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(greeting(&e).starts_with("220"), "a refused drain leaves the node taking mail");

    inject(&e, 3, "k");
    wait_until("3 messages queued", Duration::from_secs(30), || api(&e, "/api/v1/drain")["queued_messages"] == 3);
    let relay = Receiver::start("127.0.0.1", &json!({"rcpt": "451 4.3.0 not now"}), dir.path(), None);
    let out = e.live_cli(&["drain", "--to", &relay.addr.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("3 recipients stay queued on this node") && err.contains("451 4.3.0 not now"), "{err}");
    // The relay was asked, said no, and the mail is still here.
    assert!(!relay.events("command").is_empty());
    assert!(relay.events("message").is_empty());
    let status = api(&e, "/api/v1/drain");
    assert_eq!(
        (status["queued_messages"].clone(), status["handed_recipients"].clone()),
        (json!(3), json!(0)),
        "{status}"
    );
    assert_eq!(api(&e, "/api/v1/status")["spool"]["recipients"], 3);
    assert!(greeting(&e).starts_with("421 4.3.2"));
}
