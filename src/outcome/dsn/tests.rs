//! Tests of DSN generation: every field checked after parsing with mail-parser.
use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::*;
use crate::message::{MessageId, Origin, Recipient};

const ORIGINAL: &[u8] = b"Received: from feeder.example.net (192.0.2.10) by mta1.example.com id 0000000000000001 for <kijitora@example.jp>\r\n\
From: \"Sender\" <sender@example.com>\r\n\
To: <kijitora@example.jp>\r\n\
Subject: Hello\r\n\
Message-ID: <orig-1@example.com>\r\n\
\r\n\
Body line one.\r\n\
Body line two.\r\n";

fn envelope() -> Envelope {
    let mut r = Recipient::new("kijitora@example.jp");
    r.orcpt = Some("rfc822;kijitora@example.jp".into());
    Envelope {
        id: MessageId(1),
        sender: "sender@example.com".into(),
        recipients: vec![r],
        vmta: Some("vmta1".into()),
        job_id: Some("job7".into()),
        env_id: Some("ENV-123".into()),
        ret: None,
        eight_bit: false,
        smtputf8: false,
        arrival_ms: 1_713_426_678_000,
        priority: None,
        dkim_options: None,
        origin: Origin {
            kind: "smtp".into(),
            helo: "feeder.example.net".into(),
            client_ip: Some("192.0.2.10".parse().unwrap()),
            ..Origin::default()
        },
    }
}

fn failed_rcpt() -> DsnRecipient {
    DsnRecipient {
        address: "kijitora@example.jp".into(),
        orcpt: Some("rfc822;kijitora@example.jp".into()),
        status: "5.1.1".into(),
        diag: "smtp;550 5.1.1 <kijitora@example.jp>... User Unknown".into(),
        remote_mta: Some("mx.example.jp (192.0.2.25)".into()),
        category: "bad-mailbox".into(),
        last_attempt: Some(1_713_426_698),
        will_retry_until: None,
    }
}

/// `Name: value` lines of a delivery-status body, in groups separated by empty lines.
fn groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = vec![Vec::new()];
    for line in text.split("\r\n") {
        if line.is_empty() {
            if !out.last().unwrap().is_empty() {
                out.push(Vec::new());
            }
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("not a field: {line:?}"));
        out.last_mut().unwrap().push((name.to_string(), value.trim().to_string()));
    }
    out.retain(|g| !g.is_empty());
    out
}

fn only_crlf(bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            assert_eq!(bytes.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF at {i}");
        }
    }
}

#[test]
fn failure_with_headers_returned() {
    let env = envelope();
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", ORIGINAL, 1_713_426_700);
    input.recipients.push(failed_rcpt());
    let bytes = build_dsn(&input);
    only_crlf(&bytes);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("boundary=\"report6620D10C@mta1.example.com\""), "{text}");

    let msg = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.subject(), Some("Delivery Status Notification (Failure)"));
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Mail Delivery Subsystem"));
    assert_eq!(from.address(), Some("mailer-daemon@mta1.example.com"));
    assert_eq!(msg.to().unwrap().first().unwrap().address(), Some("sender@example.com"));
    assert_eq!(msg.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
    assert_eq!(msg.date().unwrap().to_timestamp(), 1_713_426_700);
    assert!(msg.message_id().unwrap().ends_with("@mta1.example.com"));
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));

    // Root, text, delivery status, returned headers.
    assert_eq!(msg.parts.len(), 4);
    let human = &msg.parts[1];
    assert_eq!(human.content_type().unwrap().subtype(), Some("plain"));
    let PartType::Text(human_text) = &human.body else { panic!("{:?}", human.body) };
    assert!(human_text.starts_with("Hello, this is the mail server on mta1.example.com.\r\n\r\nI am sending you this message to inform you on the delivery status of a\r\nmessage you previously sent."));
    assert!(human_text.contains("as well as the headers of the original\r\nmessage."));
    assert!(human_text.contains("\r\n  <kijitora@example.jp>  delivery failed; will not continue trying\r\n"));

    let ds = &msg.parts[2];
    let ct = ds.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("delivery-status")));
    let ds = groups(std::str::from_utf8(ds.contents()).unwrap());
    let field = |g: &Vec<(String, String)>, n: &str| g.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        ds[0],
        vec![
            ("Original-Envelope-Id".into(), "ENV-123".into()),
            ("Reporting-MTA".into(), "dns;mta1.example.com".into()),
            ("X-PowerMTA-VirtualMTA".into(), "vmta1".into()),
            ("Received-From-MTA".into(), "dns;feeder.example.net (192.0.2.10)".into()),
            ("Arrival-Date".into(), "Thu, 18 Apr 2024 07:51:18 +0000".into()),
        ]
    );
    assert_eq!(ds.len(), 2);
    let r = &ds[1];
    assert_eq!(field(r, "Original-Recipient").as_deref(), Some("rfc822;kijitora@example.jp"));
    assert_eq!(field(r, "Final-Recipient").as_deref(), Some("rfc822;kijitora@example.jp"));
    assert_eq!(field(r, "Action").as_deref(), Some("failed"));
    assert_eq!(field(r, "Status").as_deref(), Some("5.1.1 (bad destination mailbox address)"));
    assert_eq!(field(r, "Remote-MTA").as_deref(), Some("dns;mx.example.jp (192.0.2.25)"));
    assert_eq!(field(r, "Diagnostic-Code").as_deref(), Some("smtp;550 5.1.1 <kijitora@example.jp>... User Unknown"));
    assert_eq!(field(r, "Last-Attempt-Date").as_deref(), Some("Thu, 18 Apr 2024 07:51:38 +0000"));
    assert_eq!(field(r, "Will-Retry-Until"), None);
    assert_eq!(field(r, "X-PowerMTA-BounceCategory").as_deref(), Some("bad-mailbox"));
    // RFC 3464 order, PowerMTA's category last.
    let names: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "Original-Recipient",
            "Final-Recipient",
            "Action",
            "Status",
            "Remote-MTA",
            "Diagnostic-Code",
            "Last-Attempt-Date",
            "X-PowerMTA-BounceCategory"
        ]
    );

    let returned = &msg.parts[3];
    assert_eq!(returned.content_type().unwrap().subtype(), Some("rfc822-headers"));
    let PartType::Text(headers) = &returned.body else { panic!("{:?}", returned.body) };
    assert!(headers.starts_with("Received: from feeder.example.net"));
    assert!(headers.contains("Subject: Hello\r\nMessage-ID: <orig-1@example.com>"));
    assert!(!headers.contains("Body line"), "{headers}");
}

