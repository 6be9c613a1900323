//! `<feedback-loop-processor>` and `<bounce-processor>`: mail Ember receives at the addresses
//! their `<address-list>` names is read as a complaint or a bounce instead of being relayed. A
//! complaint writes an `f` record and suppresses the recipient globally; a bounce writes `rb`
//! (failed) or `rs` (delayed, delivered, relayed) records with a bounce category and, with
//! `suppress-hard-bounces yes`, suppresses bad-mailbox, bad-domain and inactive-mailbox
//! recipients.
//!
//! Nothing is lost: a report that cannot be read (malformed, no recognisable recipient, too
//! large, not a report at all) is logged with the reason, written to the `unprocessed-reports`
//! directory, and forwarded to `forward-errors-to` / `forward-unmatched-to` when set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::address_list::AddressList;
use super::arf::{self, Complaint};
use super::dsn::{self, Dsn};
use super::patterns::{EmailPatterns, Matched};
use super::report::MAX_REPORT;
use super::store::{Entry, StoreError, SuppressionStore};
use super::unsubscribe::{self, TokenError, Tokens};
use crate::config::value::Value;
use crate::config::{Config, Dir};
use crate::outcome::acct::mapping::{self, HeaderMapping, MappedField};
use crate::outcome::acct::{Accounting, Record, RecordType};
use crate::outcome::category::Classifier;
use crate::outcome::status;
use crate::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FeedbackLoop,
    Bounce,
    /// A `list-unsubscribe-mailto` address.
    Unsubscribe,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::FeedbackLoop => "feedback-loop",
            Kind::Bounce => "bounce",
            Kind::Unsubscribe => "unsubscribe",
        }
    }
}

struct Processor {
    kind: Kind,
    addresses: AddressList,
    forward_unmatched: Vec<String>,
    forward_errors: Vec<String>,
    suppress_hard: bool,
    /// `map-header-to-field` of the block: headers of the reported message written in fields of
    /// the records this processor writes.
    mappings: Vec<HeaderMapping>,
    /// `deliver-matched-email`: a report that was read is also delivered to its address.
    deliver_matched: bool,
    /// `deliver-unmatched-email`: mail that is not a report (or cannot be read as one) is also
    /// delivered to its address.
    deliver_unmatched: bool,
    /// `<email-patterns>`: how to read reports in no standard format.
    patterns: EmailPatterns,
}

impl Processor {
    /// Sets the fields `map-header-to-field` names from the reported message's headers (a
    /// header the message lacks leaves the field as the report gave it).
    fn map_headers(&self, mut record: Record, reported: &[u8]) -> Record {
        let kind = record.kind;
        for m in self.mappings.iter().filter(|m| m.kind == kind) {
            let MappedField::Known(field) = m.field else { continue };
            if let Some(value) = crate::message::headers::Header::parse(reported).get(&m.header)
                && !value.is_empty()
            {
                record = record.set(field, value);
            }
        }
        record
    }
}

/// Who handed us the report (for `repSourceIp`, `srcMta`).
pub struct From<'a> {
    pub ip: String,
    pub helo: &'a str,
}

/// What happened to a report.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Accounting records written.
    pub records: usize,
    /// Recipients newly suppressed.
    pub suppressed: usize,
    /// Where the message must also go (forwarding of errors or unmatched mail).
    pub forward: Vec<String>,
    /// Set when the report could not be read: why, and where it was saved.
    pub unprocessed: Option<(String, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot save an unprocessed report in {path}: {source}")]
    Save { path: PathBuf, source: std::io::Error },
}

/// The processors of one configuration generation.
pub struct Processors {
    list: Vec<Processor>,
    store: Arc<SuppressionStore>,
    accounting: Accounting,
    classifier: Classifier,
    unprocessed_dir: PathBuf,
    /// The field dialect's `suppress-file` lists: complaints and unsubscribes are appended to
    /// them too (docs/operations.md, "Complaints, asynchronous bounces and the global suppression
    /// list"), besides the global list.
    suppress_files: Vec<PathBuf>,
    /// Signs and checks unsubscribe tokens (`list-unsubscribe-secret`).
    pub tokens: Option<Tokens>,
}

