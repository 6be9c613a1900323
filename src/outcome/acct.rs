//! Accounting files (`<acct-file PATH>` or `<acct-file |COMMAND>`): RFC 4180 CSV with PowerMTA's
//! record types and column names (docs/operations.md, "Accounting"), written by one thread per
//! output.
//!
//! - **Columns.** A file's columns are the union of the fields of the record types it takes, in
//!   PowerMTA's order, `type` first; a record leaves the columns of other types empty.
//!   `record-fields TYPE FIELDLIST` changes a type's fields (`layout.rs`). The header line is
//!   written when a file is created (or a pipe started).
//! - **Callers** build a [`Record`] (for deliveries, bounces and transient failures from
//!   [`DeliveryFacts`]) and call [`Accounting::write`]; formatting (time format, `userString`,
//!   `header_*` columns, `queue-filter`) happens on the output's thread, never in the caller's.
//! - **Files** rotate on `move-interval` (at multiples of the interval since the epoch, UTC:
//!   `1d` rotates at midnight) and `max-size`, and on [`Accounting::rotate`]; the rotated file is
//!   renamed `acct-2007-09-05-0000.csv` (the date and time of the rotation) in the same directory
//!   or in `move-to`, and deleted `delete-after` later (`writer.rs`).
//! - **One writer per file.** A reload opens the accounting outputs again while sessions of the
//!   old configuration still write through the old ones; so the file writers are shared by path
//!   within the process, and opening a path that already has a writer reconfigures it (new
//!   columns start a new file) instead of starting a second writer on the same file.
//! - **Pipes** (`|command`) are started when the configuration is opened (a reload starts the
//!   command again); a write error, a command that stops reading for `write-timeout`, or one
//!   that exits is logged (`Error writing to "CMD": …`) and the command started again
//!   `retry-interval` later (`pipe.rs`).
//!
//! Accounting never blocks or fails delivery: a writer that died has logged why, and records
//! sent to it are dropped.
//!
//! Every record written here is also an event for the event log when one runs (`event.rs`),
//! whatever the files take and whatever a queue's `disable-acct-records` says.

mod error;
pub mod event;
mod layout;
pub mod mapping;
mod pipe;
mod privacy;
mod writer;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::settings::Settings;
use crate::config::{Config, Dir};
use crate::message::{Envelope, Recipient};
use crate::outcome::status::status_text;

pub use error::AcctError;
pub use layout::KNOWN_EXTRA_FIELDS;

/// A record type and its long name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    Delivery,
    Bounce,
    Transient,
    TransientQueue,
    Receipt,
    FeedbackLoop,
    RemoteBounce,
    RemoteStatus,
}

