//! JSON endpoints. Responses use PowerMTA's envelope `{"data": …, "status": "success",
//! "message": ""}` so existing tooling parses them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value as Json_, json};

use super::access::{Access, Level};
use crate::queue::QueueHandle;
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

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().route("/api/v1/queues", get(queues)).route("/api/v1/status", get(status)).with_state(state)
}

/// Serves the API on a bound listener until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("management http stopped: {e}");
    }
}
