//! The end of an injected transaction: checks on the received message (size, hops, loops),
//! virtual MTA selection (control header, `<pattern-list>`, source default) and job selection,
//! the header edits, the durable store, and the `r` (and, for suppressed recipients, `b`)
//! accounting records.

use std::net::IpAddr;
use std::sync::Arc;

use super::StoreError;
use super::patterns::Selection;
use super::policy::{AddDateHeader, SourcePolicy};
use super::session::{Flow, Session, Transaction};
use crate::config::value::Value;
use crate::config::{Config, DEFAULT_VMTA, Dir};
use crate::message::headers::Header;
use crate::message::{Envelope, MessageId, Origin, RecipientState};
use crate::outcome::acct::{Record, RecordType};
use crate::smtp::Reply;
use crate::time;

impl Session {
    pub(super) async fn finish_message(&mut self) -> Flow {
        let Some(txn) = self.txn.take() else {
            self.reply(Reply::new(503, "5.5.1", "no transaction in progress"));
            return Flow::Continue;
        };
        let body = std::mem::take(&mut self.body);
        if self.policy.log_data {
            crate::smtp::datalog::log(&format!("from {}", self.conn.peer), &body);
        }
        let oversized = std::mem::replace(&mut self.oversized, false);
        let reply = if oversized {
            Err(Reply::new(552, "5.3.4", format!("message exceeds the size limit of {} bytes", self.message_limit())))
        } else if txn.too_many {
            let max = self.policy.max_rcpt_per_message.unwrap_or(0);
            Err(Reply::new(552, "5.5.3", format!("too many recipients (at most {max} per message)")))
        } else {
            self.accept(txn, &body).await
        };
        let reply = reply.unwrap_or_else(|r| r);
        let transient = reply.is_transient();
        self.reply(reply);
        if transient && self.policy.disconnect_on_transient_error { Flow::Close } else { Flow::Continue }
    }

