//! Delivery-side `<domain>` directives that change how a receiver's reply is understood, end to
//! end with the scripted receiver: mail goes in with swaks, outcomes are read from the
//! accounting file and the DSNs that reach the sender's mailbox.

use crate::support::dns;

use crate::support::peers::{Receiver, read_acct};
use crate::support::{Ember, swaks};
use serde_json::json;

fn inject(e: &Ember, from: &str, to: &str) {
    let server = e.smtp().to_string();
    let out = swaks(&["--server", server.as_str(), "--from", from, "--to", to]);
    assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
}

/// The senders' domain: DSNs about the tests' bounces wait there (a port where nobody listens).
const HOLD_SENDERS: &str = "<domain hold.test>\n    smtp-hosts [127.0.0.1]:9\n    retry-after 1h\n</domain>\n";

/// A `<domain>` block routing NAME to a loopback PORT, with `extra` directives (indented lines).
fn domain(name: &str, hosts: &str, extra: &str) -> String {
    format!("<domain {name}>\n    smtp-hosts {hosts}\n    retry-after 1h\n{extra}</domain>\n")
}

/// The accounting record of `kind` (`d`, `b`, `t`, `tq`) for `rcpt`.
fn record(e: &Ember, kind: &str, rcpt: &str) -> std::collections::HashMap<String, String> {
    let (_, rows) = read_acct(&e.path("acct.csv"));
    rows.iter()
        .find(|r| r["type"] == kind && r["rcpt"] == rcpt)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} record for {rcpt}: {rows:?}"))
}

fn log_lines(e: &Ember, needle: &str) -> Vec<String> {
    e.stderr.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
}

fn feeder(extra: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\nhost-name mx.ember.test\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b,t,tq\n</acct-file>\n{extra}"
    )
}

/// `smtp-553-means-invalid-mailbox`: a bare 553 (no enhanced code) is 5.1.1, a bad mailbox,
/// in the accounting record and the DSN under the default `yes`; under `no` it is 5.0.0.
#[test]
fn a_bare_553_means_a_bad_mailbox_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({"rcpt": "553 not here"}), dir.path(), None);
    let mailbox = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let config = feeder(&format!(
        "<domain yes.example>\n    smtp-hosts [127.0.0.1]:{rx}\n</domain>\n<domain no.example>\n    smtp-hosts [127.0.0.1]:{rx}\n    smtp-553-means-invalid-mailbox no\n</domain>\n<domain example.net>\n    smtp-hosts [127.0.0.1]:{mb}\n</domain>\n",
        rx = rx.addr.port(),
        mb = mailbox.addr.port()
    ));
    let e = Ember::start_in(dir, &config);
    inject(&e, "sender@example.net", "a@yes.example");
    inject(&e, "sender@example.net", "b@no.example");
    e.wait_log_count("bounced ", 2);
    // Both DSNs delivered to the sender's mailbox.
    e.wait_log_count("delivered ", 2);
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let bounce = |rcpt: &str| rows.iter().find(|r| r["type"] == "b" && r["rcpt"] == rcpt).expect("a b record").clone();
    let yes = bounce("a@yes.example");
    assert!(yes["dsnStatus"].starts_with("5.1.1"), "{yes:?}");
    assert_eq!(yes["bounceCat"], "bad-mailbox", "{yes:?}");
    assert_eq!(yes["dsnDiag"], "smtp;553 not here", "the receiver's text is kept: {yes:?}");
    let no = bounce("b@no.example");
    assert!(no["dsnStatus"].starts_with("5.0.0"), "{no:?}");
    assert_ne!(no["bounceCat"], "bad-mailbox", "{no:?}");
    let dsns = mailbox.events("message");
    let dsn_for = |rcpt: &str| {
        dsns.iter()
            .map(|m| m["data"].as_str().unwrap().to_string())
            .find(|d| d.contains(rcpt))
            .unwrap_or_else(|| panic!("no DSN about {rcpt}: {dsns:?}"))
    };
    assert!(dsn_for("a@yes.example").contains("Status: 5.1.1"));
    assert!(dsn_for("b@no.example").contains("Status: 5.0.0"));
}

// ---- local delivery types