impl RecordType {
    pub const ALL: [RecordType; 8] = [
        RecordType::Delivery,
        RecordType::Bounce,
        RecordType::Transient,
        RecordType::TransientQueue,
        RecordType::Receipt,
        RecordType::FeedbackLoop,
        RecordType::RemoteBounce,
        RecordType::RemoteStatus,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RecordType::Delivery => "d",
            RecordType::Bounce => "b",
            RecordType::Transient => "t",
            RecordType::TransientQueue => "tq",
            RecordType::Receipt => "r",
            RecordType::FeedbackLoop => "f",
            RecordType::RemoteBounce => "rb",
            RecordType::RemoteStatus => "rs",
        }
    }

    pub fn parse(text: &str) -> Option<RecordType> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "d" | "delivery" => RecordType::Delivery,
            "b" | "bounce" => RecordType::Bounce,
            "t" | "transient" => RecordType::Transient,
            "tq" | "transient-queue" => RecordType::TransientQueue,
            "r" | "receipt" => RecordType::Receipt,
            "f" | "feedback-loop" => RecordType::FeedbackLoop,
            "rb" | "remote-bounce" => RecordType::RemoteBounce,
            "rs" | "remote-status" => RecordType::RemoteStatus,
            _ => return None,
        })
    }

    /// PowerMTA's default columns for this type, in PowerMTA's order. Optional fields
    /// (`dlvTlsProtocol`, `timeFirstAttempt`, `header_*`, …) are added with `record-fields`.
    pub fn fields(self) -> &'static [&'static str] {
        const DBT: &[&str] = &[
            "type",
            "timeLogged",
            "timeQueued",
            "orig",
            "rcpt",
            "orcpt",
            "dsnAction",
            "dsnStatus",
            "dsnDiag",
            "dsnMta",
            "bounceCat",
            "srcType",
            "srcMta",
            "dlvType",
            "dlvSourceIp",
            "dlvDestinationIp",
            "dlvEsmtpAvailable",
            "dlvSize",
            "vmta",
            "jobId",
            "envId",
            "queue",
            "vmtaPool",
        ];
        match self {
            RecordType::Delivery | RecordType::Bounce | RecordType::Transient => DBT,
            RecordType::TransientQueue => &[
                "type",
                "timeLogged",
                "queue",
                "vmta",
                "dsnStatus",
                "dsnDiag",
                "dsnMta",
                "dlvType",
                "dlvSourceIp",
                "dlvDestinationIp",
                "userString",
            ],
            RecordType::Receipt => &[
                "type",
                "timeLogged",
                "orig",
                "rcpt",
                "orcpt",
                "srcType",
                "srcMta",
                "rcvSourceIp",
                "rcvDestinationIp",
                "vmta",
                "vmtaPool",
                "jobId",
                "envId",
                "userString",
                "rcvSmtpUser",
            ],
            RecordType::FeedbackLoop => &[
                "type",
                "timeLogged",
                "repSourceIp",
                "feedbackType",
                "format",
                "userAgent",
                "envId",
                "orig",
                "rcpt",
                "reportingMta",
                "dlvSourceIp",
                "reportedDomain",
            ],
            RecordType::RemoteBounce | RecordType::RemoteStatus => &[
                "type",
                "timeLogged",
                "orig",
                "rcpt",
                "orcpt",
                "dsnAction",
                "dsnStatus",
                "dsnDiag",
                "dsnMta",
                "dsnReportingMta",
                "bounceCat",
                "srcType",
                "srcMta",
                "envId",
                "format",
            ],
        }
    }
}

/// Fields holding a time: written `2019-02-08 21:54:05+0000` with `iso-times yes` (the
/// default), else as a Unix time.
pub const TIME_FIELDS: &[&str] = &["timeLogged", "timeQueued", "timeFirstAttempt"];

