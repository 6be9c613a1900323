//! Queues: `GET /api/v1/queues` with PowerMTA's filters, `GET /api/v1/queues/detail` (recent
//! recipient events, errors, mode changes, effective settings), and the operator's POSTs:
//! pause, resume, schedule, set mode.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{ApiState, Body, Envelope, Matched, Refusal, Shared, envelope, matched, refuse};
use super::openapi::{ReadRefusals, WriteRefusals};
use crate::config::Dir;
use crate::queue::QueueStatus;
use crate::queue::manager::Command;
use crate::queue::state::ModeEvent;

/// `yes`/`no` filter values (PowerMTA's spelling), also `true`/`false`.
fn yes_no(value: Option<&str>, name: &str) -> Result<Option<bool>, Refusal> {
    match value.map(str::to_ascii_lowercase) {
        None => Ok(None),
        Some(v) if v == "yes" || v == "true" => Ok(Some(true)),
        Some(v) if v == "no" || v == "false" => Ok(Some(false)),
        Some(v) => Err(Refusal(StatusCode::BAD_REQUEST, format!("{name} must be yes or no, not {v:?}"))),
    }
}

/// `maxitems=N` (`all`: no limit); without it, `http-default-max-items` of the running
/// configuration (PowerMTA's default 10).
pub fn max_items(state: &ApiState, maxitems: Option<&str>) -> Result<usize, Refusal> {
    match maxitems {
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

/// The filters of `GET /api/v1/queues` (PowerMTA's `show queues`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueFilter {
    /// yes|no
    connected: Option<String>,
    /// yes|no
    paused: Option<String>,
    /// normal|backoff|retry|paused
    mode: Option<String>,
    /// domain/vmta, domain, * for either part
    queue: Option<String>,
    /// name|rcpt
    sort: Option<String>,
    /// A number or `all`: at most this many (default: http-default-max-items, 10; all: every item)
    maxitems: Option<String>,
}

/// Queues with mode, reason, expiry and counts
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/queues", operation_id = "queues_list", tag = "queues", params(QueueFilter),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the matching queues", body = Envelope<Vec<QueueStatus>>), ReadRefusals))]
pub async fn list(state: Shared, Query(filter): Query<QueueFilter>) -> Response {
    let (connected, paused) =
        match (yes_no(filter.connected.as_deref(), "connected"), yes_no(filter.paused.as_deref(), "paused")) {
            (Ok(c), Ok(p)) => (c, p),
            (Err(r), _) | (_, Err(r)) => return r.into_response(),
        };
    let max = match max_items(&state, filter.maxitems.as_deref()) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let mode = filter.mode.as_deref().map(str::to_ascii_lowercase);
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
        .filter(|q| filter.queue.as_deref().is_none_or(|p| pattern_matches(p, &q.queue)))
        .collect();
    match filter.sort.as_deref() {
        None | Some("name") => {}
        Some("rcpt") => queues.sort_by(|a, b| b.recipients.cmp(&a.recipients).then(a.queue.cmp(&b.queue))),
        Some(other) => return refuse(StatusCode::BAD_REQUEST, &format!("sort must be name or rcpt, not {other:?}")),
    }
    queues.truncate(max);
    envelope(queues)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// domain/vmta
    #[param(required = true)]
    queue: Option<String>,
}

/// One queue as the dashboard's detail view shows it.
#[derive(Serialize, ToSchema)]
pub struct QueueDetail {
    queue: QueueStatus,
    /// The last recipient events, newest first.
    #[schema(value_type = Vec<Object>)]
    events: Vec<crate::telemetry::RecipientEvent>,
    /// The last errors, newest first.
    #[schema(value_type = Vec<Object>)]
    errors: Vec<crate::telemetry::RecipientEvent>,
    mode_events: Vec<ModeEvent>,
    /// The effective settings, each with where its value comes from (as `GET /api/v1/settings`).
    #[schema(value_type = Object)]
    settings: serde_json::Value,
    /// The same as `show settings` prints them.
    settings_text: String,
    /// The recipient domain's transport-security policy as last seen: "MTA-STS enforce (policy
    /// id …, mx …, max_age …)", "none (opportunistic TLS)", "none (use-mta-sts no)".
    tls_policy: String,
}

/// One queue: last 50 recipient events (track-recipient-events yes), last max-events-recorded errors (default 10), last 10 mode changes, effective settings
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/queues/detail", tag = "queues", params(DetailQuery),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the queue", body = Envelope<QueueDetail>),
        (status = 404, description = "no such queue in the running daemon", body = super::api::Failure),
        ReadRefusals))]