/// `type file|pipe|discard` end to end: each recipient lands where its domain says (a
/// pickup-format file under `$domain/$user`, an mbox keeping the address's case, a command's
/// output), a pipe's sysexits status bounces with its meaning, `discard-as-bounce` bounces, and
/// every `d` record names its `dlvType`.
#[test]
fn local_delivery_types_write_files_run_commands_and_discard() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = feeder(&format!(
        "<domain files.example>\n    type file\n    file-format newfile-pickup\n    file-destination {root}/files/$domain/$user\n</domain>\n\
         <domain mbox.example>\n    type file\n    file-format append-mbox\n    file-destination {root}/mbox/$user\n    macro-variables-preserve-case yes\n</domain>\n\
         <domain pipe.example>\n    type pipe\n    command \"/bin/sh -c 'cat > $0/$1.out; test $1 != nobody || exit 67' {root} $user\"\n</domain>\n\
         <domain discard.example>\n    type discard\n</domain>\n\
         <domain dbounce.example>\n    type discard\n    discard-as-bounce yes\n</domain>\n\
         <domain sink.example>\n    type discard\n</domain>\n"
    ));
    let e = Ember::start_in(dir, &config);
    for to in [
        "Bob@Files.example",
        "Ann@Mbox.example",
        "Ann@Mbox.example",
        "OK@pipe.example",
        "nobody@pipe.example",
        "x@discard.example",
        "y@dbounce.example",
    ] {
        inject(&e, "sender@sink.example", to);
    }
    // Five deliveries, two bounces, and the two DSNs of those bounces discarded at sink.example.
    e.wait_log_count("bounced ", 2);
    e.wait_log_count("delivered ", 7);

    let files: Vec<_> =
        std::fs::read_dir(e.path("files/files.example/bob")).unwrap().map(|f| f.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let pickup = std::fs::read_to_string(&files[0]).unwrap();
    assert!(pickup.starts_with("x-sender: <sender@sink.example>\nx-receiver: <Bob@Files.example>\n"), "{pickup}");
    let mbox = std::fs::read_to_string(e.path("mbox/Ann")).unwrap();
    assert_eq!(
        mbox.matches("\nFrom sender@sink.example ").count() + usize::from(mbox.starts_with("From ")),
        2,
        "{mbox}"
    );
    assert!(std::fs::read_to_string(e.path("ok.out")).unwrap().contains("Subject"), "the pipe got the message");

    let (_, rows) = read_acct(&e.path("acct.csv"));
    let record = |kind: &str, rcpt: &str| {
        rows.iter()
            .find(|r| r["type"] == kind && r["rcpt"] == rcpt)
            .unwrap_or_else(|| panic!("no {kind} for {rcpt}: {rows:?}"))
            .clone()
    };
    for (rcpt, dlv) in [("Bob@Files.example", "file"), ("OK@pipe.example", "pipe"), ("x@discard.example", "discard")] {
        let d = record("d", rcpt);
        assert_eq!((d["dlvType"].as_str(), d["dsnAction"].as_str()), (dlv, "delivered"), "{d:?}");
    }
    let nobody = record("b", "nobody@pipe.example");
    assert!(nobody["dsnStatus"].starts_with("5.1.1"), "{nobody:?}");
    assert!(nobody["dsnDiag"].contains("exited with 67 (addressee unknown)"), "{nobody:?}");
    let discarded = record("b", "y@dbounce.example");
    assert!(discarded["dsnStatus"].starts_with("5.3.0"), "{discarded:?}");
    assert!(!rows.iter().any(|r| r["rcpt"] == "x@discard.example" && r["type"] == "b"), "{rows:?}");
}

/// The built-in blackhole sink (`dummy-smtp-*`): Ember delivers to its own sink, which offers
/// the extensions chosen (the `d` records' `dlvEsmtpAvailable` shows them), accepts and
/// discards both recipients, and counts the message in the inbound statistics under
/// `dummy-smtp-update-stats yes` (one message injected, two received).
#[test]
fn the_dummy_smtp_sink_accepts_everything_and_counts_it() {
    let port = crate::support::peers::free_port("127.0.0.1");
    let config = feeder(&format!(
        "dummy-smtp-ip 127.0.0.1\ndummy-smtp-port {port}\ndummy-smtp-has-chunking no\ndummy-smtp-has-verp yes\ndummy-smtp-update-stats yes\n\
         <domain load.example>\n    smtp-hosts [127.0.0.1]:{port}\n</domain>\n"
    ));
    let e = Ember::start(&config);
    let server = e.smtp().to_string();
    let out = swaks(&["--server", server.as_str(), "--from", "s@ex.com", "--to", "a@load.example,b@load.example"]);
    assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
    e.wait_log_count("delivered ", 2);
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let delivered: Vec<_> = rows.iter().filter(|r| r["type"] == "d").collect();
    assert_eq!(delivered.len(), 2, "{rows:?}");
    for d in delivered {
        assert_eq!(d["dlvDestinationIp"], "127.0.0.1", "{d:?}");
        let offered = &d["dlvEsmtpAvailable"];
        assert!(offered.contains("PIPELINING") && offered.contains("XVERP"), "{d:?}");
        assert!(!offered.contains("CHUNKING"), "dummy-smtp-has-chunking no: {d:?}");
    }
    let status = crate::support::http::get(e.mgmt.unwrap(), "/api/v1/status").json();
    let total_in = &status["data"]["traffic"]["total"]["in"];
    assert_eq!((total_in["msg"].as_u64(), total_in["rcp"].as_u64()), (Some(2), Some(4)), "{status}");
}

