//! Generated delivery status notifications (RFC 3464), in the shape PowerMTA gives them
//! (REFERENCE.md §3 "Generated DSNs"): a `multipart/report; report-type=delivery-status` with
//! boundary `report<HEX>@<host>`, the "Hello, this is the mail server on HOST" text, a
//! `message/delivery-status` part carrying `X-PowerMTA-VirtualMTA` and
//! `X-PowerMTA-BounceCategory`, then the returned headers (`text/rfc822-headers`, RET=HDRS) or
//! message (`message/rfc822`, RET=FULL). `dsn-format plain-text` sends the delivery-status
//! fields alone as `text/plain`.
//!
//! The message is written by hand rather than with mail-builder: its layout is fixed and short,
//! the boundary must have PowerMTA's form, header order and `CRLF` line ends must be exact, and
//! the `message/*` parts must never be transfer-encoded (RFC 2046 §5.2.1), while a builder picks
//! its own boundaries and encodings. The tests read every DSN back with mail-parser.
//!
//! Who gets a DSN is [`should_send`]'s answer: never the null sender (a DSN is itself sent from
//! `<>`, so no DSN is ever sent about a DSN), never a recipient that asked for none.
//!
//! Builds bytes only; sending them (from `<>`, to the envelope sender) is the queue's job.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Dir;
use crate::config::settings::Settings;
use crate::message::{Envelope, Notify, Ret};
use crate::outcome::status::status_text;
use crate::time;

/// What a DSN reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsnKind {
    /// `Action: failed`: the recipient bounced.
    Failure,
    /// `Action: delayed`: still trying (`notify-of-delay-every`).
    Delay,
}

/// `dsn-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DsnFormat {
    /// `multipart/report` with the text, the delivery status and the returned content.
    #[default]
    Standard,
    /// Only the delivery-status fields, as `text/plain`.
    PlainText,
}

impl DsnFormat {
    /// The queue's `dsn-format`.
    pub fn from_settings(settings: &Settings) -> DsnFormat {
        match settings.text(Dir::DsnFormat) {
            Some("plain-text") => DsnFormat::PlainText,
            _ => DsnFormat::Standard,
        }
    }
}

/// One recipient a DSN reports on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The address as given in RCPT TO (`Final-Recipient: rfc822;…`).
    pub address: String,
    /// ORCPT as given (`rfc822;x@y`), written as `Original-Recipient`.
    pub orcpt: Option<String>,
    /// The enhanced status code, `5.1.1`; its description is added. Empty: `5.0.0` for a
    /// failure, `4.0.0` for a delay.
    pub status: String,
    /// `smtp;550 5.1.1 no such user`; empty leaves `Diagnostic-Code` out. Text without a
    /// diagnostic type gets `smtp;`.
    pub diag: String,
    /// The remote host and address, `mx.example.com (192.0.2.1)`, written `dns;…`.
    pub remote_mta: Option<String>,
    /// The bounce category (`X-PowerMTA-BounceCategory`); empty leaves it out.
    pub category: String,
    /// Unix seconds of the last attempt (`Last-Attempt-Date`).
    pub last_attempt: Option<u64>,
    /// Unix seconds until which delivery goes on (`Will-Retry-Until`, delays only): arrival
    /// plus `bounce-after`.
    pub will_retry_until: Option<u64>,
}

/// Everything a DSN says. [`DsnInput::new`] fills what the envelope knows.
#[derive(Clone, Debug)]
pub struct DsnInput<'a> {
    pub kind: DsnKind,
    /// The reporting host (`Reporting-MTA`, the text, the boundary): the VMTA's `host-name`,
    /// else the global one.
    pub host_name: String,
    /// The virtual MTA, `{default}` when none (`X-PowerMTA-VirtualMTA`).
    pub vmta: String,
    /// `custom-dsn-from-header`; `None` gives `Mail Delivery Subsystem <mailer-daemon@HOST>`.
    pub from_header: Option<String>,
    /// The original envelope sender: the DSN's `To:` (and its envelope recipient).
    pub sender: String,
    /// ENVID (`Original-Envelope-Id`).
    pub env_id: Option<String>,
    /// The injecting client's HELO name and address (`Received-From-MTA`); left out when both
    /// are unknown (pickup).
    pub received_from_helo: String,
    pub received_from_ip: Option<IpAddr>,
    /// Unix seconds the message was accepted (`Arrival-Date`).
    pub arrival: u64,
    /// Unix seconds now (`Date:`).
    pub now: u64,
    /// What to return: RET, else `dsn-return-default` ([`resolve_ret`]).
    pub ret: Ret,
    pub format: DsnFormat,
    /// The failed or delayed recipients; one DSN may report several.
    pub recipients: Vec<DsnRecipient>,
    /// The original message as spooled (headers and body).
    pub original: &'a [u8],
}

