//! One-click unsubscribe (RFC 8058), end to end: Ember adds `List-Unsubscribe` (https + mailto)
//! and `List-Unsubscribe-Post` with a signed per-recipient token before DKIM signing; curl POSTs
//! the link as a mailbox provider would, to Ember's HTTP listener without any `http-access`
//! right; the recipient is refused at RCPT afterwards. Tampered tokens get 4xx and change
//! nothing, a replay changes nothing, and the mailto link works through the report path.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::peers::{Receiver, read_acct};
use crate::support::{EMBER, Ember, support_dir};
use serde_json::{Value, json};

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "-o", "-", "-w", "\n%{http_code}"]).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn rcpt_code(e: &Ember, rcpt: &str) -> (u64, String) {
    let v = e.send_with_script("127.0.0.1", "news@example.com", &[rcpt], "Subject: again\r\n\r\nhi\r\n");
    (v["rcpt"][rcpt][0].as_u64().unwrap(), v["rcpt"][rcpt][1].as_str().unwrap().to_string())
}

fn f_records(e: &Ember) -> Vec<HashMap<String, String>> {
    if !e.path("acct.csv").exists() {
        return Vec::new();
    }
    read_acct(&e.path("acct.csv")).1.into_iter().filter(|r| r["type"] == "f").collect()
}

fn wait_f(e: &Ember, count: usize) -> Vec<HashMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = f_records(e);
        if f.len() >= count {
            return f;
        }
        assert!(Instant::now() < deadline, "fewer than {count} f records: {f:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The unfolded `List-Unsubscribe` value of a received message.
fn list_unsubscribe(message: &str) -> String {
    let head = &message[..message.find("\r\n\r\n").unwrap()];
    let start = head.find("List-Unsubscribe: ").expect("List-Unsubscribe header") + "List-Unsubscribe: ".len();
    let rest = &head[start..];
    let mut value = String::new();
    for (i, line) in rest.split("\r\n").enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        value.push_str(line.trim());
    }
    value
}

