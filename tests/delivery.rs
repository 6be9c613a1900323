//! Delivery, end to end, with real receivers: Postfix's smtp-sink, a real Postfix with
//! STARTTLS, and the scripted receiver for refusals, retries, bounces and source addresses.
//! Mail goes in with swaks; outcomes are read from the accounting file (with Python's csv), the
//! receivers' logs, and Ember's live queue view.

use crate::support::peers::{Postfix, Receiver, Sink, free_port, read_acct};
use crate::support::{Ember, swaks};
use serde_json::json;

const DBT_COLUMNS: &str = "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool";

fn inject(e: &Ember, from: &str, to: &str, extra: &[&str]) {
    let server = e.smtp().to_string();
    let mut args = vec!["--server", server.as_str(), "--from", from, "--to", to];
    args.extend_from_slice(extra);
    let out = swaks(&args);
    assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
}

fn feeder(extra: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    process-x-virtual-mta yes\n</source>\n<spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b,t,tq\n    record-fields d *,dlvTlsProtocol,dlvTlsCipher\n</acct-file>\n{extra}"
    )
}

#[test]
fn delivers_to_smtp_sink_and_records_powermta_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let config = feeder(&format!("<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n", sink.addr.port()));
    let e = Ember::start_in(dir, &config);
    for n in 0..3 {
        inject(&e, "sender@example.net", &format!("rcpt{n}@example.com"), &["--header", "X-Job: j1"]);
    }
    e.wait_log_count("delivered ", 3);
    assert_eq!(sink.messages().len(), 3);
    let (header, rows) = read_acct(&e.path("acct.csv"));
    assert!(header.join(",").starts_with(DBT_COLUMNS), "{header:?}");
    let d: Vec<_> = rows.iter().filter(|r| r["type"] == "d").collect();
    assert_eq!(d.len(), 3);
    for r in d {
        assert_eq!(r["orig"], "sender@example.net");
        assert_eq!(r["dsnAction"], "relayed");
        assert!(r["dsnStatus"].starts_with("2.0.0"), "{r:?}");
        assert_eq!(r["dlvDestinationIp"], "127.0.0.1");
        assert!(r["dlvEsmtpAvailable"].contains("PIPELINING"), "{r:?}");
        assert_eq!(r["queue"], "example.com/{default}");
        assert_eq!(r["srcType"], "smtp");
    }
    // Delivered recipients leave the spool.
    assert!(e.spooled().is_empty());
}

