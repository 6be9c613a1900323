//! Events end to end, with real peers: mail relayed by the real `ember` binary to the scripted
//! SMTP receiver; events POSTed to an HTTP receiver (`webhook.py`) and published to a real
//! `nats-server` with JetStream. Every accepted recipient yields a reception and a final event,
//! deferrals carry the reply and the MX, batches verify with the secret; a receiver that fails,
//! answers garbage or is down for 30 s, and a SIGKILL of Ember while events wait, lose nothing;
//! the history API and `ember trace` answer from the log; a damaged log end is cut off and
//! reported at start.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::support::Ember;
use crate::support::event_peers::{NatsServer, Webhook};
use crate::support::peers::Receiver;
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t";

fn relay(receiver: &Receiver, sinks: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0
<source 127.0.0.1>
    always-allow-relaying yes
    process-x-job yes
</source>
<spool spool>
</spool>
{sinks}
<domain example.com>
    smtp-hosts [127.0.0.1]:{}
    retry-after 1s
    retry-recipients-after 1s
</domain>
{}",
        receiver.addr.port(),
        // Everything else (the bounce's DSN to the sender) waits on a port nobody listens on.
        crate::support::HOLD
    )
}

fn http_sink(hook: &Webhook, batch: usize) -> String {
    format!(
        "<event-sink hooks>
    type http
    url http://{}/ember
    secret {SECRET}
    batch-size {batch}
    max-delay 1s
</event-sink>
",
        hook.addr
    )
}

/// Sends one message to `rcpts` over SMTP; returns the message id of the 250 reply.
fn send(e: &Ember, rcpts: &[&str]) -> String {
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
s.ehlo("client.test")
s.mail("sender@example.net")
for r in sys.argv[2].split(","):
    s.rcpt(r)
code, msg = s.data(b"Subject: events\r\nX-Job: spring\r\n\r\nhello\r\n")
assert code == 250, (code, msg)
print(msg.decode())
s.quit()
"#;
    let out = crate::support::python(script, &[e.smtp().to_string(), rcpts.join(",")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply = String::from_utf8_lossy(&out.stdout).to_string();
    reply.split_whitespace().nth(2).unwrap_or_else(|| panic!("no id in {reply:?}")).to_string()
}

fn of<'a>(events: &'a [Value], kind: &str, rcpt: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == kind && e["rcpt"].as_str().is_some_and(|r| r.eq_ignore_ascii_case(rcpt)))
        .collect()
}

fn hmac_hex(body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Every copy of an id carries the same event (ids are unique), and the ids are dense from the
/// first seen to the last: nothing in between went missing.
fn assert_ids_unique_and_complete(events: &[Value]) -> BTreeMap<u64, Value> {
    let mut by_id: BTreeMap<u64, Value> = BTreeMap::new();
    for e in events {
        let id = e["id"].as_u64().expect("every event has an id");
        if let Some(seen) = by_id.get(&id) {
            assert_eq!(seen, e, "two different events share id {id}");
        }
        by_id.insert(id, e.clone());
    }
    let ids: Vec<u64> = by_id.keys().copied().collect();
    if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
        let missing: Vec<u64> = (*first..=*last).filter(|i| !by_id.contains_key(i)).collect();
        assert!(missing.is_empty(), "ids missing between {first} and {last}: {missing:?}");
    }
    by_id
}

/// Every message of JetStream stream `name`: (Nats-Msg-Id header, event).
fn nats_messages(url: &str, name: &str) -> Vec<(String, Value)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(name).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            if state.messages == 0 {
                break;
            }
            let m = stream.get_raw_message(seq).await.unwrap();
            let id = m.headers.get("Nats-Msg-Id").map(|v| v.to_string()).unwrap_or_default();
            out.push((id, serde_json::from_slice(&m.payload).unwrap()));
        }
        out
    })
}

fn create_stream(url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "EMBER".into(),
            subjects: vec!["ember.events".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    });
}

