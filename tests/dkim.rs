//! DKIM signing, end to end: keys made with `ember dkim keygen`, messages injected over SMTP,
//! captured whole by the scripted receiver and verified by dkimpy (pynacl for Ed25519) with the
//! TXT records keygen printed. Also: keys that cannot be used stop `ember run`, a reload and
//! `check-config`, and sanitising happens before signing.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::support::peers::Receiver;
use crate::support::{EMBER, Ember, python, support_dir};
use serde_json::{Value, json};

/// Runs `ember dkim keygen` into `dir`; returns (file name, TXT record name, TXT value).
fn keygen(dir: &Path, selector: &str, domain: &str, algorithm: &str) -> (String, String, String) {
    let file = format!("{selector}.{domain}.pem");
    let out = Command::new(EMBER)
        .args(["dkim", "keygen", "--selector", selector, "--domain", domain, "--algorithm", algorithm, "--out"])
        .arg(dir.join(&file))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "keygen: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.contains(" IN TXT ")).unwrap_or_else(|| panic!("no TXT record: {stdout}"));
    let (name, strings) = line.split_once(" IN TXT ").unwrap();
    // A zone-file value: quoted strings of at most 255 bytes, concatenated.
    let value: String = strings.split('"').skip(1).step_by(2).collect();
    assert!(value.starts_with("v=DKIM1; k="), "{value}");
    assert!(stdout.contains(&format!("domain-key {selector},{domain},")), "{stdout}");
    (file, name.trim_end_matches('.').to_string(), value)
}

/// Sends raw message bytes with Python's smtplib (8BITMIME, as a feeder of 8-bit mail would).
fn send(e: &Ember, from: &str, to: &str, message: &str) {
    let script = "import smtplib,sys\nh,p=sys.argv[1].rsplit(':',1)\ns=smtplib.SMTP(h,int(p))\ns.ehlo('feeder.test')\nr=s.sendmail(sys.argv[2],[sys.argv[3]],sys.argv[4].encode('utf-8'),mail_options=['BODY=8BITMIME'])\ns.quit()\nprint('sent',r)";
    let out = python(script, &[e.smtp().to_string(), from.into(), to.into(), message.into()]);
    assert!(out.status.success(), "smtplib: {}", String::from_utf8_lossy(&out.stderr));
}