#[test]
fn starttls_to_a_real_postfix_and_require_starttls_never_sends_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let pf_dir = tempfile::Builder::new().prefix("ember-pf").tempdir_in("/tmp").unwrap();
    std::process::Command::new("chmod").arg("755").arg(pf_dir.path()).status().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_dir = pf_dir.path().join("tls");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::write(cert_dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(cert_dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    let port = free_port("127.0.0.1");
    let postfix = Postfix::start(
        &pf_dir.path().join("postfix"),
        port,
        &[
            format!("smtpd_tls_cert_file = {}/cert.pem", cert_dir.display()),
            format!("smtpd_tls_key_file = {}/key.pem", cert_dir.display()),
            "smtpd_tls_security_level = may".into(),
            "defer_transports = smtp".into(),
        ],
    );
    let plain = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = feeder(&format!(
        "<domain tls.example>\n    smtp-hosts [127.0.0.1]:{port}\n</domain>\n<domain clear.example>\n    smtp-hosts [127.0.0.1]:{}\n    require-starttls yes\n    retry-after 1h\n</domain>\n",
        plain.addr.port()
    ));
    let e = Ember::start_in(dir, &config);
    inject(&e, "s@example.net", "r@tls.example", &[]);
    inject(&e, "s@example.net", "r@clear.example", &[]);
    e.wait_log("delivered ");
    e.wait_log("queue failure");
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let d = rows.iter().find(|r| r["type"] == "d").expect("a d record");
    assert_eq!(d["rcpt"], "r@tls.example");
    assert!(d["dlvTlsProtocol"].starts_with("TLSv1."), "{d:?}");
    assert!(!d["dlvTlsCipher"].is_empty(), "{d:?}");
    drop(postfix);
    // Nothing reached the receiver without TLS, and the queue says why it waits.
    assert!(plain.events("message").is_empty());
    let tq = rows.iter().find(|r| r["type"] == "tq").expect("a tq record");
    assert!(tq["dsnDiag"].to_lowercase().contains("tls"), "{tq:?}");
    assert_eq!(e.spooled().len(), 1);
}

#[test]
fn virtual_mtas_bind_their_source_ips_and_pools_alternate() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = feeder(&format!(
        "<virtual-mta v2>\n    smtp-source-host 127.0.0.2 v2.ember.test\n</virtual-mta>\n<virtual-mta v3>\n    smtp-source-host 127.0.0.3 v3.ember.test\n</virtual-mta>\n<virtual-mta-pool both>\n    virtual-mta v2\n    virtual-mta v3\n</virtual-mta-pool>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    max-smtp-out 1\n</domain>\n",
        rx.addr.port()
    ));
    let e = Ember::start_in(dir, &config);
    inject(&e, "a@example.net", "one@example.com", &["--header", "X-Virtual-MTA: v2"]);
    inject(&e, "a@example.net", "two@example.com", &["--header", "X-Virtual-MTA: v3"]);
    for n in 0..4 {
        inject(&e, "a@example.net", &format!("pool{n}@example.org"), &["--header", "X-Virtual-MTA: both"]);
    }
    e.wait_log_count("delivered ", 6);
    let messages = rx.events("message");
    let seen = |rcpt: &str| {
        messages
            .iter()
            .find(|m| m["rcpts"][0] == rcpt)
            .map(|m| (m["peer"].as_str().unwrap().to_string(), m["ehlo"].as_str().unwrap().to_string()))
            .unwrap()
    };
    assert_eq!(seen("one@example.com"), ("127.0.0.2".into(), "v2.ember.test".into()));
    assert_eq!(seen("two@example.com"), ("127.0.0.3".into(), "v3.ember.test".into()));
    let pool: Vec<String> = (0..4).map(|n| seen(&format!("pool{n}@example.org")).0).collect();
    assert_eq!(pool.iter().filter(|p| *p == "127.0.0.2").count(), 2, "{pool:?}");
    assert_eq!(pool.iter().filter(|p| *p == "127.0.0.3").count(), 2, "{pool:?}");
}