#[test]
fn http_and_nats_sinks_get_every_event_signed_with_unique_ids_and_history_answers() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        "127.0.0.1",
        &json!({"rcpt_rules": [
            {"address": "temp@example.com", "replies": ["451 4.7.1 greylisted, come back later", "250 2.1.5 ok"]},
            {"address": "bad@example.com", "replies": "550 5.1.1 no such user"}
        ]}),
        dir.path(),
        None,
    );
    let hook = Webhook::start(dir.path());
    let nats = NatsServer::start(dir.path());
    create_stream(&nats.url());
    let sinks = format!(
        "{}<event-sink stream>\n    type nats\n    url {}\n    subject ember.events\n    batch-size 50\n    max-delay 1s\n</event-sink>\n",
        http_sink(&hook, 10),
        nats.url()
    );
    let e = Ember::start(&relay(&receiver, &sinks));
    let rcpts = ["ok@example.com", "temp@example.com", "bad@example.com"];
    let id = send(&e, &rcpts);
    let id2 = send(&e, &["ok2@example.com"]);

    let finals = |ev: &[Value]| {
        !of(ev, "delivery", "ok@example.com").is_empty()
            && !of(ev, "delivery", "temp@example.com").is_empty()
            && !of(ev, "bounce", "bad@example.com").is_empty()
            && !of(ev, "delivery", "ok2@example.com").is_empty()
    };
    let events = hook.wait_for(Duration::from_secs(60), "every recipient's final event", finals);

    // Every accepted recipient: a reception with the message id, then its final event.
    for (rcpt, message, last) in [
        ("ok@example.com", &id, "delivery"),
        ("temp@example.com", &id, "delivery"),
        ("bad@example.com", &id, "bounce"),
        ("ok2@example.com", &id2, "delivery"),
    ] {
        let reception = of(&events, "reception", rcpt);
        assert_eq!(reception.len(), 1, "{rcpt}: {events:#?}");
        assert_eq!(reception[0]["message_id"], json!(message), "{rcpt}");
        assert_eq!(reception[0]["job"], "spring");
        assert_eq!(reception[0]["source"], "smtp");
        let final_event = of(&events, last, rcpt)[0];
        assert_eq!(final_event["message_id"], json!(message), "{rcpt}");
        assert!(final_event["id"].as_u64() > reception[0]["id"].as_u64(), "reception comes first");
    }
    // The deferral carries the reply and the MX.
    let deferral = of(&events, "deferral", "temp@example.com");
    assert_eq!(deferral.len(), 1, "{events:#?}");
    assert!(deferral[0]["reply"].as_str().unwrap().contains("451 4.7.1 greylisted"), "{}", deferral[0]);
    assert!(!deferral[0]["mx"].as_str().unwrap_or("").is_empty(), "{}", deferral[0]);
    assert!(of(&events, "bounce", "bad@example.com")[0]["reply"].as_str().unwrap().contains("550 5.1.1"));

    // Every batch verifies with the secret and names its id range.
    let requests = hook.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.headers.get("x-ember-signature"), Some(&hmac_hex(&r.body)), "{r:?}");
        let batch: Vec<Value> = serde_json::from_str(&r.body).unwrap();
        let (first, last) = r.headers["x-ember-batch-id"].split_once('-').expect("FIRST-LAST");
        let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
        assert!(batch.iter().all(|e| (first..=last).contains(&e["id"].as_u64().unwrap())), "{r:?}");
        assert!(batch.len() <= 10, "batch-size 10");
    }
    let by_id = assert_ids_unique_and_complete(&events);

    // NATS JetStream gets the same events, each once, with its id as Nats-Msg-Id.
    let deadline = Instant::now() + Duration::from_secs(30);
    let published = loop {
        let published = nats_messages(&nats.url(), "EMBER");
        let ids: HashSet<u64> = published.iter().map(|(_, e)| e["id"].as_u64().unwrap()).collect();
        if by_id.keys().all(|id| ids.contains(id)) {
            break published;
        }
        assert!(Instant::now() < deadline, "JetStream lacks events: has {ids:?}, want {:?}", by_id.keys());
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut seen = HashSet::new();
    for (msg_id, event) in &published {
        assert_eq!(msg_id, &event["id"].as_u64().unwrap().to_string(), "Nats-Msg-Id is the event id");
        assert!(seen.insert(msg_id.clone()), "event {msg_id} twice in the stream");
        if let Some(same) = by_id.get(&event["id"].as_u64().unwrap()) {
            assert_eq!(same, event);
        }
    }

    // History: the bounced recipient's reception and bounce, from the API and `ember trace`.
    let mgmt = e.mgmt.unwrap();
    let answer = crate::support::http::get(mgmt, "/api/v1/events?rcpt=BAD@example.com").data();
    let kinds: Vec<&str> = answer["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reception", "bounce"], "{answer}");
    let answer = crate::support::http::get(mgmt, &format!("/api/v1/events?message_id={id}")).data();
    assert_eq!(answer["count"], 7, "3 receptions, a deferral, 2 deliveries and a bounce: {answer}");
    let refused = crate::support::http::get(mgmt, "/api/v1/events");
    assert_eq!(refused.status, 400);
    let trace = e.live_cli(&["trace", "temp@example.com"]);
    let text = String::from_utf8_lossy(&trace.stdout);
    assert!(trace.status.success(), "{}", String::from_utf8_lossy(&trace.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("reception") && lines[1].contains("deferral") && lines[2].contains("delivery"), "{text}");
    assert!(lines[1].contains("451 4.7.1 greylisted") && lines[1].contains("(mx "), "{text}");

    // Sink health: both caught up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = crate::support::http::get(mgmt, "/api/v1/status").data();
        let sinks = status["events"]["sinks"].as_array().unwrap().clone();
        assert_eq!(sinks.len(), 2, "{status}");
        if sinks.iter().all(|s| s["lag_events"] == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "sinks never caught up: {sinks:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = crate::support::http::get(mgmt, "/metrics").body;
    assert!(metrics.contains("ember_event_sink_lag_events{sink=\"hooks\",type=\"http\"} 0"), "{metrics}");
}

#[test]
fn a_receiver_that_fails_then_is_down_30s_and_a_sigkill_lose_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let mut hook = Webhook::start(dir.path());
    let mut e = Ember::start(&relay(&receiver, &http_sink(&hook, 5)));
    let mgmt = e.mgmt.unwrap();
    send(&e, &["first@example.com"]);
    hook.wait_for(Duration::from_secs(30), "the first delivery", |ev| {
        !of(ev, "delivery", "first@example.com").is_empty()
    });

    // 5xx, then garbage: retried, and mail keeps flowing meanwhile.
    hook.set_mode("fail");
    send(&e, &["during-fail@example.com"]);
    wait_request(&hook, &json!(500));
    hook.set_mode("garbage");
    wait_request(&hook, &json!("garbage"));
    hook.set_mode("ok");

    // Down for 30 s; Ember is killed while events wait.
    hook.down();
    let down_at = Instant::now();
    let rcpts: Vec<String> = (0..12).map(|i| format!("down{i}@example.com")).collect();
    for r in &rcpts {
        send(&e, &[r.as_str()]);
    }
    // Mail is not held by the sink: the receiver gets every message while the hook is down.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.events("message").len() < 14 {
        assert!(Instant::now() < deadline, "mail was held while the event receiver was down");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = crate::support::http::get(mgmt, "/api/v1/status").data();
        let sink = &status["events"]["sinks"][0];
        // Receptions and deliveries of the 12 are durable (the history answers from the
        // durable log only) and waiting: the kill comes after the log's group commit, not
        // inside it.
        let durable = |r: &String| {
            crate::support::http::get(mgmt, &format!("/api/v1/events?rcpt={r}")).data()["count"].as_u64() == Some(2)
        };
        if sink["lag_events"].as_u64().unwrap_or(0) >= 24 && rcpts.iter().all(durable) {
            assert!(sink["failures"].as_u64().unwrap() >= 2, "{sink}");
            break;
        }
        assert!(Instant::now() < deadline, "events never piled up: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    e.kill9();
    e.launch();
    // Still down after the restart for a while: Ember runs and retries.
    send(&e, &["after-restart@example.com"]);
    let outage = Duration::from_secs(30);
    if let Some(rest) = outage.checked_sub(down_at.elapsed()) {
        std::thread::sleep(rest);
    }
    hook.restart();

    let mut want: Vec<String> = rcpts.clone();
    want.extend([
        "first@example.com".to_string(),
        "during-fail@example.com".into(),
        "after-restart@example.com".into(),
    ]);
    let events = hook.wait_for(Duration::from_secs(90), "every event after the outage", |ev| {
        want.iter().all(|r| !of(ev, "reception", r).is_empty() && !of(ev, "delivery", r).is_empty())
    });
    let by_id = assert_ids_unique_and_complete(&events);
    assert_eq!(by_id.keys().next(), Some(&1), "from the first event on");
    for r in &want {
        assert_eq!(by_id.values().filter(|e| e["rcpt"] == json!(r) && e["type"] == "reception").count(), 1, "{r}");
    }
    assert!(e.stdout.lock().unwrap().iter().any(|l| l.starts_with("event sink hooks (http) from event")));
}

fn wait_request(hook: &Webhook, status: &Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hook.requests().iter().any(|r| &r.status == status) {
        assert!(Instant::now() < deadline, "no request answered {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_damaged_log_end_is_cut_off_and_reported_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let mut e = Ember::start(&relay(&receiver, "event-log yes\n"));
    let mgmt = e.mgmt.unwrap();
    send(&e, &["one@example.com"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::support::http::get(mgmt, "/api/v1/events?rcpt=one@example.com").data()["count"] != 2 {
        assert!(Instant::now() < deadline, "reception and delivery never recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    e.stop();
    let segment = std::fs::read_dir(e.path("spool/events"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "evlog"))
        .expect("a segment");
    let good = std::fs::metadata(&segment).unwrap().len();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0x2a; 37]);
    std::fs::write(&segment, bytes).unwrap();

    e.launch();
    let reported = e.stdout.lock().unwrap().iter().find(|l| l.contains("event log: cut off a damaged end")).cloned();
    assert!(reported.as_deref().is_some_and(|l| l.contains("of 37 bytes")), "{reported:?}");
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), good);
    let before = crate::support::http::get(mgmt_of(&e), "/api/v1/events?rcpt=one@example.com").data();
    assert_eq!(before["count"], 2, "the good events are kept: {before}");
    send(&e, &["two@example.com"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let after = crate::support::http::get(mgmt_of(&e), "/api/v1/events?rcpt=two@example.com").data();
        if after["count"] == 2 {
            let last_before = before["events"][1]["id"].as_u64().unwrap();
            assert_eq!(after["events"][0]["id"].as_u64().unwrap(), last_before + 1, "ids go on after the cut");
            break;
        }
        assert!(Instant::now() < deadline, "no events after the restart: {after}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mgmt_of(e: &Ember) -> std::net::SocketAddr {
    e.mgmt.unwrap()
}