impl<'a> DsnInput<'a> {
    /// A DSN about `envelope`'s message, with no recipients yet. `ret` follows the message's
    /// RET, else headers; callers with a `dsn-return-default` use [`resolve_ret`].
    pub fn new(kind: DsnKind, envelope: &Envelope, host_name: &str, original: &'a [u8], now: u64) -> DsnInput<'a> {
        DsnInput {
            kind,
            host_name: host_name.to_string(),
            vmta: envelope.vmta.clone().unwrap_or_else(|| "{default}".to_string()),
            from_header: None,
            sender: envelope.sender.clone(),
            env_id: envelope.env_id.clone(),
            received_from_helo: envelope.origin.helo.clone(),
            received_from_ip: envelope.origin.client_ip,
            arrival: envelope.arrival_ms / 1000,
            now,
            ret: resolve_ret(envelope.ret, None),
            format: DsnFormat::Standard,
            recipients: Vec::new(),
            original,
        }
    }
}

/// RET given with the message wins; else `dsn-return-default` (`headers`, `full`, `system`);
/// `system` (the default) returns headers, as PowerMTA does.
pub fn resolve_ret(ret: Option<Ret>, dsn_return_default: Option<&str>) -> Ret {
    match (ret, dsn_return_default) {
        (Some(r), _) => r,
        (None, Some(d)) if d.eq_ignore_ascii_case("full") => Ret::Full,
        _ => Ret::Headers,
    }
}

/// Whether a recipient gets a DSN of this kind: never for the null sender (which is what DSNs
/// are sent from, so never a DSN about a DSN), never with NOTIFY=NEVER; with NOTIFY given,
/// only when it names FAILURE or DELAY; without NOTIFY, for failures and delays.
pub fn should_send(sender: &str, notify: Notify, kind: DsnKind) -> bool {
    let sender = sender.trim();
    if sender.is_empty() || sender == "<>" || notify.never {
        return false;
    }
    if notify.is_default() {
        return true;
    }
    match kind {
        DsnKind::Failure => notify.failure,
        DsnKind::Delay => notify.delay,
    }
}

/// `notify-of-delay-every` in seconds; `None` for `never`.
pub fn delay_every(settings: &Settings) -> Option<u64> {
    settings.interval(Dir::NotifyOfDelayEvery).map(|d| d.as_secs()).filter(|s| *s > 0)
}

/// Whether a delay DSN is due: `every` seconds have passed since `since` (the arrival, or the
/// last delay DSN).
pub fn delay_notice_due(since: u64, now: u64, every: Option<u64>) -> bool {
    every.is_some_and(|e| now >= since.saturating_add(e))
}

/// The DSN message, CRLF line ends. It is 7-bit unless the addresses, diagnostics or returned
/// content are not (then it needs 8BITMIME, or SMTPUTF8 for UTF-8 addresses).
pub fn build_dsn(input: &DsnInput) -> Vec<u8> {
    let status = delivery_status(input);
    let returned = returned_content(input);
    let human = human_text(input);
    let boundary = boundary(input, &[status.as_bytes(), &returned.1, human.as_bytes()]);

    let mut out = Vec::with_capacity(2048 + returned.1.len());
    let push = |out: &mut Vec<u8>, line: &str| {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    let host = clean(&input.host_name);
    let from = match &input.from_header {
        Some(f) if !f.trim().is_empty() => clean(f),
        _ => format!("Mail Delivery Subsystem <mailer-daemon@{host}>"),
    };
    push(&mut out, &format!("Date: {}", time::rfc5322(input.now)));
    push(&mut out, &format!("From: {from}"));
    push(&mut out, &format!("To: <{}>", clean(&input.sender)));
    push(&mut out, &format!("Subject: {}", subject(input.kind)));
    push(&mut out, &format!("Message-ID: <{}@{host}>", unique_id(input.now)));
    push(&mut out, "Auto-Submitted: auto-replied");
    push(&mut out, "MIME-Version: 1.0");

    if input.format == DsnFormat::PlainText {
        push(&mut out, &format!("Content-Type: text/plain{}", charset(status.as_bytes())));
        push(&mut out, "");
        out.extend_from_slice(status.as_bytes());
        return out;
    }

    push(&mut out, "Content-Type: multipart/report; report-type=delivery-status;");
    push(&mut out, &format!("\tboundary=\"{boundary}\""));
    push(&mut out, "");
    push(&mut out, "");
    push(&mut out, &format!("--{boundary}"));
    push(&mut out, &format!("Content-Type: text/plain{}", charset(human.as_bytes())));
    push(&mut out, "");
    out.extend_from_slice(human.as_bytes());
    push(&mut out, "");
    push(&mut out, &format!("--{boundary}"));
    let global = !status.is_ascii();
    push(
        &mut out,
        if global { "Content-Type: message/global-delivery-status" } else { "Content-Type: message/delivery-status" },
    );
    push(&mut out, "");
    out.extend_from_slice(status.as_bytes());
    push(&mut out, "");
    push(&mut out, &format!("--{boundary}"));
    let (content_type, content) = returned;
    push(&mut out, &format!("Content-Type: {content_type}"));
    if !content.is_ascii() {
        push(&mut out, "Content-Transfer-Encoding: 8bit");
    }
    push(&mut out, "");
    out.extend_from_slice(&content);
    if !content.ends_with(b"\r\n") {
        push(&mut out, "");
    }
    push(&mut out, "");
    push(&mut out, &format!("--{boundary}--"));
    out
}

fn subject(kind: DsnKind) -> &'static str {
    match kind {
        DsnKind::Failure => "Delivery Status Notification (Failure)",
        DsnKind::Delay => "Delivery Status Notification (Delay)",
    }
}

fn charset(text: &[u8]) -> &'static str {
    if text.is_ascii() { "" } else { "; charset=utf-8" }
}