/// One accounting record: its type and named values (missing names are written empty).
#[derive(Clone, Debug)]
pub struct Record {
    pub kind: RecordType,
    pub values: Vec<(&'static str, String)>,
    /// Times (Unix seconds) of the [`TIME_FIELDS`], formatted per output.
    pub times: Vec<(&'static str, u64)>,
    /// Header values for `header_NAME` columns (names compared without regard to case).
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn new(kind: RecordType) -> Record {
        Record { kind, values: vec![("type", kind.code().to_string())], times: Vec::new(), headers: Vec::new() }
    }

    /// Sets a field. A time field may be given as text in the `iso-times` form; it is turned
    /// back into a Unix time for outputs with `iso-times no`.
    pub fn set(mut self, field: &'static str, value: impl Into<String>) -> Record {
        self.values.push((field, value.into()));
        self
    }

    /// Sets a time field (`timeLogged`, `timeQueued`, `timeFirstAttempt`) to Unix seconds.
    pub fn time(mut self, field: &'static str, secs: u64) -> Record {
        self.times.push((field, secs));
        self
    }

    /// A header's value for `header_NAME` columns.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Record {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Takes the headers named in `wanted` (see [`Accounting::wanted_headers`]) from a message's
    /// header block (it may run on into the body; scanning stops at the empty line). Folded
    /// values are unfolded; the first occurrence of a name wins; values are raw (not
    /// RFC 2047-decoded).
    pub fn headers_from(mut self, message: &[u8], wanted: &[String]) -> Record {
        if wanted.is_empty() {
            return self;
        }
        let mut current: Option<(String, String)> = None;
        let mut found: Vec<(String, String)> = Vec::new();
        let finish = |current: &mut Option<(String, String)>, found: &mut Vec<(String, String)>| {
            if let Some((name, value)) = current.take()
                && wanted.iter().any(|w| w.eq_ignore_ascii_case(&name))
                && !found.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                found.push((name, value.trim().to_string()));
            }
        };
        for raw in message.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw));
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = current.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            finish(&mut current, &mut found);
            current = line.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string()));
        }
        finish(&mut current, &mut found);
        self.headers.extend(found);
        self
    }

    /// The text value of a plain field (the last one set wins).
    pub fn get(&self, field: &str) -> &str {
        self.values.iter().rev().find(|(f, _)| *f == field).map_or("", |(_, v)| v.as_str())
    }

    fn time_of(&self, field: &str) -> Option<u64> {
        self.times.iter().rev().find(|(f, _)| *f == field).map(|(_, t)| *t)
    }

    fn header_value(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v.as_str())
    }

    /// A `d`, `b`, `t` (or `tq`) record from typed facts. Only the fields of the record's type
    /// reach a file, so one `DeliveryFacts` serves every type.
    pub fn delivery(kind: RecordType, facts: &DeliveryFacts) -> Record {
        let fallback_status = match kind {
            RecordType::Delivery => "2.0.0",
            RecordType::Bounce => "5.0.0",
            _ => "4.0.0",
        };
        let status = if facts.status.trim().is_empty() { fallback_status } else { facts.status };
        let dlv_type = if facts.dlv_type.is_empty() { "smtp" } else { facts.dlv_type };
        let action = match kind {
            RecordType::Delivery if dlv_type == "smtp" || dlv_type == "handover" => "relayed",
            RecordType::Delivery => "delivered",
            RecordType::Bounce => "failed",
            RecordType::Transient => "delayed",
            _ => "",
        };
        let ip = |ip: Option<IpAddr>| ip.map(|i| i.to_string()).unwrap_or_default();
        let mut r = Record::new(kind)
            .time("timeLogged", facts.time_logged)
            .set("orig", facts.orig)
            .set("rcpt", facts.rcpt)
            .set("orcpt", facts.orcpt)
            .set("dsnAction", action)
            .set("dsnStatus", status_text(status))
            .set("dsnDiag", facts.diag)
            .set("dsnMta", mta_text(facts.remote_host, facts.remote_ip))
            .set("srcType", facts.src_type)
            .set("vmta", facts.vmta)
            .set("jobId", facts.job_id)
            .set("envId", facts.env_id)
            .set("queue", facts.queue)
            .set("vmtaPool", facts.vmta_pool);
        if kind != RecordType::TransientQueue {
            r = r
                .time("timeQueued", facts.time_queued)
                .set("totalSecondsQueued", facts.time_logged.saturating_sub(facts.time_queued).to_string());
        }
        if let Some(t) = facts.time_first_attempt {
            r = r.time("timeFirstAttempt", t);
        }
        // Not a PowerMTA column: it identifies the message in the event log.
        if let Some(id) = facts.message_id {
            r = r.set("messageId", id.to_string());
        }
        if kind != RecordType::Delivery {
            r = r.set("bounceCat", facts.bounce_cat);
        }
        // PowerMTA leaves the source MTA and the delivery columns of `b` records empty.
        if kind != RecordType::Bounce {
            r = r
                .set("srcMta", mta_text(facts.src_helo, facts.src_ip))
                .set("dlvType", dlv_type)
                .set("dlvSourceIp", ip(facts.dlv_source_ip))
                .set("dlvDestinationIp", ip(facts.remote_ip))
                .set("dlvEsmtpAvailable", facts.esmtp_available)
                .set("dlvSize", facts.size.map(|s| s.to_string()).unwrap_or_default())
                .set("dlvTlsProtocol", facts.tls_protocol)
                .set("dlvTlsCipher", facts.tls_cipher);
        }
        r
    }
}