#[test]
fn full_message_returned_for_ret_full() {
    let mut env = envelope();
    env.ret = Some(Ret::Full);
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", ORIGINAL, 1_713_426_700);
    input.recipients.push(failed_rcpt());
    let bytes = build_dsn(&input);
    only_crlf(&bytes);
    let msg = MessageParser::default().parse(&bytes).unwrap();
    let PartType::Text(human) = &msg.parts[1].body else { panic!() };
    assert!(human.contains("as well as the original message."));
    let returned = msg.parts.iter().find(|p| matches!(p.body, PartType::Message(_))).expect("message/rfc822 part");
    assert_eq!(returned.content_type().unwrap().subtype(), Some("rfc822"));
    let PartType::Message(inner) = &returned.body else { unreachable!() };
    assert_eq!(inner.subject(), Some("Hello"));
    assert_eq!(inner.message_id(), Some("orig-1@example.com"));
    assert_eq!(inner.body_text(0).as_deref(), Some("Body line one.\r\nBody line two.\r\n"));
}

#[test]
fn dsn_return_default_and_ret() {
    assert_eq!(resolve_ret(None, None), Ret::Headers);
    assert_eq!(resolve_ret(None, Some("system")), Ret::Headers);
    assert_eq!(resolve_ret(None, Some("headers")), Ret::Headers);
    assert_eq!(resolve_ret(None, Some("full")), Ret::Full);
    assert_eq!(resolve_ret(Some(Ret::Headers), Some("full")), Ret::Headers);
    assert_eq!(resolve_ret(Some(Ret::Full), None), Ret::Full);
}

#[test]
fn delay_notice() {
    let mut env = envelope();
    env.env_id = None;
    env.vmta = None;
    let mut input = DsnInput::new(DsnKind::Delay, &env, "mta1.example.com", ORIGINAL, 1_713_441_078);
    input.from_header = Some("\"Postmaster\" <postmaster@example.com>".into());
    input.recipients.push(DsnRecipient {
        address: "kijitora@example.jp".into(),
        status: "4.7.0".into(),
        diag: "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints".into(),
        remote_mta: Some("mta5.am0.yahoodns.net (192.0.2.30)".into()),
        category: "other".into(),
        last_attempt: Some(1_713_441_000),
        will_retry_until: Some(1_713_815_478),
        ..DsnRecipient::default()
    });
    let bytes = build_dsn(&input);
    let msg = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.subject(), Some("Delivery Status Notification (Delay)"));
    assert_eq!(msg.from().unwrap().first().unwrap().address(), Some("postmaster@example.com"));
    let PartType::Text(human) = &msg.parts[1].body else { panic!() };
    assert!(human.contains(
        "  <kijitora@example.jp>  delivery delayed; will continue trying until Mon, 22 Apr 2024 19:51:18 +0000\r\n"
    ));
    let ds = groups(std::str::from_utf8(msg.parts[2].contents()).unwrap());
    assert!(!ds[0].iter().any(|(k, _)| k == "Original-Envelope-Id"));
    assert!(ds[0].contains(&("X-PowerMTA-VirtualMTA".into(), "{default}".into())));
    let r = &ds[1];
    assert!(!r.iter().any(|(k, _)| k == "Original-Recipient"));
    assert!(r.contains(&("Action".into(), "delayed".into())));
    assert!(r.contains(&("Status".into(), "4.7.0 (other or undefined security status)".into())));
    // A diagnostic without a type gets smtp;.
    assert!(r.contains(&(
        "Diagnostic-Code".into(),
        "smtp;421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints".into()
    )));
    assert!(r.contains(&("Will-Retry-Until".into(), "Mon, 22 Apr 2024 19:51:18 +0000".into())));
}

