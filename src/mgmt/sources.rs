//! `POST /api/v1/sources/disable` and `/enable`: PowerMTA's `disable source` / `enable source`
//! (a source IP is not used for the matching queues until enabled or `reenable_after`).

use axum::http::StatusCode;
use axum::response::Response;

use super::api::{Body, Shared, matched, refuse};
use crate::queue::manager::Command;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRequest {
    ip: String,
    queue: String,
    /// `1h`, `30m`…: when a disabled IP comes back on its own.
    reenable_after: Option<String>,
}

/// ENABLE = false: `disable source`; true: `enable source`.
pub async fn command<const ENABLE: bool>(state: Shared, Body(req): Body<SourceRequest>) -> Response {
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