#[test]
fn queue_to_groups_microsoft_domains_into_one_queue() {
    let dir = tempfile::tempdir().unwrap();
    let rx =
        Receiver::start("127.0.0.1", &json!({"data_end": ["451 4.3.0 hold on", "250 2.0.0 ok"]}), dir.path(), None);
    let mut config = feeder(&format!(
        "<domain hotmail.com>\n    smtp-hosts [127.0.0.1]:{}\n    retry-interval 1s\n    min-retry-interval 1s\n</domain>\n",
        rx.addr.port()
    ));
    for d in ["outlook.com", "live.com", "msn.com"] {
        config.push_str(&format!("<domain {d}>\n    queue-to hotmail.com\n</domain>\n"));
    }
    let e = Ember::start_in(dir, &config);
    for d in ["hotmail.com", "outlook.com", "live.com", "msn.com"] {
        inject(&e, "a@example.net", &format!("x@{d}"), &[]);
    }
    e.wait_log("deferred ");
    let out = e.live_cli(&["show", "queues", "--json"]);
    let queues: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    let names: Vec<&str> = queues.as_array().unwrap().iter().map(|q| q["queue"].as_str().unwrap()).collect();
    assert_eq!(names, ["hotmail.com/{default}"], "{queues}");
    e.wait_log_count("delivered ", 4);
    let rcpts: Vec<String> = rx
        .events("message")
        .iter()
        .flat_map(|m| m["rcpts"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    for d in ["hotmail.com", "outlook.com", "live.com", "msn.com"] {
        assert!(rcpts.contains(&format!("x@{d}")), "{rcpts:?}");
    }
}

#[test]
fn retries_bounces_with_a_dsn_expiry_and_queue_failures() {
    let dir = tempfile::tempdir().unwrap();
    let script = json!({
        "rcpt_rules": [
            {"address": "later@example.com", "replies": ["451 4.3.0 greylisted, try again", "250 2.1.5 ok"]},
            {"address": "nobody@example.com", "replies": "550 5.1.1 <nobody@example.com>: user unknown"},
            {"address": "slow@example.com", "replies": "451 4.2.0 mailbox busy"}
        ]
    });
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let mailbox = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let refused = free_port("127.0.0.1");
    let config = feeder(&format!(
        "host-name mx.ember.test\n<domain example.com>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 1s\n    retry-recipients-after 1s\n    bounce-after 6s\n</domain>\n<domain example.net>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n<domain down.example>\n    smtp-hosts [127.0.0.1]:{refused}\n    retry-after 1h\n</domain>\n",
        rx.addr.port(),
        mailbox.addr.port()
    ));
    let e = Ember::start_in(dir, &config);
    inject(&e, "sender@example.net", "later@example.com", &[]);
    inject(&e, "sender@example.net", "nobody@example.com", &[]);
    inject(&e, "sender@example.net", "slow@example.com", &[]);
    inject(&e, "sender@example.net", "r@down.example", &[]);
    // 451 then 250: deferred, retried after the interval, delivered.
    e.wait_log("delivered ");
    // 550 5.1.1: bounced, and the DSN reaches the sender's mailbox.
    // Always 451: bounced at bounce-after as message-expired.
    e.wait_log_count("bounced ", 2);
    e.wait_log_count("delivered ", 3);
    let dsns = mailbox.events("message");
    assert_eq!(dsns.len(), 2, "{dsns:?}");
    let unknown =
        dsns.iter().find(|m| m["data"].as_str().unwrap().contains("nobody@example.com")).expect("DSN for the 550");
    assert_eq!(unknown["mail_from"], "", "a DSN has the null sender");
    let text = unknown["data"].as_str().unwrap();
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(text.contains("Diagnostic-Code: smtp;550 5.1.1"), "{text}");
    assert!(text.contains("X-PowerMTA-BounceCategory: bad-mailbox"), "{text}");
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let by = |t: &str, rcpt: &str| rows.iter().filter(|r| r["type"] == t && r["rcpt"] == rcpt).count();
    assert!(by("t", "later@example.com") >= 1);
    assert_eq!(by("d", "later@example.com"), 1);
    assert_eq!(by("b", "nobody@example.com"), 1);
    let expired = rows.iter().find(|r| r["type"] == "b" && r["rcpt"] == "slow@example.com").expect("expiry bounce");
    assert_eq!(expired["bounceCat"], "message-expired", "{expired:?}");
    let bad = rows.iter().find(|r| r["type"] == "b" && r["rcpt"] == "nobody@example.com").unwrap();
    assert_eq!(bad["bounceCat"], "bad-mailbox");
    assert!(bad["dsnDiag"].starts_with("smtp;550 5.1.1"), "{bad:?}");
    // The refused host: a tq record, the recipient still queued.
    let tq = rows.iter().find(|r| r["type"] == "tq").expect("a tq record");
    assert_eq!(tq["queue"], "down.example/{default}");
    let queued: Vec<_> = e.spooled().iter().map(|m| m["rcpt"].as_str().unwrap().to_string()).collect();
    assert_eq!(queued, ["r@down.example"]);
}

#[test]
fn a_restart_keeps_deferred_recipients_and_delivers_them_once() {
    let dir = tempfile::tempdir().unwrap();
    // Each recipient is refused once, then accepted.
    let rules: Vec<_> = (0..5)
        .map(|n| json!({"address": format!("later{n}@example.com"), "replies": ["451 4.3.0 not now", "250 2.1.5 ok"]}))
        .collect();
    let rx = Receiver::start("127.0.0.1", &json!({ "rcpt_rules": rules }), dir.path(), None);
    let config = feeder(&format!(
        "<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    retry-after 3s\n    retry-recipients-after 3s\n</domain>\n",
        rx.addr.port()
    ));
    let mut e = Ember::start_in(dir, &config);
    for n in 0..5 {
        inject(&e, "a@example.net", &format!("later{n}@example.com"), &[]);
    }
    e.wait_log_count("deferred ", 5);
    e.stop();
    // Offline: the deferred recipients are in the spool with their retry times.
    assert_eq!(e.spooled().len(), 5);
    e.launch();
    e.wait_log_count("delivered ", 5);
    let delivered: Vec<String> =
        rx.events("message").iter().map(|m| m["rcpts"][0].as_str().unwrap().to_string()).collect();
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "{delivered:?}");
    assert_eq!(delivered.len(), 5, "each delivered exactly once: {delivered:?}");
    e.stop();
    assert!(e.spooled().is_empty());
}

#[test]
fn a_vmta_removed_by_reload_bounces_its_mail_and_show_status_counts() {
    let dir = tempfile::tempdir().unwrap();
    let vmta = "<virtual-mta gone>\n    smtp-source-host 127.0.0.2 gone.ember.test\n</virtual-mta>\n";
    let hold = "<domain *>\n    smtp-hosts [127.0.0.1]:9\n    retry-after 1h\n</domain>\n";
    let mut e = Ember::start_in(dir, &feeder(&format!("{vmta}{hold}")));
    inject(&e, "a@example.net", "r@example.com", &["--header", "X-Virtual-MTA: gone"]);
    e.wait_log("queue failure");
    let status = e.live_cli(&["show", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["queue"]["smtp"]["rcp"], 1, "{status}");
    // The operator removes the VMTA while mail waits for it: PowerMTA's 5.3.5 bounce.
    let config = std::fs::read_to_string(&e.config).unwrap().replace(vmta, "");
    std::fs::write(&e.config, config).unwrap();
    crate::support::signal(e.pid(), "HUP");
    e.wait_log("bounced ");
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let b = rows.iter().find(|r| r["type"] == "b").expect("a b record");
    assert!(b["dsnStatus"].starts_with("5.3.5 (specified VirtualMTA does not exist)"), "{b:?}");
    e.stop();
}

/// A CA, a server certificate for `mx.test` and a client certificate (CN `ember client`), all
/// written to `dir`: `ca.pem`, `server.pem` (chain and key), `client.pem` (certificate and key).
fn tls_files(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["mx.test".into()]).unwrap().signed_by(&server_key, &ca, &ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["client.ember.test".into()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "ember client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = params.signed_by(&client_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), format!("{}{}", server.pem(), server_key.serialize_pem())).unwrap();
    std::fs::write(dir.join("client.pem"), format!("{}{}", client.pem(), client_key.serialize_pem())).unwrap();
}

#[test]
fn outbound_tls_versions_suites_client_certificate_and_session_reuse_per_queue() {
    let dir = tempfile::tempdir().unwrap();
    tls_files(dir.path());
    let script = json!({ "tls_client_ca": dir.path().join("ca.pem") });
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), Some(&dir.path().join("server.pem")));
    let port = rx.addr.port();
    let config = feeder(&format!(
        "<domain tls.example>\n    smtp-hosts [127.0.0.1]:{port}\n    reuse-ssl-session yes\n    smtp-client-certificate client.pem\n    smtp-tls-tlsv1.3-ciphersuites TLS_CHACHA20_POLY1305_SHA256\n    max-msg-per-connection 1\n    max-smtp-out 1\n</domain>\n<domain old.example>\n    smtp-hosts [127.0.0.1]:{port}\n    smtp-tls-allow-tlsv1.3 no\n</domain>\n"
    ));
    let e = Ember::start_in(dir, &config);
    inject(&e, "s@example.net", "one@tls.example", &[]);
    e.wait_log_count("delivered ", 1);
    inject(&e, "s@example.net", "two@tls.example", &[]);
    e.wait_log_count("delivered ", 2);
    inject(&e, "s@example.net", "three@old.example", &[]);
    e.wait_log_count("delivered ", 3);
    let tls = rx.events("tls");
    assert_eq!(tls.len(), 3, "{tls:?}");
    // tls.example: the chosen TLS 1.3 suite, Ember's client certificate, and the second
    // connection resumes the first one's session.
    for t in &tls[..2] {
        assert_eq!(t["version"], "TLSv1.3", "{t}");
        assert_eq!(t["cipher"], "TLS_CHACHA20_POLY1305_SHA256", "{t}");
    }
    assert_eq!(tls[0]["client_cn"], "ember client", "{tls:?}");
    assert_eq!(tls[0]["reused"], false, "{tls:?}");
    assert_eq!(tls[1]["reused"], true, "{tls:?}");
    // old.example: TLS 1.3 off, so TLS 1.2; no client certificate and no session reuse there.
    assert_eq!(tls[2]["version"], "TLSv1.2", "{tls:?}");
    assert_eq!(tls[2]["reused"], false, "{tls:?}");
    assert!(tls[2]["client_cn"].is_null(), "{tls:?}");
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let old = rows.iter().find(|r| r["rcpt"] == "three@old.example").unwrap();
    assert_eq!(old["dlvTlsProtocol"], "TLSv1.2", "{old:?}");
}

#[test]
fn a_virtual_mta_rewrite_list_applies_at_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = feeder(&format!(
        "<rewrite-list v2-brand>\n    mail-from <> bounces@v2.example\n    mail-from *@* bounces@v2.example\n    from-domain * v2.example\n</rewrite-list>\n<virtual-mta v2>\n    smtp-source-host 127.0.0.2 v2.ember.test\n    rewrite-list v2-brand\n</virtual-mta>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n",
        rx.addr.port()
    ));
    let e = Ember::start_in(dir, &config);
    let from = ["--header", "From: Sender <s@example.net>"];
    inject(&e, "s@example.net", "one@example.com", &[&from[..], &["--header", "X-Virtual-MTA: v2"]].concat());
    inject(&e, "s@example.net", "two@example.com", &from);
    e.wait_log_count("delivered ", 2);
    let messages = rx.events("message");
    let of = |rcpt: &str| messages.iter().find(|m| m["rcpts"][0] == rcpt).unwrap().clone();
    let via_v2 = of("one@example.com");
    assert_eq!(via_v2["mail_from"], "bounces@v2.example", "{via_v2}");
    assert!(via_v2["data"].as_str().unwrap().contains("From: Sender <s@v2.example>"), "{via_v2}");
    let plain = of("two@example.com");
    assert_eq!(plain["mail_from"], "s@example.net", "{plain}");
    assert!(plain["data"].as_str().unwrap().contains("From: Sender <s@example.net>"), "{plain}");
}

