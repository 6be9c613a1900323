//! `<pattern-list>` selection, end to end: a feeder's source names a pattern list; messages
//! injected with swaks and Python's smtplib land in the spool with the virtual MTA (and
//! recipient priority) the list chose, read back with `ember list --json` and `ember show message`.

use std::process::Command;

use crate::support::{EMBER, Ember, python, swaks};

const CONFIG: &str = r"
host-name mx.ember.test
smtp-listener 127.0.0.1:0
<virtual-mta transactional>
    smtp-source-host 127.0.0.2 tx.ember.test
</virtual-mta>
<virtual-mta promo-a>
    smtp-source-host 127.0.0.3 promo-a.ember.test
</virtual-mta>
<virtual-mta yahoo-ip>
    smtp-source-host 127.0.0.4 yahoo.ember.test
</virtual-mta>
<virtual-mta catch-all>
    smtp-source-host 127.0.0.5 any.ember.test
</virtual-mta>
<virtual-mta feeder-default>
    smtp-source-host 127.0.0.6 default.ember.test
</virtual-mta>
<virtual-mta-pool promo-pool>
    virtual-mta promo-a
</virtual-mta-pool>

<pattern-list by-recipient>
    rcpt-to /@yahoo\.example$/ virtual-mta=yahoo-ip
    * virtual-mta=promo-pool
</pattern-list>

<pattern-list selection>
    mail-from /^receipts@shop\.example$/ virtual-mta=transactional,recipient-priority=90
    header X-Campaign /^promo/ call-to:by-recipient
    rcpt-to /@vip\.example$/ virtual-mta=transactional
    header X-Priority /^1/ recipient-priority=80
    * virtual-mta=catch-all
</pattern-list>

<source 127.0.0.1>
    always-allow-relaying yes
    process-x-virtual-mta yes
    pattern-list selection
    default-virtual-mta feeder-default
</source>
<spool spool>
</spool>
";

/// Sends `(sender, recipients, extra headers)` in one smtplib session; prints each reply code.
const SEND: &str = r#"
import json, smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
s.ehlo("feeder.example")
for sender, rcpts, headers in json.loads(sys.argv[2]):
    msg = "From: " + sender + "\r\nSubject: pattern lists\r\n" + headers + "\r\nhello\r\n"
    try:
        s.sendmail(sender, rcpts, msg)
        print("accepted", sender)
    except smtplib.SMTPDataError as err:
        print("refused", sender, err.smtp_code, err.smtp_error.decode())
s.quit()
"#;

