//! HTTP injection (PowerMTA's v5 Transmissions API): the SparkPost-compatible
//! subset — `return_path`, `campaign_id` (→ job id), `options.smtputf8`, `recipients` (an
//! address or `{email, name}`, each with an optional `return_path`), `content.email_rfc822`.
//! Anything else SparkPost knows (templates, substitution data, tracking) is refused, as
//! PowerMTA does. `<source {transmissions-api}>` governs the messages; they are stored through
//! the same sink as SMTP and pickup mail, so an answer comes only once they are durable.
//!
//! Knows nothing of HTTP: the management server turns requests and errors into responses.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::StoreError;
use super::context::Context;
use super::policy::SourcePolicy;
use crate::message::headers::Header;
use crate::message::{Envelope, MessageId, Origin, Recipient};
use crate::outcome::acct::{Record, RecordType};
use crate::time;

/// A transmission (SparkPost-compatible subset): `campaign_id` is the job id.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transmission {
    pub return_path: Option<String>,
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub options: Options,
    pub recipients: Vec<TxRecipient>,
    pub content: Content,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub smtputf8: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxRecipient {
    pub address: Address,
    pub return_path: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Address {
    Plain(String),
    Full {
        email: String,
        #[allow(dead_code)]
        name: Option<String>,
    },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    pub email_rfc822: String,
}

/// Why a transmission was not taken, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    /// The spool cannot take it now (full, or failing): try again later.
    #[error("{0}")]
    Unavailable(String),
}

/// What was accepted (read back by `ember inject`).
#[derive(Debug, Default, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    pub total_accepted_recipients: usize,
    pub total_rejected_recipients: usize,
    /// The spool ids of the stored messages (one per distinct return path).
    pub id: String,
}

fn valid_address(a: &str) -> bool {
    a.rsplit_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !a.contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// Checks and stores a transmission: one message per distinct return path, all durable before
/// this returns. `client` is the requester's address (for `Origin` and the policy's source).
pub async fn inject(ctx: &Context, tx: Transmission, client: std::net::IpAddr) -> Result<Accepted, TxError> {
    if ctx.intake.is_closed() {
        return Err(TxError::Unavailable(super::intake::Intake::refusal(ctx.host_name()).text.into_owned()));
    }
    let policy = SourcePolicy::for_client(&ctx.config, client, &["{transmissions-api}"]);
    let body = tx.content.email_rfc822.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes();
    if let Some(max) = policy.max_message_size
        && body.len() as u64 > max
    {
        return Err(TxError::TooLarge(format!("message of {} bytes exceeds max-message-size {max}", body.len())));
    }
    if body.is_empty() || !body.windows(4).any(|w| w == b"\r\n\r\n") && !body.starts_with(b"\r\n") {
        return Err(TxError::Invalid(
            "content.email_rfc822 must be an RFC 5322 message (headers, blank line, body)".into(),
        ));
    }
    if tx.recipients.is_empty() {
        return Err(TxError::Invalid("recipients: at least one is required".into()));
    }
    if let Some(max) = policy.max_rcpt_per_message
        && tx.recipients.len() as u64 > max
    {
        return Err(TxError::Invalid(format!("too many recipients (at most {max} per transmission)")));
    }
    if let Some(job) = &tx.campaign_id
        && (job.is_empty() || job.contains(|c: char| c.is_whitespace() || c.is_control()))
    {
        return Err(TxError::Invalid(format!("campaign_id {job:?} may not contain spaces or control characters")));
    }
    // Recipients grouped by return path (the envelope sender).
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &tx.recipients {
        let address = match &r.address {
            Address::Plain(a) | Address::Full { email: a, .. } => a.trim().to_string(),
        };
        if !valid_address(&address) {
            return Err(TxError::Invalid(format!("recipient {address:?} is not an email address")));
        }
        if !tx.options.smtputf8 && !address.is_ascii() {
            return Err(TxError::Invalid(format!("recipient {address:?} needs options.smtputf8")));
        }
        let sender = r.return_path.clone().or_else(|| tx.return_path.clone()).unwrap_or_default();
        if !sender.is_empty() && !valid_address(&sender) {
            return Err(TxError::Invalid(format!("return_path {sender:?} is not an email address")));
        }
        groups.entry(sender).or_default().push(address);
    }
    let header = Header::parse(&body);
    let x_vmta = if policy.process_x_virtual_mta { header.get("x-virtual-mta") } else { None };
    let vmta = super::finish::select_vmta(&ctx.config, &policy, x_vmta.as_deref(), None, client)
        .map_err(|reply| TxError::Invalid(reply.text.to_string()))?;
    let mut remove = policy.remove_header.clone();
    if policy.process_x_virtual_mta && !policy.retain_x_virtual_mta {
        remove.push("x-virtual-mta".into());
    }
    let now = time::now_secs();
    let received = if policy.add_received_header {
        format!("Received: by {} (Ember) with HTTP; {}\r\n", ctx.host_name(), time::rfc5322(now))
    } else {
        String::new()
    };
    let message = header.rewrite(received.as_bytes(), &remove, b"");
    let mut accepted = Accepted::default();
    let mut ids = Vec::new();
    for (sender, recipients) in groups {
        let envelope = Envelope {
            id: MessageId(0),
            sender: sender.clone(),
            recipients: recipients.iter().map(Recipient::new).collect(),
            vmta: vmta.clone(),
            job_id: tx.campaign_id.clone(),
            env_id: None,
            ret: None,
            eight_bit: message.iter().any(|b| *b >= 0x80),
            smtputf8: tx.options.smtputf8,
            arrival_ms: time::now_millis(),
            priority: None,
            dkim_options: None,
            origin: Origin {
                kind: "api".into(),
                client_ip: Some(client),
                sources: vec!["{transmissions-api}".into()],
                ..Origin::default()
            },
        };
        let id = ctx.sink.store(envelope, message.clone()).await.map_err(|e| match e {
            StoreError::Full(w) | StoreError::Failed(w) => TxError::Unavailable(w),
        })?;
        ids.push(id.to_string());
        accepted.total_accepted_recipients += recipients.len();
        write_receipts(ctx, &sender, &recipients, vmta.as_deref(), tx.campaign_id.as_deref(), client, now);
    }
    accepted.id = ids.join(",");
    Ok(accepted)
}

fn write_receipts(
    ctx: &Context,
    sender: &str,
    recipients: &[String],
    vmta: Option<&str>,
    job: Option<&str>,
    client: std::net::IpAddr,
    now: u64,
) {
    if !ctx.accounting.wants(RecordType::Receipt) {
        return;
    }
    for r in recipients {
        ctx.accounting.write(
            &Record::new(RecordType::Receipt)
                .set("timeLogged", time::acct(now))
                .set("orig", sender.to_string())
                .set("rcpt", r.clone())
                .set("srcType", "api")
                .set("srcMta", format!("({client})"))
                .set("vmta", vmta.unwrap_or("{default}").to_string())
                .set("jobId", job.unwrap_or_default().to_string()),
        );
    }
}
