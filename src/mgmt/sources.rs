//! `POST /api/v1/sources/disable` and `/enable`: PowerMTA's `disable source` / `enable source`
//! (a source IP is not used for the matching queues until enabled or `reenable_after`).

use axum::http::StatusCode;
use axum::response::Response;

use super::api::{Body, Envelope, Failure, Matched, Shared, matched, refuse};
use super::openapi::WriteRefusals;
use crate::queue::manager::Command;

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRequest {
    /// The source IP address.
    ip: String,
    /// pattern: domain/vmta, domain, * for either part
    queue: String,
    /// `1h`, `30m`…: when a disabled IP comes back on its own.
    reenable_after: Option<String>,
}

/// disable source
///
/// Access level: operator (or an X-API-Key). The IP is not used for the matching queues until
/// enabled or `reenable_after` (like 1h) has passed.
#[utoipa::path(post, path = "/api/v1/sources/disable", tag = "sources", request_body = SourceRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the queues the pattern matched", body = Envelope<Matched>),
        (status = 404, description = "no queue matches the pattern", body = Failure), WriteRefusals))]
pub async fn disable(state: Shared, body: Body<SourceRequest>) -> Response {
    command::<false>(state, body).await
}

/// enable source
///
/// Access level: operator (or an X-API-Key). `reenable_after` is ignored here.
#[utoipa::path(post, path = "/api/v1/sources/enable", tag = "sources", request_body = SourceRequest,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the queues the pattern matched", body = Envelope<Matched>),
        (status = 404, description = "no queue matches the pattern", body = Failure), WriteRefusals))]
pub async fn enable(state: Shared, body: Body<SourceRequest>) -> Response {
    command::<true>(state, body).await
}

/// ENABLE = false: `disable source`; true: `enable source`.
async fn command<const ENABLE: bool>(state: Shared, Body(req): Body<SourceRequest>) -> Response {
    let Ok(ip) = req.ip.parse::<std::net::IpAddr>() else {
        return refuse(StatusCode::BAD_REQUEST, &format!("{:?} is not an IP address", req.ip));
    };
    let command = if ENABLE {
        Command::EnableSource { ip }
    } else {
        let until = match req.reenable_after.as_deref().map(crate::config::values::Interval::parse) {
            None => None,
            Some(Ok(i)) => Some(crate::time::now_secs() + i.seconds()),
            Some(Err(e)) => return refuse(StatusCode::BAD_REQUEST, &format!("reenable_after: {e}")),
        };
        Command::DisableSource { ip, until }
    };
    matched(state.queues.command(&req.queue, command).await, &req.queue)
}