/// `bounce-upon-transfer-failure` and `assume-delivery-upon-data-termination-timeout`: a session
/// that breaks after the data went out is a deferral by default; the first bounces it (5.4.2), the
/// second counts a timeout waiting for the reply to the final dot as a delivery.
/// `log-transfer-failures` logs the failure where it is on.
#[test]
fn a_transfer_broken_after_the_data_is_retried_bounced_or_assumed_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let drops = Receiver::start("127.0.0.1", &json!({"misbehave": {"data_end": "drop"}}), dir.path(), None);
    let hangs = Receiver::start("127.0.0.1", &json!({"misbehave": {"data_end": "hang"}}), dir.path(), None);
    let (d, h) = (format!("[127.0.0.1]:{}", drops.addr.port()), format!("[127.0.0.1]:{}", hangs.addr.port()));
    let timeout = "    smtp-data-termination-timeout 1s\n";
    let config = feeder(
        &[
            domain("retry-drop.test", &d, ""),
            domain("bounce-drop.test", &d, "    bounce-upon-transfer-failure yes\n    log-transfer-failures yes\n"),
            domain("retry-hang.test", &h, timeout),
            domain(
                "assume-hang.test",
                &h,
                &format!("{timeout}    assume-delivery-upon-data-termination-timeout yes\n"),
            ),
            HOLD_SENDERS.to_string(),
        ]
        .concat(),
    );
    let e = Ember::start_in(dir, &config);
    for rcpt in ["a@retry-drop.test", "b@bounce-drop.test", "c@retry-hang.test", "d@assume-hang.test"] {
        inject(&e, "sender@hold.test", rcpt);
    }
    e.wait_log_count("deferred ", 2);
    e.wait_log_count("bounced ", 1);
    e.wait_log_count("delivered ", 1);
    assert!(record(&e, "t", "a@retry-drop.test")["dsnDiag"].contains("connection dropped"));
    let bounced = record(&e, "b", "b@bounce-drop.test");
    assert!(bounced["dsnStatus"].starts_with("5.4.2"), "{bounced:?}");
    assert!(bounced["dsnDiag"].contains("bounce-upon-transfer-failure"), "{bounced:?}");
    assert!(record(&e, "t", "c@retry-hang.test")["dsnDiag"].contains("timeout waiting for reply to end of data"));
    let assumed = record(&e, "d", "d@assume-hang.test");
    assert!(assumed["dsnDiag"].contains("assumed delivered"), "{assumed:?}");
    // Each receiver read the data of both its messages to the final dot: the failures came after.
    let at_end = |r: &Receiver| r.events("misbehave").iter().filter(|m| m["phase"] == "data_end").count();
    assert_eq!((at_end(&drops), at_end(&hangs)), (2, 2));
    let logged = log_lines(&e, "transfer failure:");
    assert_eq!(logged.len(), 1, "only bounce-drop.test logs its transfer failures: {logged:?}");
    assert!(logged[0].contains("554 5.4.2"), "{logged:?}");
}

