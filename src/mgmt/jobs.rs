//! Jobs (`X-Job`, `*jobid`, `campaign_id`): `GET /api/v1/jobs` with per-job totals since start
//! and whether an operator paused the job; `POST /api/v1/jobs/pause` and `/resume`.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::{Body, Refusal, Shared, envelope};
use super::queues::max_items;
use crate::queue::manager::Operation;

/// GET /api/v1/jobs?maxitems=N
pub async fn list(state: Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let max = match max_items(&state, &params) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let paused = state.queues.paused_jobs().await;
    let mut jobs: Vec<serde_json::Value> = state
        .telemetry
        .jobs()
        .into_iter()
        .map(|(id, t)| {
            let done = t.delivered + t.bounced + t.deleted;
            json!({
                "job_id": id,
                "paused": paused.contains(&id),
                "received_msgs": t.received_msgs,
                "received_rcpts": t.received_rcpts,
                "delivered": t.delivered,
                "deferred": t.deferred,
                "bounced": t.bounced,
                "deleted": t.deleted,
                "queued": t.received_rcpts.saturating_sub(done),
                "first_seen": t.first_seen,
                "last_seen": t.last_seen,
            })
        })
        .collect();
    // A job paused before any of its mail arrived is listed too.
    for id in &paused {
        if !jobs.iter().any(|j| j["job_id"] == json!(id)) {
            jobs.push(json!({"job_id": id, "paused": true}));
        }
    }
    jobs.truncate(max);
    envelope(json!(jobs))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    job_id: String,
}

fn valid(id: &str) -> Result<(), Refusal> {
    // As in PowerMTA, job ids have no whitespace and no non-printables.
    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a job id (no spaces or control characters)"),
        ));
    }
    Ok(())
}

/// POST /api/v1/jobs/pause {job_id}: its queued recipients are held until resumed.
pub async fn pause(state: Shared, Body(req): Body<JobRequest>) -> Response {
    if let Err(r) = valid(&req.job_id) {
        return r.into_response();
    }
    let r = state.queues.operate(Operation::PauseJob(req.job_id.clone())).await;
    envelope(json!({"job_id": req.job_id, "recipients": r.recipients, "queues": r.queues}))
}

/// POST /api/v1/jobs/resume {job_id}
pub async fn resume(state: Shared, Body(req): Body<JobRequest>) -> Response {
    if let Err(r) = valid(&req.job_id) {
        return r.into_response();
    }
    let r = state.queues.operate(Operation::ResumeJob(req.job_id.clone())).await;
    envelope(json!({"job_id": req.job_id, "recipients": r.recipients, "queues": r.queues}))
}
