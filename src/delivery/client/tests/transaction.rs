//! Sending messages: per-recipient replies, pipelining, DATA and BDAT, splitting, refusals and
//! failures mid-transaction.

use std::time::{Duration, Instant};

use serde_json::json;

use super::support::{Receiver, body, config, message};
use crate::delivery::client::{ClientConfig, ClientError, Connection, Phase};
use crate::message::{Notify, Ret};

fn codes(out: &crate::delivery::TransactionOutcome) -> Vec<u16> {
    out.recipients.iter().map(|r| r.code).collect()
}

/// Three recipients, one unknown: MAIL, the RCPTs and DATA go in one write; the unknown one
/// gets its 550, the others the final 250.
#[tokio::test]
async fn pipelined_send_gives_each_recipient_its_reply() {
    let rx = Receiver::start(
        json!({"rcpt_rules": [{"address": "nobody@x.test", "replies": "550 5.1.1 <nobody@x.test> user unknown"}]}),
    );
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "nobody@x.test", "b@x.test"], &body("hi"))).await.unwrap();
    assert_eq!(codes(&out), [250, 550, 250]);
    assert_eq!(out.recipients[1].to_string(), "550 5.1.1 <nobody@x.test> user unknown");
    assert_eq!(out.recipients[0].to_string(), "250 2.0.0 queued as 1");
    assert_eq!(conn.messages_sent(), 1);
    let m = &rx.messages()[0];
    assert_eq!(m["rcpts"], json!(["a@x.test", "b@x.test"]));
    let commands = rx.events("command");
    let envelope: Vec<_> =
        commands.iter().filter(|c| !c["line"].as_str().unwrap().starts_with("EHLO")).take(5).collect();
    assert_eq!(envelope.last().unwrap()["line"], "DATA");
    assert!(envelope.iter().all(|c| c["batch"] == envelope[0]["batch"]), "one write: {envelope:?}");
}

#[tokio::test]
async fn without_pipelining_commands_go_one_at_a_time() {
    let rx = Receiver::start(json!({"rcpt_rules": [{"address": "nobody@x.test", "replies": "550 5.1.1 unknown"}]}));
    let cfg = ClientConfig { ignore_pipelining: true, ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "nobody@x.test"], &body("hi"))).await.unwrap();
    assert_eq!(codes(&out), [250, 550]);
    let batches: Vec<_> = rx.events("command").iter().map(|c| c["batch"].clone()).collect();
    let mut unique = batches.clone();
    unique.dedup();
    assert_eq!(batches, unique, "every command in its own read");
}

#[tokio::test]
async fn a_refused_mail_gives_every_recipient_its_reply_and_the_session_goes_on() {
    let rx = Receiver::start(json!({"mail": ["550 5.7.1 sender rejected", "250 2.1.0 ok"]}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "b@x.test"], &body("1"))).await.unwrap();
    assert_eq!(codes(&out), [550, 550]);
    assert_eq!(out.recipients[1].to_string(), "550 5.7.1 sender rejected");
    assert!(conn.is_usable());
    let out = conn.send(&message(&["a@x.test"], &body("2"))).await.unwrap();
    assert_eq!(codes(&out), [250]);
    assert!(rx.commands().contains(&"RSET".to_string()));
    assert_eq!(rx.messages().len(), 1);
    assert_eq!(conn.messages_sent(), 2);
}

/// No recipient accepted: no message, RSET; the next attempt (a 451 then a 250, in turn) on the
/// same connection delivers.
#[tokio::test]
async fn no_recipient_accepted_then_accepted_on_the_next_attempt() {
    let rx = Receiver::start(
        json!({"rcpt_rules": [{"regex": "^later@", "replies": ["451 4.3.0 try later", "250 2.1.5 ok"]}]}),
    );
    for pipelining in [true, false] {
        let cfg = ClientConfig { ignore_pipelining: !pipelining, ..config() };
        let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
        let out = conn.send(&message(&["later@x.test"], &body("x"))).await.unwrap();
        let expect = if pipelining { 451 } else { 250 };
        assert_eq!(codes(&out), [expect]);
        conn.quit().await;
    }
    assert_eq!(rx.messages().len(), 1);
    let commands = rx.commands();
    // Pipelined: DATA went with the envelope and was refused (no recipients); then RSET.
    assert!(commands.windows(2).any(|w| w == ["DATA", "RSET"]), "{commands:?}");
}

