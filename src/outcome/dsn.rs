//! Generated delivery status notifications (RFC 3464), in the shape PowerMTA gives them
//! (docs/operations.md, "Delivery"): a `multipart/report; report-type=delivery-status` with
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
mod tests;