/// Waits until the receiver has `count` messages; they by first recipient.
fn messages_by_rcpt(rx: &Receiver, count: usize) -> std::collections::HashMap<String, serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let messages = rx.events("message");
        if messages.len() >= count {
            return messages.into_iter().map(|m| (m["rcpts"][0].as_str().unwrap().to_string(), m)).collect();
        }
        assert!(std::time::Instant::now() < deadline, "only {} of {count} messages arrived", messages.len());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn head(message: &serde_json::Value) -> String {
    let data = message["data"].as_str().unwrap();
    data[..data.find("\r\n\r\n").unwrap()].to_string()
}

#[test]
fn source_and_queue_headers_bcc_and_verp_reach_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("included.txt"), "# added to every message\nX-Included: from-file\n").unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\nhost-id 42\ninclude-headers-from included.txt\n<spool spool>\n</spool>\n<virtual-mta v2>\n    smtp-source-host 127.0.0.2 v2.ember.test\n</virtual-mta>\n<virtual-mta-pool both>\n    virtual-mta v2\n</virtual-mta-pool>\n<source 127.0.0.1>\n    always-allow-relaying yes\n    process-x-virtual-mta yes\n    retain-x-virtual-mta yes\n    add-message-id-header yes\n    add-date-header yes\n    date-header-time delivery\n    add-x-virtual-mta-header yes\n    verp-default yes\n    bcc archive@archive.test\n</source>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n<domain sp.test>\n    add-x-msys-api-header yes\n    sparkpost-ip-pool warm\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    let message = "From: <sender@example.net>\r\nSubject: headers\r\nX-Virtual-MTA: both\r\nX-MSYS-API: {\"campaign_id\": \"c1\"}\r\n\r\nbody\r\n";
    let sent = e.send_with_script("127.0.0.1", "sender@example.net", &["a@example.com", "b@sp.test"], message);
    assert_eq!(sent["data"][0], 250, "{sent}");
    let got = messages_by_rcpt(&rx, 3);
    // VERP: one transaction per recipient, each from a return path naming it; the bcc archive
    // copy is one of them.
    assert_eq!(got["a@example.com"]["mail_from"], "sender+a=example.com@example.net");
    assert_eq!(got["b@sp.test"]["mail_from"], "sender+b=sp.test@example.net");
    assert_eq!(got["archive@archive.test"]["mail_from"], "sender+archive=archive.test@example.net");
    for (rcpt, m) in &got {
        assert_eq!(m["rcpts"].as_array().unwrap().len(), 1, "{rcpt}: {m}");
        let h = head(m);
        // include-headers-from right after Ember's Received header.
        assert!(h.starts_with("Received: ") && h.contains("\r\nX-Included: from-file\r\nFrom: "), "{rcpt}:\n{h}");
        let id = h.lines().find(|l| l.starts_with("Message-ID: ")).expect("a Message-ID");
        assert!(id.contains(".42@"), "host-id in {id}");
        assert_eq!(h.matches("\r\nDate: ").count(), 1, "Date added at delivery:\n{h}");
        // The delivering VMTA, once, in place of the one the injector asked for (the pool).
        assert_eq!(h.matches("X-Virtual-MTA").count(), 1, "{h}");
        assert!(h.contains("X-Virtual-MTA: v2\r\n") || h.ends_with("X-Virtual-MTA: v2"), "{h}");
        assert_eq!(m["peer"], "127.0.0.2", "{rcpt}");
    }
    // SparkPost's header only for the queue that asks for it, merged into the injector's JSON.
    let sp = head(&got["b@sp.test"]);
    let msys = sp.lines().find(|l| l.starts_with("X-MSYS-API: ")).expect("X-MSYS-API");
    let value: serde_json::Value = serde_json::from_str(&msys["X-MSYS-API: ".len()..]).unwrap();
    assert_eq!(value, json!({"campaign_id": "c1", "options": {"ip_pool": "warm"}}));
    assert_eq!(sp.matches("X-MSYS-API").count(), 1, "{sp}");
    assert_eq!(head(&got["a@example.com"]).matches("X-MSYS-API: {\"campaign_id\": \"c1\"}").count(), 1);
}