#[test]
fn several_recipients_and_pickup_origin() {
    let mut env = envelope();
    env.origin = Origin { kind: "pickup".into(), ..Origin::default() };
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", ORIGINAL, 1_713_426_700);
    input.recipients.push(failed_rcpt());
    input.recipients.push(DsnRecipient {
        address: "tora@example.org".into(),
        status: "5.1.2".into(),
        diag: "smtp;550 5.1.2 no such domain".into(),
        category: "bad-domain".into(),
        ..DsnRecipient::default()
    });
    let bytes = build_dsn(&input);
    let msg = MessageParser::default().parse(&bytes).unwrap();
    let PartType::Text(human) = &msg.parts[1].body else { panic!() };
    assert!(human.contains("  <kijitora@example.jp>  delivery failed; will not continue trying\r\n  <tora@example.org>  delivery failed; will not continue trying\r\n"));
    let ds = groups(std::str::from_utf8(msg.parts[2].contents()).unwrap());
    assert_eq!(ds.len(), 3);
    assert!(!ds[0].iter().any(|(k, _)| k == "Received-From-MTA"));
    assert!(ds[2].contains(&("Status".into(), "5.1.2 (bad destination system: no such domain)".into())));
    assert!(!ds[2].iter().any(|(k, _)| k == "Remote-MTA" || k == "Last-Attempt-Date"));
}

#[test]
fn plain_text_format_is_the_delivery_status_alone() {
    let env = envelope();
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", ORIGINAL, 1_713_426_700);
    input.format = DsnFormat::PlainText;
    input.recipients.push(failed_rcpt());
    let bytes = build_dsn(&input);
    only_crlf(&bytes);
    let msg = MessageParser::default().parse(&bytes).unwrap();
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    assert_eq!(msg.parts.len(), 1);
    let body = msg.body_text(0).unwrap();
    let ds = groups(&body);
    assert_eq!(ds[0][0], ("Original-Envelope-Id".into(), "ENV-123".into()));
    assert!(ds[1].contains(&("X-PowerMTA-BounceCategory".into(), "bad-mailbox".into())));
    assert!(!body.contains("Hello, this is"));
    assert!(!body.contains("Subject: Hello"));
}

#[test]
fn header_injection_and_long_diagnostics() {
    let env = envelope();
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", ORIGINAL, 1_713_426_700);
    let long = format!("smtp;550 5.7.1 {}", "blocked ".repeat(200));
    input.recipients.push(DsnRecipient {
        address: "x@example.jp\r\nBcc: victim@example.org".into(),
        status: "5.7.1".into(),
        diag: long.clone(),
        category: "spam-related".into(),
        ..DsnRecipient::default()
    });
    let bytes = build_dsn(&input);
    only_crlf(&bytes);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(!text.contains("\r\nBcc:"));
    assert!(text.lines().all(|l| l.len() <= 1000), "a line is longer than 998 octets");
    let msg = MessageParser::default().parse(&bytes).unwrap();
    let ds = std::str::from_utf8(msg.parts[2].contents()).unwrap().replace("\r\n ", " ");
    assert!(ds.contains(long.trim_end()), "{ds}");
}

#[test]
fn utf8_addresses_use_the_global_types() {
    let mut env = envelope();
    env.smtputf8 = true;
    let original = "From: jörg@example.de\r\nSubject: grüße\r\n\r\nhallo\r\n".as_bytes();
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", original, 1_713_426_700);
    input.recipients.push(DsnRecipient {
        address: "用户@例子.广告".into(),
        status: "5.1.1".into(),
        category: "bad-mailbox".into(),
        ..DsnRecipient::default()
    });
    let bytes = build_dsn(&input);
    let msg = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.parts[1].content_type().unwrap().attribute("charset"), Some("utf-8"));
    assert_eq!(msg.parts[2].content_type().unwrap().subtype(), Some("global-delivery-status"));
    assert_eq!(msg.parts[3].content_type().unwrap().subtype(), Some("global-headers"));
    assert!(std::str::from_utf8(msg.parts[2].contents()).unwrap().contains("Final-Recipient: rfc822;用户@例子.广告"));
}