/// `host (ip)` as PowerMTA writes `dsnMta` and `srcMta`: just the host when the address is
/// unknown, `[ip] (ip)` when the name is.
pub fn mta_text(host: &str, ip: Option<IpAddr>) -> String {
    match (host.is_empty(), ip) {
        (false, Some(ip)) => format!("{host} ({ip})"),
        (false, None) => host.to_string(),
        (true, Some(ip)) => format!("[{ip}] ({ip})"),
        (true, None) => String::new(),
    }
}

/// What the queue knows about one recipient's attempt, for [`Record::delivery`]. Empty strings
/// and `None` are written as empty columns. A `tq` record uses `time_logged`, `queue`, `vmta`,
/// `status`, `diag`, the remote host, `dlv_type` and `dlv_source_ip`.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFacts<'a> {
    /// Unix seconds of the outcome (`timeLogged`).
    pub time_logged: u64,
    /// Unix seconds the message was accepted (`timeQueued`; `totalSecondsQueued` follows).
    pub time_queued: u64,
    /// `timeFirstAttempt`, when known.
    pub time_first_attempt: Option<u64>,
    /// Envelope sender (`orig`) and recipient (`rcpt`); ORCPT as given (`orcpt`).
    pub orig: &'a str,
    pub rcpt: &'a str,
    pub orcpt: &'a str,
    /// The enhanced status code (`5.1.1`), written with its description (`dsnStatus`). Empty:
    /// `2.0.0` for `d`, `5.0.0` for `b`, `4.0.0` for `t`/`tq`. A recipient bounced after a
    /// 4xx (`bounce-on-4xx-status yes`, or the last retry) keeps its 4xx code here; an expiry
    /// is `4.4.7`.
    pub status: &'a str,
    /// `smtp;550 5.1.1 …` (`dsnDiag`), e.g. from `status::diagnostic`.
    pub diag: &'a str,
    /// The MX host name and address tried (`dsnMta`; the address is also `dlvDestinationIp`).
    pub remote_host: &'a str,
    pub remote_ip: Option<IpAddr>,
    /// The bounce category (`bounceCat`, not written in `d` records).
    pub bounce_cat: &'a str,
    /// How the message came in: `smtp`, `api`, `pickup` (`srcType`), from whom (`srcMta`).
    pub src_type: &'a str,
    pub src_helo: &'a str,
    pub src_ip: Option<IpAddr>,
    /// `smtp` (the default), `pipe`, `file`, `discard` (`dlvType`; `d` records of `smtp` say
    /// `relayed`, the others `delivered`).
    pub dlv_type: &'a str,
    /// The local address the delivery left from (`dlvSourceIp`).
    pub dlv_source_ip: Option<IpAddr>,
    /// The EHLO extensions the receiver offered, comma-separated (`dlvEsmtpAvailable`).
    pub esmtp_available: &'a str,
    /// Message size in bytes (`dlvSize`).
    pub size: Option<u64>,
    /// The delivering virtual MTA (`{default}` when none), its pool, and the queue
    /// (`domain/vmta`).
    pub vmta: &'a str,
    pub vmta_pool: &'a str,
    pub queue: &'a str,
    pub job_id: &'a str,
    pub env_id: &'a str,
    /// TLS of the delivery connection (`dlvTlsProtocol`, `dlvTlsCipher`), empty without TLS.
    pub tls_protocol: &'a str,
    pub tls_cipher: &'a str,
    /// The spool's id of the message, for the event log (no accounting column).
    pub message_id: Option<crate::message::MessageId>,
}

