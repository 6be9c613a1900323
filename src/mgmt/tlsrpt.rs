//! TLS-RPT (RFC 8460) reports: `POST /api/v1/tlsrpt/send` (`ember tlsrpt send`) ends the
//! current window of session counts and mails each recipient domain that publishes a
//! `_smtp._tls` TXT record with `mailto:` destinations its report — JSON, gzip'd, as
//! `application/tlsrpt+gzip` in a `multipart/report` — through Ember's own queues (stored in
//! the spool like a DSN, then DKIM-signed on the way out for the From (`postmaster`) domain
//! with its `domain-key`, whether or not the queue signs). The daemon sends the same reports
//! once a day at midnight UTC.

use std::sync::Arc;

use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::api::{Envelope, Shared, envelope};
use super::openapi::WriteRefusals;
use crate::config::{Config, Dir};
use crate::delivery::tls_policy::{TlsPolicies, tlsrpt};
use crate::message::{Envelope as MessageEnvelope, MessageId, Origin, Recipient};
use crate::queue::QueueHandle;
use crate::spool::Spool;

/// What a send did.
#[derive(Debug, Default, Serialize, serde::Deserialize, ToSchema)]
pub struct SendSummary {
    /// Unix seconds: the window the reports cover.
    pub window_start: u64,
    pub window_end: u64,
    /// Domains with sessions in the window.
    pub domains: usize,
    /// Reports queued: one per domain with a `mailto:` rua.
    pub reports: Vec<SentReport>,
    /// Domains not reported, and why (no TLS-RPT record, a DNS failure).
    pub skipped: Vec<String>,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct SentReport {
    pub domain: String,
    pub rua: Vec<String>,
    /// The spool id of the queued report.
    pub message: String,
}

/// Sends the TLS-RPT reports of the window so far and starts a new one
///
/// Access level: operator (or an X-API-Key). Each domain that had sessions and publishes
/// `_smtp._tls` with `mailto:` addresses gets one report, queued like any message.
#[utoipa::path(post, path = "/api/v1/tlsrpt/send", operation_id = "tlsrpt_send", tag = "tlsrpt",
    security((), ("api_key" = [])),
    responses((status = 200, description = "the reports queued", body = Envelope<SendSummary>), WriteRefusals))]
pub async fn send(state: Shared) -> Response {
    let summary = send_reports(&state.tls_policies, &state.spool, &state.queues, &state.config()).await;
    envelope(summary)
}

/// Ends the window and queues its reports.
pub async fn send_reports(
    policies: &Arc<TlsPolicies>,
    spool: &Spool,
    queues: &QueueHandle,
    config: &Config,
) -> SendSummary {
    let end = crate::time::now_secs();
    let window = policies.reports.take(end);
    policies.save_reports().await;
    let submitter = config.global.text(Dir::HostName).unwrap_or("localhost").to_string();
    let postmaster = config.global.text(Dir::Postmaster).unwrap_or("postmaster@localhost").to_string();
    let mut summary = SendSummary {
        window_start: window.start,
        window_end: end,
        domains: window.domains.len(),
        ..Default::default()
    };
    for domain in window.domains.keys() {
        let rua = match policies.tlsrpt_rua(domain).await {
            Ok(rua) if rua.is_empty() => {
                summary.skipped.push(format!("{domain}: no TLS-RPT mailto: destination"));
                continue;
            }
            Ok(rua) => rua,
            Err(e) => {
                summary.skipped.push(format!("{domain}: _smtp._tls lookup failed: {e}"));
                continue;
            }
        };
        let Some(report) = tlsrpt::report(&window, domain, &submitter, &postmaster, end) else { continue };
        let mut body = Vec::new();
        if let Err(e) =
            report.write_rfc5322(domain, &submitter, postmaster.as_str(), rua.iter().map(String::as_str), &mut body)
        {
            tracing::error!("cannot write the TLS-RPT report for {domain}: {e}");
            continue;
        }
        match queue_report(spool, queues, &postmaster, &rua, body).await {
            Ok(id) => {
                tracing::info!("queued the TLS-RPT report for {domain} to {} as {id}", rua.join(", "));
                summary.reports.push(SentReport { domain: domain.clone(), rua, message: id.to_string() });
            }
            Err(e) => {
                tracing::error!("cannot queue the TLS-RPT report for {domain}: {e}");
                summary.skipped.push(format!("{domain}: {e}"));
            }
        }
    }
    summary
}

async fn queue_report(
    spool: &Spool,
    queues: &QueueHandle,
    sender: &str,
    rua: &[String],
    body: Vec<u8>,
) -> Result<MessageId, String> {
    let envelope = MessageEnvelope {
        arrival_ms: crate::time::now_millis(),
        origin: Origin { kind: crate::message::TLSRPT_ORIGIN.into(), ..Origin::default() },
        ..MessageEnvelope::new(sender.to_string(), rua.iter().map(|r| Recipient::new(r.clone())).collect())
    };
    let id = spool.store(envelope.clone(), body).await.map_err(|e| e.to_string())?;
    let mut stored = envelope;
    stored.id = id;
    if queues.submit(stored).await.is_err() {
        tracing::info!("TLS-RPT report {id} stays in the spool for the next start: the queue manager has stopped");
    }
    Ok(id)
}

/// The daily reports: at every midnight UTC, the day's window is reported.
pub async fn daily(policies: Arc<TlsPolicies>, spool: Spool, queues: QueueHandle, config: impl Fn() -> Arc<Config>) {
    loop {
        let now = crate::time::now_secs();
        let next_midnight = (now / 86_400 + 1) * 86_400;
        tokio::time::sleep(std::time::Duration::from_secs(next_midnight - now)).await;
        let summary = send_reports(&policies, &spool, &queues, &config()).await;
        tracing::info!("daily TLS-RPT: {} reports for {} domains", summary.reports.len(), summary.domains);
    }
}