#[test]
fn one_click_post_suppresses_and_forged_tokens_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("s1.pem");
    let out = Command::new(EMBER)
        .args(["dkim", "keygen", "--selector", "s1", "--domain", "example.com", "--algorithm", "ed25519", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let txt: String = stdout.lines().find(|l| l.contains(" IN TXT ")).unwrap().split('"').skip(1).step_by(2).collect();
    let receiver = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = format!(
        "smtp-listener 127.0.0.1:0
http-mgmt-port 127.0.0.1:0
http-access 0/0 none
list-unsubscribe-secret unit-test-secret-0123456789
domain-key s1,example.com,s1.pem
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<spool spool>
</spool>
<acct-file acct.csv>
    records r,f
</acct-file>
<feedback-loop-processor>
    <address-list>
        address fbl@fbl.ember.test
    </address-list>
</feedback-loop-processor>
<domain *>
    smtp-hosts [127.0.0.1]:{}
    dkim-sign yes
    dkim-algorithm ed25519-sha256
    list-unsubscribe yes
    list-unsubscribe-url https://unsub.ember.test/unsubscribe
    list-unsubscribe-mailto unsub@fbl.ember.test
</domain>
",
        receiver.addr.port()
    );
    let e = Ember::start_in(dir, &config);
    let mgmt = e.mgmt.unwrap();
    let message = "From: <news@example.com>\r\nTo: list@x.test\r\nSubject: news\r\nList-Unsubscribe: <mailto:old@injector.test>\r\n\r\nhello\r\n";
    let v = e.send_with_script("127.0.0.1", "news@example.com", &["a@x.test", "b@x.test", "c@x.test"], message);
    assert_eq!(v["data"][0], 250, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let received: HashMap<String, String> = loop {
        let m = receiver.events("message");
        if m.len() >= 3 {
            break m
                .iter()
                .map(|m| (m["rcpts"][0].as_str().unwrap().into(), m["data"].as_str().unwrap().into()))
                .collect();
        }
        assert!(Instant::now() < deadline, "{} of 3 messages", m.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    // One message per recipient, each with its own token; the injector's header replaced.
    let mut tokens = HashMap::new();
    for rcpt in ["a@x.test", "b@x.test", "c@x.test"] {
        let msg = &received[rcpt];
        assert!(!msg.contains("old@injector.test"), "{msg}");
        assert!(msg.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), "{msg}");
        let value = list_unsubscribe(msg);
        let url = value.split(['<', '>']).find(|p| p.starts_with("https://")).unwrap().to_string();
        let token = url.strip_prefix("https://unsub.ember.test/unsubscribe/").unwrap().to_string();
        assert!(value.contains(&format!("<mailto:unsub@fbl.ember.test?subject=unsubscribe%20{token}>")), "{value}");
        // DKIM covers both headers (added before signing).
        let file = e.path(&format!("{rcpt}.eml"));
        std::fs::write(&file, msg).unwrap();
        std::fs::write(e.path("records.json"), json!({"s1._domainkey.example.com": txt}).to_string()).unwrap();
        let out = Command::new("python3")
            .arg(support_dir().join("dkim_verify.py"))
            .arg(&file)
            .arg(e.path("records.json"))
            .output()
            .unwrap();
        let results: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(results[0]["ok"], true, "{results}");
        let h = results[0]["h"].to_string().to_lowercase();
        assert!(h.contains("\"list-unsubscribe\"") && h.contains("\"list-unsubscribe-post\""), "{h}");
        tokens.insert(rcpt, token);
    }
    assert_ne!(tokens["a@x.test"], tokens["b@x.test"]);

    // The management API is closed to everyone (http-access 0/0 none) ...
    let (code, _) = curl(&[&format!("http://{mgmt}/api/v1/status")]);
    assert_eq!(code, 403);
    // ... but the one-click endpoint answers a provider's POST.
    let url = format!("http://{mgmt}/unsubscribe/{}", tokens["a@x.test"]);
    let (code, body) = curl(&["-X", "POST", "-d", "List-Unsubscribe=One-Click", &url]);
    assert_eq!((code, body.trim()), (200, "unsubscribed"));
    let (code, text) = rcpt_code(&e, "a@x.test");
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("suppression list \"global\""), "{text}");
    let f = wait_f(&e, 1);
    assert_eq!(
        (f[0]["feedbackType"].as_str(), f[0]["format"].as_str(), f[0]["rcpt"].as_str()),
        ("unsubscribe", "one-click", "a@x.test")
    );
    // A replay changes nothing.
    let (code, body) = curl(&["-X", "POST", "-d", "List-Unsubscribe=One-Click", &url]);
    assert_eq!((code, body.trim()), (200, "already unsubscribed"));
    // A GET (a link scanner) changes nothing either.
    let b_url = format!("http://{mgmt}/unsubscribe/{}", tokens["b@x.test"]);
    let (code, page) = curl(&[&b_url]);
    assert_eq!(code, 200);
    assert!(page.contains("<form method=post"), "{page}");

    // Tampered: b's payload with a's signature, one changed character, garbage.
    let (b_payload, _) = tokens["b@x.test"].split_once('.').unwrap();
    let (_, a_mac) = tokens["a@x.test"].split_once('.').unwrap();
    let mut flipped = tokens["b@x.test"].clone().into_bytes();
    flipped[5] = if flipped[5] == b'x' { b'y' } else { b'x' };
    for forged in [format!("{b_payload}.{a_mac}"), String::from_utf8(flipped).unwrap(), "garbage".to_string()] {
        let (code, body) =
            curl(&["-X", "POST", "-d", "List-Unsubscribe=One-Click", &format!("http://{mgmt}/unsubscribe/{forged}")]);
        assert_eq!(code, 400, "{forged}: {body}");
        assert!(body.contains("invalid unsubscribe link"), "{body}");
    }
    // A POST without the one-click body is not an unsubscribe.
    let (code, _) = curl(&["-X", "POST", &b_url]);
    assert_eq!(code, 400);
    assert_eq!(rcpt_code(&e, "b@x.test").0, 250);
    assert_eq!(f_records(&e).len(), 1);
    assert!(e.log_contains("signature does not verify"));

    // The mailto link: a message to the address with the token in its subject.
    let subject = format!("Subject: unsubscribe {}\r\n\r\n\r\n", tokens["c@x.test"]);
    let v = e.send_with_script("127.0.0.2", "c@x.test", &["unsub@fbl.ember.test"], &subject);
    assert_eq!(v["data"][0], 250, "{v}");
    assert_eq!(rcpt_code(&e, "c@x.test").0, 550);
    let f = wait_f(&e, 2);
    assert_eq!((f[1]["format"].as_str(), f[1]["rcpt"].as_str()), ("mailto", "c@x.test"));
}

#[test]
fn list_unsubscribe_without_a_secret_or_with_http_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.conf");
    std::fs::write(
        &path,
        "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 0\n<spool spool>\n</spool>\n<domain *>\n    list-unsubscribe yes\n    list-unsubscribe-url http://plain.example/u\n</domain>\n",
    )
    .unwrap();
    let run = Command::new(EMBER).args(["run", "--config"]).arg(&path).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("e.conf:6:5: list-unsubscribe: needs a global list-unsubscribe-secret"), "{stderr}");
    assert!(stderr.contains("e.conf:7:5: list-unsubscribe-url: RFC 8058 needs an https:// URL"), "{stderr}");
}