/// PowerMTA's text, word for word for failures.
fn human_text(input: &DsnInput) -> String {
    let mut text = format!(
        "Hello, this is the mail server on {}.\r\n\r\n\
         I am sending you this message to inform you on the delivery status of a\r\n\
         message you previously sent.  Immediately below you will find a list of\r\n\
         the affected recipients;  also attached is a Delivery Status Notification\r\n",
        clean(&input.host_name)
    );
    text.push_str(match input.ret {
        Ret::Headers => "(DSN) report in standard format, as well as the headers of the original\r\nmessage.\r\n\r\n",
        Ret::Full => "(DSN) report in standard format, as well as the original message.\r\n\r\n",
    });
    for r in &input.recipients {
        let outcome = match (input.kind, r.will_retry_until) {
            (DsnKind::Failure, _) => "delivery failed; will not continue trying".to_string(),
            (DsnKind::Delay, Some(until)) => {
                format!("delivery delayed; will continue trying until {}", time::rfc5322(until))
            }
            (DsnKind::Delay, None) => "delivery delayed; will continue trying".to_string(),
        };
        text.push_str(&format!("  <{}>  {outcome}\r\n", clean(&r.address)));
    }
    text
}

/// The delivery-status fields: the per-message block, then one block per recipient, each
/// ending in an empty line.
fn delivery_status(input: &DsnInput) -> String {
    let mut lines: Vec<String> = Vec::new();
    if let Some(id) = input.env_id.as_deref().filter(|i| !i.is_empty()) {
        lines.push(format!("Original-Envelope-Id: {}", clean(id)));
    }
    lines.push(format!("Reporting-MTA: dns;{}", clean(&input.host_name)));
    lines.push(format!("X-PowerMTA-VirtualMTA: {}", clean(&input.vmta)));
    let helo = clean(&input.received_from_helo);
    match (helo.is_empty(), input.received_from_ip) {
        (false, Some(ip)) => lines.push(format!("Received-From-MTA: dns;{helo} ({ip})")),
        (true, Some(ip)) => lines.push(format!("Received-From-MTA: dns;[{ip}] ({ip})")),
        (false, None) => lines.push(format!("Received-From-MTA: dns;{helo}")),
        (true, None) => {}
    }
    lines.push(format!("Arrival-Date: {}", time::rfc5322(input.arrival)));
    lines.push(String::new());
    for r in &input.recipients {
        if let Some(orcpt) = r.orcpt.as_deref().filter(|o| !o.is_empty()) {
            lines.push(format!("Original-Recipient: {}", typed(orcpt, "rfc822")));
        }
        lines.push(format!("Final-Recipient: rfc822;{}", clean(&r.address)));
        let (action, fallback) = match input.kind {
            DsnKind::Failure => ("failed", "5.0.0"),
            DsnKind::Delay => ("delayed", "4.0.0"),
        };
        lines.push(format!("Action: {action}"));
        let status = if r.status.trim().is_empty() { fallback } else { r.status.as_str() };
        lines.push(format!("Status: {}", clean(&status_text(status))));
        if let Some(mta) = r.remote_mta.as_deref().filter(|m| !m.is_empty()) {
            lines.push(format!("Remote-MTA: dns;{}", clean(mta)));
        }
        if !r.diag.trim().is_empty() {
            lines.push(format!("Diagnostic-Code: {}", typed(&r.diag, "smtp")));
        }
        if let Some(t) = r.last_attempt {
            lines.push(format!("Last-Attempt-Date: {}", time::rfc5322(t)));
        }
        if let (DsnKind::Delay, Some(t)) = (input.kind, r.will_retry_until) {
            lines.push(format!("Will-Retry-Until: {}", time::rfc5322(t)));
        }
        if !r.category.is_empty() {
            lines.push(format!("X-PowerMTA-BounceCategory: {}", clean(&r.category)));
        }
        lines.push(String::new());
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&fold(&line));
        out.push_str("\r\n");
    }
    out
}

