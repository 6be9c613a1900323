//! DANE for SMTP (RFC 7672) end to end: a zone signed by `ldns-signzone` and served by `unbound`
//! as a validating resolver on loopback (tests/support/dnssec.rs), scripted STARTTLS receivers
//! on 127.0.81-86.x with certificates of a test CA, and the real ember binary asking unbound.
//! Needs `unbound`, `ldnsutils`, root (an MTA-STS policy host on port 443) and Python 3.

use crate::support::dnssec;

use std::path::{Path, PathBuf};

use crate::support::Ember;
use crate::support::peers::{PolicyHost, Receiver, delivered_over_tls, wait_acct_record};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::json;

/// The test CA, and certificates it issues.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate: its PEM file (certificate, chain, key) and its key.
struct Issued {
    pem: PathBuf,
    key: KeyPair,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Ember DANE test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `name`; `with_ca`: the CA certificate follows it in the chain sent.
    fn issue(&self, dir: &Path, name: &str, with_ca: bool) -> Issued {
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        let chain = if with_ca { self.cert.pem() } else { String::new() };
        std::fs::write(&pem, format!("{}{chain}{}", cert.pem(), key.serialize_pem())).unwrap();
        Issued { pem, key }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn send(e: &Ember, rcpt: &str) {
    let out = crate::support::swaks(&["--server", &e.smtp().to_string(), "--from", "s@sender.test", "--to", rcpt]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn dane_matching_mismatching_bogus_trust_anchor_insecure_and_over_mta_sts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new(d);
    let good_cert = ca.issue(d, "mx.good.dane.test", false);
    // One port for every receiver (each on its own loopback address), as MX hosts share 25;
    // TLSA records are at _PORT._tcp.HOST.
    let good = Receiver::start("127.0.81.2", &json!({}), d, Some(&good_cert.pem));
    let port = good.addr.port();
    let receiver = |ip: &str, cert: &Path| Receiver::start_on(&format!("{ip}:{port}"), &json!({}), d, Some(cert));
    let bad = receiver("127.0.82.2", &ca.issue(d, "mx.bad.dane.test", false).pem);
    let bogus_cert = ca.issue(d, "mx.bogus.dane.test", false);
    let bogus = receiver("127.0.83.2", &bogus_cert.pem);
    let ta = receiver("127.0.84.2", &ca.issue(d, "mx.ta.dane.test", true).pem);
    let sts_cert = ca.issue(d, "mx.sts.dane.test", false);
    let sts = receiver("127.0.85.2", &sts_cert.pem);
    let plain = receiver("127.0.86.2", &ca.issue(d, "mx.plain.test", false).pem);
    // MTA-STS for sts.dane.test names another MX host: were it applied, nothing would be sent.
    let _policy_host = PolicyHost::start(
        d,
        "127.0.85.1",
        &ca.issue(d, "mta-sts.sts.dane.test", false).pem,
        "ok",
        "version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.test\r\nmax_age: 86400\r\n",
    );

    let spki_hash = |k: &KeyPair| sha256_hex(&k.public_key_der());
    let wrong = KeyPair::generate().unwrap();
    let tlsa = |host: &str, usage: u8, hash: &str| format!("_{port}._tcp.{host} IN TLSA {usage} 1 1 {hash}\n");
    let mut records = String::new();
    for (label, octet) in [("good", 81), ("bad", 82), ("bogus", 83), ("ta", 84), ("sts", 85)] {
        records.push_str(&format!("{label} IN MX 10 mx.{label}.dane.test.\nmx.{label} IN A 127.0.{octet}.2\n"));
    }
    records.push_str(&tlsa("mx.good", 3, &spki_hash(&good_cert.key)));
    records.push_str(&tlsa("mx.bad", 3, &spki_hash(&wrong)));
    records.push_str(&tlsa("mx.bogus", 3, &spki_hash(&bogus_cert.key)));
    records.push_str(&tlsa("mx.ta", 2, &spki_hash(&ca.key)));
    records.push_str(&tlsa("mx.sts", 3, &spki_hash(&sts_cert.key)));
    records.push_str("mta-sts.sts IN A 127.0.85.1\n_mta-sts.sts IN TXT \"v=STSv1; id=1\"\n");
    let bogus_tlsa = format!("_{port}._tcp.mx.bogus.dane.test.");
    let signed = dnssec::Zone::signed(d, "dane.test", &records, &[(&bogus_tlsa, "TLSA")]);
    // An unsigned zone: its TLSA record (which matches nothing) is not to be trusted.
    let unsigned = dnssec::Zone::unsigned(
        d,
        "plain.test",
        &format!(
            "@ IN MX 10 mx.plain.test.\nmx IN A 127.0.86.2\n_{port}._tcp.mx IN TLSA 3 1 1 {}\n",
            spki_hash(&wrong)
        ),
    );
    let unbound = dnssec::Unbound::start(d, &[signed, unsigned]);

    let config = format!(
        "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 127.0.0.1:0\nhttp-access 127.0.0.1 admin\nhost-name ember.test\npostmaster postmaster@ember.test\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<domain *>\n    default-smtp-port {port}\n    use-starttls yes\n    use-dane yes\n    use-mta-sts yes\n    smtp-tls-ca-file {}\n    retry-after 1h\n</domain>\n<domain sender.test>\n    smtp-hosts [127.0.0.1]:9\n</domain>\n<spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b,t,tq\n</acct-file>\n",
        unbound.addr,
        d.join("ca.pem").display()
    );
    let e = Ember::start(&config);
    for rcpt in [
        "a@good.dane.test",
        "a@bad.dane.test",
        "a@bogus.dane.test",
        "a@ta.dane.test",
        "a@sts.dane.test",
        "a@plain.test",
    ] {
        send(&e, rcpt);
    }
    // 3 1 1 matching the server's key: delivered, over TLS.
    let rec = wait_acct_record(&e, "d", "a@good.dane.test");
    assert_eq!(delivered_over_tls(&good, "a@good.dane.test"), Some(true), "{rec:?}");
    // 2 1 1 naming the CA the server presents in its chain: delivered, over TLS.
    wait_acct_record(&e, "d", "a@ta.dane.test");
    assert_eq!(delivered_over_tls(&ta, "a@ta.dane.test"), Some(true));
    // A TLSA record matching nothing: not delivered, deferred in DANE's name.
    let t = wait_acct_record(&e, "t", "a@bad.dane.test");
    assert!(t["dsnDiag"].contains("4.7.5 DANE policy of bad.dane.test"), "{t:?}");
    assert!(t["dsnDiag"].contains("matches none of the TLSA records of mx.bad.dane.test"), "{t:?}");
    assert!(bad.events("message").is_empty());
    // A TLSA record whose signature does not verify: unbound says SERVFAIL, nothing is sent
    // (not even a connection), the delivery waits.
    let t = wait_acct_record(&e, "t", "a@bogus.dane.test");
    assert!(t["dsnDiag"].contains("4.7.5 DANE policy of bogus.dane.test"), "{t:?}");
    assert!(
        t["dsnDiag"].contains(&format!("TLSA lookup of {} failed: SERVFAIL", bogus_tlsa.trim_end_matches('.'))),
        "{t:?}"
    );
    assert!(bogus.events("connect").is_empty());
    assert!(unbound.log().contains("validation failure"), "{}", unbound.log());
    // DANE wins over the domain's MTA-STS policy, which would have refused the MX host.
    wait_acct_record(&e, "d", "a@sts.dane.test");
    assert_eq!(delivered_over_tls(&sts, "a@sts.dane.test"), Some(true));
    // An unsigned zone: its TLSA records are ignored, delivery is opportunistic as before.
    wait_acct_record(&e, "d", "a@plain.test");
    assert!(delivered_over_tls(&plain, "a@plain.test").is_some());

    // What is in force and why a delivery was refused: explain, the API, /metrics.
    let explained = String::from_utf8_lossy(&e.live_cli(&["explain", "bad.dane.test"]).stdout).to_string();
    assert!(explained.contains("TLS policy: DANE (mx.bad.dane.test: TLSA 3 1 1 "), "{explained}");
    assert!(explained.contains("DANE policy of bad.dane.test: TLS handshake failed"), "{explained}");
    let detail = crate::support::http::get(e.mgmt.unwrap(), "/api/v1/queues/detail?queue=bogus.dane.test").data();
    assert!(detail["tls_policy"].as_str().unwrap().contains("TLSA lookup of"), "{detail}");
    let detail = crate::support::http::get(e.mgmt.unwrap(), "/api/v1/queues/detail?queue=plain.test").data();
    let shown = detail["tls_policy"].as_str().unwrap();
    assert!(shown.contains("DANE not applicable: the MX records of plain.test are not DNSSEC-validated"), "{shown}");
    let metrics = crate::support::http::get(e.mgmt.unwrap(), "/metrics").body;
    for line in [
        r#"ember_tls_sessions_total{policy="tlsa",result="success"} 3"#,
        r#"ember_tls_sessions_total{policy="tlsa",result="tlsa-invalid"}"#,
        r#"ember_tls_sessions_total{policy="tlsa",result="dnssec-invalid"}"#,
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
}

/// Under MX rollup each member domain keeps its own DANE: the rollup's connection is judged per
/// member. Two rollups, one MX host each: `mx.ok-shared` presents the certificate its TLSA record
/// names, `mx.bad-shared` another one. Members in the signed zone have validated MX records, so
/// DANE governs them; the member in an unsigned zone has none, so its mail is opportunistic on
/// the very connection that the signed member's mail may not use.
#[test]
fn each_rollup_member_keeps_its_own_dane() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new(d);
    let ok_cert = ca.issue(d, "mx.ok-shared.dane.test", false);
    let ok = Receiver::start("127.0.87.2", &json!({}), d, Some(&ok_cert.pem));
    let port = ok.addr.port();
    let bad = Receiver::start_on(
        &format!("127.0.88.2:{port}"),
        &json!({}),
        d,
        Some(&ca.issue(d, "mx.bad-shared.dane.test", false).pem),
    );
    let spki_hash = |k: &KeyPair| sha256_hex(&k.public_key_der());
    let wrong = KeyPair::generate().unwrap();
    let records = format!(
        "mx.ok-shared IN A 127.0.87.2\nmx.bad-shared IN A 127.0.88.2\n\
         _{port}._tcp.mx.ok-shared IN TLSA 3 1 1 {}\n_{port}._tcp.mx.bad-shared IN TLSA 3 1 1 {}\n\
         one IN MX 10 mx.ok-shared.dane.test.\ntwo IN MX 10 mx.bad-shared.dane.test.\n",
        spki_hash(&ok_cert.key),
        spki_hash(&wrong)
    );
    let signed = dnssec::Zone::signed(d, "dane.test", &records, &[]);
    let unsigned = dnssec::Zone::unsigned(d, "open.test", "@ IN MX 10 mx.bad-shared.dane.test.\n");
    let unbound = dnssec::Unbound::start(d, &[signed, unsigned]);

    let config = format!(
        "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 127.0.0.1:0\nhttp-access 127.0.0.1 admin\nhost-name ember.test\npostmaster postmaster@ember.test\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<mx-rollup-list>\n    mx mx.ok-shared.dane.test ok.rollup\n    mx mx.bad-shared.dane.test bad.rollup\n</mx-rollup-list>\n<domain *>\n    default-smtp-port {port}\n    use-starttls yes\n    use-dane yes\n    use-mta-sts no\n    retry-after 1h\n</domain>\n<domain sender.test>\n    smtp-hosts [127.0.0.1]:9\n</domain>\n<spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b,t\n</acct-file>\n",
        unbound.addr
    );
    let e = Ember::start(&config);
    // One message to both members of the bad rollup: they part on its connection.
    let out = crate::support::swaks(&[
        "--server",
        &e.smtp().to_string(),
        "--from",
        "s@sender.test",
        "--to",
        "a@two.dane.test,b@open.test",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    send(&e, "c@one.dane.test");

    // The matching host: the signed member's mail goes, over TLS, through its rollup's queue.
    let rec = wait_acct_record(&e, "d", "c@one.dane.test");
    assert!(rec["queue"].starts_with("ok.rollup"), "{rec:?}");
    assert_eq!(delivered_over_tls(&ok, "c@one.dane.test"), Some(true));
    // The unsigned member's recipient is delivered on the rollup's connection...
    let rec = wait_acct_record(&e, "d", "b@open.test");
    assert!(rec["queue"].starts_with("bad.rollup"), "{rec:?}");
    assert_eq!(delivered_over_tls(&bad, "b@open.test"), Some(true));
    // ...while the signed member's, whose TLSA record the certificate does not match, waits in
    // DANE's name and never reaches the receiver.
    let t = wait_acct_record(&e, "t", "a@two.dane.test");
    assert!(t["dsnDiag"].contains("4.7.5 DANE policy of two.dane.test"), "{t:?}");
    assert!(t["dsnDiag"].contains("certificate"), "{t:?}");
    assert_eq!(delivered_over_tls(&bad, "a@two.dane.test"), None);
    // explain DOMAIN shows a member's own policy; the rollup queue's says it is per domain.
    let explained = String::from_utf8_lossy(&e.live_cli(&["explain", "two.dane.test"]).stdout).to_string();
    assert!(explained.contains("queue: bad.rollup"), "{explained}");
    assert!(explained.contains("TLS policy: DANE (mx.bad-shared.dane.test: TLSA 3 1 1 "), "{explained}");
    let detail = crate::support::http::get(e.mgmt.unwrap(), "/api/v1/queues/detail?queue=bad.rollup").data();
    assert!(detail["tls_policy"].as_str().unwrap().starts_with("per recipient domain"), "{detail}");
}