impl<'a> DeliveryFacts<'a> {
    /// The facts the envelope knows: sender, recipient, ORCPT, arrival, source, job, envid,
    /// and the VMTA chosen at injection (callers set the delivering VMTA, pool and queue).
    pub fn from_envelope(envelope: &'a Envelope, recipient: &'a Recipient) -> DeliveryFacts<'a> {
        DeliveryFacts {
            time_queued: envelope.arrival_ms / 1000,
            orig: &envelope.sender,
            rcpt: &recipient.address,
            orcpt: recipient.orcpt.as_deref().unwrap_or(""),
            src_type: &envelope.origin.kind,
            src_helo: &envelope.origin.helo,
            src_ip: envelope.origin.client_ip,
            vmta: envelope.vmta.as_deref().unwrap_or("{default}"),
            job_id: envelope.job_id.as_deref().unwrap_or(""),
            env_id: envelope.env_id.as_deref().unwrap_or(""),
            message_id: Some(envelope.id),
            ..DeliveryFacts::default()
        }
    }
}

/// A queue's accounting settings: `disable-acct-records` and the field dialect's
/// `log-delivery-failures` / `log-fallback-failures`. Computed once per queue.
///
/// With `log-delivery-failures yes` (or `log-fallback-failures yes`), the queue's `b` and `t`
/// records also go to every file that takes `d` or `b` records, even when its `records` list
/// lacks them ("write b/t records to the accounting file"); the `t` record for each MX tried
/// before a fallback MX is the delivery code's to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueAcct {
    pub disabled: Vec<RecordType>,
    pub log_failures: bool,
}

impl QueueAcct {
    pub fn from_settings(settings: &Settings) -> QueueAcct {
        QueueAcct {
            disabled: settings.list(Dir::DisableAcctRecords).iter().filter_map(|t| RecordType::parse(t)).collect(),
            log_failures: settings.flag(Dir::LogDeliveryFailures) || settings.flag(Dir::LogFallbackFailures),
        }
    }
}

/// Reads the clock for rotation (Unix seconds); tests inject their own.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::time::now_secs)
}

/// The open accounting outputs of a configuration.
#[derive(Clone, Default)]
pub struct Accounting {
    outputs: Vec<Output>,
    wanted_headers: Vec<String>,
}

#[derive(Clone)]
struct Output {
    /// `<acct-file ARG>`'s argument (a path or `|command`).
    name: String,
    types: Vec<RecordType>,
    writer: Arc<writer::Writer>,
}

/// One accounting output's figures for `/metrics`: (its name, records written, records lost).
pub type WriterFigures = (String, u64, u64);

impl Output {
    /// Whether this output takes the record, and whether only because of `log-delivery-failures`.
    fn takes(&self, kind: RecordType, queue: Option<&QueueAcct>) -> Option<bool> {
        if queue.is_some_and(|q| q.disabled.contains(&kind)) {
            return None;
        }
        if self.types.contains(&kind) {
            return Some(false);
        }
        let failure = matches!(kind, RecordType::Bounce | RecordType::Transient);
        let takes_deliveries = self.types.iter().any(|t| matches!(t, RecordType::Delivery | RecordType::Bounce));
        (failure && takes_deliveries && queue.is_some_and(|q| q.log_failures)).then_some(true)
    }
}

impl Accounting {
    /// Opens every `<acct-file>` of the configuration, with the system clock. Errors name the
    /// file.
    pub fn open(config: &Config) -> Result<Accounting, AcctError> {
        Accounting::open_with_clock(config, system_clock())
    }