/// `smtp-421-means-mx-unavailable`: under `yes` a 421 (to the greeting or to a command) sends the
/// message to the next MX host at once; under the default `no` a 421 greeting defers the queue
/// without trying the other hosts, and a 421 to a command defers its recipients.
/// `replace-smtp-421-service-response` keeps a 421's codes and replaces the receiver's text in
/// accounting. `log-resolution` logs where a queue's mail goes.
#[test]
fn a_421_moves_on_to_the_next_mx_or_defers_and_its_text_can_be_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let text = "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints";
    let refuses = Receiver::start("127.0.0.1", &json!({"rcpt": text}), dir.path(), None);
    let busy = Receiver::start("127.0.0.1", &json!({"greeting": "421 4.3.2 [TS02] too busy"}), dir.path(), None);
    let backup = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let port = |r: &Receiver| format!("[127.0.0.1]:{}", r.addr.port());
    let via = |first: &Receiver| format!("{};{}", port(first), port(&backup));
    let yes = "    smtp-421-means-mx-unavailable yes\n";
    let config = feeder(
        &[
            domain("next.test", &via(&refuses), &format!("{yes}    log-resolution yes\n")),
            domain("stay.test", &via(&refuses), ""),
            domain("scrub.test", &port(&refuses), "    replace-smtp-421-service-response yes\n"),
            domain("greet-next.test", &via(&busy), yes),
            domain("greet-stay.test", &via(&busy), ""),
            HOLD_SENDERS.to_string(),
        ]
        .concat(),
    );
    let e = Ember::start_in(dir, &config);
    for rcpt in ["a@next.test", "b@stay.test", "c@scrub.test", "d@greet-next.test", "e@greet-stay.test"] {
        inject(&e, "sender@hold.test", rcpt);
    }
    e.wait_log_count("delivered ", 2);
    e.wait_log_count("deferred ", 2);
    e.wait_log("queue=greet-stay.test");
    e.wait_log("queue failure: 421 4.3.2");
    let mut at_backup: Vec<String> =
        backup.events("message").iter().map(|m| m["rcpts"][0].as_str().unwrap().to_string()).collect();
    at_backup.sort();
    assert_eq!(at_backup, ["a@next.test", "d@greet-next.test"], "only the yes domains moved on");
    assert_eq!(record(&e, "d", "a@next.test")["dlvDestinationIp"], "127.0.0.1");
    assert!(record(&e, "t", "b@stay.test")["dsnDiag"].contains("[TS01]"), "the receiver's text by default");
    let scrubbed = record(&e, "t", "c@scrub.test");
    assert_eq!(scrubbed["dsnDiag"], "smtp;421 4.7.0 Service not available, closing transmission channel");
    let failure = log_lines(&e, "queue failure: 421 4.3.2");
    assert!(failure.iter().any(|l| l.contains("greet-stay.test")), "{failure:?}");
    let resolved = log_lines(&e, "resolved next.test");
    assert!(resolved.iter().any(|l| l.contains(&refuses.addr.to_string())), "{resolved:?}");
    assert!(log_lines(&e, "resolved stay.test").is_empty(), "log-resolution is per domain");
}

/// `bounce-upon-no-mx`: a domain that does not exist (NXDOMAIN from a real DNS server) waits in
/// retry mode by default, bounces at once under `yes`, and under a time bounces its mail once it
/// has been queued that long.
#[test]
fn a_domain_that_does_not_exist_bounces_as_bounce_upon_no_mx_says() {
    let dir = tempfile::tempdir().unwrap();
    // dnsmasq answers NXDOMAIN for every name under .test it has no record for.
    let dns = dns::Dnsmasq::start(&[]);
    let config = feeder(&format!(
        "name-server {}\n<domain bounce.test>\n    bounce-upon-no-mx yes\n</domain>\n<domain retry.test>\n    retry-after 1h\n    log-resolution yes\n</domain>\n<domain aged.test>\n    bounce-upon-no-mx 2s\n    retry-after 1s\n</domain>\n{HOLD_SENDERS}",
        dns.addr
    ));
    let e = Ember::start_in(dir, &config);
    for rcpt in ["a@bounce.test", "b@retry.test", "c@aged.test"] {
        inject(&e, "sender@hold.test", rcpt);
    }
    e.wait_log_count("bounced ", 2);
    let now_bounced = record(&e, "b", "a@bounce.test");
    assert!(now_bounced["dsnStatus"].starts_with("5.1.2"), "{now_bounced:?}");
    let aged = record(&e, "b", "c@aged.test");
    assert!(aged["dsnStatus"].starts_with("5.1.2"), "{aged:?}");
    // aged.test waited in retry mode before its mail was old enough.
    let deferrals = log_lines(&e, "queue failure: 451 4.1.2 bad destination system: no such domain");
    assert!(deferrals.iter().any(|l| l.contains("aged.test")), "{deferrals:?}");
    assert!(deferrals.iter().any(|l| l.contains("retry.test")), "{deferrals:?}");
    let (_, rows) = read_acct(&e.path("acct.csv"));
    assert!(!rows.iter().any(|r| r["type"] == "b" && r["rcpt"] == "b@retry.test"), "retry.test waits: {rows:?}");
    let tq = rows.iter().find(|r| r["type"] == "tq" && r["queue"].starts_with("retry.test")).expect("a tq record");
    assert!(tq["dsnStatus"].starts_with("4.1.2"), "{tq:?}");
    assert!(!log_lines(&e, "resolving retry.test failed: no such domain").is_empty());
}

