//! `POST /api/v1/drain` starts `ember drain` on this node (hand the queue over to the cluster's
//! peers or to a relay, or wait until it is empty) and `GET /api/v1/drain` shows its progress.
//! Starting closes the SMTP intake and marks the node draining in the cluster before anything
//! else, so no new mail arrives while the queue is being emptied.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::api::{Body, Envelope, Shared, envelope, refuse};
use super::openapi::{ReadRefusals, WriteRefusals};
use crate::queue::drain::{DrainError, DrainStatus, Mode, Parts};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// `hand-over` (the default): stop delivering and hand the queue to live peers; `wait`:
    /// deliver as usual until the queue is empty.
    #[serde(default)]
    mode: Option<String>,
    /// HOST:PORT of an SMTP relay to hand over to instead of the cluster's peers.
    #[serde(default)]
    to: Option<String>,
}

/// Drain this node: refuse new mail, then hand its queue over (or wait until it is empty)
///
/// Access level: operator (or an X-API-Key). The node answers new SMTP sessions and MAIL with
/// `421 4.3.2` from now on and shows as draining in the cluster. A hand-over needs cluster peers
/// or `to`; each handed recipient gets a `d` accounting record with `dlvType` `handover`.
/// Asking again shows the progress.
#[utoipa::path(post, path = "/api/v1/drain", operation_id = "drain_start", tag = "drain", request_body = DrainRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the drain, started", body = Envelope<DrainStatus>),
        (status = 409, description = "a hand-over without cluster peers or a relay", body = super::api::Failure),
        WriteRefusals))]
pub async fn start(state: Shared, Body(req): Body<DrainRequest>) -> Response {
    let mode = match req.mode.as_deref().unwrap_or("hand-over") {
        "hand-over" | "handover" => Mode::HandOver { to: req.to.clone() },
        "wait" if req.to.is_none() => Mode::Wait,
        "wait" => return refuse(StatusCode::BAD_REQUEST, "to goes with a hand-over, not with wait"),
        other => return refuse(StatusCode::BAD_REQUEST, &format!("mode must be hand-over or wait, not {other:?}")),
    };
    if let (Mode::HandOver { to: None }, None) = (&mode, &state.cluster) {
        return refuse(StatusCode::CONFLICT, &DrainError::NoPeers.to_string());
    }
    let ctx = state.contexts.load_full();
    let parts = Parts {
        queues: state.queues.clone(),
        spool: state.spool.clone(),
        cluster: state.cluster.clone(),
        helo: ctx.host_name().to_string(),
    };
    // A bad --to is refused before the node stops taking mail.
    if let Mode::HandOver { to: Some(to) } = &mode
        && let Err(e) = crate::queue::drain::resolve(to).await
    {
        return refuse(StatusCode::BAD_REQUEST, &e.to_string());
    }
    ctx.intake.close();
    if let Some(c) = &state.cluster {
        c.set_draining();
    }
    match state.drain.start(mode, parts).await {
        Ok(status) => envelope(status),
        Err(e @ DrainError::NoPeers) => refuse(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// The drain's progress: mode, phase, what was handed over to whom, what the spool still holds
///
/// Access level: monitor (or an X-API-Key). `draining` is false until `POST /api/v1/drain`.
#[utoipa::path(get, path = "/api/v1/drain", operation_id = "drain_show", tag = "drain",
    security((), ("api_key" = [])),
    responses((status = 200, description = "the drain", body = Envelope<DrainStatus>), ReadRefusals))]
pub async fn show(state: Shared) -> Response {
    let mut status = state.drain.status();
    if !status.draining {
        let stats = state.spool.stats();
        status.queued_messages = stats.live_messages as u64;
        status.queued_recipients = stats.live_recipients;
    }
    envelope(status)
}
