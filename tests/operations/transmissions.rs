//! HTTP injection: `POST /api/v1/transmissions` (SparkPost-compatible subset) authorised by a
//! `<transmissions-api>` api-key, governed by `<source {transmissions-api}>`, answered 200 only
//! once the messages are durable (a kill -9 right after the answer loses nothing).

use serde_json::json;

use super::{acct_rows, config, mgmt, until};
use crate::support::Ember;
use crate::support::http::request;
use crate::support::peers::{Sink, free_port};

const TX_KEY: &str = "txkey0123456789abcdef0123456789ab";

fn transmit(e: &Ember, key: Option<&str>, body: &serde_json::Value) -> crate::support::http::Answer {
    let auth = key.map(|k| format!("Authorization: {k}"));
    let mut headers = vec!["Content-Type: application/json"];
    if let Some(a) = &auth {
        headers.push(a);
    }
    request(mgmt(e), "POST", "/api/v1/transmissions", &headers, body.to_string().as_bytes())
}

fn tx_config(extra: &str) -> String {
    config(
        "monitor",
        &format!(
            "<transmissions-api>\n    api-key {TX_KEY}\n</transmissions-api>\n<source {{transmissions-api}}>\n    max-message-size 20K\n    process-x-virtual-mta yes\n</source>\n{extra}"
        ),
    )
}

const MESSAGE: &str = "From: news@example.net\r\nTo: list@example.com\r\nSubject: hello over HTTP\r\n\r\nHi.\r\n";

#[test]
fn transmissions_deliver_with_the_campaign_as_job_and_refuse_what_they_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let e = Ember::start_in(dir, &tx_config(&super::route_all(sink.addr.port())));
    let body = json!({
        "return_path": "bounces@example.net",
        "campaign_id": "spring-sale",
        "recipients": [{"address": "a@tx.example"}, {"address": {"email": "b@tx.example", "name": "B"}}, {"address": "c@tx.example", "return_path": "other@example.net"}],
        "content": {"email_rfc822": MESSAGE},
    });
    // Without a key the monitor-level client may not inject; a wrong key is 401.
    let refused = transmit(&e, None, &body);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.json()["errors"][0]["description"].as_str().unwrap().contains("api-key"));
    assert_eq!(transmit(&e, Some("wrongwrongwrongwrongwrongwrongwrong"), &body).status, 401);
    // SparkPost features Ember does not have are refused by name.
    let mut templated = body.clone();
    templated["substitution_data"] = json!({"x": 1});
    let bad = transmit(&e, Some(TX_KEY), &templated);
    assert_eq!(bad.status, 400);
    assert!(bad.json()["errors"][0]["description"].as_str().unwrap().contains("substitution_data"), "{}", bad.body);
    let mut not_an_address = body.clone();
    not_an_address["recipients"] = json!([{"address": "nobody"}]);
    assert_eq!(transmit(&e, Some(TX_KEY), &not_an_address).status, 400);
    // Over the source's max-message-size: 413.
    let mut big = body.clone();
    big["content"]["email_rfc822"] = json!(format!("{MESSAGE}{}", "x".repeat(30_000)));
    let too_big = transmit(&e, Some(TX_KEY), &big);
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    assert!(too_big.json()["errors"][0]["description"].as_str().unwrap().contains("max-message-size"));

    let ok = transmit(&e, Some(TX_KEY), &body);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["results"]["total_accepted_recipients"], 3);
    assert_eq!(ok.json()["results"]["total_rejected_recipients"], 0);
    let d = acct_rows(&e, "d", 3);
    assert!(d.iter().all(|r| r["jobId"] == "spring-sale"), "{d:?}");
    let senders: std::collections::BTreeSet<_> = d.iter().map(|r| r["orig"].clone()).collect();
    assert_eq!(senders.into_iter().collect::<Vec<_>>(), ["bounces@example.net", "other@example.net"]);
    // One message per return path: a and b share one transaction.
    until("2 messages at the sink", || (sink.messages().len() == 2).then_some(()));
    assert!(sink.messages().iter().all(|m| m.contains("Subject: hello over HTTP")));
}

#[test]
fn a_200_means_durable_a_kill_right_after_loses_nothing() {
    let mut e = Ember::start(&tx_config(""));
    let body = json!({
        "return_path": "bounces@example.net",
        "recipients": (0..20).map(|n| json!({"address": format!("r{n}@held.example")})).collect::<Vec<_>>(),
        "content": {"email_rfc822": MESSAGE},
    });
    assert_eq!(transmit(&e, Some(TX_KEY), &body).status, 200);
    e.kill9();
    let spooled = e.spooled();
    assert_eq!(spooled.len(), 20, "{spooled:?}");
    assert!(spooled.iter().all(|r| r["sender"] == "bounces@example.net"));
}
