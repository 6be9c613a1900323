//! Queued messages: `GET /api/v1/messages` lists queued recipients (PowerMTA's `list`, from the
//! spool's index) and `POST /api/v1/messages/delete` removes them (PowerMTA's `delete`: `b`
//! accounting records unless `accounting: false`, DSNs only with `dsn: true`).

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::{Body, Shared, envelope, refuse};
use super::queues::{max_items, pattern_matches};
use crate::queue::manager::{Filter, Operation};

/// GET /api/v1/messages?queue=&orig=&rcpt=&jobid=&envid=&maxitems=N
pub async fn list(state: Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let max = match max_items(&state, &params) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let config = state.config();
    let eq = |name: &str, have: Option<&str>| {
        params.get(name).is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
    };
    let mut envelopes = state.spool.live();
    envelopes.sort_by_key(|e| e.id);
    let mut rows = Vec::new();
    let mut total = 0usize;
    for env in &envelopes {
        if !eq("orig", Some(&env.sender)) || !eq("jobid", env.job_id.as_deref()) || !eq("envid", env.env_id.as_deref())
        {
            continue;
        }
        let vmta = env.vmta.as_deref().unwrap_or(crate::config::DEFAULT_VMTA);
        let lookup = config.vmta(vmta).is_some().then_some(vmta);
        for (i, r) in env.live_recipients() {
            if !eq("rcpt", Some(&r.address)) {
                continue;
            }
            let queue = config
                .queue_settings(&r.domain(), lookup)
                .map_or_else(|_| format!("{}/{vmta}", r.domain()), |q| format!("{}/{vmta}", q.queue));
            if params.get("queue").is_some_and(|p| !pattern_matches(p, &queue)) {
                continue;
            }
            total += 1;
            if rows.len() < max {
                rows.push(json!({
                    "id": env.id.to_string(),
                    "recipient": i,
                    "sender": env.sender,
                    "rcpt": r.address,
                    "queue": queue,
                    "job_id": env.job_id,
                    "env_id": env.env_id,
                    "arrival_ms": env.arrival_ms,
                    "priority": env.priority,
                }));
            }
        }
    }
    envelope(json!({"total": total, "recipients": rows}))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    queue: Option<String>,
    orig: Option<String>,
    rcpt: Option<String>,
    job_id: Option<String>,
    env_id: Option<String>,
    /// Seconds.
    older_than: Option<u64>,
    /// Write `b` records for the deleted recipients (default yes; `--no-accounting`).
    #[serde(default = "yes")]
    accounting: bool,
    /// Send DSNs to the senders (`--dsn`).
    #[serde(default)]
    dsn: bool,
}

fn yes() -> bool {
    true
}

/// POST /api/v1/messages/delete {queue | job_id, orig, rcpt, env_id, older_than, accounting, dsn}
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
    envelope(json!({"deleted": r.recipients, "queues": r.queues}))
}