/// dkimpy's verdict on every signature of `message`.
fn verify(dir: &Path, message: &str, records: &HashMap<String, String>) -> Vec<Value> {
    let msg = dir.join(format!("verify-{}.eml", rand_tag()));
    std::fs::write(&msg, message).unwrap();
    let rec = dir.join("records.json");
    std::fs::write(&rec, serde_json::to_string(records).unwrap()).unwrap();
    let out = Command::new("python3").arg(support_dir().join("dkim_verify.py")).arg(&msg).arg(&rec).output().unwrap();
    assert!(out.status.success(), "dkim_verify.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Waits for `count` messages at the receiver; the messages as received, by recipient.
fn received(r: &Receiver, count: usize) -> HashMap<String, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let messages = r.events("message");
        if messages.len() >= count {
            return messages
                .iter()
                .map(|m| (m["rcpts"][0].as_str().unwrap().to_string(), m["data"].as_str().unwrap().to_string()))
                .collect();
        }
        assert!(std::time::Instant::now() < deadline, "only {} of {count} messages arrived", messages.len());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const MESSAGE: &str = "From: \"News\" <news@example.com>\r\nTo: <rcpt@TO>\r\nSubject: plain\r\nDate: Sun, 29 Nov 2026 19:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\nHello.\r\nSecond line with trailing blanks   \r\n\r\n\r\n";

fn message(to: &str, extra_headers: &str, subject: &str) -> String {
    MESSAGE.replace("TO", to).replace("Subject: plain\r\n", &format!("Subject: {subject}\r\n{extra_headers}"))
}

#[test]
fn dkimpy_verifies_rsa_ed25519_eight_bit_folded_and_double_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let mut records = HashMap::new();
    let mut key = |sel: &str, domain: &str, alg: &str| {
        let (file, name, value) = keygen(&keys, sel, domain, alg);
        records.insert(name, value);
        format!("keys/{file}")
    };
    let rsa = key("s1", "example.com", "rsa");
    let ed = key("e1", "example.com", "ed25519");
    let esp = key("esp", "esp.example", "rsa");
    let vmta_key = key("v1", "example.com", "rsa");
    let receiver = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let port = receiver.addr.port();
    let config = format!(
        "smtp-listener 127.0.0.1:0
<source 127.0.0.1>
    always-allow-relaying yes
    process-x-virtual-mta yes
</source>
<spool spool>
</spool>
domain-key s1,example.com,{rsa}
domain-key e1,,$domain,{ed}
domain-key esp,esp.example,{esp}
<virtual-mta v1>
    domain-key v1,example.com,{vmta_key}
</virtual-mta>
<domain *>
    smtp-hosts [127.0.0.1]:{port}
    dkim-sign yes
</domain>
<domain ed.test>
    dkim-algorithm ed25519-sha256
</domain>
<domain simple.test>
    dkim-headers-canon simple
    dkim-body-canon simple
    dkim-add-timestamp yes
    dkim-expire-after 1d
    dkim-disallow-adding-headers subject,reply-to
    dkim-identity news@example.com
</domain>
<domain double.test>
    second-dkim-sign yes
    second-dkim-identity @esp.example
    second-dkim-algorithm rsa-sha256
</domain>
<domain clean.test>
    sanitize-headers yes
    dkim-headers x-mailer,bcc,x-job
</domain>
"
    );
    let e = Ember::start_in(dir, &config);
    let folded = "Subject: =?utf-8?q?caf=C3=A9?= and a long subject\r\n\tfolded onto a second line\r\n  and a third";
    let eight_bit = "X-Note: Grüße aus Köln — ünïcödé\r\nTo-Do: x\r\n";
    send(&e, "news@example.com", "a@rsa.test", &message("a@rsa.test", "", "rsa"));
    send(&e, "news@example.com", "b@ed.test", &message("b@ed.test", "", "ed25519"));
    send(
        &e,
        "news@example.com",
        "c@simple.test",
        &message("c@simple.test", eight_bit, "x").replace("Subject: x\r\n", &format!("{folded}\r\n")),
    );
    send(&e, "news@example.com", "d@double.test", &message("d@double.test", eight_bit, "double"));
    send(&e, "news@example.com", "f@rsa.test", &message("f@rsa.test", "X-Virtual-MTA: v1\r\n", "vmta key"));
    let messages = received(&receiver, 5);
    let dir = e.dir.path();

    let check = |rcpt: &str, expected: &[(&str, &str, &str)]| -> Vec<Value> {
        let msg = &messages[rcpt];
        let results = verify(dir, msg, &records);
        let got: Vec<(String, String, String)> = results
            .iter()
            .map(|r| {
                (r["d"].as_str().unwrap().into(), r["s"].as_str().unwrap().into(), r["a"].as_str().unwrap().into())
            })
            .collect();
        let want: Vec<(String, String, String)> =
            expected.iter().map(|(d, s, a)| (d.to_string(), s.to_string(), a.to_string())).collect();
        assert_eq!(got, want, "{rcpt}: {results:?}\n{msg}");
        for r in &results {
            assert_eq!(r["ok"], true, "{rcpt}: dkimpy refused {r}\n{msg}");
        }
        results
    };
    let rsa = check("a@rsa.test", &[("example.com", "s1", "rsa-sha256")]);
    // PowerMTA adds t= only with dkim-add-timestamp.
    assert_eq!(rsa[0]["t"], Value::Null);
    assert_eq!(rsa[0]["c"], "relaxed/relaxed");
    check("b@ed.test", &[("example.com", "e1", "ed25519-sha256")]);
    let simple = check("c@simple.test", &[("example.com", "s1", "rsa-sha256")]);
    assert_eq!(simple[0]["c"], "simple/simple");
    assert_eq!(simple[0]["i"], "news@example.com");
    let (t, x) = (simple[0]["t"].as_u64().unwrap(), simple[0]["x"].as_u64().unwrap());
    assert_eq!(x - t, 86_400, "dkim-expire-after 1d");
    // Over-signing: Subject is listed once more than it occurs and absent Reply-To once.
    let h: Vec<&str> = simple[0]["h"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(h.iter().filter(|n| n.eq_ignore_ascii_case("subject")).count(), 2, "{h:?}");
    assert!(h.iter().any(|n| n.eq_ignore_ascii_case("reply-to")), "{h:?}");
    // ... so a Subject or Reply-To added on the way breaks the signature.
    let tampered = format!("Reply-To: <evil@attacker.test>\r\n{}", messages["c@simple.test"]);
    assert_eq!(verify(dir, &tampered, &records)[0]["ok"], false);
    check("d@double.test", &[("example.com", "s1", "rsa-sha256"), ("esp.example", "esp", "rsa-sha256")]);
    // The virtual MTA's key wins over the global one for the same domain.
    check("f@rsa.test", &[("example.com", "v1", "rsa-sha256")]);
    // Bytes were kept: the 8-bit header arrived intact, so the signature covered what was sent.
    assert!(messages["d@double.test"].contains("Grüße aus Köln"));
}

#[test]
fn sanitising_happens_before_signing() {
    let dir = tempfile::tempdir().unwrap();
    let (file, name, value) = keygen(dir.path(), "s1", "example.com", "ed25519");
    let records = HashMap::from([(name, value)]);
    let receiver = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    process-x-job yes\n    retain-x-job yes\n</source>\n<spool spool>\n</spool>\ndomain-key s1,example.com,{file}\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    dkim-sign yes\n    dkim-algorithm ed25519-sha256\n    sanitize-headers yes\n    dkim-headers x-mailer,bcc,x-job,x-virtual-mta\n</domain>\n",
        receiver.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    let headers =
        "X-Mailer: PHPMailer 5.2\r\nBcc: <secret@example.org>\r\nX-Job: campaign-7\r\nX-Virtual-MTA: {default}\r\n";
    send(&e, "news@example.com", "a@clean.test", &message("a@clean.test", headers, "clean"));
    let messages = received(&receiver, 1);
    let msg = &messages["a@clean.test"];
    let head = &msg[..msg.find("\r\n\r\n").unwrap()];
    for gone in ["X-Mailer", "Bcc", "X-Job", "X-Virtual-MTA"] {
        assert!(!head.to_lowercase().contains(&format!("\n{}:", gone.to_lowercase())), "{gone} left in:\n{head}");
    }
    // Signed after the headers were removed: the signature does not name them and verifies.
    let results = verify(e.dir.path(), msg, &records);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["ok"], true, "{results:?}\n{msg}");
    let h = results[0]["h"].to_string().to_lowercase();
    assert!(!h.contains("x-mailer") && !h.contains("bcc") && !h.contains("x-job"), "{h}");
}

#[test]
fn unusable_keys_stop_run_reload_and_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _, _) = keygen(dir.path(), "s1", "example.com", "rsa");
    let (other, _, _) = keygen(dir.path(), "s1", "other.example", "ed25519");
    std::fs::write(dir.path().join("garbage.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        .unwrap();
    let base = "smtp-listener 127.0.0.1:0\n<spool spool>\n</spool>\nhttp-mgmt-port 127.0.0.1:0\n";
    let write = |name: &str, keyline: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{base}{keyline}\n")).unwrap();
        p
    };
    let cases = [
        ("garbage.conf", "domain-key s1,example.com,garbage.pem", "not a usable DKIM private key"),
        (
            "wrong-domain.conf",
            &format!("domain-key s1,example.com,{other}") as &str,
            "was made for other.example, not example.com",
        ),
    ];
    for (name, line, why) in cases {
        let path = write(name, line);
        let check = Command::new(EMBER).arg("check-config").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(&format!("{name}:5:1: error: domain-key: ")) && stderr.contains(why), "{stderr}");
        let run = Command::new(EMBER).args(["run", "--config"]).arg(&path).current_dir(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(why) && stderr.contains(&format!("{name}:5:1")), "{stderr}");
    }
    // A missing key: a warning for check-config, an error for check-config --strict and run.
    let path = write("missing.conf", "domain-key s1,example.com,nowhere.pem");
    let strict = Command::new(EMBER).args(["check-config", "--strict"]).arg(&path).output().unwrap();
    assert_eq!(strict.status.code(), Some(1));
    let run = Command::new(EMBER).args(["run", "--config"]).arg(&path).current_dir(dir.path()).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));

    // A reload to an unusable key is refused and the daemon keeps running on the old keys.
    let config = format!("smtp-listener 127.0.0.1:0\n<spool spool>\n</spool>\ndomain-key s1,example.com,{good}\n");
    let mut e = Ember::start_in(dir, &config);
    std::fs::write(&e.config, config.replace(&good, "garbage.pem")).unwrap();
    crate::support::signal(e.pid(), "HUP");
    e.wait_log("reload refused");
    assert!(e.log_contains("not a usable DKIM private key"));
    e.stop();
}

