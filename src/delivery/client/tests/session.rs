//! Opening sessions: greeting, EHLO/HELO, source IP, timeouts, over-long replies, AUTH.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::{Options, Receiver, body, config, message};
use crate::delivery::client::{ClientConfig, ClientError, Connection, Phase};

#[tokio::test]
async fn a_421_greeting_is_a_transient_error_carrying_the_reply() {
    let rx = Receiver::start(json!({"greeting": "421 4.3.2 mx.test busy, try later"}));
    let err = Connection::open(rx.addr, "mx.test", &config()).await.err().unwrap();
    assert!(matches!(err, ClientError::Greeting(ref r) if r.code == 421), "{err}");
    assert_eq!(err.reply().to_string(), "421 4.3.2 mx.test busy, try later");
    assert!(!err.is_permanent());
    // The server is closing: the client says nothing.
    assert!(rx.commands().is_empty());
}

#[tokio::test]
async fn a_554_greeting_is_permanent() {
    let rx = Receiver::start(json!({"greeting": "554 5.7.1 no service for you"}));
    let err = Connection::open(rx.addr, "mx.test", &config()).await.err().unwrap();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.reply().code, 554);
    assert_eq!(rx.commands(), ["QUIT"]);
}

#[tokio::test]
async fn ehlo_refused_falls_back_to_helo_and_delivers() {
    let rx = Receiver::start_with(json!({}), Options { no_esmtp: true, ..Options::default() });
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    assert!(!conn.is_esmtp());
    assert_eq!(conn.esmtp_available(), "");
    let out = conn.send(&message(&["a@x.test"], &body("hello"))).await.unwrap();
    assert_eq!(out.recipients[0].code, 250);
    conn.quit().await;
    let m = &rx.messages()[0];
    assert_eq!((m["hello"].as_str(), m["ehlo"].as_str()), (Some("HELO"), Some("ember.test")));
    // No ESMTP parameters after HELO.
    assert_eq!(m["mail_params"], "");
}