#[test]
fn boundary_never_occurs_in_the_content() {
    let env = envelope();
    let original = b"Subject: x\r\n\r\n--report6620D10C@mta1.example.com\r\n";
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", original, 1_713_426_700);
    input.ret = Ret::Full;
    input.recipients.push(failed_rcpt());
    let bytes = build_dsn(&input);
    let msg = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.content_type().unwrap().attribute("boundary"), Some("report6620D10C@mta1.example.com.1"));
    let PartType::Message(inner) = &msg.parts[3].body else { panic!("{:?}", msg.parts[3].body) };
    assert_eq!(inner.body_text(0).as_deref(), Some("--report6620D10C@mta1.example.com\r\n"));
}

#[test]
fn bare_lf_originals_are_returned_with_crlf() {
    let env = envelope();
    let original = b"From: a@example.com\nSubject: lf\n\nbody\n";
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", original, 1_713_426_700);
    input.recipients.push(failed_rcpt());
    let bytes = build_dsn(&input);
    only_crlf(&bytes);
    assert!(String::from_utf8(bytes).unwrap().contains("From: a@example.com\r\nSubject: lf\r\n\r\n--report"));
}

#[test]
fn who_gets_a_dsn() {
    let default = Notify::default();
    let failure_only = Notify { failure: true, ..Notify::default() };
    let delay_only = Notify { delay: true, ..Notify::default() };
    let success_only = Notify { success: true, ..Notify::default() };
    let never = Notify { never: true, ..Notify::default() };
    assert!(should_send("a@example.com", default, DsnKind::Failure));
    assert!(should_send("a@example.com", default, DsnKind::Delay));
    assert!(should_send("a@example.com", failure_only, DsnKind::Failure));
    assert!(!should_send("a@example.com", failure_only, DsnKind::Delay));
    assert!(should_send("a@example.com", delay_only, DsnKind::Delay));
    assert!(!should_send("a@example.com", delay_only, DsnKind::Failure));
    assert!(!should_send("a@example.com", success_only, DsnKind::Failure));
    assert!(!should_send("a@example.com", never, DsnKind::Failure));
    assert!(!should_send("a@example.com", never, DsnKind::Delay));
    assert!(!should_send("", default, DsnKind::Failure));
    assert!(!should_send("<>", failure_only, DsnKind::Failure));
}

#[test]
fn no_dsn_about_a_dsn() {
    // A DSN goes out from the null sender; when it fails in turn, its "sender" is empty.
    let env = envelope();
    let mut input = DsnInput::new(DsnKind::Failure, &env, "mta1.example.com", ORIGINAL, 1_713_426_700);
    input.recipients.push(failed_rcpt());
    let dsn = build_dsn(&input);
    let mut bounce_of_dsn = envelope();
    bounce_of_dsn.sender = String::new();
    bounce_of_dsn.recipients = vec![Recipient::new("sender@example.com")];
    assert!(MessageParser::default().parse(&dsn).unwrap().header_raw("Auto-Submitted").is_some());
    for r in &bounce_of_dsn.recipients {
        assert!(!should_send(&bounce_of_dsn.sender, r.notify, DsnKind::Failure));
        assert!(!should_send(&bounce_of_dsn.sender, r.notify, DsnKind::Delay));
    }
}

#[test]
fn delay_schedule() {
    assert!(!delay_notice_due(1000, 1000 + 4 * 3600 - 1, Some(4 * 3600)));
    assert!(delay_notice_due(1000, 1000 + 4 * 3600, Some(4 * 3600)));
    assert!(!delay_notice_due(1000, u64::MAX, None));
    let loaded = crate::config::load_str(
        "t.conf",
        "<domain a.example>\n notify-of-delay-every never\n dsn-format plain-text\n</domain>\n<domain b.example>\n notify-of-delay-every 30m\n</domain>\n",
        std::path::Path::new("."),
        crate::config::FileCheck::Warn,
    );
    let a = &loaded.config.domains[0].settings;
    let b = &loaded.config.domains[1].settings;
    assert_eq!(delay_every(a), None);
    assert_eq!(delay_every(b), Some(1800));
    assert_eq!(delay_every(&Settings::default()), Some(4 * 3600));
    assert_eq!(DsnFormat::from_settings(a), DsnFormat::PlainText);
    assert_eq!(DsnFormat::from_settings(b), DsnFormat::Standard);
}
