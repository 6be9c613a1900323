//! List hygiene, end to end: ARF and JMRP complaints and asynchronous DSNs injected over SMTP
//! (Python smtplib, from another address than the feeder, as an ISP would) to the processors'
//! addresses; the accounting file (read with Python's csv) gets `f`, `rb` and `rs` records, and
//! the global suppression list refuses the next message at RCPT, also after a restart.
//! Reports that cannot be read are logged and kept, never lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::Ember;
use crate::support::peers::{Sink, free_port, read_acct};
use serde_json::Value;

const ARF: &str = "From: <feedback@isp.example>\r\nTo: <fbl@fbl.ember.test>\r\nSubject: FW: offer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;\r\n\tboundary=\"part1\"\r\n\r\n--part1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n--part1\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <bounces@news.example>\r\nOriginal-Rcpt-To: <Victim@isp.example>\r\nReporting-MTA: dns; mail.isp.example\r\nSource-IP: 192.0.2.1\r\nReported-Domain: news.example\r\n\r\n--part1\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\nFrom: <news@news.example>\r\nTo: <victim@isp.example>\r\nSubject: spring offer\r\nX-Job: spring\r\n\r\nbuy\r\n--part1--\r\n";

const JMRP: &str = "From: staff@hotmail.example\r\nTo: fbl@fbl.ember.test\r\nSubject: complaint about message from 192.0.2.1\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"--jmrp\"\r\n\r\n----jmrp\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report for an email message received from IP 192.0.2.1.\r\n----jmrp\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\nX-HmXmrOriginalRecipient: <jmrp.victim@hotmail.example>\r\nX-SID-PRA: news@news.example\r\nFrom: news@news.example\r\nTo: jmrp.victim@hotmail.example\r\nSubject: offer\r\n\r\nbuy\r\n----jmrp--\r\n";

const DSN: &str = "From: MAILER-DAEMON@mx.remote.example\r\nTo: <bounce-42@bounce.ember.test>\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.example\r\nOriginal-Envelope-Id: env-42\r\n\r\nFinal-Recipient: rfc822; gone@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mailstore.remote.example\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@remote.example>: user unknown\r\n\r\nFinal-Recipient: rfc822; slow@remote.example\r\nAction: delayed\r\nStatus: 4.2.2\r\nDiagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@news.example\r\nTo: gone@remote.example\r\nSubject: offer\r\n\r\n--b1--\r\n";

fn config() -> String {
    "smtp-listener 127.0.0.1:0
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<source 0/0>
    always-allow-relaying no
</source>
<spool spool>
</spool>
<acct-file acct.csv>
    records r,b,f,rb,rs
</acct-file>
<feedback-loop-processor>
    <address-list>
        address fbl@fbl.ember.test
    </address-list>
</feedback-loop-processor>
<bounce-processor>
    <address-list>
        domain bounce.ember.test
    </address-list>
    suppress-hard-bounces yes
</bounce-processor>
"
    .to_string()
}

fn rcpt_reply(v: &Value, rcpt: &str) -> (u64, String) {
    (v["rcpt"][rcpt][0].as_u64().unwrap(), v["rcpt"][rcpt][1].as_str().unwrap().to_string())
}

/// Accounting rows of `kind`, waiting until there are at least `count`.
fn rows(e: &Ember, kind: &str, count: usize) -> Vec<HashMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if e.path("acct.csv").exists() {
            let (_, all) = read_acct(&e.path("acct.csv"));
            let found: Vec<_> = all.into_iter().filter(|r| r["type"] == kind).collect();
            if found.len() >= count {
                return found;
            }
        }
        assert!(Instant::now() < deadline, "fewer than {count} {kind} records");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_refused_as_suppressed(e: &Ember, rcpt: &str) {
    let v = e.send_with_script("127.0.0.1", "news@news.example", &[rcpt], "Subject: again\r\n\r\nhi\r\n");
    let (code, text) = rcpt_reply(&v, rcpt);
    assert_eq!(code, 550, "{rcpt}: {text}");
    assert!(text.contains(&format!("5.7.1 recipient is in suppression list \"global\": <{rcpt}>")), "{text}");
}

