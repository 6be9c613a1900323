//! Queues: `GET /api/v1/queues` with PowerMTA's filters, `GET /api/v1/queues/detail` (recent
//! recipient events, errors, mode changes, effective settings), and the operator's POSTs:
//! pause, resume, schedule, set mode.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use axum::response::IntoResponse;

use super::api::{ApiState, Body, Refusal, Shared, envelope, matched, refuse};
use crate::config::Dir;
use crate::queue::QueueStatus;
use crate::queue::manager::Command;

/// `yes`/`no` filter values (PowerMTA's spelling), also `true`/`false`.
fn yes_no(params: &HashMap<String, String>, name: &str) -> Result<Option<bool>, Refusal> {
    match params.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "yes" || v == "true" => Ok(Some(true)),
        Some(v) if v == "no" || v == "false" => Ok(Some(false)),
        Some(v) => Err(Refusal(StatusCode::BAD_REQUEST, format!("{name} must be yes or no, not {v:?}"))),
    }
}

/// `maxitems=N` (`all`: no limit); without it, `http-default-max-items` of the running
/// configuration (PowerMTA's default 10).
pub fn max_items(state: &ApiState, params: &HashMap<String, String>) -> Result<usize, Refusal> {
    match params.get("maxitems").map(String::as_str) {
        None => Ok(state.config().global.uint(Dir::HttpDefaultMaxItems).map_or(usize::MAX, |n| n as usize)),
        Some(v) if v.eq_ignore_ascii_case("all") => Ok(usize::MAX),
        Some(v) => v
            .parse()
            .map_err(|_| Refusal(StatusCode::BAD_REQUEST, format!("maxitems must be a number or all, not {v:?}"))),
    }
}

/// `domain/vmta` or `domain`, `*` for either part (the same rule as the queue commands).
pub fn pattern_matches(pattern: &str, queue: &str) -> bool {
    let (d, v) = pattern.split_once('/').unwrap_or((pattern, "*"));
    let (qd, qv) = queue.split_once('/').unwrap_or((queue, ""));
    (d == "*" || d.eq_ignore_ascii_case(qd)) && (v == "*" || v == qv)
}

/// GET /api/v1/queues?connected=yes|no&paused=yes|no&mode=M&queue=P&sort=name|rcpt&maxitems=N
pub async fn list(state: Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let (connected, paused) = match (yes_no(&params, "connected"), yes_no(&params, "paused")) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let max = match max_items(&state, &params) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let mode = params.get("mode").map(|m| m.to_ascii_lowercase());
    if let Some(m) = &mode
        && !["normal", "backoff", "retry", "paused"].contains(&m.as_str())
    {
        return refuse(StatusCode::BAD_REQUEST, &format!("mode must be normal, backoff, retry or paused, not {m:?}"));
    }
    let mut queues: Vec<QueueStatus> = state
        .queues
        .snapshot()
        .await
        .into_iter()
        .filter(|q| connected.is_none_or(|c| (q.connections > 0) == c))
        .filter(|q| paused.is_none_or(|p| q.paused == p))
        .filter(|q| mode.as_deref().is_none_or(|m| q.mode == m))
        .filter(|q| params.get("queue").is_none_or(|p| pattern_matches(p, &q.queue)))
        .collect();
    match params.get("sort").map(String::as_str) {
        None | Some("name") => {}
        Some("rcpt") => queues.sort_by(|a, b| b.recipients.cmp(&a.recipients).then(a.queue.cmp(&b.queue))),
        Some(other) => return refuse(StatusCode::BAD_REQUEST, &format!("sort must be name or rcpt, not {other:?}")),
    }
    queues.truncate(max);
    envelope(serde_json::to_value(queues).unwrap_or_default())
}

/// GET /api/v1/queues/detail?queue=domain/vmta
pub async fn detail(state: Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let Some(name) = params.get("queue") else {
        return refuse(StatusCode::BAD_REQUEST, "queue=domain/vmta is required");
    };
    let queues = state.queues.snapshot().await;
    let Some(q) = queues.iter().find(|q| &q.queue == name || q.queue.split('/').next() == Some(name.as_str())) else {
        return refuse(StatusCode::NOT_FOUND, &format!("no queue {name} in the running daemon"));
    };
    let (events, errors) = state.telemetry.queue_detail(&q.queue);
    let (domain, vmta) = q.queue.split_once('/').unwrap_or((&q.queue, ""));
    let lookup = (vmta != crate::config::DEFAULT_VMTA).then_some(vmta);
    let config = state.config();
    let resolved = config.queue_settings(domain, lookup).ok();
    let settings = resolved.as_ref().map(crate::config::show::render_json).unwrap_or_default();
    let settings_text = resolved.as_ref().map(crate::config::show::render_text).unwrap_or_default();
    envelope(json!({
        "queue": q,
        "events": events,
        "errors": errors,
        "mode_events": q.mode_events,
        "settings": settings,
        "settings_text": settings_text,
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    queue: String,
    /// `schedule` only: recipients waiting for their own retry time go too.
    #[serde(default)]
    retry_recipients: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    queue: String,
    mode: String,
}

/// POST /api/v1/queues/mode {queue, mode: backoff|normal}
pub async fn set_mode(state: Shared, Body(req): Body<ModeRequest>) -> Response {
    let command = match req.mode.as_str() {
        "backoff" => Command::Backoff,
        "normal" => Command::Normal,
        other => return refuse(StatusCode::BAD_REQUEST, &format!("mode must be backoff or normal, not {other:?}")),
    };
    matched(state.queues.command(&req.queue, command).await, &req.queue)
}

/// POST /api/v1/queues/pause {queue}
pub async fn pause(state: Shared, Body(req): Body<QueueRequest>) -> Response {
    matched(state.queues.command(&req.queue, Command::Pause).await, &req.queue)
}

/// POST /api/v1/queues/resume {queue}
pub async fn resume(state: Shared, Body(req): Body<QueueRequest>) -> Response {
    matched(state.queues.command(&req.queue, Command::Resume).await, &req.queue)
}

/// POST /api/v1/queues/schedule {queue, retry_recipients}
pub async fn schedule(state: Shared, Body(req): Body<QueueRequest>) -> Response {
    let n = state.queues.command(&req.queue, Command::Schedule { recipients: req.retry_recipients }).await;
    let total = state.queues.snapshot().await.len();
    if n == 0 {
        return matched(0, &req.queue);
    }
    envelope(json!({"matched": n, "queues": total, "message": format!("{n} of {total} matching queues scheduled.")}))
}
