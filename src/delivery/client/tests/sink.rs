//! Against Postfix's `smtp-sink`: a real SMTP implementation, not our own script.

use super::support::{Sink, body, config, message};
use crate::delivery::client::Connection;

#[tokio::test]
async fn pipelined_delivery_to_smtp_sink_keeps_the_body_intact() {
    let sink = Sink::start(&[]);
    let mut conn = Connection::open(sink.addr, "smtp-sink", &config()).await.unwrap();
    let available = conn.esmtp_available();
    assert!(available.contains("PIPELINING") && available.contains("8BITMIME"), "{available}");
    let text = body("first\n.dot line\n..two dots\n.\nlast");
    let out = conn.send(&message(&["a@x.test", "b@x.test", "c@x.test"], &text)).await.unwrap();
    assert!(out.recipients.iter().all(|r| r.code == 250), "{:?}", out.recipients);
    let out = conn.send(&message(&["d@x.test"], &body("second"))).await.unwrap();
    assert_eq!(out.recipients[0].code, 250);
    conn.quit().await;
    let dump = sink.dump().replace("\r\n", "\n");
    assert_eq!(dump.matches("X-Rcpt-Args:").count(), 4, "{dump}");
    assert!(dump.contains("X-Helo-Args: ember.test"), "{dump}");
    assert!(dump.contains(&text.replace("\r\n", "\n")), "{dump}");
}

#[tokio::test]
async fn helo_fallback_with_smtp_sink_without_esmtp() {
    let sink = Sink::start(&["-e"]);
    let mut conn = Connection::open(sink.addr, "smtp-sink", &config()).await.unwrap();
    assert!(!conn.is_esmtp());
    let out = conn.send(&message(&["a@x.test"], &body("plain SMTP"))).await.unwrap();
    assert_eq!(out.recipients[0].code, 250);
    conn.quit().await;
    let dump = sink.dump();
    assert!(dump.contains("X-Client-Proto: SMTP\n"), "{dump}");
    assert!(dump.contains("X-Mail-Args: <sender@ember.test>\n"), "{dump}");
}

/// smtp-sink refusing RCPT with a soft error (`-r RCPT`, which also turns PIPELINING off).
#[tokio::test]
async fn soft_rcpt_refusals_from_smtp_sink() {
    let sink = Sink::start(&["-r", "RCPT"]);
    let mut conn = Connection::open(sink.addr, "smtp-sink", &config()).await.unwrap();
    let out = conn.send(&message(&["a@x.test", "b@x.test"], &body("x"))).await.unwrap();
    assert!(out.recipients.iter().all(|r| r.code == 450 && r.enhanced == "4.3.0"), "{:?}", out.recipients);
    assert!(conn.is_usable());
    conn.quit().await;
}