#[test]
fn complaints_suppress_the_recipient_globally_and_write_f_records() {
    let mut e = Ember::start(&config());
    // From 127.0.0.2, which may not relay: the processor address is accepted all the same.
    let v = e.send_with_script("127.0.0.2", "feedback@isp.example", &["fbl@fbl.ember.test"], ARF);
    assert_eq!(rcpt_reply(&v, "fbl@fbl.ember.test").0, 250, "{v}");
    assert_eq!(v["data"][0], 250, "{v}");
    assert!(v["data"][1].as_str().unwrap().contains("report processed"), "{v}");
    let f = rows(&e, "f", 1);
    assert_eq!(f[0]["rcpt"], "Victim@isp.example");
    assert_eq!(f[0]["feedbackType"], "abuse");
    assert_eq!(f[0]["format"], "arf");
    assert_eq!(f[0]["orig"], "bounces@news.example");
    assert_eq!(f[0]["reportingMta"], "mail.isp.example");
    assert_eq!(f[0]["dlvSourceIp"], "192.0.2.1");
    assert_eq!(f[0]["repSourceIp"], "127.0.0.2");
    assert_eq!(f[0]["userAgent"], "SomeGenerator/1.0");
    assert_refused_as_suppressed(&e, "victim@isp.example");

    let v = e.send_with_script("127.0.0.2", "staff@hotmail.example", &["fbl@fbl.ember.test"], JMRP);
    assert_eq!(v["data"][0], 250, "{v}");
    let f = rows(&e, "f", 2);
    assert_eq!(f[1]["format"], "jmrp");
    assert_eq!(f[1]["rcpt"], "jmrp.victim@hotmail.example");
    assert_refused_as_suppressed(&e, "jmrp.victim@hotmail.example");
    // Others still get through.
    let v = e.send_with_script("127.0.0.1", "news@news.example", &["happy@isp.example"], "Subject: x\r\n\r\nhi\r\n");
    assert_eq!(rcpt_reply(&v, "happy@isp.example").0, 250);

    // An address of the FBL domain that no processor lists is an ordinary (refused) relay.
    let v = e.send_with_script("127.0.0.2", "feedback@isp.example", &["typo@fbl.ember.test"], ARF);
    let (code, text) = rcpt_reply(&v, "typo@fbl.ember.test");
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("relaying to <typo@fbl.ember.test> denied"), "{text}");

    // Malformed ARF (no machine-readable part): accepted, logged with the reason, and kept.
    let broken = ARF.replace("message/feedback-report", "text/plain").replace("Victim@", "other@");
    let v = e.send_with_script("127.0.0.2", "feedback@isp.example", &["fbl@fbl.ember.test"], &broken);
    assert_eq!(v["data"][0], 250, "{v}");
    e.wait_log("ARF report without a message/feedback-report part");
    let kept: Vec<_> =
        std::fs::read_dir(e.path("spool/unprocessed-reports")).unwrap().map(|d| d.unwrap().path()).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap().replace("\r\n", "\n"), broken.replace("\r\n", "\n"));
    assert_eq!(rows(&e, "f", 2).len(), 2, "no record for the broken report");

    // The list survives a restart.
    e.stop();
    e.launch();
    assert_refused_as_suppressed(&e, "victim@isp.example");
    assert_refused_as_suppressed(&e, "jmrp.victim@hotmail.example");
}