#[tokio::test]
async fn bdat_when_chunking_is_offered() {
    let ext = json!(["PIPELINING", "8BITMIME", "CHUNKING", "SIZE 1000000"]);
    let rx = Receiver::start(json!({"extensions": ext}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let text = body(".starts with a dot\n..two\n.\nend\n");
    let out = conn.send(&message(&["a@x.test", "b@x.test"], &text)).await.unwrap();
    assert_eq!(codes(&out), [250, 250]);
    let m = &rx.messages()[0];
    assert_eq!((m["via"].as_str(), m["data"].as_str()), (Some("BDAT"), Some(text.as_str())));
    assert_eq!(m["mail_params"], format!("SIZE={}", text.len()));
    assert!(rx.commands().iter().any(|c| *c == format!("BDAT {} LAST", text.len())));

    let cfg = ClientConfig { ignore_chunking: true, ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    conn.send(&message(&["a@x.test"], &text)).await.unwrap();
    let m = &rx.messages()[1];
    assert_eq!((m["via"].as_str(), m["data"].as_str()), (Some("DATA"), Some(text.as_str())));
}

/// Lines starting with "." arrive intact through DATA (stuffed by Ember, unstuffed by the
/// receiver); a body without a final CRLF gets one.
#[tokio::test]
async fn dot_stuffing_keeps_lines_that_start_with_a_dot() {
    let rx = Receiver::start(json!({}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let text = body(".\n..\n.hidden\nmiddle.\n. space");
    conn.send(&message(&["a@x.test"], &text)).await.unwrap();
    let got = rx.messages()[0]["data"].as_str().unwrap().to_string();
    assert_eq!(got, format!("{text}\r\n"));
    // A 1 MB body crosses many write blocks; a dot at every block boundary stays intact.
    let big: String = (0..20_000).map(|i| format!(".line {i} {}\r\n", "x".repeat(40))).collect();
    conn.send(&message(&["a@x.test"], &big)).await.unwrap();
    assert_eq!(rx.messages()[1]["data"].as_str().unwrap(), big);
}

#[tokio::test]
async fn max_rcpt_per_transaction_splits_on_one_connection() {
    let rx = Receiver::start(json!({"rcpt_rules": [{"address": "r3@x.test", "replies": "550 5.1.1 unknown"}]}));
    let cfg = ClientConfig { max_rcpt_per_transaction: 2, ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    let rcpts = ["r1@x.test", "r2@x.test", "r3@x.test", "r4@x.test", "r5@x.test"];
    let out = conn.send(&message(&rcpts, &body("split"))).await.unwrap();
    assert_eq!(codes(&out), [250, 250, 550, 250, 250]);
    let groups: Vec<_> = rx.messages().iter().map(|m| m["rcpts"].clone()).collect();
    assert_eq!(groups, [json!(["r1@x.test", "r2@x.test"]), json!(["r4@x.test"]), json!(["r5@x.test"])]);
    assert!(rx.messages().iter().all(|m| m["conn"] == 1));
    assert_eq!(out.recipients[0].text, "queued as 1");
    assert_eq!(out.recipients[3].text, "queued as 2");
}

#[tokio::test]
async fn dsn_and_8bit_parameters_when_offered_and_not_ignored() {
    let rx = Receiver::start(json!({}));
    let mut msg = message(&["a@x.test"], &body("caf\u{e9}"));
    msg.env_id = Some("job+42".into());
    msg.ret = Some(Ret::Headers);
    msg.eight_bit = true;
    msg.recipients[0].notify = Notify { failure: true, delay: true, ..Notify::default() };
    msg.recipients[0].orcpt = Some("orig=a@x.test".into());
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    conn.send(&msg).await.unwrap();
    let m = &rx.messages()[0];
    let size = msg.body.len();
    assert_eq!(m["mail_params"], format!("SIZE={size} BODY=8BITMIME RET=HDRS ENVID=job+2B42"));
    assert_eq!(m["rcpt_params"], json!(["NOTIFY=FAILURE,DELAY ORCPT=rfc822;orig+3Da@x.test"]));

    let cfg = ClientConfig { ignore_dsn: true, ignore_8bitmime: true, ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    conn.send(&msg).await.unwrap();
    let m = &rx.messages()[1];
    assert_eq!((m["mail_params"].clone(), m["rcpt_params"].clone()), (json!(format!("SIZE={size}")), json!([""])));
}

#[tokio::test]
async fn smtputf8_address_for_a_server_without_smtputf8_is_refused_locally() {
    let rx = Receiver::start(json!({"extensions": ["PIPELINING", "8BITMIME"]}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let mut msg = message(&["j\u{f6}rg@x.test", "a@x.test"], &body("x"));
    msg.smtputf8 = true;
    let out = conn.send(&msg).await.unwrap();
    assert_eq!(codes(&out), [553, 250]);
    assert_eq!(out.recipients[0].enhanced, "5.6.7");
    assert_eq!(rx.messages()[0]["rcpts"], json!(["a@x.test"]));

    let rx = Receiver::start(json!({}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    assert_eq!(codes(&conn.send(&msg).await.unwrap()), [250, 250]);
    assert!(rx.messages()[0]["mail_params"].as_str().unwrap().ends_with(" SMTPUTF8"));
}

#[tokio::test]
async fn an_address_that_would_inject_a_command_is_never_sent() {
    let rx = Receiver::start(json!({}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let out = conn.send(&message(&["a@x.test>\r\nRSET", "b@x.test"], &body("x"))).await.unwrap();
    assert_eq!(codes(&out), [501, 250]);
    assert!(!rx.commands().iter().any(|c| c == "RSET"));
}

/// The receiver hangs after the body: the data termination timeout, then an error (the caller
/// defers; a delivery here would be the at-least-once duplicate).
#[tokio::test]
async fn a_hang_after_the_body_times_out() {
    let rx = Receiver::start(json!({"misbehave": {"data_end": "hang"}}));
    let cfg = ClientConfig { data_termination_timeout: Duration::from_millis(300), ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    let start = Instant::now();
    let err = conn.send(&message(&["a@x.test"], &body("x"))).await.err().unwrap();
    assert!(matches!(err, ClientError::Timeout { phase: Phase::DataTermination }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4));
    assert!(!conn.is_usable());
    assert!(conn.send(&message(&["a@x.test"], &body("x"))).await.is_err());
}

#[tokio::test]
async fn a_hang_at_rcpt_times_out_with_the_command_timeout() {
    let rx = Receiver::start(json!({"misbehave": {"rcpt": "hang"}}));
    let cfg = ClientConfig { command_timeout: Duration::from_millis(300), ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    let err = conn.send(&message(&["a@x.test"], &body("x"))).await.err().unwrap();
    assert!(matches!(err, ClientError::Timeout { phase: Phase::Rcpt }), "{err}");
}

#[tokio::test]
async fn a_drop_mid_transaction_is_an_error() {
    let rx = Receiver::start(json!({"misbehave": {"data_end": "drop"}}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let err = conn.send(&message(&["a@x.test", "b@x.test"], &body("x"))).await.err().unwrap();
    assert!(matches!(err, ClientError::Disconnected { phase: Phase::DataTermination, .. }), "{err}");
    assert_eq!(err.reply().code, 421);
}

/// Split into two transactions; the second one's connection drops. The first transaction's
/// recipients keep their 250 (no duplicate on retry); the rest get a synthetic 4xx.
#[tokio::test]
async fn a_drop_in_a_later_transaction_keeps_earlier_replies() {
    let rx = Receiver::start(json!({"misbehave": {"data_end": [null, "drop"]}}));
    let cfg = ClientConfig { max_rcpt_per_transaction: 1, ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "b@x.test", "c@x.test"], &body("x"))).await.unwrap();
    assert_eq!(codes(&out), [250, 421, 421]);
    assert_eq!(out.recipients[1].enhanced, "4.4.2");
    assert!(!conn.is_usable());
}

/// A 421 to a RCPT in a pipelined group: the server is leaving, the rest get that reply, no
/// RSET is tried and the connection is not reused.
#[tokio::test]
async fn a_421_mid_envelope_closes_the_session() {
    let rx = Receiver::start(json!({"rcpt_rules": [{"address": "b@x.test", "replies": "421 4.7.0 too many errors"}]}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "b@x.test", "c@x.test"], &body("x"))).await.unwrap();
    // a was accepted, but no body goes to a server that said 421; c's reply was never read.
    assert_eq!(codes(&out), [421, 421, 421]);
    assert_eq!(out.recipients[0].to_string(), "421 4.7.0 too many errors");
    assert!(!conn.is_usable());
    assert!(rx.messages().is_empty());
    assert!(!rx.commands().iter().any(|c| c == "RSET"));
}

#[tokio::test]
async fn a_refused_data_goes_to_accepted_recipients_and_resets() {
    let rx = Receiver::start(json!({"data": "451 4.3.0 no data today", "extensions": ["8BITMIME"]}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "b@x.test"], &body("x"))).await.unwrap();
    assert_eq!(codes(&out), [451, 451]);
    assert!(conn.is_usable());
    assert_eq!(rx.commands().last().unwrap(), "RSET");
}

#[tokio::test]
async fn a_refused_end_of_data_is_per_recipient_and_the_session_goes_on() {
    let rx = Receiver::start(json!({"data_end": ["554 5.7.1 spam", "250 2.0.0 ok"]}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "b@x.test"], &body("x"))).await.unwrap();
    assert_eq!(codes(&out), [554, 554]);
    let out = conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
    assert_eq!(codes(&out), [250]);
    assert_eq!(conn.messages_sent(), 2);
}