/// `track-recipient-events` and `max-events-recorded`: the queue detail of the management API
/// lists a queue's last 50 recipient events only when it tracks them (PowerMTA's default: no),
/// and its last `max-events-recorded` errors (default 10).
#[test]
fn a_queue_keeps_the_recent_events_its_settings_ask_for() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({"rcpt": "451 4.2.1 mailbox busy"}), dir.path(), None);
    let to = format!("[127.0.0.1]:{}", rx.addr.port());
    let config = feeder(
        &[
            domain("tracked.test", &to, "    track-recipient-events yes\n    max-events-recorded 2\n"),
            domain("quiet.test", &to, ""),
            HOLD_SENDERS.to_string(),
        ]
        .concat(),
    );
    let e = Ember::start_in(dir, &config);
    for n in 0..3 {
        inject(&e, "sender@hold.test", &format!("r{n}@tracked.test"));
        inject(&e, "sender@hold.test", &format!("r{n}@quiet.test"));
    }
    e.wait_log_count("deferred ", 6);
    let mgmt = e.mgmt.expect("management address");
    let detail = |queue: &str| crate::support::http::get(mgmt, &format!("/api/v1/queues/detail?queue={queue}")).data();
    let count = |v: &serde_json::Value, list: &str| v[list].as_array().map_or(0, Vec::len);
    let tracked = detail("tracked.test");
    assert_eq!((count(&tracked, "events"), count(&tracked, "errors")), (3, 2), "{tracked}");
    assert_eq!(tracked["events"][0]["kind"], "deferred");
    let quiet = detail("quiet.test");
    assert_eq!((count(&quiet, "events"), count(&quiet, "errors")), (0, 3), "{quiet}");
}

/// `log-data` and `log-tls`, in a `<source>` (what Ember receives) and in a `<domain>` (what a
/// queue sends): the message's lines and each TLS handshake go to the log, only where on.
#[test]
fn log_data_and_log_tls_log_the_data_and_handshakes_where_they_are_on() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = dir.path().join("server.pem");
    std::fs::write(&pem, format!("{}{}", ck.cert.pem(), ck.key_pair.serialize_pem())).unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), Some(&pem));
    let to = format!("[127.0.0.1]:{}", rx.addr.port());
    let config = format!(
        "smtp-listener 127.0.0.1:0\nhost-name mx.ember.test\nsmtp-server-tls-certificate server.pem\n<source 127.0.0.1>\n    always-allow-relaying yes\n    allow-starttls yes\n    log-data yes\n    log-tls yes\n</source>\n<spool spool>\n</spool>\n{}{}{HOLD_SENDERS}",
        domain("logged.test", &to, "    log-data yes\n    log-tls yes\n"),
        domain("quiet.test", &to, ""),
    );
    let e = Ember::start_in(dir, &config);
    let server = e.smtp().to_string();
    for (rcpt, subject) in [("a@logged.test", "Subject: first-subject"), ("b@quiet.test", "Subject: second-subject")] {
        let out = swaks(&["--server", &server, "--tls", "--from", "s@hold.test", "--to", rcpt, "--header", subject]);
        assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
    }
    e.wait_log_count("delivered ", 2);
    // Received: both messages, both handshakes (the source logs everything it receives).
    let received = log_lines(&e, "data: Subject: ");
    let from = |s: &str| received.iter().any(|l| l.contains("from 127.0.0.1:") && l.contains(s));
    assert!(from("first-subject") && from("second-subject"), "{received:?}");
    let handshakes = log_lines(&e, "TLS handshake done: TLSv1.");
    assert!(handshakes.iter().filter(|l| l.contains("peer=127.0.0.1:")).count() >= 2, "{handshakes:?}");
    // Sent: only logged.test's message and connection.
    let sent: Vec<&String> = received.iter().filter(|l| l.contains(" message ")).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("to 127.0.0.1 (127.0.0.1)") && sent[0].contains("first-subject"), "{sent:?}");
    let outbound: Vec<&String> = handshakes.iter().filter(|l| l.contains("queue=")).collect();
    assert_eq!(outbound.len(), 1, "{outbound:?}");
    assert!(outbound[0].contains("logged.test"), "{outbound:?}");
}

