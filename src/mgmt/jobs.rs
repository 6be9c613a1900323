//! Jobs (`X-Job`, `*jobid`, `campaign_id`): `GET /api/v1/jobs` with per-job totals since start
//! and whether an operator paused the job; `POST /api/v1/jobs/pause` and `/resume`.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{Body, Envelope, Refusal, Shared, envelope};
use super::openapi::{ReadRefusals, WriteRefusals};
use super::queues::max_items;
use super::vmtas::Page;
use crate::queue::manager::Operation;

#[derive(Serialize, ToSchema)]
pub struct Job {
    job_id: String,
    /// Paused by an operator (`pause job`).
    paused: bool,
    /// Totals since the daemon started; absent for a job paused before any of its mail arrived.
    #[serde(flatten)]
    #[schema(inline)]
    totals: JobTotals,
}

/// A job's totals since the daemon started (none for a job paused before any of its mail
/// arrived).
#[derive(Default, Serialize, ToSchema)]
pub struct JobTotals {
    #[serde(skip_serializing_if = "Option::is_none")]
    received_msgs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_rcpts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deferred: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bounced: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<u64>,
    /// Received and not yet delivered, bounced or deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    queued: Option<u64>,
    /// Unix time.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<u64>,
    /// Unix time.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<u64>,
}

/// Jobs with totals since start and paused state
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "jobs_list", tag = "jobs", params(Page),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the jobs", body = Envelope<Vec<Job>>), ReadRefusals))]
pub async fn list(state: Shared, Query(page): Query<Page>) -> Response {
    let max = match max_items(&state, page.maxitems.as_deref()) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let paused = state.queues.paused_jobs().await;
    let mut jobs: Vec<Job> = state
        .telemetry
        .jobs()
        .into_iter()
        .map(|(id, t)| {
            let done = t.delivered + t.bounced + t.deleted;
            Job {
                paused: paused.contains(&id),
                job_id: id,
                totals: JobTotals {
                    received_msgs: Some(t.received_msgs),
                    received_rcpts: Some(t.received_rcpts),
                    delivered: Some(t.delivered),
                    deferred: Some(t.deferred),
                    bounced: Some(t.bounced),
                    deleted: Some(t.deleted),
                    queued: Some(t.received_rcpts.saturating_sub(done)),
                    first_seen: Some(t.first_seen),
                    last_seen: Some(t.last_seen),
                },
            }
        })
        .collect();
    // A job paused before any of its mail arrived is listed too.
    for id in &paused {
        if !jobs.iter().any(|j| &j.job_id == id) {
            jobs.push(Job { job_id: id.clone(), paused: true, totals: JobTotals::default() });
        }
    }
    jobs.truncate(max);
    envelope(jobs)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// No whitespace, no control characters.
    job_id: String,
}

/// What pausing or resuming a job reached.
#[derive(Serialize, ToSchema)]
pub struct JobChange {
    job_id: String,
    /// Queued recipients of the job.
    recipients: usize,
    /// Queues holding them.
    queues: usize,
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

/// pause job
///
/// Access level: operator (or an X-API-Key). Its queued recipients are held until resumed.
#[utoipa::path(post, path = "/api/v1/jobs/pause", operation_id = "jobs_pause", tag = "jobs", request_body = JobRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the job's queued recipients", body = Envelope<JobChange>), WriteRefusals))]
pub async fn pause(state: Shared, Body(req): Body<JobRequest>) -> Response {
    if let Err(r) = valid(&req.job_id) {
        return r.into_response();
    }
    let r = state.queues.operate(Operation::PauseJob(req.job_id.clone())).await;
    envelope(JobChange { job_id: req.job_id, recipients: r.recipients, queues: r.queues })
}

/// resume job
///
/// Access level: operator (or an X-API-Key).
#[utoipa::path(post, path = "/api/v1/jobs/resume", operation_id = "jobs_resume", tag = "jobs", request_body = JobRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the job's queued recipients", body = Envelope<JobChange>), WriteRefusals))]
pub async fn resume(state: Shared, Body(req): Body<JobRequest>) -> Response {
    if let Err(r) = valid(&req.job_id) {
        return r.into_response();
    }
    let r = state.queues.operate(Operation::ResumeJob(req.job_id.clone())).await;
    envelope(JobChange { job_id: req.job_id, recipients: r.recipients, queues: r.queues })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job paused before any of its mail arrived has no counters at all, as before the typed
    /// listing (the dashboard shows such a job without totals).
    #[test]
    fn a_job_without_mail_lists_only_its_id_and_pause() {
        let job = Job { job_id: "j1".into(), paused: true, totals: JobTotals::default() };
        assert_eq!(serde_json::to_value(&job).unwrap(), serde_json::json!({"job_id": "j1", "paused": true}));
        let seen = JobTotals { queued: Some(2), ..JobTotals::default() };
        let job = Job { job_id: "j2".into(), paused: false, totals: seen };
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            serde_json::json!({"job_id": "j2", "paused": false, "queued": 2})
        );
    }
}