    /// Checks, rewrites and stores the message; the reply to send.
    async fn accept(&mut self, mut txn: Transaction, body: &[u8]) -> Result<Reply, Reply> {
        let reports = std::mem::take(&mut txn.reports);
        if !reports.is_empty() {
            let forward = self.process_reports(reports, body).await?;
            txn.recipients.extend(forward.into_iter().map(crate::message::Recipient::new));
            if txn.recipients.is_empty() && txn.suppressed.is_empty() {
                return Ok(Reply::new(250, "2.6.0", "report processed"));
            }
        }
        // The source's <rewrite-list>: the sender and From domain as the rest of Ember sees them.
        let edited;
        let body = match self.policy.rewrite.clone() {
            Some(list) => {
                if let Some(sender) = list.sender(&txn.sender) {
                    txn.sender = sender;
                }
                edited = list.message(body);
                edited.as_deref().unwrap_or(body)
            }
            None => body,
        };
        let header = Header::parse(body);
        let hops = header.count("received") as u64;
        if hops >= self.policy.max_message_hops {
            return Err(Reply::new(
                554,
                "5.4.6",
                format!("too many hops: {hops} Received headers (the limit is {})", self.policy.max_message_hops),
            ));
        }
        if let Some(limit) = self.loop_limit(&txn) {
            let loops = header.loops_through(&self.ctx.host_names) as u64;
            if loops > limit {
                return Err(Reply::new(
                    554,
                    "5.4.6",
                    format!(
                        "mail loop: the message passed through {} {loops} times (max-loop-count {limit})",
                        self.ctx.host_name()
                    ),
                ));
            }
        }
        let chosen = self.pattern_selection(&txn, &header);
        let vmta = self.select_vmta(&header, chosen.as_ref())?;
        let priority = chosen.and_then(|c| c.priority);
        let mut remove: Vec<String> = self.policy.remove_header.clone();
        // Stripped after the hop and loop checks above, which read the message as received;
        // Ember's own Received (prepended below) is never among the removed fields.
        if self.policy.remove_received_headers {
            remove.push("received".into());
        }
        let mut job_id = None;
        let job_header = self.policy.jobid_header.clone().unwrap_or_else(|| "x-job".into());
        if self.policy.process_x_job {
            job_id = header.get(&job_header).filter(|j| !j.is_empty() && !j.contains(char::is_control));
            if let (Some(j), Some(prefix)) = (&job_id, &self.policy.jobid_prefix) {
                let prefix =
                    if prefix == "{auth}" { self.auth_user.clone().unwrap_or_default() } else { prefix.clone() };
                job_id = Some(format!("{prefix}{j}"));
            }
            if !self.policy.retain_x_job {
                remove.push(job_header);
            }
        }
        if self.policy.process_x_virtual_mta && !self.policy.retain_x_virtual_mta {
            remove.push("x-virtual-mta".into());
        }
        let mut env_id = txn.env_id.clone();
        if self.policy.process_x_envid {
            if env_id.is_none() {
                env_id = header.get("x-envid").filter(|e| !e.is_empty());
            }
            remove.push("x-envid".into());
        }
        // X-DKIM-Options travels in the envelope (signing happens at delivery), so the header
        // itself can go unless the source keeps it.
        let dkim_options = if self.policy.process_x_dkim_options {
            if !self.policy.retain_x_dkim_options {
                remove.push("x-dkim-options".into());
            }
            header.get("x-dkim-options").filter(|o| !o.trim().is_empty())
        } else {
            None
        };
        let now = time::now_secs();
        let mut prepend = if self.policy.add_received_header { self.received_header(&txn, now) } else { String::new() };
        // include-headers-from: right after Ember's Received header.
        prepend.push_str(&String::from_utf8_lossy(self.ctx.included_headers.for_vmta(vmta.as_deref())));
        let mut append = String::new();
        if self.policy.add_message_id_header && header.get("message-id").is_none() {
            let host_id = self.ctx.config.policy.host_id;
            let id = super::added::message_id(now, unique(), host_id, self.ctx.host_name());
            append.push_str(&format!("Message-ID: {id}\r\n"));
        }
        // date-header-time delivery: the Date header is the delivery's (delivery/added.rs).
        let add_date = if self.policy.date_at_delivery { AddDateHeader::No } else { self.policy.add_date_header };
        match add_date {
            AddDateHeader::Yes if header.get("date").is_none() => {
                append.push_str(&format!("Date: {}\r\n", time::rfc5322(now)))
            }
            AddDateHeader::Override => {
                remove.push("date".into());
                append.push_str(&format!("Date: {}\r\n", time::rfc5322(now)));
            }
            _ => {}
        }
        // bcc: the archive copy rides with the message (after the Received header's `for`
        // clause, which names the sender's recipients only). The reply counts only those.
        let count = txn.recipients.len() + txn.suppressed.len();
        if let Some(archive) = &self.policy.bcc {
            txn.recipients.push(super::added::bcc_recipient(archive));
        }
        let unsubscribe = self.unsubscribe_headers(&txn, vmta.as_deref(), job_id.as_deref(), now);
        if !unsubscribe.is_empty() {
            // Ours replace the injector's: two List-Unsubscribe fields would confuse receivers.
            remove.extend(["list-unsubscribe".to_string(), "list-unsubscribe-post".to_string()]);
        }
        // One stored message per recipient with an unsubscribe header (each carries its own
        // token), and one for every other recipient (and the suppressed ones, already bounced).
        let mut parts: Vec<(Vec<crate::message::Recipient>, Vec<u8>)> = Vec::new();
        let mut others = Vec::new();
        for (i, r) in txn.recipients.iter().enumerate() {
            match unsubscribe.iter().find(|(j, _)| *j == i) {
                Some((_, fields)) => {
                    let message = header.rewrite(prepend.as_bytes(), &remove, format!("{append}{fields}").as_bytes());
                    parts.push((vec![r.clone()], message));
                }
                None => others.push(r.clone()),
            }
        }
        for (r, _) in &txn.suppressed {
            let mut r = r.clone();
            r.state = RecipientState::Bounced;
            others.push(r);
        }
        if !others.is_empty() || parts.is_empty() {
            parts.insert(0, (others, header.rewrite(prepend.as_bytes(), &remove, append.as_bytes())));
        }
        let mut first = None;
        for (recipients, message) in parts {
            let extra = Extra { priority, dkim_options: dkim_options.clone() };
            let id = self.store(&txn, recipients, message, vmta.clone(), job_id.clone(), env_id.clone(), extra).await?;
            first.get_or_insert(id);
        }
        let id = first.expect("at least one part");
        self.write_records(&txn, vmta.as_deref(), job_id.as_deref(), env_id.as_deref(), now);
        Ok(Reply::new(
            250,
            "2.6.0",
            format!("message {id} accepted for {count} recipient{}", if count == 1 { "" } else { "s" }),
        ))
    }

