//! Queued messages: `GET /api/v1/messages` lists queued recipients (PowerMTA's `list`, from the
//! spool's index) and `POST /api/v1/messages/delete` removes them (PowerMTA's `delete`: `b`
//! accounting records unless `accounting: false`, DSNs only with `dsn: true`).

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{Body, Envelope, Shared, envelope, refuse};
use super::openapi::{ReadRefusals, WriteRefusals};
use super::queues::{max_items, pattern_matches};
use crate::queue::manager::{Filter, Operation};

/// The filters of `GET /api/v1/messages` (PowerMTA's `list`); names and addresses match
/// without regard to case.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageFilter {
    /// domain/vmta, domain, * for either part
    queue: Option<String>,
    /// sender
    orig: Option<String>,
    /// recipient
    rcpt: Option<String>,
    /// job id
    jobid: Option<String>,
    /// envelope id (ENVID)
    envid: Option<String>,
    /// A number or `all`: at most this many (default: http-default-max-items, 10; all: every item)
    maxitems: Option<String>,
}

/// The queued recipients that matched, the first `maxitems` of them listed.
#[derive(Serialize, ToSchema)]
pub struct QueuedList {
    total: usize,
    recipients: Vec<Queued>,
}

/// One queued recipient.
#[derive(Serialize, ToSchema)]
pub struct Queued {
    /// The message's spool id.
    id: String,
    /// The recipient's index in the message.
    recipient: usize,
    sender: String,
    rcpt: String,
    /// domain/vmta
    queue: String,
    job_id: Option<String>,
    env_id: Option<String>,
    /// Unix time in milliseconds.
    arrival_ms: u64,
    priority: Option<u8>,
}

/// Queued recipients
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/messages", operation_id = "messages_list", tag = "messages", params(MessageFilter),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the matching recipients", body = Envelope<QueuedList>), ReadRefusals))]
pub async fn list(state: Shared, Query(filter): Query<MessageFilter>) -> Response {
    let max = match max_items(&state, filter.maxitems.as_deref()) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let config = state.config();
    let eq = |want: &Option<String>, have: Option<&str>| {
        want.as_deref().is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
    };
    let mut envelopes = state.spool.live();
    envelopes.sort_by_key(|e| e.id);
    let mut rows = Vec::new();
    let mut total = 0usize;
    for env in &envelopes {
        if !eq(&filter.orig, Some(&env.sender))
            || !eq(&filter.jobid, env.job_id.as_deref())
            || !eq(&filter.envid, env.env_id.as_deref())
        {
            continue;
        }
        let vmta = env.vmta.as_deref().unwrap_or(crate::config::DEFAULT_VMTA);
        let lookup = config.vmta(vmta).is_some().then_some(vmta);
        for (i, r) in env.live_recipients() {
            if !eq(&filter.rcpt, Some(&r.address)) {
                continue;
            }
            let queue = config
                .queue_settings(&r.domain(), lookup)
                .map_or_else(|_| format!("{}/{vmta}", r.domain()), |q| format!("{}/{vmta}", q.queue));
            if filter.queue.as_deref().is_some_and(|p| !pattern_matches(p, &queue)) {
                continue;
            }
            total += 1;
            if rows.len() < max {
                rows.push(Queued {
                    id: env.id.to_string(),
                    recipient: i,
                    sender: env.sender.clone(),
                    rcpt: r.address.clone(),
                    queue,
                    job_id: env.job_id.clone(),
                    env_id: env.env_id.clone(),
                    arrival_ms: env.arrival_ms,
                    priority: env.priority,
                });
            }
        }
    }
    envelope(QueuedList { total, recipients: rows })
}

/// Which recipients to delete: queue or job_id is required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// domain/vmta, domain, * for either part
    queue: Option<String>,
    /// sender
    orig: Option<String>,
    /// recipient
    rcpt: Option<String>,
    job_id: Option<String>,
    env_id: Option<String>,
    /// Seconds.
    older_than: Option<u64>,
    /// Write `b` records for the deleted recipients (default yes; `--no-accounting`).
    #[serde(default = "yes")]
    #[schema(default = true)]
    accounting: bool,
    /// Send DSNs to the senders (`--dsn`).
    #[serde(default)]
    dsn: bool,
}

fn yes() -> bool {
    true
}

/// What a delete removed.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    /// Recipients deleted.
    deleted: usize,
    /// Queues they were in.
    queues: usize,
}

/// delete queued recipients (queue or job_id required)
///
/// Access level: operator (or an X-API-Key).
#[utoipa::path(post, path = "/api/v1/messages/delete", tag = "messages", request_body = DeleteRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "what was deleted", body = Envelope<Deleted>),
        WriteRefusals))]
pub async fn delete(state: Shared, Body(req): Body<DeleteRequest>) -> Response {
    let filter = Filter {
        queue: req.queue,
        orig: req.orig,
        rcpt: req.rcpt,
        job_id: req.job_id,
        env_id: req.env_id,
        older_than: req.older_than,
    };
    if filter.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "delete needs queue or job_id (as PowerMTA's --queue or --jobId)");
    }
    let r = state.queues.operate(Operation::Delete { filter, accounting: req.accounting, dsn: req.dsn }).await;
    envelope(Deleted { deleted: r.recipients, queues: r.queues })
}