#[test]
fn asynchronous_bounces_write_rb_and_rs_records_and_suppress_hard_bounces() {
    let e = Ember::start(&config());
    let v = e.send_with_script("127.0.0.2", "", &["bounce-42@bounce.ember.test"], DSN);
    assert_eq!(v["data"][0], 250, "{v}");
    let rb = rows(&e, "rb", 1);
    assert_eq!(rb.len(), 1);
    assert_eq!(rb[0]["rcpt"], "gone@remote.example");
    assert_eq!(rb[0]["orig"], "bounce-42@bounce.ember.test");
    assert_eq!(rb[0]["bounceCat"], "bad-mailbox");
    assert_eq!(rb[0]["dsnStatus"], "5.1.1 (bad destination mailbox address)");
    assert_eq!(rb[0]["dsnDiag"], "smtp;550 5.1.1 <gone@remote.example>: user unknown");
    assert_eq!(rb[0]["dsnMta"], "mailstore.remote.example");
    assert_eq!(rb[0]["dsnReportingMta"], "mx.remote.example");
    assert_eq!(rb[0]["envId"], "env-42");
    assert_eq!(rb[0]["format"], "dsn");
    let rs = rows(&e, "rs", 1);
    assert_eq!(rs[0]["rcpt"], "slow@remote.example");
    assert_eq!(rs[0]["dsnAction"], "delayed");
    // suppress-hard-bounces: the bad mailbox is refused from now on; the full one is not.
    assert_refused_as_suppressed(&e, "gone@remote.example");
    let v = e.send_with_script("127.0.0.1", "news@news.example", &["slow@remote.example"], "Subject: x\r\n\r\nhi\r\n");
    assert_eq!(rcpt_reply(&v, "slow@remote.example").0, 250);

    // A DSN with no recognisable recipient, and an auto-reply: logged and kept, not lost.
    let anonymous = DSN
        .replace("Final-Recipient: rfc822; gone@remote.example\r\n", "Final-Recipient: rfc822; undisclosed\r\n")
        .replace("Final-Recipient: rfc822; slow@remote.example\r\n", "");
    let v = e.send_with_script("127.0.0.2", "", &["bounce-43@bounce.ember.test"], &anonymous);
    assert_eq!(v["data"][0], 250, "{v}");
    e.wait_log("DSN names no recognisable recipient");
    let v = e.send_with_script(
        "127.0.0.2",
        "",
        &["bounce-44@bounce.ember.test"],
        "Subject: Out of office\r\n\r\nAway.\r\n",
    );
    assert_eq!(v["data"][0], 250, "{v}");
    e.wait_log("not a delivery status notification");
    assert_eq!(std::fs::read_dir(e.path("spool/unprocessed-reports")).unwrap().count(), 2);
    assert_eq!(rows(&e, "rb", 1).len(), 1);
}

