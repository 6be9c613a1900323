//! Delivery-side `<domain>` directives that change how a receiver's reply is understood, end to
//! end with the scripted receiver: mail goes in with swaks, outcomes are read from the
//! accounting file and the DSNs that reach the sender's mailbox.

mod support;

use serde_json::json;
use support::peers::{Receiver, read_acct};
use support::{Ember, swaks};

fn inject(e: &Ember, from: &str, to: &str) {
    let server = e.smtp().to_string();
    let out = swaks(&["--server", server.as_str(), "--from", from, "--to", to]);
    assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
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
    let port = support::peers::free_port("127.0.0.1");
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
    let status = support::http::get(e.mgmt.unwrap(), "/api/v1/status").json();
    let total_in = &status["data"]["traffic"]["total"]["in"];
    assert_eq!((total_in["msg"].as_u64(), total_in["rcp"].as_u64()), (Some(2), Some(4)), "{status}");
}