#[tokio::test]
async fn ehlo_and_helo_refused_is_permanent() {
    let rx =
        Receiver::start_with(json!({"helo": "550 5.7.1 go away"}), Options { no_esmtp: true, ..Options::default() });
    let err = Connection::open(rx.addr, "mx.test", &config()).await.err().unwrap();
    assert!(matches!(err, ClientError::Ehlo(ref r) if r.code == 550), "{err}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn ehlo_421_is_transient_without_helo() {
    let rx = Receiver::start(json!({"ehlo": "421 4.7.0 too many connections"}));
    let err = Connection::open(rx.addr, "mx.test", &config()).await.err().unwrap();
    assert!(matches!(err, ClientError::Ehlo(ref r) if r.code == 421), "{err}");
    assert!(!err.is_permanent());
    assert!(!rx.commands().iter().any(|c| c.starts_with("HELO")));
}

#[tokio::test]
async fn esmtp_available_lists_what_the_server_offered() {
    let rx = Receiver::start(
        json!({"extensions": ["pipelining", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING", "SMTPUTF8"]}),
    );
    let conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    assert_eq!(conn.esmtp_available(), "PIPELINING,SIZE,8BITMIME,ENHANCEDSTATUSCODES,DSN,CHUNKING,SMTPUTF8");
    assert_eq!(conn.mx_name(), "mx.test");
    assert_eq!(conn.remote(), rx.addr);
    assert_eq!(conn.greeting().code, 220);
    assert!(conn.tls().is_none());
    conn.quit().await;
    assert_eq!(rx.commands().last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn binds_to_the_virtual_mta_source_ip() {
    let rx = Receiver::start(json!({}));
    let source: IpAddr = "127.0.0.2".parse().unwrap();
    let cfg = ClientConfig { source_ip: Some(source), ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    assert_eq!(conn.local().ip(), source);
    conn.send(&message(&["a@x.test"], &body("from .2"))).await.unwrap();
    conn.quit().await;
    assert_eq!(rx.events("connect")[0]["peer"], "127.0.0.2");
    assert_eq!(rx.messages()[0]["peer"], "127.0.0.2");
}

#[tokio::test]
async fn a_source_ip_that_is_not_local_is_a_connect_error() {
    let rx = Receiver::start(json!({}));
    let cfg = ClientConfig { source_ip: Some("192.0.2.1".parse().unwrap()), ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::Connect(_)), "{err}");
    assert!(err.to_string().contains("192.0.2.1"), "{err}");
    assert_eq!(err.reply().code, 421);
}

#[tokio::test]
async fn connection_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = Connection::open(port, "mx.test", &config()).await.err().unwrap();
    assert_eq!(err.reply().to_string(), "421 4.4.1 connection refused");
}

/// A receiver that accepts and never answers: the configured timeout, not more.
#[tokio::test]
async fn a_hanging_greeting_times_out_within_the_configured_timeout() {
    let rx = Receiver::start(json!({"misbehave": {"connect": "hang"}}));
    let cfg = ClientConfig { greeting_timeout: Duration::from_millis(300), ..config() };
    let start = Instant::now();
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    let took = start.elapsed();
    assert!(matches!(err, ClientError::Timeout { phase: Phase::Greeting }), "{err}");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(4), "{took:?}");
    assert_eq!(err.reply().to_string(), "451 4.4.2 timeout waiting for greeting");
}

#[tokio::test]
async fn a_hanging_ehlo_uses_the_command_timeout() {
    let rx = Receiver::start(json!({"misbehave": {"ehlo": "hang"}}));
    let cfg = ClientConfig { command_timeout: Duration::from_millis(300), ..config() };
    let start = Instant::now();
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::Timeout { phase: Phase::Ehlo }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4));
}

/// A receiver that answers EHLO with an endless multi-line reply (or one endless line): the
/// client gives up at 1000 lines or 100 KB instead of buffering it.
#[tokio::test]
async fn an_endless_reply_is_a_protocol_error() {
    for (action, bound) in [("endless", "1000 lines"), ("endless_line", "102400 bytes")] {
        let rx = Receiver::start(json!({"misbehave": {"ehlo": action}}));
        let start = Instant::now();
        let err = Connection::open(rx.addr, "mx.test", &config()).await.err().unwrap();
        assert!(matches!(err, ClientError::Protocol(ref why) if why.contains(bound)), "{action}: {err}");
        assert!(start.elapsed() < Duration::from_secs(4));
        assert_eq!(err.reply().code, 451);
    }
}

#[tokio::test]
async fn a_huge_reply_to_mail_is_a_protocol_error() {
    let rx = Receiver::start(json!({"misbehave": {"mail": "huge"}}));
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let err = conn.send(&message(&["a@x.test"], &body("x"))).await.err().unwrap();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    assert!(!conn.is_usable());
    assert!(rx.messages().is_empty());
}

#[tokio::test]
async fn garbage_instead_of_a_greeting_is_a_protocol_error() {
    let rx = Receiver::start(json!({"misbehave": {"connect": "garbage"}}));
    let err = Connection::open(rx.addr, "mx.test", &config()).await.err().unwrap();
    assert!(matches!(err, ClientError::Protocol(ref why) if why.contains("not an SMTP reply")), "{err}");
}

#[tokio::test]
async fn dropped_at_greeting() {
    let rx = Receiver::start(json!({"misbehave": {"connect": "drop"}}));
    let err = Connection::open(rx.addr, "mx.test", &config()).await.err().unwrap();
    assert!(matches!(err, ClientError::Disconnected { phase: Phase::Greeting, .. }), "{err}");
    assert_eq!(err.reply().code, 421);
}

#[tokio::test]
async fn auth_is_never_sent_in_clear_unless_allowed() {
    let script = json!({"extensions": ["PIPELINING", "AUTH PLAIN LOGIN"], "auth": {"user": "u", "password": "p"}});
    let rx = Receiver::start(script.clone());
    let cfg = ClientConfig { auth: Some(("u".into(), "p".into())), ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(
        matches!(err, ClientError::AuthNotPossible(ref why) if why.contains("use-unencrypted-plain-auth")),
        "{err}"
    );
    assert!(!rx.commands().iter().any(|c| c.starts_with("AUTH")));
    assert!(!format!("{cfg:?}").contains("\"p\""), "Debug must not show the password");

    let rx = Receiver::start(script);
    let cfg = ClientConfig { allow_plain_in_clear: true, ..cfg };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    assert_eq!(conn.auth_mechanism(), Some("PLAIN"));
    conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
    assert_eq!(rx.messages()[0]["auth_user"], "u");
}

#[tokio::test]
async fn auth_login_when_plain_is_not_offered_and_refusal_is_an_auth_error() {
    let script = json!({"extensions": ["AUTH LOGIN"], "auth": {"user": "u", "password": "p"}});
    let rx = Receiver::start(script.clone());
    let cfg = ClientConfig { auth: Some(("u".into(), "p".into())), allow_plain_in_clear: true, ..config() };
    let conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    assert_eq!(conn.auth_mechanism(), Some("LOGIN"));
    let auth = &rx.events("auth")[0];
    assert_eq!((auth["mechanism"].as_str(), auth["ok"].as_bool()), (Some("LOGIN"), Some(true)));

    let rx = Receiver::start(script);
    let cfg = ClientConfig { auth: Some(("u".into(), "wrong".into())), ..cfg };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::Auth(ref r) if r.code == 535), "{err}");
    assert_eq!(err.reply().to_string(), "535 5.7.8 bad credentials");
}

#[tokio::test]
async fn auth_without_a_common_mechanism() {
    let rx = Receiver::start(json!({"extensions": ["AUTH CRAM-MD5"]}));
    let cfg = ClientConfig { auth: Some(("u".into(), "p".into())), allow_plain_in_clear: true, ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::AuthNotPossible(ref why) if why.contains("CRAM-MD5")), "{err}");
}
