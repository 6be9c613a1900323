//! JSON endpoints. Responses use PowerMTA's envelope `{"data": …, "status": "success",
//! "message": ""}` so existing tooling parses them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value as Json_, json};

use super::access::{Access, Level};
use crate::queue::QueueHandle;
use crate::queue::manager::Command;
use crate::spool::Spool;

pub struct ApiState {
    pub access: std::sync::Arc<arc_swap::ArcSwap<Access>>,
    pub queues: QueueHandle,
    pub spool: Spool,
    pub started: Instant,
}

fn envelope(data: Json_) -> Response {
    Json(json!({"data": data, "status": "success", "message": ""})).into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"data": null, "status": "error", "message": message}))).into_response()
}

/// The refusal to send, or `None` when the client may do what `needed` allows.
fn refusal(state: &ApiState, peer: SocketAddr, headers: &HeaderMap, needed: Level) -> Option<Response> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let level = state.access.load().level(peer.ip(), key);
    if level >= needed {
        None
    } else if level == Level::None {
        Some(refuse(StatusCode::FORBIDDEN, "access denied (http-access)"))
    } else {
        Some(refuse(StatusCode::FORBIDDEN, "insufficient access level"))
    }
}

async fn queues(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Monitor) {
        return r;
    }
    let list = state.queues.snapshot().await;
    envelope(serde_json::to_value(list).unwrap_or_default())
}

async fn status(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Monitor) {
        return r;
    }
    let queues = state.queues.snapshot().await;
    let spool = state.spool.stats();
    envelope(json!({
        "mta": {"product": "Ember", "version": env!("CARGO_PKG_VERSION")},
        "uptime_s": state.started.elapsed().as_secs(),
        "queue": {
            "smtp": {
                "rcp": queues.iter().map(|q| q.recipients).sum::<usize>(),
                "dom": queues.len(),
            }
        },
        "conn": {"smtpOut": {"cur": queues.iter().map(|q| q.connections).sum::<usize>()}},
        "traffic": {
            "delivered": queues.iter().map(|q| q.delivered).sum::<u64>(),
            "bounced": queues.iter().map(|q| q.bounced).sum::<u64>(),
            "deferred": queues.iter().map(|q| q.deferred).sum::<u64>(),
        },
        "spool": {"messages": spool.live_messages, "recipients": spool.live_recipients, "segments": spool.segments, "bytes": spool.bytes_on_disk},
    }))
}

#[derive(serde::Deserialize)]
struct ModeRequest {
    queue: String,
    mode: String,
}

#[derive(serde::Deserialize)]
struct SourceRequest {
    ip: String,
    queue: String,
    /// `1h`, `30m`…: when a disabled IP comes back on its own.
    reenable_after: Option<String>,
}

fn matched(n: usize, what: &str) -> Response {
    if n == 0 {
        refuse(StatusCode::NOT_FOUND, &format!("no queue matches {what}"))
    } else {
        envelope(json!({"matched": n}))
    }
}

/// `set queue --mode=backoff|normal` (operator).
async fn set_mode(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<ModeRequest>,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Operator) {
        return r;
    }
    let command = match req.mode.as_str() {
        "backoff" => Command::Backoff,
        "normal" => Command::Normal,
        other => return refuse(StatusCode::BAD_REQUEST, &format!("mode must be backoff or normal, not {other:?}")),
    };
    matched(state.queues.command(&req.queue, command).await, &req.queue)
}

async fn source(state: &ApiState, req: SourceRequest, enable: bool) -> Response {
    let Ok(ip) = req.ip.parse::<std::net::IpAddr>() else {
        return refuse(StatusCode::BAD_REQUEST, &format!("{:?} is not an IP address", req.ip));
    };
    let command = if enable {
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

/// `disable source` (ENABLE = false) and `enable source` (ENABLE = true), operator level.
async fn source_command<const ENABLE: bool>(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<SourceRequest>,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Operator) {
        return r;
    }
    source(&state, req, ENABLE).await
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/status", get(status))
        .route("/api/v1/queues/mode", post(set_mode))
        .route("/api/v1/sources/disable", post(source_command::<false>))
        .route("/api/v1/sources/enable", post(source_command::<true>))
        .with_state(state)
}

/// Serves the API on a bound listener until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("management http stopped: {e}");
    }
}
