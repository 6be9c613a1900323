//! MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) end to end: dnsmasq serves the MX, `_mta-sts` and
//! `_smtp._tls` records; real HTTPS policy hosts listen on 127.x:443 with certificates of a test
//! CA (trusted through `smtp-tls-ca-file`); scripted STARTTLS receivers play the MX hosts.
//! Inside an MX rollup each recipient keeps its own domain's policy; reports are DKIM-signed
//! (verified with dkimpy). Needs `dnsmasq`, root (port 443) and Python 3 with dkimpy.

use crate::support::dns;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Ember;
use crate::support::peers::{PolicyHost, Receiver, delivered_over_tls, wait_acct_record};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::json;

/// A test CA and the PEM files (chain and key) it issues.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Ember test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Ca { cert, key }
    }

    /// A PEM file with a certificate for `name` and its key.
    fn issue(&self, dir: &Path, name: &str) -> PathBuf {
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        path
    }
}

fn policy(mode: &str, mx: &[&str]) -> String {
    let mut p = format!("version: STSv1\r\nmode: {mode}\r\n");
    for m in mx {
        p.push_str(&format!("mx: {m}\r\n"));
    }
    p.push_str("max_age: 86400\r\n");
    p
}

fn send(e: &Ember, rcpt: &str) {
    let out = crate::support::swaks(&["--server", &e.smtp().to_string(), "--from", "s@sender.test", "--to", rcpt]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// One domain of the scenario: its MX receiver and its policy host (if any).
struct Site {
    rx: Receiver,
    _host: Option<PolicyHost>,
}

#[test]
fn mta_sts_enforce_testing_and_no_policy_and_tlsrpt_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new(d);
    let wrong = ca.issue(d, "wrong-name.test");
    // One port for every receiver (each on its own loopback address), as MX hosts share 25.
    let first = Receiver::start("127.0.41.2", &json!({}), d, Some(&ca.issue(d, "mx.good.test")));
    let port = first.addr.port();
    let receiver = |ip: &str, cert: &Path| Receiver::start_on(&format!("{ip}:{port}"), &json!({}), d, Some(cert));
    let host = |ip: &str, name: &str, action: &str, body: &str| {
        Some(PolicyHost::start(d, ip, &ca.issue(d, &format!("mta-sts.{name}")), action, body))
    };
    let good = Site { rx: first, _host: host("127.0.41.1", "good.test", "ok", &policy("enforce", &["mx.good.test"])) };
    let badcert = Site {
        rx: receiver("127.0.42.2", &wrong),
        _host: host("127.0.42.1", "badcert.test", "ok", &policy("enforce", &["*.badcert.test"])),
    };
    let outside = Site {
        rx: receiver("127.0.43.2", &ca.issue(d, "mx.outside.test")),
        _host: host("127.0.43.1", "outside.test", "ok", &policy("enforce", &["mx.elsewhere.test"])),
    };
    let _testing = Site {
        rx: receiver("127.0.44.2", &wrong),
        _host: host("127.0.44.1", "testing.test", "ok", &policy("testing", &["mx.testing.test"])),
    };
    let nopolicy = Site { rx: receiver("127.0.45.2", &wrong), _host: None };
    // Bad input: each is "no valid policy", so delivery is opportunistic (the certificates of
    // these MX hosts are wrong, which only a policy would refuse).
    let wrongcert_host = Site {
        rx: receiver("127.0.46.2", &wrong),
        _host: Some(PolicyHost::start(d, "127.0.46.1", &wrong, "ok", &policy("enforce", &["mx.x.test"]))),
    };
    let redirect = Site {
        rx: receiver("127.0.47.2", &wrong),
        _host: host("127.0.47.1", "redirect.test", "redirect", &policy("enforce", &["mx.x.test"])),
    };
    let huge = Site {
        rx: receiver("127.0.48.2", &wrong),
        _host: host("127.0.48.1", "huge.test", "huge", &policy("enforce", &["mx.x.test"])),
    };
    let malformed = Site {
        rx: receiver("127.0.49.2", &wrong),
        _host: host("127.0.49.1", "malformed.test", "ok", "version: STSv1\r\nmode: enforce\r\n"),
    };
    let badtxt = Site {
        rx: receiver("127.0.50.2", &wrong),
        _host: host("127.0.50.1", "badtxt.test", "ok", &policy("enforce", &["mx.x.test"])),
    };
    let hanging = Site {
        rx: receiver("127.0.51.2", &wrong),
        _host: host("127.0.51.1", "hang.test", "hang", &policy("enforce", &["mx.x.test"])),
    };
    let mut records = Vec::new();
    for (name, octet, txt) in [
        ("good.test", 41, Some("v=STSv1; id=1")),
        ("badcert.test", 42, Some("v=STSv1; id=1")),
        ("outside.test", 43, Some("v=STSv1; id=1")),
        ("testing.test", 44, Some("v=STSv1; id=1")),
        ("nopolicy.test", 45, None),
        ("wrongcert.test", 46, Some("v=STSv1; id=1")),
        ("redirect.test", 47, Some("v=STSv1; id=1")),
        ("huge.test", 48, Some("v=STSv1; id=1")),
        ("malformed.test", 49, Some("v=STSv1; id=1")),
        ("badtxt.test", 50, Some("v=STSv2; id=1")),
        ("hang.test", 51, Some("v=STSv1; id=1")),
    ] {
        records.push(format!("--mx-host={name},mx.{name},10"));
        records.push(format!("--host-record=mx.{name},127.0.{octet}.2"));
        records.push(format!("--host-record=mta-sts.{name},127.0.{octet}.1"));
        if let Some(txt) = txt {
            records.push(format!("--txt-record=_mta-sts.{name},{txt}"));
        }
    }
    records.push("--txt-record=_smtp._tls.testing.test,v=TLSRPTv1; rua=mailto:tlsrpt@reports.test".into());
    records.push("--txt-record=_smtp._tls.badcert.test,v=TLSRPTv1; rua=mailto:tlsrpt@reports.test".into());
    records.push("--mx-host=reports.test,mx.reports.test,10".into());
    records.push("--host-record=mx.reports.test,127.0.52.2".into());
    let reports = receiver("127.0.52.2", &ca.issue(d, "mx.reports.test"));
    let args: Vec<&str> = records.iter().map(String::as_str).collect();
    let dns = dns::Dnsmasq::start(&args);
    let config = format!(
        "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 127.0.0.1:0\nhttp-access 127.0.0.1 admin\nhost-name ember.test\npostmaster postmaster@ember.test\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<domain *>\n    default-smtp-port {port}\n    use-starttls yes\n    use-mta-sts yes\n    smtp-tls-ca-file {}\n    retry-after 1h\n</domain>\n<domain sender.test>\n    smtp-hosts [127.0.0.1]:9\n</domain>\n<spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b,t,tq\n</acct-file>\n",
        dns.addr,
        d.join("ca.pem").display()
    );
    let e = Ember::start(&config);
    for rcpt in [
        "a@good.test",
        "a@badcert.test",
        "a@outside.test",
        "a@testing.test",
        "a@nopolicy.test",
        "a@wrongcert.test",
        "a@redirect.test",
        "a@huge.test",
        "a@malformed.test",
        "a@badtxt.test",
        "a@hang.test",
    ] {
        send(&e, rcpt);
    }
    // enforce + a valid MX: delivered over TLS.
    let rec = wait_acct_record(&e, "d", "a@good.test");
    assert_eq!(delivered_over_tls(&good.rx, "a@good.test"), Some(true), "{rec:?}");
    // enforce + a certificate not valid for the MX name: nothing sent, the reason says why.
    let t = wait_acct_record(&e, "t", "a@badcert.test");
    assert!(t["dsnDiag"].contains("MTA-STS policy of badcert.test"), "{t:?}");
    assert!(t["dsnDiag"].to_lowercase().contains("certificate"), "{t:?}");
    assert!(badcert.rx.events("message").is_empty());
    // enforce + an MX the policy does not name: not even a connection.
    let t = wait_acct_record(&e, "t", "a@outside.test");
    assert!(t["dsnDiag"].contains("MTA-STS policy of outside.test: no MX host matches"), "{t:?}");
    assert!(outside.rx.events("connect").is_empty());
    // testing: delivered, the failure logged (and counted for TLS-RPT below).
    wait_acct_record(&e, "d", "a@testing.test");
    assert!(e.log_contains("MTA-STS policy of testing.test (testing mode, delivering anyway)"));
    // No policy, or no valid one: delivered as before (opportunistic TLS; with the CA file set,
    // a certificate for the wrong name means clear text, as without MTA-STS).
    for (site, rcpt) in [
        (&nopolicy, "a@nopolicy.test"),
        (&wrongcert_host, "a@wrongcert.test"),
        (&redirect, "a@redirect.test"),
        (&huge, "a@huge.test"),
        (&malformed, "a@malformed.test"),
        (&badtxt, "a@badtxt.test"),
        (&hanging, "a@hang.test"),
    ] {
        wait_acct_record(&e, "d", rcpt);
        assert!(delivered_over_tls(&site.rx, rcpt).is_some(), "{rcpt}");
    }
    for why in [
        "no valid MTA-STS policy for wrongcert.test: certificate of mta-sts.wrongcert.test not valid",
        "no valid MTA-STS policy for redirect.test: mta-sts.redirect.test answered HTTP 301",
        "no valid MTA-STS policy for huge.test: the policy from mta-sts.huge.test is larger than",
        "no valid MTA-STS policy for malformed.test: policy from mta-sts.malformed.test",
        "no valid MTA-STS policy for hang.test: no policy from mta-sts.hang.test within",
    ] {
        assert!(e.log_contains(why), "{why}: {:?}", e.stderr.lock().unwrap());
    }
    // What is in force and why a delivery was refused: explain, the API, /metrics.
    let explained = String::from_utf8_lossy(&e.live_cli(&["explain", "badcert.test"]).stdout).to_string();
    assert!(explained.contains("TLS policy: MTA-STS enforce (policy id 1, mx *.badcert.test"), "{explained}");
    assert!(explained.contains("MTA-STS policy of badcert.test: TLS handshake failed"), "{explained}");
    let detail = crate::support::http::get(e.mgmt.unwrap(), "/api/v1/queues/detail?queue=testing.test").data();
    assert!(detail["tls_policy"].as_str().unwrap().starts_with("MTA-STS testing"), "{detail}");
    let metrics = crate::support::http::get(e.mgmt.unwrap(), "/metrics").body;
    assert!(
        metrics.contains(r#"ember_tls_sessions_total{policy="sts",result="certificate-host-mismatch"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"ember_tls_sessions_total{policy="sts",result="success"} 1"#), "{metrics}");
    // Policies are cached on disk by domain.
    let cached = std::fs::read_to_string(e.path("spool/mta-sts/good.test.json")).unwrap();
    assert!(cached.contains("mx.good.test"), "{cached}");

    // TLS-RPT: `ember tlsrpt send` mails the domains that publish _smtp._tls their reports.
    let out = e.live_cli(&["tlsrpt", "send"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    while reports.events("message").len() < 2 {
        assert!(Instant::now() < deadline, "reports not delivered: {}", String::from_utf8_lossy(&out.stdout));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen = std::collections::HashMap::new();
    for m in reports.events("message") {
        let data = m["data"].as_str().unwrap();
        assert!(data.contains("application/tlsrpt+gzip"), "{data}");
        let report = mail_auth::report::tlsrpt::TlsReport::parse_rfc5322(data.as_bytes(), 1 << 20).expect("a report");
        let policy = &report.policies[0];
        seen.insert(policy.policy.policy_domain.clone(), policy.clone());
    }
    use mail_auth::report::tlsrpt::{PolicyType, ResultType};
    let testing = &seen["testing.test"];
    assert_eq!(testing.policy.policy_type, PolicyType::Sts);
    assert!(testing.policy.policy_string.iter().any(|l| l == "mode: testing"), "{testing:?}");
    assert_eq!(testing.summary.total_failure, 1, "{testing:?}");
    assert_eq!(testing.failure_details[0].result_type, ResultType::CertificateHostMismatch, "{testing:?}");
    let badcert = &seen["badcert.test"];
    assert!(badcert.summary.total_failure >= 1, "{badcert:?}");
    assert_eq!(badcert.summary.total_success, 0, "{badcert:?}");
    assert!(
        badcert.failure_details.iter().all(|f| f.result_type == ResultType::CertificateHostMismatch),
        "{badcert:?}"
    );
}

/// RFC 8461 §5.1: a cached policy stays in force while a new one (the TXT record's id changed)
/// cannot be fetched, also across a restart (the policy is on disk).
#[test]
fn a_cached_policy_stays_in_force_when_its_successor_cannot_be_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let ca = Ca::new(&d);
    let rx = Receiver::start("127.0.53.2", &json!({}), &d, Some(&ca.issue(&d, "wrong-name.test")));
    let records = |id: u32| {
        vec![
            "--mx-host=cached.test,mx.cached.test,10".to_string(),
            "--host-record=mx.cached.test,127.0.53.2".to_string(),
            "--host-record=mta-sts.cached.test,127.0.53.1".to_string(),
            format!("--txt-record=_mta-sts.cached.test,v=STSv1; id={id}"),
        ]
    };
    let config = |dns: &dns::Dnsmasq| {
        format!(
            "smtp-listener 127.0.0.1:0\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<domain *>\n    default-smtp-port {}\n    use-mta-sts yes\n    smtp-tls-ca-file {}\n    retry-after 1s\n    retry-recipients-after 1s\n</domain>\n<spool spool>\n</spool>\n",
            dns.addr,
            rx.addr.port(),
            d.join("ca.pem").display()
        )
    };
    let cert = ca.issue(&d, "mta-sts.cached.test");
    let host = PolicyHost::start(&d, "127.0.53.1", &cert, "ok", &policy("enforce", &["*.cached.test"]));
    let first = records(1);
    let dns1 = dns::Dnsmasq::start(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let mut e = Ember::start_in(dir, &config(&dns1));
    send(&e, "a@cached.test");
    e.wait_log("queue failure: 451 4.7.5 MTA-STS policy of cached.test: TLS handshake failed");
    e.stop();
    drop(host);
    drop(dns1);
    // A new id, and the policy host now redirects: no new policy can be had.
    let _broken = PolicyHost::start(&d, "127.0.53.1", &cert, "redirect", &policy("none", &[]));
    let second = records(2);
    let dns2 = dns::Dnsmasq::start(&second.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::write(&e.config, config(&dns2)).unwrap();
    let before = e.stderr.lock().unwrap().len();
    e.launch();
    send(&e, "b@cached.test");
    e.wait_log("answered HTTP 301 (redirects are not followed); the cached policy stays in force");
    // The cached enforce policy still refuses the MX host's certificate.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let refused = e.stderr.lock().unwrap()[before..]
            .iter()
            .any(|l| l.contains("queue failure: 451 4.7.5 MTA-STS policy of cached.test: TLS handshake failed"));
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", e.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rx.events("message").is_empty());
}

/// `ember dkim keygen` into `dir`: (file, TXT record name, TXT value).
fn dkim_key(dir: &Path, selector: &str, domain: &str) -> (PathBuf, String, String) {
    let file = dir.join(format!("{selector}.{domain}.pem"));
    let out = Command::new(crate::support::EMBER)
        .args(["dkim", "keygen", "--selector", selector, "--domain", domain, "--algorithm", "rsa", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "keygen: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.contains(" IN TXT ")).unwrap_or_else(|| panic!("no TXT record: {stdout}"));
    let (name, strings) = line.split_once(" IN TXT ").unwrap();
    let value: String = strings.split('"').skip(1).step_by(2).collect();
    (file, name.trim_end_matches('.').to_string(), value)
}

/// dkimpy's verdict on each DKIM signature of `message`, the public key given as `record`.
fn dkim_verify(dir: &Path, message: &str, record: (&str, &str)) -> Vec<serde_json::Value> {
    let (msg, rec) = (dir.join("report.eml"), dir.join("dkim-records.json"));
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&rec, json!({ record.0: record.1 }).to_string()).unwrap();
    let out =
        Command::new("python3").arg(crate::support::support_dir().join("dkim_verify.py")).arg(&msg).arg(&rec).output();
    let out = out.unwrap();
    assert!(out.status.success(), "dkim_verify.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// MX rollup puts five domains in one queue and on one connection to their shared MX host; each
/// recipient keeps its own domain's policy: enforce with an `mx` list that allows the host →
/// delivered; enforce naming other hosts, or whose own `smtp-tls-ca-file` does not trust the
/// host's certificate → deferred with a reason naming MTA-STS and the domain; testing →
/// delivered, the failure reported; no policy → delivered. The TLS-RPT reports are DKIM-signed
/// by the postmaster's domain although no queue has `dkim-sign yes`.
#[test]
fn each_recipient_keeps_its_own_domains_mta_sts_policy_in_a_rollup_and_reports_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new(d);
    // A second CA, the only one pinned.test trusts (its policy host's certificate is from it).
    let other_dir = d.join("other-ca");
    std::fs::create_dir(&other_dir).unwrap();
    let other = Ca::new(&other_dir);
    let shared = Receiver::start("127.0.71.2", &json!({}), d, Some(&ca.issue(d, "mx.shared-provider.test")));
    let port = shared.addr.port();
    let reports =
        Receiver::start_on(&format!("127.0.72.2:{port}"), &json!({}), d, Some(&ca.issue(d, "mx.reports.test")));
    let host = |octet: u8, domain: &str, ca: &Ca, ca_dir: &Path, body: &str| {
        PolicyHost::start(d, &format!("127.0.71.{octet}"), &ca.issue(ca_dir, &format!("mta-sts.{domain}")), "ok", body)
    };
    let _hosts = [
        host(11, "good.test", &ca, d, &policy("enforce", &["*.shared-provider.test"])),
        host(12, "strict.test", &ca, d, &policy("enforce", &["mx.elsewhere.test"])),
        host(13, "watch.test", &ca, d, &policy("testing", &["mx.elsewhere.test"])),
        host(14, "pinned.test", &other, &other_dir, &policy("enforce", &["*.shared-provider.test"])),
    ];
    let mut records = vec![
        "--host-record=mx.shared-provider.test,127.0.71.2".to_string(),
        "--mx-host=reports.test,mx.reports.test,10".into(),
        "--host-record=mx.reports.test,127.0.72.2".into(),
    ];
    for (domain, octet) in
        [("good.test", 11), ("strict.test", 12), ("watch.test", 13), ("pinned.test", 14), ("open.test", 0)]
    {
        records.push(format!("--mx-host={domain},mx.shared-provider.test,10"));
        if octet > 0 {
            records.push(format!("--host-record=mta-sts.{domain},127.0.71.{octet}"));
            records.push(format!("--txt-record=_mta-sts.{domain},v=STSv1; id=1"));
            records.push(format!("--txt-record=_smtp._tls.{domain},v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"));
        }
    }
    let dns = dns::Dnsmasq::start(&records.iter().map(String::as_str).collect::<Vec<_>>());
    let (key, key_name, key_value) = dkim_key(d, "rpt", "ember.test");
    let config = format!(
        "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 127.0.0.1:0\nhttp-access 127.0.0.1 admin\nhost-name ember.test\n\
         postmaster postmaster@ember.test\nname-server {}\ndomain-key rpt,ember.test,{}\n\
         <source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n\
         <mx-rollup-list>\n    mx *.shared-provider.test shared.rollup\n</mx-rollup-list>\n\
         <domain *>\n    default-smtp-port {port}\n    use-starttls yes\n    use-mta-sts yes\n    smtp-tls-ca-file {}\n    retry-after 1h\n</domain>\n\
         <domain pinned.test>\n    smtp-tls-ca-file {}\n</domain>\n\
         <spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,t\n</acct-file>\n",
        dns.addr,
        key.display(),
        d.join("ca.pem").display(),
        other_dir.join("ca.pem").display()
    );
    let e = Ember::start(&config);
    let rcpts = ["a@good.test", "a@strict.test", "a@watch.test", "a@pinned.test", "a@open.test"];
    let sent = e.send_with_script("127.0.0.1", "s@sender.test", &rcpts, "Subject: rollup\r\n\r\nhello\r\n");
    for rcpt in rcpts {
        assert_eq!(sent["rcpt"][rcpt][0], 250, "{rcpt}: {sent}");
    }
    // Delivered over TLS: the allowed MX, the testing policy, no policy.
    for rcpt in ["a@good.test", "a@watch.test", "a@open.test"] {
        let rec = wait_acct_record(&e, "d", rcpt);
        assert_eq!(rec["queue"], "shared.rollup/{default}", "{rec:?}");
        assert_eq!(delivered_over_tls(&shared, rcpt), Some(true), "{rcpt}");
    }
    // Deferred, each with its own domain's reason.
    let strict = wait_acct_record(&e, "t", "a@strict.test");
    assert!(strict["dsnStatus"].starts_with("4.7.5"), "{strict:?}");
    assert!(
        strict["dsnDiag"]
            .contains("MTA-STS policy of strict.test: mx.shared-provider.test is not in the policy's mx list"),
        "{strict:?}"
    );
    let pinned = wait_acct_record(&e, "t", "a@pinned.test");
    assert!(pinned["dsnStatus"].starts_with("4.7.5"), "{pinned:?}");
    assert!(
        pinned["dsnDiag"].contains("MTA-STS policy of pinned.test: mx.shared-provider.test: certificate not valid"),
        "{pinned:?}"
    );
    assert_eq!(delivered_over_tls(&shared, "a@strict.test"), None);
    assert_eq!(delivered_over_tls(&shared, "a@pinned.test"), None);
    assert!(e.log_contains("MTA-STS policy of watch.test (testing mode, delivering anyway)"));

    // TLS-RPT: each member domain's sessions on the rollup connection, in its own report,
    // signed for ember.test.
    let out = e.live_cli(&["tlsrpt", "send"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    while reports.events("message").len() < 4 {
        assert!(Instant::now() < deadline, "reports not delivered: {}", String::from_utf8_lossy(&out.stdout));
        std::thread::sleep(Duration::from_millis(50));
    }
    use mail_auth::report::tlsrpt::ResultType;
    let mut seen = std::collections::HashMap::new();
    for m in reports.events("message") {
        let data = m["data"].as_str().unwrap();
        let verdicts = dkim_verify(d, data, (&key_name, &key_value));
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert_eq!(
            (&verdicts[0]["d"], &verdicts[0]["s"], &verdicts[0]["ok"]),
            (&json!("ember.test"), &json!("rpt"), &json!(true)),
            "{verdicts:?}"
        );
        let report = mail_auth::report::tlsrpt::TlsReport::parse_rfc5322(data.as_bytes(), 1 << 20).expect("a report");
        let policy = report.policies[0].clone();
        seen.insert(policy.policy.policy_domain.clone(), policy);
    }
    let failed = |domain: &str, result: ResultType| {
        let p = &seen[domain];
        assert!(p.summary.total_failure >= 1 && p.summary.total_success == 0, "{domain}: {p:?}");
        assert!(p.failure_details.iter().all(|f| f.result_type == result), "{domain}: {p:?}");
    };
    failed("strict.test", ResultType::ValidationFailure);
    failed("watch.test", ResultType::ValidationFailure);
    failed("pinned.test", ResultType::CertificateNotTrusted);
    let good = &seen["good.test"];
    assert!(good.summary.total_success >= 1 && good.summary.total_failure == 0, "{good:?}");
}
