//! STARTTLS: opportunistic, verified, required, and the fall-backs.

use serde_json::json;

use super::support::{Options, Receiver, body, certs, config, message};
use crate::delivery::client::{ClientConfig, ClientError, Connection};

fn tls_receiver(script: serde_json::Value, server_pem: &std::path::Path) -> Receiver {
    Receiver::start_with(script, Options { tls_cert: Some(server_pem.to_path_buf()), ..Options::default() })
}

#[tokio::test]
async fn opportunistic_starttls_accepts_an_unverified_certificate_and_says_so() {
    let c = certs();
    let rx = tls_receiver(json!({}), &c.server_pem);
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    let (protocol, cipher) = conn.tls().expect("TLS");
    assert_eq!(protocol, "TLSv1.3");
    assert!(cipher.starts_with("TLS_"), "{cipher}");
    let peer = conn.tls_peer().unwrap();
    assert!(peer.starts_with("not verified (no smtp-tls-ca-file); certificate names mx.test, sha256 "), "{peer}");
    // STARTTLS was offered before TLS; the record keeps it.
    assert!(conn.esmtp_available().contains("STARTTLS"), "{}", conn.esmtp_available());
    conn.send(&message(&["a@x.test"], &body("secret"))).await.unwrap();
    conn.quit().await;
    let m = &rx.messages()[0];
    assert_eq!(m["tls"], true);
    // The second EHLO went over TLS; nothing but EHLO and STARTTLS went in clear.
    let clear: Vec<String> = rx
        .events("command")
        .iter()
        .filter(|e| e["tls"] == false)
        .map(|e| e["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(clear, ["EHLO ember.test", "STARTTLS"]);
}

#[tokio::test]
async fn a_certificate_verified_against_the_ca_file() {
    let c = certs();
    let rx = tls_receiver(json!({}), &c.server_pem);
    let cfg = ClientConfig { tls_ca_file: Some(c.ca_pem.clone()), ..config() };
    let conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    assert!(conn.tls().is_some());
    assert_eq!(conn.tls_peer().unwrap(), format!("certificate verified against {}", c.ca_pem.display()));
}

/// Opportunistic TLS with a CA file the certificate does not chain to: reconnect, deliver in
/// clear, and record why.
#[tokio::test]
async fn failed_verification_falls_back_to_clear_when_opportunistic() {
    let c = certs();
    let rx = tls_receiver(json!({}), &c.server_pem);
    let cfg = ClientConfig { tls_ca_file: Some(c.other_ca_pem.clone()), ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    assert!(conn.tls().is_none());
    let why = conn.tls_fallback().unwrap();
    assert!(why.contains("TLS handshake failed") && why.contains("certificate"), "{why}");
    conn.send(&message(&["a@x.test"], &body("in clear"))).await.unwrap();
    assert_eq!(rx.events("connect").len(), 2, "a second connection for the clear session");
    assert_eq!(rx.messages()[0]["tls"], false);
    // The second session did not try STARTTLS again.
    assert_eq!(rx.commands().iter().filter(|c| *c == "STARTTLS").count(), 1);
}

#[tokio::test]
async fn failed_verification_is_tls_required_when_required() {
    let c = certs();
    let rx = tls_receiver(json!({}), &c.server_pem);
    let cfg = ClientConfig { tls_ca_file: Some(c.other_ca_pem.clone()), require_starttls: true, ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::TlsRequired { ref why } if why.contains("certificate")), "{err}");
    assert!(err.reply().is_transient());
    assert_eq!(rx.events("connect").len(), 1);
    assert!(!rx.commands().iter().any(|c| c.starts_with("MAIL")));
}

/// A receiver that answers STARTTLS with 220 and then sends bytes that are not TLS.
#[tokio::test]
async fn a_broken_handshake_reconnects_in_clear() {
    let c = certs();
    let rx = tls_receiver(json!({"misbehave": {"tls": "garbage"}}), &c.server_pem);
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    assert!(conn.tls().is_none());
    assert!(conn.tls_fallback().unwrap().contains("TLS handshake failed"), "{:?}", conn.tls_fallback());
    let out = conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
    assert_eq!(out.recipients[0].code, 250);
}

/// Plaintext behind the 220 to STARTTLS (a response injection): never read as if it had come
/// over TLS; the session is given up and a clear one delivers (or, required, an error).
#[tokio::test]
async fn data_after_the_starttls_reply_is_not_trusted() {
    let c = certs();
    let rx = tls_receiver(json!({"misbehave": {"starttls": "inject"}}), &c.server_pem);
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    assert!(conn.tls().is_none());
    let why = conn.tls_fallback().unwrap();
    assert!(why.contains("server sent data after its reply to STARTTLS"), "{why}");
    conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
    assert_eq!(rx.events("connect").len(), 2);

    let cfg = ClientConfig { require_starttls: true, ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::TlsRequired { .. }), "{err}");
}

#[tokio::test]
async fn require_starttls_without_starttls_sends_nothing_in_clear() {
    let rx = Receiver::start(json!({}));
    let cfg = ClientConfig { require_starttls: true, ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::TlsRequired { ref why } if why == "mx.test does not offer STARTTLS"), "{err}");
    assert_eq!(err.reply().to_string(), "451 4.7.10 TLS required: mx.test does not offer STARTTLS");
    assert!(!err.is_permanent());
    assert_eq!(rx.commands(), ["EHLO ember.test", "QUIT"]);
}