/// A `type;value` field (`rfc822;x@y`, `smtp;550 …`): given text keeps its type, text without
/// one gets `default`.
fn typed(value: &str, default: &str) -> String {
    let value = clean(value.trim());
    match value.split_once(';') {
        Some((kind, _)) if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => value,
        _ => format!("{default};{value}"),
    }
}

/// The returned part: its content type and bytes (CRLF line ends).
fn returned_content(input: &DsnInput) -> (&'static str, Vec<u8>) {
    let headers_end = header_end(input.original);
    let eight_bit_headers = !input.original[..headers_end].is_ascii();
    match input.ret {
        Ret::Headers => {
            let ct = if eight_bit_headers { "message/global-headers" } else { "text/rfc822-headers" };
            (ct, crlf(&input.original[..headers_end]))
        }
        Ret::Full => {
            let ct = if eight_bit_headers { "message/global" } else { "message/rfc822" };
            (ct, crlf(input.original))
        }
    }
}

/// Where the header block ends (after its last line, before the empty line).
fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    while at < message.len() {
        let line_end = message[at..].iter().position(|&b| b == b'\n').map_or(message.len(), |p| at + p + 1);
        let line = &message[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            return at;
        }
        at = line_end;
    }
    message.len()
}

/// Bare LF (and bare CR) become CRLF.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A value safe inside one header line: line breaks and other controls become spaces.
fn clean(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Folds a field longer than RFC 5322's 998-octet limit at spaces (PowerMTA does not fold
/// shorter ones, and neither does Ember).
fn fold(line: &str) -> String {
    const LIMIT: usize = 998;
    if line.len() <= LIMIT {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = line;
    while rest.len() > LIMIT {
        let mut cut = LIMIT;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let at = rest[..cut].rfind(' ').filter(|&p| p > 0).unwrap_or(cut);
        out.push_str(&rest[..at]);
        out.push_str("\r\n ");
        rest = rest[at..].trim_start_matches(' ');
    }
    out.push_str(rest);
    out
}

/// `report<HEX>@<host>` with the time in hex, as PowerMTA writes it; made longer in the
/// unlikely case that the content contains it.
fn boundary(input: &DsnInput, parts: &[&[u8]]) -> String {
    let host = clean(&input.host_name).replace(['"', ' '], "");
    let base = format!("report{:08X}@{host}", input.now);
    let mut candidate = base.clone();
    let mut n = 0u32;
    while parts.iter().any(|p| contains(p, candidate.as_bytes())) {
        n += 1;
        candidate = format!("{base}.{n}");
    }
    candidate
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A Message-ID local part unique on this host: time, process and a counter.
fn unique_id(now: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{now:X}.{:X}.{n:X}.dsn", std::process::id())
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            field(r, "Diagnostic-Code").as_deref(),
            Some("smtp;550 5.1.1 <kijitora@example.jp>... User Unknown")
        );
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
        assert!(
            std::str::from_utf8(msg.parts[2].contents()).unwrap().contains("Final-Recipient: rfc822;用户@例子.广告")
        );
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
}