    /// The one-click unsubscribe header fields for each recipient whose settings want them
    /// (domain over VMTA over source), by position in the transaction.
    fn unsubscribe_headers(
        &self,
        txn: &Transaction,
        vmta: Option<&str>,
        job: Option<&str>,
        now: u64,
    ) -> Vec<(usize, String)> {
        let Some(tokens) = self.ctx.processors.tokens.as_ref() else { return Vec::new() };
        let config = &self.ctx.config;
        let mut base = self.policy.unsubscribe.clone();
        if let Some(v) = vmta {
            if let Some(block) = config.vmta(v) {
                base.overlay(&block.settings);
            } else if let Some(pool) = config.pool(v) {
                base.overlay(&pool.settings);
            }
        }
        let mut out = Vec::new();
        for (i, r) in txn.recipients.iter().enumerate() {
            let mut spec = base.clone();
            if let Ok(q) = config.queue_settings(&r.domain(), vmta) {
                spec.overlay(&q.settings);
            }
            if let Some(fields) = spec.headers(tokens, &r.address, job.unwrap_or(""), now) {
                out.push((i, fields));
            }
        }
        out
    }

    /// Stores one message for some of the transaction's recipients; its id.
    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        txn: &Transaction,
        recipients: Vec<crate::message::Recipient>,
        message: Vec<u8>,
        vmta: Option<String>,
        job_id: Option<String>,
        env_id: Option<String>,
        extra: Extra,
    ) -> Result<MessageId, Reply> {
        let envelope = Envelope {
            id: MessageId(0),
            sender: txn.sender.clone(),
            recipients,
            vmta: vmta.clone(),
            job_id: job_id.clone(),
            env_id: env_id.clone(),
            ret: txn.ret,
            eight_bit: txn.eight_bit,
            smtputf8: txn.smtputf8,
            arrival_ms: time::now_millis(),
            priority: extra.priority,
            dkim_options: extra.dkim_options,
            origin: Origin {
                kind: "smtp".into(),
                helo: self.helo.clone().unwrap_or_default(),
                client_ip: Some(self.conn.peer.ip()),
                local_ip: Some(self.conn.local.ip()),
                auth_user: self.auth_user.clone(),
                sources: self.named_sources.clone(),
            },
        };
        match self.ctx.sink.store(envelope, message).await {
            Ok(id) => Ok(id),
            Err(StoreError::Full(why)) => {
                tracing::warn!("refusing a message: {why}");
                Err(Reply::new(452, "4.3.1", "insufficient system storage, try again later"))
            }
            Err(StoreError::Failed(why)) => {
                tracing::error!("cannot store a message: {why}");
                Err(Reply::new(451, "4.3.0", "temporary failure storing the message, try again later"))
            }
        }
    }

    /// Hands the message to the processor of each report address; the addresses it must also
    /// be forwarded to. A report that cannot be recorded now gets a 4xx, so the sender retries.
    /// Processing fsyncs (the suppression journal under its lock, `suppress-file`, kept
    /// reports), so it runs on a blocking thread; the reply waits for it, so a 250 still means
    /// the report is durable. Reports are rare: copying the body there costs little.
    async fn process_reports(&self, reports: Vec<String>, body: &[u8]) -> Result<Vec<String>, Reply> {
        let ctx = Arc::clone(&self.ctx);
        let ip = self.conn.peer.ip().to_string();
        let helo = self.helo.clone().unwrap_or_default();
        let body = body.to_vec();
        let processed = tokio::task::spawn_blocking(move || {
            let from = crate::hygiene::processor::From { ip, helo: &helo };
            let mut forward = Vec::new();
            for rcpt in &reports {
                match ctx.processors.process(rcpt, &body, &from) {
                    Ok(outcome) => forward.extend(outcome.forward),
                    Err(e) => return Err(format!("cannot process the report to <{rcpt}>: {e}")),
                }
            }
            Ok(forward)
        })
        .await
        .unwrap_or_else(|e| Err(format!("report processing failed: {e}")));
        let mut forward = processed.map_err(|why| {
            tracing::error!("{why}");
            Reply::new(451, "4.3.0", "cannot record the report now, try again later")
        })?;
        forward.sort();
        forward.dedup();
        Ok(forward)
    }

    /// The strictest `max-loop-count` among the source's and the recipient domains' settings.
    fn loop_limit(&self, txn: &Transaction) -> Option<u64> {
        let mut limit = self.policy.max_loop_count;
        for r in &txn.recipients {
            if let Some(q) = self.ctx.domain_settings(&r.domain())
                && let Some(n) = q.settings.uint(Dir::MaxLoopCount)
            {
                limit = Some(limit.map_or(n, |l| l.min(n)));
            }
        }
        limit
    }

    /// What the source's `pattern-list` chooses for this message, if it has one.
    fn pattern_selection(&self, txn: &Transaction, header: &Header<'_>) -> Option<Selection> {
        let list = self.policy.pattern_list.as_deref()?;
        let chosen = self.ctx.pattern_lists.select(list, &txn.sender, &txn.recipients, header);
        if let Some(c) = &chosen {
            let by = c.vmta.as_ref().map(|v| format!("virtual-mta={} by {}", v.name, v.rule));
            tracing::debug!("pattern-list {list}: {} priority={:?}", by.unwrap_or_default(), c.priority);
        }
        chosen
    }

    /// VMTA selection for this session's source (see [`select_vmta`]).
    fn select_vmta(&self, header: &Header<'_>, chosen: Option<&Selection>) -> Result<Option<String>, Reply> {
        let x_virtual_mta = if self.policy.process_x_virtual_mta { header.get("x-virtual-mta") } else { None };
        let pattern = chosen.and_then(|c| c.vmta.as_ref()).map(|v| (v.name.as_str(), v.rule.as_str()));
        select_vmta(&self.ctx.config, &self.policy, x_virtual_mta.as_deref(), pattern, self.conn.local.ip())
    }

    fn received_header(&self, txn: &Transaction, now: u64) -> String {
        let host = self.ctx.host_name();
        let mut proto = if self.esmtp { "ESMTP".to_string() } else { "SMTP".to_string() };
        if self.encrypted {
            proto.push('S');
        }
        if self.auth_user.is_some() {
            proto.push('A');
        }
        let from = if self.policy.hide_message_source {
            String::new()
        } else {
            format!("from {} ([{}])\r\n\t", self.helo.as_deref().unwrap_or("unknown"), self.conn.peer.ip())
        };
        let for_clause = match txn.recipients.as_slice() {
            [one] => format!("\r\n\tfor <{}>", one.address),
            _ => String::new(),
        };
        format!("Received: {from}by {host} (Ember) with {proto}{for_clause}; {}\r\n", time::rfc5322(now))
    }

    fn write_records(&self, txn: &Transaction, vmta: Option<&str>, job: Option<&str>, env: Option<&str>, now: u64) {
        let acct = &self.ctx.accounting;
        let src_mta = format!("{} ({})", self.helo.as_deref().unwrap_or(""), self.conn.peer.ip());
        let (vmta_field, pool) = match vmta {
            Some(v) if self.ctx.config.pool(v).is_some() => (v.to_string(), v.to_string()),
            Some(v) => (v.to_string(), String::new()),
            None => ("{default}".to_string(), String::new()),
        };
        let logged = time::acct(now);
        if acct.wants(RecordType::Receipt) {
            for r in txn.recipients.iter().chain(txn.suppressed.iter().map(|(r, _)| r)) {
                let record = Record::new(RecordType::Receipt)
                    .set("timeLogged", logged.clone())
                    .set("orig", txn.sender.clone())
                    .set("rcpt", r.address.clone())
                    .set("orcpt", r.orcpt.clone().unwrap_or_default())
                    .set("srcType", "smtp")
                    .set("srcMta", src_mta.clone())
                    .set("rcvSourceIp", self.conn.peer.ip().to_string())
                    .set("rcvDestinationIp", self.conn.local.ip().to_string())
                    .set("vmta", vmta_field.clone())
                    .set("vmtaPool", pool.clone())
                    .set("jobId", job.unwrap_or_default())
                    .set("envId", env.unwrap_or_default())
                    .set("rcvSmtpUser", self.auth_user.clone().unwrap_or_default());
                acct.write(&record);
            }
        }
        if acct.wants(RecordType::Bounce) {
            for (r, list) in &txn.suppressed {
                let record = Record::new(RecordType::Bounce)
                    .set("timeLogged", logged.clone())
                    .set("timeQueued", logged.clone())
                    .set("orig", txn.sender.clone())
                    .set("rcpt", r.address.clone())
                    .set("orcpt", r.orcpt.clone().unwrap_or_default())
                    .set("dsnAction", "failed")
                    .set("dsnStatus", "5.7.1 (delivery not authorized)")
                    .set(
                        "dsnDiag",
                        format!("smtp;550 5.7.1 recipient is in suppression list \"{list}\": <{}>", r.address),
                    )
                    .set("bounceCat", "policy-related")
                    .set("srcType", "smtp")
                    .set("srcMta", src_mta.clone())
                    .set("vmta", vmta_field.clone())
                    .set("jobId", job.unwrap_or_default())
                    .set("envId", env.unwrap_or_default())
                    .set("queue", format!("{}/{}", r.domain(), vmta_field))
                    .set("vmtaPool", pool.clone());
                acct.write(&record);
            }
        }
    }
}