/// What an unsubscribe request did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unsubscribed {
    /// The recipient is suppressed from now on.
    Now(String),
    /// It already was (a repeated request changes nothing).
    Already(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    #[error("one-click unsubscribe is not configured (no list-unsubscribe-secret)")]
    NotConfigured,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the token names no usable address: {0}")]
    Address(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Processors {
    pub fn from_config(
        config: &Config,
        store: Arc<SuppressionStore>,
        accounting: Accounting,
        state_dir: &Path,
    ) -> Result<Processors, Vec<String>> {
        let mut list = Vec::new();
        let mut errors = Vec::new();
        for (tag, kind) in [("feedback-loop-processor", Kind::FeedbackLoop), ("bounce-processor", Kind::Bounce)] {
            for block in config.blocks_of(tag) {
                let mut addresses = AddressList::default();
                for child in block.children.iter().filter(|c| c.tag == "address-list") {
                    for e in child.settings.all(Dir::Address) {
                        if let Value::Text(t) = &e.value
                            && let Err(m) = addresses.add(t)
                        {
                            let at = e.origin.location().map(|l| format!("{l}: ")).unwrap_or_default();
                            errors.push(format!("{at}address: {m}"));
                        }
                    }
                    for e in child.settings.all(Dir::DomainEntry) {
                        if let Value::Domain(d) = &e.value {
                            addresses.add_domain(&d.to_string());
                        }
                    }
                    for e in child.settings.all(Dir::AddressFile) {
                        if let Value::Path(p) = &e.value {
                            match addresses.load_file(&config.path(p)) {
                                Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
                                Err(m) => errors.push(m),
                            }
                        }
                    }
                }
                if addresses.is_empty() {
                    tracing::warn!("<{tag}> at {}: no <address-list> entries; it receives nothing", block.location);
                }
                let emails = |dir: Dir| {
                    block.settings.all(dir).iter().filter_map(|e| match &e.value {
                        Value::Text(t) => Some(t.clone()),
                        _ => None,
                    })
                };
                let mappings = mapping::from_settings(&block.settings, false).unwrap_or_else(|e| {
                    errors.push(format!("<{tag}> at {}: {e}", block.location));
                    Vec::new()
                });
                list.push(Processor {
                    kind,
                    addresses,
                    forward_unmatched: emails(Dir::ForwardUnmatchedTo).collect(),
                    forward_errors: emails(Dir::ForwardErrorsTo).collect(),
                    suppress_hard: block.settings.flag(Dir::SuppressHardBounces),
                    mappings,
                    deliver_matched: block.settings.flag(Dir::DeliverMatchedEmail),
                    deliver_unmatched: block.settings.flag(Dir::DeliverUnmatchedEmail),
                    patterns: EmailPatterns::from_block(config, block).unwrap_or_else(|e| {
                        errors.push(format!("<{tag}> at {}: {e}", block.location));
                        EmailPatterns::default()
                    }),
                });
            }
        }
        let tokens = match Tokens::from_config(config) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        errors.extend(unsubscribe::check(config, tokens.as_ref()));
        let mailto = unsubscribe::mailto_addresses(config);
        if !mailto.is_empty() {
            let mut addresses = AddressList::default();
            for m in &mailto {
                let _ = addresses.add(m);
            }
            let forward_errors = list.iter().find(|p| p.kind == Kind::FeedbackLoop).map(|p| p.forward_errors.clone());
            list.push(Processor {
                kind: Kind::Unsubscribe,
                addresses,
                forward_unmatched: forward_errors.clone().unwrap_or_default(),
                forward_errors: forward_errors.unwrap_or_default(),
                suppress_hard: false,
                mappings: Vec::new(),
                deliver_matched: false,
                deliver_unmatched: false,
                patterns: EmailPatterns::default(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut suppress_files: Vec<PathBuf> = config
            .sources
            .iter()
            .map(|s| &s.settings)
            .chain(config.domains.iter().map(|d| d.settings.as_ref()))
            .chain(std::iter::once(&config.queue_defaults))
            .filter_map(|s| s.get(Dir::SuppressFile).and(s.path(Dir::SuppressFile)))
            .map(|p| config.path(p))
            .collect();
        suppress_files.sort();
        suppress_files.dedup();
        Ok(Processors {
            suppress_files,
            tokens,
            list,
            store,
            accounting,
            classifier: Classifier::from_config(config),
            unprocessed_dir: state_dir.join("unprocessed-reports"),
        })
    }

    /// Which processor receives mail for `address`, if any.
    pub fn kind_of(&self, address: &str) -> Option<Kind> {
        self.list.iter().find(|p| p.addresses.contains(address)).map(|p| p.kind)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Reads one received report addressed to `rcpt` (a processor address). With
    /// `deliver-matched-email` (a report that was read) or `deliver-unmatched-email` (anything
    /// else), `rcpt` itself is among the outcome's `forward` addresses: the message is also
    /// delivered there like any other mail.
    pub fn process(&self, rcpt: &str, message: &[u8], from: &From<'_>) -> Result<Outcome, ProcessError> {
        let Some(p) = self.list.iter().find(|p| p.addresses.contains(rcpt)) else { return Ok(Outcome::default()) };
        let mut outcome = self.read(p, rcpt, message, from)?;
        let matched = outcome.unprocessed.is_none();
        if (matched && p.deliver_matched) || (!matched && p.deliver_unmatched) {
            outcome.forward.push(rcpt.to_string());
        }
        Ok(outcome)
    }

    fn read(&self, p: &Processor, rcpt: &str, message: &[u8], from: &From<'_>) -> Result<Outcome, ProcessError> {
        if message.len() > MAX_REPORT {
            let why = format!("report of {} bytes is larger than {} bytes; not parsed", message.len(), MAX_REPORT);
            return self.unprocessed(p, rcpt, message, from, why, &p.forward_errors);
        }
        match p.kind {
            Kind::FeedbackLoop => match arf::parse(message) {
                Ok(c) => self.complaint(p, &c, from),
                Err(arf::ComplaintError::NotAReport) if let Some(m) = p.patterns.find(message, "feedback-loop") => {
                    self.complaint(p, &pattern_complaint(m, message), from)
                }
                Err(arf::ComplaintError::NotAReport) => {
                    let why = arf::ComplaintError::NotAReport.to_string();
                    self.unprocessed(p, rcpt, message, from, why, &p.forward_unmatched)
                }
                Err(e) => self.unprocessed(p, rcpt, message, from, e.to_string(), &p.forward_errors),
            },
            Kind::Unsubscribe => {
                let subject = crate::message::headers::Header::parse(message).get("subject").unwrap_or_default();
                let token = subject.split_whitespace().find(|w| w.contains('.') && w.len() > 20).unwrap_or("");
                match self.unsubscribe(token, "mailto", from) {
                    Ok(_) => Ok(Outcome { records: 1, suppressed: 1, ..Outcome::default() }),
                    Err(UnsubscribeError::Store(e)) => Err(e.into()),
                    Err(e) => self.unprocessed(p, rcpt, message, from, e.to_string(), &p.forward_errors),
                }
            }
            Kind::Bounce => match dsn::parse(message) {
                Ok(d) => self.bounce(p, rcpt, &d, from),
                Err(dsn::DsnError::NotADsn) if let Some(m) = p.patterns.find(message, "bounce") => {
                    self.bounce(p, rcpt, &pattern_bounce(m, message), from)
                }
                Err(dsn::DsnError::NotADsn) => {
                    let why = dsn::DsnError::NotADsn.to_string();
                    self.unprocessed(p, rcpt, message, from, why, &p.forward_unmatched)
                }
                Err(e) => self.unprocessed(p, rcpt, message, from, e.to_string(), &p.forward_errors),
            },
        }
    }

    /// Suppresses the recipient a token names and writes an `f` record (feedbackType
    /// `unsubscribe`, format `one-click` or `mailto`) the first time; a forged or altered token
    /// changes nothing.
    pub fn unsubscribe(&self, token: &str, via: &str, from: &From<'_>) -> Result<Unsubscribed, UnsubscribeError> {
        let tokens = self.tokens.as_ref().ok_or(UnsubscribeError::NotConfigured)?;
        let claims = match tokens.verify(token) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("unsubscribe ({via}) from {}: refused: {e}", from.ip);
                return Err(e.into());
            }
        };
        let entry = Entry::parse(&claims.rcpt).map_err(|e| UnsubscribeError::Address(e.to_string()))?;
        if self.suppress(&[entry], "unsubscribe")? == 0 {
            tracing::info!("unsubscribe ({via}) from {}: <{}> was already suppressed", from.ip, claims.rcpt);
            return Ok(Unsubscribed::Already(claims.rcpt));
        }
        tracing::info!(
            "unsubscribe ({via}) from {}: <{}> suppressed globally (job {:?})",
            from.ip,
            claims.rcpt,
            claims.job
        );
        if self.accounting.wants(RecordType::FeedbackLoop) {
            let record = Record::new(RecordType::FeedbackLoop)
                .time("timeLogged", time::now_secs())
                .set("repSourceIp", from.ip.clone())
                .set("feedbackType", "unsubscribe")
                .set("format", via.to_string())
                .set("rcpt", claims.rcpt.clone())
                .set("jobId", claims.job.clone());
            self.accounting.write(&record);
        }
        Ok(Unsubscribed::Now(claims.rcpt))
    }

    /// Adds entries to the global list and appends the new ones to every `suppress-file`; how
    /// many were new. `reason` (what added them) goes into their suppression events.
    fn suppress(&self, entries: &[Entry], reason: &str) -> Result<usize, StoreError> {
        let new: Vec<&Entry> = entries.iter().filter(|e| !self.store.contains(&e.text())).collect();
        let added = self.store.add(entries)?;
        if added > 0 {
            for e in &new {
                crate::events::suppressed(&e.text(), reason);
            }
            for path in &self.suppress_files {
                let text: String = new.iter().map(|e| format!("{}\n", e.text())).collect();
                if let Err(e) = append_durably(path, text.as_bytes()) {
                    // The global list has them; the file is a copy for the operator's tools.
                    tracing::error!("cannot add {} entries to suppress-file {}: {e}", new.len(), path.display());
                }
            }
        }
        Ok(added)
    }

    fn complaint(&self, p: &Processor, c: &Complaint, from: &From<'_>) -> Result<Outcome, ProcessError> {
        let mut outcome = Outcome::default();
        match Entry::parse(&c.rcpt) {
            Ok(entry) => outcome.suppressed = self.suppress(&[entry], "complaint")?,
            Err(e) => tracing::warn!("feedback-loop: complaint names an unusable recipient, not suppressed: {e}"),
        }
        // Adaptive delivery counts complaints against the queue of the recipient's domain.
        if let Some((_, domain)) = c.rcpt.rsplit_once('@') {
            crate::events::feedback::complaint(crate::events::feedback::Complaint {
                domain: domain.trim_end_matches('>').to_ascii_lowercase(),
                source_ip: c.source_ip.parse().ok(),
            });
        }
        tracing::info!(
            "feedback-loop: {} complaint ({}) from {} about <{}> (sent by {}): {}",
            c.feedback_type,
            c.format,
            if c.reporting_mta.is_empty() { from.ip.as_str() } else { c.reporting_mta.as_str() },
            c.rcpt,
            if c.source_ip.is_empty() { "?" } else { c.source_ip.as_str() },
            if outcome.suppressed > 0 { "suppressed globally" } else { "already suppressed" }
        );
        if self.accounting.wants(RecordType::FeedbackLoop) {
            let record = Record::new(RecordType::FeedbackLoop)
                .time("timeLogged", time::now_secs())
                .set("repSourceIp", from.ip.clone())
                .set("feedbackType", c.feedback_type.clone())
                .set("format", c.format)
                .set("userAgent", c.user_agent.clone())
                .set("envId", c.env_id.clone())
                .set("orig", c.orig.clone())
                .set("rcpt", c.rcpt.clone())
                .set("reportingMta", c.reporting_mta.clone())
                .set("dlvSourceIp", c.source_ip.clone())
                .set("reportedDomain", c.reported_domain.clone())
                .headers_from(&c.headers, self.accounting.wanted_headers());
            let record = p.map_headers(record, &c.headers);
            self.accounting.write(&record);
            outcome.records += 1;
        }
        Ok(outcome)
    }

    fn bounce(&self, p: &Processor, rcpt: &str, d: &Dsn, from: &From<'_>) -> Result<Outcome, ProcessError> {
        let mut outcome = Outcome::default();
        let src_mta = format!("{} ({})", from.helo, from.ip);
        let mut hard = Vec::new();
        for r in &d.recipients {
            let failed = r.action == "failed";
            let category = self.classifier.classify(&r.status, &r.diag).to_string();
            tracing::info!(
                "bounce: {} for <{}> from {}: {} {} [{category}]",
                r.action,
                r.rcpt,
                d.reporting_mta,
                r.status,
                r.diag
            );
            if failed
                && p.suppress_hard
                && matches!(category.as_str(), "bad-mailbox" | "bad-domain" | "inactive-mailbox")
                && let Ok(entry) = Entry::parse(&r.rcpt)
            {
                hard.push(entry);
            }
            let kind = if failed { RecordType::RemoteBounce } else { RecordType::RemoteStatus };
            if !self.accounting.wants(kind) {
                continue;
            }
            let mut record = Record::new(kind)
                .time("timeLogged", time::now_secs())
                .set("orig", rcpt.to_string())
                .set("rcpt", r.rcpt.clone())
                .set("orcpt", r.orcpt.clone())
                .set("dsnStatus", status::status_text(&r.status))
                .set("dsnDiag", r.diag.clone())
                .set("dsnMta", r.remote_mta.clone())
                .set("dsnReportingMta", d.reporting_mta.clone())
                .set("bounceCat", category)
                .set("srcType", "smtp")
                .set("srcMta", src_mta.clone())
                .set("envId", d.env_id.clone())
                .set("format", "dsn");
            if !failed {
                record = record.set("dsnAction", r.action.clone());
            }
            let record = record.headers_from(&d.headers, self.accounting.wanted_headers());
            let record = p.map_headers(record, &d.headers);
            self.accounting.write(&record);
            outcome.records += 1;
        }
        if !hard.is_empty() {
            outcome.suppressed = self.suppress(&hard, "hard bounce")?;
            tracing::info!("bounce: {} hard-bounced recipients suppressed globally", outcome.suppressed);
        }
        Ok(outcome)
    }

    /// Keeps a report that could not be read: a log line with the reason, a file, forwarding.
    fn unprocessed(
        &self,
        p: &Processor,
        rcpt: &str,
        message: &[u8],
        from: &From<'_>,
        why: String,
        forward: &[String],
    ) -> Result<Outcome, ProcessError> {
        let save = |source| ProcessError::Save { path: self.unprocessed_dir.clone(), source };
        std::fs::create_dir_all(&self.unprocessed_dir).map_err(save)?;
        let name = format!("{}-{}-{}.eml", time::now_millis(), p.kind.name(), unique());
        let path = self.unprocessed_dir.join(name);
        write_durably(&path, message).map_err(save)?;
        tracing::warn!(
            "{} processor: report to <{rcpt}> from {} ({}) not processed: {why}; kept as {}{}",
            p.kind.name(),
            from.ip,
            from.helo,
            path.display(),
            if forward.is_empty() { String::new() } else { format!("; forwarded to {}", forward.join(", ")) }
        );
        Ok(Outcome { forward: forward.to_vec(), unprocessed: Some((why, path)), ..Outcome::default() })
    }
}

/// A complaint read by an `<email-patterns>` pattern (`format` is `pattern`).
fn pattern_complaint(m: Matched, message: &[u8]) -> Complaint {
    Complaint {
        format: "pattern",
        feedback_type: m.feedback_type,
        user_agent: String::new(),
        rcpt: m.rcpt,
        orig: m.orig,
        reporting_mta: String::new(),
        source_ip: String::new(),
        reported_domain: String::new(),
        env_id: m.env_id,
        headers: message.to_vec(),
    }
}

/// A bounce read by an `<email-patterns>` pattern: failed for a class 5 status, else delayed.
fn pattern_bounce(m: Matched, message: &[u8]) -> Dsn {
    let action = if m.status.starts_with('5') { "failed" } else { "delayed" };
    Dsn {
        reporting_mta: String::new(),
        env_id: m.env_id,
        recipients: vec![dsn::Bounced {
            rcpt: m.rcpt,
            orcpt: String::new(),
            action: action.to_string(),
            status: m.status,
            diag: m.diag,
            remote_mta: String::new(),
        }],
        headers: message.to_vec(),
    }
}

fn append_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileCheck, load_str};

    const CONFIG: &str = "\
<feedback-loop-processor>
    <address-list>
        address fbl@fbl.example
    </address-list>
    forward-unmatched-to postmaster@example.com
    forward-errors-to fbl-errors@example.com
</feedback-loop-processor>
<bounce-processor>
    <address-list>
        domain bounce.example
    </address-list>
</bounce-processor>
<domain *>
    suppress-file supp.txt
</domain>
";

    fn processors(dir: &Path) -> Processors {
        let loaded = load_str("p.conf", CONFIG, dir, FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.sorted());
        let (store, _) = SuppressionStore::open(&dir.join("journal")).unwrap();
        Processors::from_config(&loaded.config, Arc::new(store), Accounting::default(), dir).unwrap()
    }

    fn from() -> From<'static> {
        From { ip: "192.0.2.9".into(), helo: "isp.example" }
    }

    #[test]
    fn addresses_choose_the_processor() {
        let dir = tempfile::tempdir().unwrap();
        let p = processors(dir.path());
        assert_eq!(p.kind_of("FBL@fbl.example"), Some(Kind::FeedbackLoop));
        assert_eq!(p.kind_of("anything@bounce.example"), Some(Kind::Bounce));
        assert_eq!(p.kind_of("other@fbl.example"), None);
    }

    #[test]
    fn huge_malformed_and_unmatched_reports_are_kept_and_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let p = processors(dir.path());
        let huge = vec![b'x'; MAX_REPORT + 1];
        let o = p.process("fbl@fbl.example", &huge, &from()).unwrap();
        let (why, path) = o.unprocessed.unwrap();
        assert!(why.contains("larger than"), "{why}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), huge.len() as u64);
        // deliver-unmatched-email yes (the default): also delivered to the processor address.
        assert_eq!(o.forward, ["fbl-errors@example.com", "fbl@fbl.example"]);
        let o = p.process("fbl@fbl.example", b"Subject: hi\r\n\r\nnot a report\r\n", &from()).unwrap();
        assert_eq!(o.forward, ["postmaster@example.com", "fbl@fbl.example"]);
        assert!(o.unprocessed.is_some());
        assert_eq!(p.store.len(), 0);
    }

    #[test]
    fn map_header_to_field_in_a_processor_sets_fields_from_the_reported_message() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "<acct-file {}/a.csv>\n records f\n record-fields f *,jobId\n</acct-file>\n{}",
            dir.path().display(),
            CONFIG.replace(
                "    forward-unmatched-to",
                "    map-header-to-field f header_X-Job jobId\n    forward-unmatched-to"
            )
        );
        let loaded = load_str("p.conf", &text, dir.path(), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.sorted());
        let (store, _) = SuppressionStore::open(&dir.path().join("journal")).unwrap();
        let acct = Accounting::open(&loaded.config).unwrap();
        let p = Processors::from_config(&loaded.config, Arc::new(store), acct.clone(), dir.path()).unwrap();
        p.process("fbl@fbl.example", super::super::arf::tests::ARF.as_bytes(), &from()).unwrap();
        acct.flush();
        let csv = std::fs::read_to_string(dir.path().join("a.csv")).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
        let job = header.iter().position(|h| *h == "jobId").expect("a jobId column");
        assert_eq!(row[job], "spring", "{csv}");
        // A field no record has is refused in a processor.
        let bad = CONFIG.replace(
            "    forward-unmatched-to",
            "    map-header-to-field f header_X-Job nosuch\n    forward-unmatched-to",
        );
        let loaded = load_str("p.conf", &bad, dir.path(), FileCheck::Warn);
        let (store, _) = SuppressionStore::open(&dir.path().join("journal2")).unwrap();
        let errors = Processors::from_config(&loaded.config, Arc::new(store), Accounting::default(), dir.path())
            .err()
            .expect("refused");
        assert!(errors.iter().any(|e| e.contains("unknown field")), "{errors:?}");
    }

    #[test]
    fn deliver_matched_and_unmatched_email() {
        let dir = tempfile::tempdir().unwrap();
        let text = CONFIG.replace(
            "    forward-unmatched-to postmaster@example.com\n",
            "    deliver-unmatched-email no\n    deliver-matched-email yes\n",
        );
        let loaded = load_str("p.conf", &text, dir.path(), FileCheck::Warn);
        let (store, _) = SuppressionStore::open(&dir.path().join("journal")).unwrap();
        let p = Processors::from_config(&loaded.config, Arc::new(store), Accounting::default(), dir.path()).unwrap();
        let o = p.process("fbl@fbl.example", b"Subject: hi\r\n\r\nnot a report\r\n", &from()).unwrap();
        assert!(o.forward.is_empty(), "not delivered: {:?}", o.forward);
        assert!(o.unprocessed.is_some(), "but still kept");
        let o = p.process("fbl@fbl.example", super::super::arf::tests::ARF.as_bytes(), &from()).unwrap();
        assert_eq!(o.suppressed, 1);
        assert_eq!(o.forward, ["fbl@fbl.example"], "the report is processed and delivered");
        // The bounce processor keeps the defaults: a DSN is not delivered.
        let o = p.process("x@bounce.example", super::super::dsn::tests::DSN.as_bytes(), &from());
        assert!(o.unwrap().forward.is_empty());
    }

    #[test]
    fn complaints_also_go_to_the_suppress_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = processors(dir.path());
        let o = p.process("fbl@fbl.example", super::super::arf::tests::ARF.as_bytes(), &from()).unwrap();
        assert_eq!(o.suppressed, 1);
        assert!(p.store.contains("victim@isp.example"));
        assert_eq!(std::fs::read_to_string(dir.path().join("supp.txt")).unwrap(), "victim@isp.example\n");
        // A second complaint about the same recipient adds nothing anywhere.
        let o = p.process("fbl@fbl.example", super::super::arf::tests::ARF.as_bytes(), &from()).unwrap();
        assert_eq!(o.suppressed, 0);
        assert_eq!(std::fs::read_to_string(dir.path().join("supp.txt")).unwrap(), "victim@isp.example\n");
    }
}