pub async fn detail(state: Shared, Query(query): Query<DetailQuery>) -> Response {
    let Some(name) = query.queue else {
        return refuse(StatusCode::BAD_REQUEST, "queue=domain/vmta is required");
    };
    let queues = state.queues.snapshot().await;
    let Some(q) = queues.iter().find(|q| q.queue == name || q.queue.split('/').next() == Some(name.as_str())) else {
        return refuse(StatusCode::NOT_FOUND, &format!("no queue {name} in the running daemon"));
    };
    let (events, errors) = state.telemetry.queue_detail(&q.queue);
    let (domain, vmta) = q.queue.split_once('/').unwrap_or((&q.queue, ""));
    let lookup = (vmta != crate::config::DEFAULT_VMTA).then_some(vmta);
    let config = state.config();
    let resolved = config.queue_settings(domain, lookup).ok();
    let settings = resolved.as_ref().map(crate::config::show::render_json).unwrap_or_default();
    let settings_text = resolved.as_ref().map(crate::config::show::render_text).unwrap_or_default();
    let use_policies = crate::delivery::tls_policy::UsePolicies {
        mta_sts: resolved.as_ref().is_some_and(|r| r.policy.use_mta_sts),
        dane: resolved.as_ref().is_some_and(|r| r.policy.use_dane),
    };
    let tls_policy = if q.provider.is_some() {
        // A rollup's connection carries several domains' mail: no one policy is in force.
        "per recipient domain: each member domain's own DANE or MTA-STS policy is checked on \
         every connection (`ember explain DOMAIN` shows a member's)"
            .to_string()
    } else {
        state.tls_policies.describe(domain, use_policies)
    };
    envelope(QueueDetail {
        queue: q.clone(),
        events,
        errors,
        mode_events: q.mode_events.clone(),
        settings,
        settings_text,
        tls_policy,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    /// pattern: domain/vmta, domain, * for either part
    queue: String,
    /// `schedule` only: recipients waiting for their own retry time go too.
    #[serde(default)]
    retry_recipients: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// pattern: domain/vmta, domain, * for either part
    queue: String,
    /// backoff|normal
    mode: String,
}

/// What `schedule` did.
#[derive(Serialize, ToSchema)]
pub struct Scheduled {
    matched: usize,
    /// All queues of the daemon.
    queues: usize,
    message: String,
}

/// set queue --mode
///
/// Access level: operator (or an X-API-Key).
#[utoipa::path(post, path = "/api/v1/queues/mode", tag = "queues", request_body = ModeRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the queues the pattern matched", body = Envelope<Matched>),
        (status = 404, description = "no queue matches the pattern", body = super::api::Failure), WriteRefusals))]
pub async fn set_mode(state: Shared, Body(req): Body<ModeRequest>) -> Response {
    let command = match req.mode.as_str() {
        "backoff" => Command::Backoff,
        "normal" => Command::Normal,
        other => return refuse(StatusCode::BAD_REQUEST, &format!("mode must be backoff or normal, not {other:?}")),
    };
    matched(state.queues.command(&req.queue, command).await, &req.queue)
}

/// pause queue
///
/// Access level: operator (or an X-API-Key).
#[utoipa::path(post, path = "/api/v1/queues/pause", operation_id = "queues_pause", tag = "queues", request_body = QueueRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the queues the pattern matched", body = Envelope<Matched>),
        (status = 404, description = "no queue matches the pattern", body = super::api::Failure), WriteRefusals))]
pub async fn pause(state: Shared, Body(req): Body<QueueRequest>) -> Response {
    matched(state.queues.command(&req.queue, Command::Pause).await, &req.queue)
}

/// resume queue
///
/// Access level: operator (or an X-API-Key).
#[utoipa::path(post, path = "/api/v1/queues/resume", operation_id = "queues_resume", tag = "queues", request_body = QueueRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the queues the pattern matched", body = Envelope<Matched>),
        (status = 404, description = "no queue matches the pattern", body = super::api::Failure), WriteRefusals))]
pub async fn resume(state: Shared, Body(req): Body<QueueRequest>) -> Response {
    matched(state.queues.command(&req.queue, Command::Resume).await, &req.queue)
}

/// schedule: end the retry wait now
///
/// Access level: operator (or an X-API-Key).
#[utoipa::path(post, path = "/api/v1/queues/schedule", tag = "queues", request_body = QueueRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the queues the pattern matched", body = Envelope<Scheduled>),
        (status = 404, description = "no queue matches the pattern", body = super::api::Failure), WriteRefusals))]
pub async fn schedule(state: Shared, Body(req): Body<QueueRequest>) -> Response {
    let n = state.queues.command(&req.queue, Command::Schedule { recipients: req.retry_recipients }).await;
    let total = state.queues.snapshot().await.len();
    if n == 0 {
        return matched(0, &req.queue);
    }
    envelope(Scheduled { matched: n, queues: total, message: format!("{n} of {total} matching queues scheduled.") })
}