/// `retry-upon-new-mail`: a queue waiting in retry mode (here for an hour, after a 421 greeting)
/// is tried again as soon as a new message arrives for it; without it, the new message waits too.
#[test]
fn new_mail_ends_the_retry_wait_only_under_retry_upon_new_mail() {
    let dir = tempfile::tempdir().unwrap();
    let script = json!({"greeting": ["421 4.3.2 not now", "220 mx.test ready"]});
    let woken = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let sleeping = Receiver::start("127.0.0.1", &script, dir.path(), None);
    let port = |r: &Receiver| format!("[127.0.0.1]:{}", r.addr.port());
    let config = feeder(
        &[
            domain("woken.test", &port(&woken), "    retry-upon-new-mail yes\n"),
            domain("sleeping.test", &port(&sleeping), ""),
            HOLD_SENDERS.to_string(),
        ]
        .concat(),
    );
    let e = Ember::start_in(dir, &config);
    inject(&e, "s@hold.test", "first@sleeping.test");
    inject(&e, "s@hold.test", "first@woken.test");
    e.wait_log_count("queue failure: 421 4.3.2", 2);
    // The second messages: sleeping.test's is filed first, so once woken.test has delivered, the
    // manager has seen both.
    inject(&e, "s@hold.test", "second@sleeping.test");
    inject(&e, "s@hold.test", "second@woken.test");
    e.wait_log_count("delivered ", 2);
    let mut got: Vec<String> =
        woken.events("message").iter().map(|m| m["rcpts"][0].as_str().unwrap().to_string()).collect();
    got.sort();
    assert_eq!(got, ["first@woken.test", "second@woken.test"]);
    assert_eq!(sleeping.events("connect").len(), 1, "sleeping.test still waits for its retry time");
    assert!(sleeping.events("message").is_empty());
}

/// The most connections the receiver had busy at once, each counted from its accept until just
/// before it answered its last message (`data_end_delay` later): within the time Ember holds the
/// connection's slot.
const DATA_END_DELAY: f64 = 0.3;

fn most_at_once(rx: &Receiver) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    let messages = rx.events("message");
    for c in rx.events("connect") {
        let last = messages.iter().filter(|m| m["conn"] == c["conn"]).filter_map(|m| m["t"].as_f64()).reduce(f64::max);
        if let Some(last) = last {
            edges.push((c["t"].as_f64().unwrap(), 1));
            edges.push((last + DATA_END_DELAY - 0.05, -1));
        }
    }
    edges.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut open, mut most) = (0, 0);
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    most as usize
}

/// `mx-connection-limit` and `ip-connection-limit` cap connections across queues: two domains
/// whose mail goes to the same (slow) MX host would each open a connection; under a cap of 1 on
/// the host name, then on its address block, the second queue waits for the first's slot.
///
/// The mail is held (a paused job) until both queues have it, then released at once: both
/// queues want a connection at the same moment, so without a cap they overlap however slowly the
/// injection ran.
#[test]
fn connection_limits_per_mx_and_per_ip_block_hold_across_queues() {
    for limit in ["", "mx-connection-limit 127.0.0.* 1\n", "ip-connection-limit 127.0.0.0/8 1\n"] {
        let dir = tempfile::tempdir().unwrap();
        let rx = Receiver::start("127.0.0.1", &json!({"data_end_delay": DATA_END_DELAY}), dir.path(), None);
        let to = format!("[127.0.0.1]:{}", rx.addr.port());
        let config = feeder(&[limit.to_string(), domain("one.test", &to, ""), domain("two.test", &to, "")].concat())
            .replace("always-allow-relaying yes\n", "always-allow-relaying yes\n    process-x-job yes\n");
        let e = Ember::start_in(dir, &config);
        assert!(e.live_cli(&["pause", "job", "together"]).status.success());
        let server = e.smtp().to_string();
        for n in 0..2 {
            for d in ["one.test", "two.test"] {
                let to = format!("r{n}@{d}");
                let args =
                    ["--server", server.as_str(), "--from", "s@hold.test", "--to", &to, "--header", "X-Job: together"];
                let out = swaks(&args);
                assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
            }
        }
        let out = e.live_cli(&["resume", "job", "together"]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("4 recipients released"), "{said}");
        e.wait_log_count("delivered ", 4);
        let most = most_at_once(&rx);
        if limit.is_empty() {
            assert_eq!(most, 2, "without a cap both queues connect at once");
        } else {
            assert_eq!(most, 1, "{limit}");
        }
    }
}