#[test]
fn body_limit_query_method_and_x_dkim_options_verify_with_dkimpy() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = HashMap::new();
    let (own, name, value) = keygen(dir.path(), "s1", "example.com", "rsa");
    records.insert(name, value);
    let (brand, name, value) = keygen(dir.path(), "s2", "brand.example", "ed25519");
    records.insert(name, value);
    let receiver = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n    process-x-dkim-options yes\n</source>\n<spool spool>\n</spool>\ndomain-key s1,example.com,{own}\ndomain-key s2,brand.example,{brand}\n<domain *>\n    smtp-hosts [127.0.0.1]:{}\n    dkim-sign yes\n    dkim-add-body-limit yes\n    dkim-query-method dns/txt\n</domain>\n",
        receiver.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    send(&e, "news@example.com", "a@plain.test", &message("a@plain.test", "", "plain"));
    let options = "X-DKIM-Options: d=brand.example; s=s2; a=ed25519-sha256; l=n\r\n";
    send(&e, "news@example.com", "b@options.test", &message("b@options.test", options, "options"));
    let messages = received(&receiver, 2);
    let signature = |msg: &str| -> String {
        let at = msg.find("DKIM-Signature:").expect("signed");
        let end = msg[at..].find("\r\n\r\n").map_or(msg.len(), |e| at + e);
        msg[at..end]
            .split("\r\n")
            .take_while(|l| l.starts_with("DKIM") || l.starts_with([' ', '\t']))
            .collect::<String>()
    };
    let plain = &messages["a@plain.test"];
    let results = verify(e.dir.path(), plain, &records);
    assert_eq!(
        (results.len(), &results[0]["ok"], &results[0]["d"]),
        (1, &json!(true), &json!("example.com")),
        "{results:?}\n{plain}"
    );
    let sig: String = signature(plain).split_whitespace().collect();
    assert!(sig.contains("q=dns/txt;"), "{sig}");
    // l= is the canonicalized body length: relaxed drops the trailing blanks and empty lines.
    let canonical = "Hello.\r\nSecond line with trailing blanks\r\n".len();
    assert!(sig.contains(&format!("l={canonical};")), "{sig}");

    // X-DKIM-Options chose the domain, selector and algorithm, turned l= off, and was removed.
    let opt = &messages["b@options.test"];
    let results = verify(e.dir.path(), opt, &records);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(
        (&results[0]["d"], &results[0]["s"], &results[0]["a"]),
        (&json!("brand.example"), &json!("s2"), &json!("ed25519-sha256"))
    );
    assert_eq!(results[0]["ok"], true, "{results:?}\n{opt}");
    let sig: String = signature(opt).split_whitespace().collect();
    assert!(!sig.contains(";l=") && sig.contains("q=dns/txt;"), "{sig}");
    assert!(!opt[..opt.find("\r\n\r\n").unwrap()].to_lowercase().contains("x-dkim-options"), "{opt}");
}