/// What the envelope carries besides the transaction's facts.
struct Extra {
    priority: Option<u8>,
    dkim_options: Option<String>,
}

/// VMTA selection, highest precedence first (docs/operations.md, "Injection"): the `X-Virtual-MTA`
/// header (given only when the source processes it), the `<pattern-list>` choice with the rule that
/// made it, then the source's `default-virtual-mta`. `None` is `{default}`, which always exists. A
/// name that is neither a VMTA nor a pool is refused with `550 5.3.5` under
/// `reject-invalid-virtual-mta`, else replaced by `invalid-virtual-mta-fallback`.
pub(crate) fn select_vmta(
    config: &Config,
    policy: &SourcePolicy,
    x_virtual_mta: Option<&str>,
    pattern: Option<(&str, &str)>,
    local_ip: IpAddr,
) -> Result<Option<String>, Reply> {
    let resolve = |name: &str, why: &str| -> Result<Option<String>, Reply> {
        if name == DEFAULT_VMTA {
            return Ok(None);
        }
        if config.vmta(name).is_some() || config.pool(name).is_some() {
            return Ok(Some(name.to_string()));
        }
        if policy.reject_invalid_virtual_mta {
            return Err(Reply::new(550, "5.3.5", format!("specified VirtualMTA does not exist: \"{name}\"{why}")));
        }
        Ok(config.global.text(Dir::InvalidVirtualMtaFallback).map(str::to_string))
    };
    if let Some(name) = x_virtual_mta {
        if name.is_empty() && policy.allow_empty_x_virtual_mta {
            return Ok(None);
        }
        return resolve(name, "");
    }
    if let Some((name, rule)) = pattern {
        return resolve(name, &format!(" (selected by {rule})"));
    }
    match policy.default_virtual_mta.as_deref() {
        Some("by-smtp-source-ip") => Ok(vmta_for_source_ip(config, local_ip)),
        Some(name) => resolve(name, ""),
        None => Ok(None),
    }
}