#[tokio::test]
async fn a_refused_starttls_goes_on_in_clear_or_fails_when_required() {
    let c = certs();
    let script = json!({"starttls": "454 4.7.0 TLS not available due to temporary reason"});
    let rx = tls_receiver(script.clone(), &c.server_pem);
    let mut conn = Connection::open(rx.addr, "mx.test", &config()).await.unwrap();
    assert!(conn.tls_fallback().unwrap().starts_with("STARTTLS refused: 454"));
    conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
    assert_eq!(rx.events("connect").len(), 1, "same session, in clear");

    let rx = tls_receiver(script, &c.server_pem);
    let cfg = ClientConfig { require_starttls: true, ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::TlsRequired { .. }), "{err}");
    assert!(!rx.commands().iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn use_starttls_off_stays_in_clear() {
    let c = certs();
    let rx = tls_receiver(json!({}), &c.server_pem);
    let cfg = ClientConfig { use_starttls: false, ..config() };
    let conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    assert!(conn.tls().is_none() && conn.tls_fallback().is_none());
    assert!(!rx.commands().iter().any(|c| c == "STARTTLS"));
}

#[tokio::test]
async fn auth_plain_after_tls() {
    let c = certs();
    let script = json!({"extensions_after_tls": ["PIPELINING", "AUTH PLAIN LOGIN"], "auth": {"user": "relay", "password": "s3cret"}});
    let rx = tls_receiver(script, &c.server_pem);
    let cfg = ClientConfig { auth: Some(("relay".into(), "s3cret".into())), require_starttls: true, ..config() };
    let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
    assert_eq!(conn.auth_mechanism(), Some("PLAIN"));
    conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
    let auth = &rx.events("auth")[0];
    assert_eq!(
        (auth["mechanism"].as_str(), auth["ok"].as_bool(), auth["tls"].as_bool()),
        (Some("PLAIN"), Some(true), Some(true))
    );
    let m = &rx.messages()[0];
    assert_eq!((m["auth_user"].as_str(), m["tls"].as_bool()), (Some("relay"), Some(true)));
}

#[tokio::test]
async fn an_unreadable_ca_file_is_a_tls_error() {
    let c = certs();
    let rx = tls_receiver(json!({}), &c.server_pem);
    let cfg = ClientConfig { tls_ca_file: Some("/nonexistent/ca.pem".into()), ..config() };
    let err = Connection::open(rx.addr, "mx.test", &cfg).await.err().unwrap();
    assert!(matches!(err, ClientError::Tls(ref why) if why.contains("/nonexistent/ca.pem")), "{err}");
}

/// The `tls` events of the receiver: (version, cipher, reused, client CN).
fn handshakes(rx: &Receiver) -> Vec<(String, String, bool, Option<String>)> {
    rx.events("tls")
        .iter()
        .map(|e| {
            (
                e["version"].as_str().unwrap().to_string(),
                e["cipher"].as_str().unwrap().to_string(),
                e["reused"].as_bool().unwrap(),
                e["client_cn"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test]
async fn tls_versions_offered_follow_smtp_tls_allow() {
    let c = certs();
    // A receiver that speaks TLS 1.2 only: allowed by default, refused with TLS 1.2 off (the
    // handshake fails and the session goes on in clear, as any failed opportunistic TLS).
    let old = tls_receiver(json!({"tls_max_version": "TLSv1.2"}), &c.server_pem);
    let conn = Connection::open(old.addr, "mx.test", &config()).await.unwrap();
    assert_eq!(conn.tls().unwrap().0, "TLSv1.2");
    let cfg = ClientConfig { allow_tls12: false, ..config() };
    let conn = Connection::open(old.addr, "mx.test", &cfg).await.unwrap();
    assert!(conn.tls().is_none() && conn.tls_fallback().is_some());
    // TLS 1.3 off against a receiver offering both: TLS 1.2.
    let modern = tls_receiver(json!({}), &c.server_pem);
    let cfg = ClientConfig { allow_tls13: false, ..config() };
    let conn = Connection::open(modern.addr, "mx.test", &cfg).await.unwrap();
    assert_eq!(conn.tls().unwrap().0, "TLSv1.2");
    let cfg = ClientConfig { allow_tls12: false, allow_tls13: false, ..config() };
    assert!(matches!(Connection::open(modern.addr, "mx.test", &cfg).await, Err(ClientError::Tls(_))));
}

#[tokio::test]
async fn tls13_suites_client_certificate_and_session_reuse() {
    let c = certs();
    let rx = tls_receiver(json!({"tls_client_ca": c.ca_pem}), &c.server_pem);
    let cfg = ClientConfig {
        tls13_suites: vec!["TLS_CHACHA20_POLY1305_SHA256".into()],
        client_certificate: Some(c.client_pem.clone()),
        tls_sessions: Some(std::sync::Arc::default()),
        ..config()
    };
    for _ in 0..2 {
        let mut conn = Connection::open(rx.addr, "mx.test", &cfg).await.unwrap();
        assert_eq!(conn.tls().unwrap().1, "TLS_CHACHA20_POLY1305_SHA256");
        conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
        conn.quit().await;
    }
    // Without a session store every connection is a full handshake and no certificate is sent.
    let plain = config();
    for _ in 0..2 {
        let mut conn = Connection::open(rx.addr, "mx.test", &plain).await.unwrap();
        conn.send(&message(&["a@x.test"], &body("x"))).await.unwrap();
        conn.quit().await;
    }
    let seen = handshakes(&rx);
    let cn = Some("ember client".to_string());
    let chacha = "TLS_CHACHA20_POLY1305_SHA256".to_string();
    assert_eq!(seen[0], ("TLSv1.3".into(), chacha.clone(), false, cn.clone()), "{seen:?}");
    assert_eq!(seen[1].1, chacha, "{seen:?}");
    assert!(seen[1].2, "the second connection resumes: {seen:?}");
    assert!(!seen[2].2 && !seen[3].2 && seen[2].3.is_none() && seen[3].3.is_none(), "{seen:?}");
}