#[test]
fn processors_deliver_unmatched_mail_and_with_deliver_matched_email_the_reports_too() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    // The processors' domains are routed to the mailbox that should see what they deliver.
    let config = config()
        .replace("records r,b,f,rb,rs\n", "records r,b,f,rb,rs\n    record-fields f *,jobId\n")
        .replace(
            "        address fbl@fbl.ember.test\n    </address-list>\n",
            "        address fbl@fbl.ember.test\n    </address-list>\n    deliver-matched-email yes\n    map-header-to-field f header_X-Job jobId\n",
        )
        .replace("    suppress-hard-bounces yes\n", "    suppress-hard-bounces yes\n    deliver-unmatched-email no\n")
        + &format!("<domain *>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n", sink.addr.port());
    let e = Ember::start_in(dir, &config);
    // A complaint is processed (f record with the job of the reported message) and delivered.
    let v = e.send_with_script("127.0.0.2", "feedback@isp.example", &["fbl@fbl.ember.test"], ARF);
    assert_eq!(v["data"][0], 250, "{v}");
    let f = rows(&e, "f", 1);
    assert_eq!(f[0]["jobId"], "spring", "map-header-to-field f header_X-Job jobId");
    e.wait_log_count("delivered ", 1);
    // Mail to the FBL address that is not a report: delivered (deliver-unmatched-email yes).
    let v = e.send_with_script(
        "127.0.0.2",
        "someone@isp.example",
        &["fbl@fbl.ember.test"],
        "Subject: hello postmaster\r\n\r\nhi\r\n",
    );
    assert_eq!(v["data"][0], 250, "{v}");
    e.wait_log_count("delivered ", 2);
    // An auto-reply to the bounce address: kept, not delivered (deliver-unmatched-email no); a
    // DSN is processed and not delivered (deliver-matched-email no, the default).
    let v =
        e.send_with_script("127.0.0.2", "", &["bounce-7@bounce.ember.test"], "Subject: Out of office\r\n\r\nAway.\r\n");
    assert_eq!(v["data"][0], 250, "{v}");
    e.wait_log("not a delivery status notification");
    let v = e.send_with_script("127.0.0.2", "", &["bounce-42@bounce.ember.test"], DSN);
    assert_eq!(v["data"][0], 250, "{v}");
    rows(&e, "rb", 1);
    // A last ordinary message proves the queue is drained up to here: nothing else was delivered.
    let v = e.send_with_script("127.0.0.1", "news@news.example", &["last@isp.example"], "Subject: last\r\n\r\nhi\r\n");
    assert_eq!(v["data"][0], 250, "{v}");
    e.wait_log_count("delivered ", 3);
    // Only mail queued for delivery gets an r record (written before the 250).
    let r = rows(&e, "r", 3);
    let to = |a: &str| r.iter().filter(|x| x["rcpt"] == a).count();
    assert_eq!((to("fbl@fbl.ember.test"), to("last@isp.example")), (2, 1), "{r:?}");
    assert_eq!(to("bounce-7@bounce.ember.test") + to("bounce-42@bounce.ember.test"), 0, "{r:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().any(|m| m.contains("Feedback-Type: abuse")), "the complaint was delivered");
    assert!(got.iter().any(|m| m.contains("Subject: hello postmaster")));
    assert!(!got.iter().any(|m| m.contains("Out of office") || m.contains("Reporting-MTA: dns; mx.remote.example")));
}

#[test]
fn email_patterns_read_reports_in_no_standard_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bounces.txt"),
        "# our relay's own bounce text\n(?m)^Could not deliver to <(?P<rcpt>[^>]+)>: (?P<status>\\d\\.\\d\\.\\d) (?P<diag>.*)$\n",
    )
    .unwrap();
    let config = config().replace(
        "    suppress-hard-bounces yes\n",
        "    suppress-hard-bounces yes\n    <email-patterns>\n        body-pattern-file bounces.txt\n        log-match-info yes\n    </email-patterns>\n",
    );
    let e = Ember::start_in(dir, &config);
    let text = "Subject: delivery failure\r\n\r\nCould not deliver to <lost@remote.example>: 5.1.1 no such user\r\n";
    let v = e.send_with_script("127.0.0.2", "", &["bounce-9@bounce.ember.test"], text);
    assert_eq!(v["data"][0], 250, "{v}");
    let rb = rows(&e, "rb", 1);
    assert_eq!(rb[0]["rcpt"], "lost@remote.example");
    assert_eq!(rb[0]["dsnStatus"], "5.1.1 (bad destination mailbox address)");
    assert_eq!(rb[0]["dsnDiag"], "no such user");
    assert_eq!(rb[0]["bounceCat"], "bad-mailbox");
    e.wait_log("bounce processor: ");
    e.wait_log("matched: rcpt=lost@remote.example");
    // suppress-hard-bounces applies as to a DSN.
    assert_refused_as_suppressed(&e, "lost@remote.example");
    // Text no pattern reads is still unmatched.
    let v = e.send_with_script("127.0.0.2", "", &["bounce-10@bounce.ember.test"], "Subject: hi\r\n\r\nAway.\r\n");
    assert_eq!(v["data"][0], 250, "{v}");
    e.wait_log("not a delivery status notification");
}