#[test]
fn dsns_follow_the_source_and_postmaster_and_backoff_is_mailed() {
    let dir = tempfile::tempdir().unwrap();
    let script = json!({"rcpt_rules": [{"regex": "^bad", "replies": "550 5.1.1 no such user"}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\npostmaster postmaster@ember.test\n<spool spool>\n</spool>\n<source 127.0.0.1>\n    always-allow-relaying yes\n    dsn-return-default full\n</source>\n<source 127.0.0.2>\n    always-allow-relaying yes\n    suppress-local-dsn yes\n</source>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n<domain busy.test>\n    backoff-notify ops@ops.test\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    let message = "From: <s@example.net>\r\nSubject: will bounce\r\n\r\nthe body line\r\n";
    e.send_with_script("127.0.0.2", "quiet@example.net", &["bad2@example.com"], message);
    e.wait_log("its source has suppress-local-dsn");
    e.send_with_script("127.0.0.1", "loud@example.net", &["bad1@example.com"], message);
    let got = messages_by_rcpt(&rx, 1);
    let dsn = &got["loud@example.net"];
    assert_eq!(dsn["mail_from"], "");
    let data = dsn["data"].as_str().unwrap();
    assert!(data.contains("From: Mail Delivery Subsystem <postmaster@ember.test>\r\n"), "{data}");
    // dsn-return-default full: the whole message comes back, body included.
    assert!(data.contains("Content-Type: message/rfc822") && data.contains("the body line"), "{data}");

    // backoff-notify: entering and leaving backoff are mailed, from the postmaster.
    inject(&e, "a@example.net", "ok@busy.test", &[]);
    e.wait_log("delivered ");
    for mode in ["--mode=backoff", "--mode=normal"] {
        let out = e.live_cli(&["set", "queue", mode, "busy.test"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1 queue changed", "{out:?}");
    }
    let notices: Vec<serde_json::Value> = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let n: Vec<_> = rx.events("message").into_iter().filter(|m| m["rcpts"][0] == "ops@ops.test").collect();
            if n.len() >= 2 || std::time::Instant::now() > deadline {
                break n;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let subjects: Vec<String> = notices
        .iter()
        .map(|m| head(m).lines().find(|l| l.starts_with("Subject: ")).unwrap_or_default().to_string())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.iter().any(|s| s.ends_with("queue busy.test/{default} entered backoff mode")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.ends_with("queue busy.test/{default} left backoff mode")), "{subjects:?}");
    assert!(notices.iter().all(|m| m["mail_from"] == "postmaster@ember.test"));
    // Nothing ever went to the sender whose source suppresses DSNs.
    assert!(!rx.events("message").iter().any(|m| m["rcpts"][0] == "quiet@example.net"));
}

#[test]
fn delay_dsns_for_notify_delay_and_bcc_upon_delivery_copies() {
    let dir = tempfile::tempdir().unwrap();
    // Turns count over both messages: each is deferred twice, a second apart, then accepted.
    let busy = [
        "451 4.2.0 mailbox busy",
        "451 4.2.0 mailbox busy",
        "451 4.2.0 mailbox busy",
        "451 4.2.0 mailbox busy",
        "250 2.1.5 ok",
    ];
    let script = json!({"rcpt_rules": [{"regex": "^slow@", "replies": busy}]});
    let rx = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<spool spool>\n</spool>\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n<domain delay.test>\n    retry-after 1s\n    retry-recipients-after 1s\n    notify-of-delay-every 1s\n    bcc-upon-delivery copies@archive.test\n</domain>\n",
        rx.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    let script = "import smtplib,sys\nh,p=sys.argv[1].rsplit(':',1)\ns=smtplib.SMTP(h,int(p))\ns.sendmail('asker@example.net',['slow@delay.test'],b'Subject: wait\\r\\n\\r\\nx\\r\\n',rcpt_options=['NOTIFY=DELAY,FAILURE'])\ns.sendmail('quiet@example.net',['slow@delay.test'],b'Subject: wait\\r\\n\\r\\nx\\r\\n')\ns.quit()";
    let out = crate::support::python(script, &[e.smtp().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Both messages end up delivered.
    e.wait_log_count("delivered ", 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (delays, copies) = loop {
        let all = rx.events("message");
        let delays: Vec<_> = all.iter().filter(|m| m["rcpts"][0] == "asker@example.net").cloned().collect();
        let copies: Vec<_> = all.iter().filter(|m| m["rcpts"][0] == "copies@archive.test").cloned().collect();
        if (!delays.is_empty() && copies.len() >= 2) || std::time::Instant::now() > deadline {
            break (delays, copies);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!delays.is_empty(), "no delay DSN");
    let data = delays[0]["data"].as_str().unwrap();
    assert!(data.contains("Action: delayed") && data.contains("Final-Recipient: rfc822;slow@delay.test"), "{data}");
    assert!(data.contains("Subject: Delivery Status Notification (Delay)"), "{data}");
    // The sender who did not ask for delay notices gets none.
    assert!(!rx.events("message").iter().any(|m| m["rcpts"][0] == "quiet@example.net"));
    // One copy per delivered message, from the null sender, with the message as delivered.
    assert_eq!(copies.len(), 2, "{copies:?}");
    for c in &copies {
        assert_eq!(c["mail_from"], "");
        assert!(c["data"].as_str().unwrap().contains("Subject: wait"), "{c}");
    }
}