    /// `open` with the clock rotation follows.
    pub fn open_with_clock(config: &Config, clock: Clock) -> Result<Accounting, AcctError> {
        let mut outputs = Vec::new();
        let mut wanted_headers: Vec<String> = Vec::new();
        let mut paths = HashSet::new();
        for block in config.blocks_of("acct-file") {
            let Some(arg) = block.arg.as_deref() else { continue };
            let name = format!("<acct-file {arg}>");
            let spec = layout::Layout::from_settings(&block.settings).map_err(|e| e.in_block(&name))?;
            for h in spec.header_names() {
                if !wanted_headers.iter().any(|w| w.eq_ignore_ascii_case(h)) {
                    wanted_headers.push(h.to_string());
                }
            }
            // Only reports carry the original message's headers into Ember's records.
            for m in mapping::from_settings(&block.settings, true).unwrap_or_default() {
                if !matches!(m.kind, RecordType::FeedbackLoop | RecordType::RemoteBounce | RecordType::RemoteStatus) {
                    tracing::warn!(
                        "{name}: map-header-to-field {} header_{}: {} records carry no message headers in Ember; the field keeps its own value",
                        m.kind.code(),
                        m.header,
                        m.kind.code()
                    );
                }
            }
            let types = spec.types.clone();
            let writer = match arg.strip_prefix('|') {
                Some(cmd) => {
                    let options = pipe::PipeOptions::from_settings(&block.settings);
                    writer::Writer::pipe(cmd.trim(), spec, options).map_err(|e| e.in_block(&name))?
                }
                None => {
                    let path = config.path(std::path::Path::new(arg));
                    if !paths.insert(path.clone()) {
                        return Err(AcctError::SameFile { name });
                    }
                    let options = writer::FileOptions::from_settings(config, &block.settings, Arc::clone(&clock));
                    writer::Writer::file(&path, spec, options).map_err(|e| e.in_block(&name))?
                }
            };
            outputs.push(Output { name: arg.to_string(), types, writer });
        }
        Ok(Accounting { outputs, wanted_headers })
    }

    /// Whether a record of this type goes anywhere (a file, or the event log).
    pub fn wants(&self, kind: RecordType) -> bool {
        event::wanted(kind) || self.outputs.iter().any(|o| o.takes(kind, None).is_some())
    }

    /// Whether a record of a queue with these settings goes anywhere.
    pub fn wants_for(&self, kind: RecordType, queue: &QueueAcct) -> bool {
        event::wanted(kind) || self.outputs.iter().any(|o| o.takes(kind, Some(queue)).is_some())
    }

    /// The headers named by `header_*` columns of any output, for [`Record::headers_from`].
    pub fn wanted_headers(&self) -> &[String] {
        &self.wanted_headers
    }

    /// Queues a record for every output that takes its type.
    pub fn write(&self, record: &Record) {
        self.send(record, None);
    }

    /// Queues a record of a queue: `disable-acct-records` and `log-delivery-failures` apply.
    pub fn write_for(&self, record: &Record, queue: &QueueAcct) {
        self.send(record, Some(queue));
    }

    fn send(&self, record: &Record, queue: Option<&QueueAcct>) {
        if event::wanted(record.kind)
            && let Some(e) = event::from_record(record)
        {
            crate::events::emit(e);
        }
        for o in &self.outputs {
            if let Some(forced) = o.takes(record.kind, queue) {
                o.writer.record(record.clone(), forced);
            }
        }
    }

    /// Records written and lost per output since its writer started.
    pub fn figures(&self) -> Vec<WriterFigures> {
        use std::sync::atomic::Ordering::Relaxed;
        self.outputs
            .iter()
            .map(|o| (o.name.clone(), o.writer.stats.written.load(Relaxed), o.writer.stats.lost.load(Relaxed)))
            .collect()
    }

    /// Waits until every record queued so far is written (and synced with `sync yes`).
    pub fn flush(&self) {
        for o in &self.outputs {
            o.writer.flush();
        }
    }

    /// Rotates every accounting file now (`ember rotate acct`): each file with records is moved
    /// to its dated name and a new one started. Returns the names the files were moved to.
    pub fn rotate(&self) -> Result<Vec<std::path::PathBuf>, AcctError> {
        let mut moved = Vec::new();
        for o in &self.outputs {
            moved.extend(o.writer.rotate()?);
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests;