fn send(e: &Ember, messages: serde_json::Value) -> String {
    let out = python(SEND, &[e.smtp().to_string(), messages.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The spooled rows of one recipient of the message from `sender`.
fn row<'a>(spooled: &'a [serde_json::Value], sender: &str, rcpt: &str) -> &'a serde_json::Value {
    spooled
        .iter()
        .find(|m| m["sender"] == sender && m["rcpt"] == rcpt)
        .unwrap_or_else(|| panic!("no spooled <{sender}> -> <{rcpt}> in {spooled:?}"))
}

/// The envelope `ember show message` prints for a spooled row.
fn envelope(e: &Ember, row: &serde_json::Value) -> serde_json::Value {
    let out = e.cli(&["show", "message", row["id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

#[test]
fn the_feeders_pattern_list_chooses_vmta_and_priority_by_sender_recipient_and_header() {
    let e = Ember::start(CONFIG);
    let out = send(
        &e,
        serde_json::json!([
            // mail-from: receipts go out on the transactional VMTA, with a high priority.
            ["receipts@shop.example", ["buyer@gmail.example"], ""],
            // header, then call-to: the promo campaign is split by recipient domain...
            ["promo@shop.example", ["fan@yahoo.example"], "X-Campaign: promo-spring\r\n"],
            // ...and what the called list's rcpt-to does not take, its `*` sends to the pool.
            ["promo2@shop.example", ["fan@gmail.example"], "X-Campaign: promo-spring\r\n"],
            // rcpt-to with several recipients: the first recipient an rcpt-to entry matches
            // decides for the whole message (PowerMTA's caveat).
            ["news@shop.example", ["reader@gmail.example", "boss@vip.example"], ""],
            // An entry that sets only a priority ends the search: the VMTA is the source default.
            ["urgent@shop.example", ["ops@gmail.example"], "X-Priority: 1 (Highest)\r\n"],
            // Nothing else matches: the list's catch-all.
            ["hello@elsewhere.example", ["someone@gmail.example"], ""],
        ]),
    );
    assert_eq!(out.matches("accepted").count(), 6, "{out}");
    let spooled = e.spooled();
    assert_eq!(spooled.len(), 7, "{spooled:?}");

    let receipt = row(&spooled, "receipts@shop.example", "buyer@gmail.example");
    assert_eq!(receipt["vmta"], "transactional");
    assert_eq!(receipt["queue"], "gmail.example/transactional");
    assert_eq!(envelope(&e, receipt)["priority"], 90);

    let yahoo = row(&spooled, "promo@shop.example", "fan@yahoo.example");
    assert_eq!(yahoo["vmta"], "yahoo-ip");
    assert_eq!(yahoo["queue"], "yahoo.example/yahoo-ip");
    assert_eq!(envelope(&e, yahoo)["priority"], serde_json::Value::Null);
    assert_eq!(row(&spooled, "promo2@shop.example", "fan@gmail.example")["vmta"], "promo-pool");

    for rcpt in ["reader@gmail.example", "boss@vip.example"] {
        assert_eq!(row(&spooled, "news@shop.example", rcpt)["vmta"], "transactional", "{rcpt}");
    }

    let urgent = row(&spooled, "urgent@shop.example", "ops@gmail.example");
    assert_eq!(urgent["vmta"], "feeder-default");
    assert_eq!(envelope(&e, urgent)["priority"], 80);

    assert_eq!(row(&spooled, "hello@elsewhere.example", "someone@gmail.example")["vmta"], "catch-all");
}

#[test]
fn x_virtual_mta_still_wins_over_the_pattern_list() {
    let e = Ember::start(CONFIG);
    let out = swaks(&[
        "--server",
        &e.smtp().to_string(),
        "--from",
        "receipts@shop.example",
        "--to",
        "buyer@gmail.example",
        "--header",
        "X-Virtual-MTA: promo-a",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // The header names no VMTA that exists: refused, even though the pattern list would choose
    // one, because the header takes precedence.
    let out = swaks(&[
        "--server",
        &e.smtp().to_string(),
        "--from",
        "receipts@shop.example",
        "--to",
        "other@gmail.example",
        "--header",
        "X-Virtual-MTA: promo-b",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("550 5.3.5 specified VirtualMTA does not exist: \"promo-b\""), "{text}");

    let spooled = e.spooled();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let chosen = row(&spooled, "receipts@shop.example", "buyer@gmail.example");
    assert_eq!(chosen["vmta"], "promo-a");
    assert_eq!(chosen["queue"], "gmail.example/promo-a");
    // The header chooses the VMTA only: the pattern list's priority still applies.
    assert_eq!(envelope(&e, chosen)["priority"], 90);
}

#[test]
fn a_pattern_list_naming_an_unknown_vmta_is_refused_before_any_mail() {
    // The runtime refusal (550 5.3.5 naming the entry) is covered by the unit tests of
    // `ingress::finish`: a config whose pattern list names a VMTA that does not exist never runs,
    // so no message can reach it. The operator learns at start, at the entry's column.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ember.conf");
    let broken = CONFIG.replace("virtual-mta=catch-all", "virtual-mta=catch-al");
    std::fs::write(&path, &broken).unwrap();
    let out = Command::new(EMBER).args(["run", "--config"]).arg(&path).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = broken.lines().position(|l| l.contains("virtual-mta=catch-al")).unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "ember.conf:{line}:7: error: *: no <virtual-mta catch-al> or <virtual-mta-pool catch-al> is defined (did you mean \"catch-all\"?)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("configuration has errors; not starting"), "{stderr}");
}