/// The VMTA whose `smtp-source-host` is the address the client connected to.
fn vmta_for_source_ip(config: &Config, ip: IpAddr) -> Option<String> {
    config.vmtas.iter().find_map(|v| {
        v.settings.all(Dir::SmtpSourceHost).iter().find_map(|e| match &e.value {
            Value::SourceHost { cidr, .. } if cidr.contains(ip) => Some(v.name.clone()),
            _ => None,
        })
    })
}

/// A process-unique number for generated Message-IDs.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    (u64::from(std::process::id()) << 40) | NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};
    use crate::ingress::patterns::PatternLists;
    use crate::message::Recipient;

    const CONFIG: &str = "\
invalid-virtual-mta-fallback spare
<virtual-mta tx>\n    smtp-source-host 127.0.0.2 tx.example.com\n</virtual-mta>
<virtual-mta promo>\n    smtp-source-host 127.0.0.3 promo.example.com\n</virtual-mta>
<virtual-mta spare>\n    smtp-source-host 127.0.0.4 spare.example.com\n</virtual-mta>
<pattern-list p>
    rcpt-to /@vip\\.example$/ virtual-mta=tx
    mail-from /^ghost@/ virtual-mta=vanished
    mail-from /^default@/ virtual-mta={default}
</pattern-list>
<source 127.0.0.1>
    process-x-virtual-mta yes
    pattern-list p
    default-virtual-mta promo
</source>
<source 127.0.0.5>
    pattern-list p
    default-virtual-mta promo
    reject-invalid-virtual-mta no
</source>
";

    /// The VMTA a message from `from` to `to` with `headers`, injected from `client`, gets. The
    /// config names a VMTA that does not exist (`vanished`, as after an edit the validator would
    /// refuse): the runtime check must hold on its own.
    fn selected(client: &str, from: &str, to: &str, headers: &str) -> Result<Option<String>, String> {
        let loaded = load_str("f.conf", CONFIG, Path::new("."), FileCheck::Warn);
        let config = loaded.config;
        let policy = SourcePolicy::for_client(&config, client.parse().unwrap(), &[]);
        let lists = PatternLists::from_config(&config);
        let body = format!("{headers}Subject: x\r\n\r\nbody\r\n").into_bytes();
        let header = Header::parse(&body);
        let chosen = lists.select("p", from, &[Recipient::new(to)], &header);
        let pattern = chosen.as_ref().and_then(|c| c.vmta.as_ref()).map(|v| (v.name.as_str(), v.rule.as_str()));
        let x = if policy.process_x_virtual_mta { header.get("x-virtual-mta") } else { None };
        select_vmta(&config, &policy, x.as_deref(), pattern, "127.0.0.1".parse().unwrap()).map_err(|r| r.to_string())
    }

    #[test]
    fn header_beats_pattern_list_beats_default() {
        assert_eq!(selected("127.0.0.1", "a@x", "b@vip.example", ""), Ok(Some("tx".into())));
        assert_eq!(selected("127.0.0.1", "a@x", "b@vip.example", "X-Virtual-MTA: promo\r\n"), Ok(Some("promo".into())));
        assert_eq!(selected("127.0.0.1", "a@x", "b@other.example", ""), Ok(Some("promo".into())));
        assert_eq!(selected("127.0.0.1", "default@x", "b@other.example", ""), Ok(None));
        // The header is read only when the source processes it.
        assert_eq!(selected("127.0.0.5", "a@x", "b@vip.example", "X-Virtual-MTA: promo\r\n"), Ok(Some("tx".into())));
    }

    #[test]
    fn an_unknown_pattern_list_choice_is_refused_with_the_rule_or_falls_back() {
        let refused = selected("127.0.0.1", "ghost@x", "b@other.example", "").unwrap_err();
        assert!(refused.starts_with("550 5.3.5 specified VirtualMTA does not exist: \"vanished\""), "{refused}");
        assert!(refused.contains("selected by <pattern-list p> mail-from /^ghost@/ virtual-mta=vanished (f.conf:"));
        // A valid X-Virtual-MTA still wins over the broken entry.
        let header = "X-Virtual-MTA: tx\r\n";
        assert_eq!(selected("127.0.0.1", "ghost@x", "b@other.example", header), Ok(Some("tx".into())));
        // reject-invalid-virtual-mta no: the fallback VMTA.
        assert_eq!(selected("127.0.0.5", "ghost@x", "b@other.example", ""), Ok(Some("spare".into())));
    }

    #[test]
    fn an_unknown_header_name_is_refused_and_default_is_always_known() {
        let refused = selected("127.0.0.1", "a@x", "b@y", "X-Virtual-MTA: nope\r\n").unwrap_err();
        assert!(refused.starts_with("550 5.3.5 specified VirtualMTA does not exist: \"nope\""), "{refused}");
        assert_eq!(selected("127.0.0.1", "a@x", "b@vip.example", "X-Virtual-MTA: {default}\r\n"), Ok(None));
    }
}
