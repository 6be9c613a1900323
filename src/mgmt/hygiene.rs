//! The HTTP side of list hygiene: the one-click unsubscribe endpoint mailbox providers call
//! (RFC 8058; no `http-access` needed, the signed token is the authorisation), and
//! `/api/v1/suppression` for operators (reads at monitor level, changes at operator level).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::access::{Access, Level};
use crate::hygiene::processor::{From, UnsubscribeError, Unsubscribed};
use crate::hygiene::store::Entry;
use crate::ingress::context::Context;

pub struct HygieneState {
    pub contexts: Arc<ArcSwap<Context>>,
    pub access: Arc<ArcSwap<Access>>,
}

/// The largest import body one request may carry; the CLI sends larger files in chunks.
pub const IMPORT_CHUNK_LIMIT: usize = 64 << 20;

pub fn router(state: Arc<HygieneState>) -> Router {
    Router::new()
        .route("/unsubscribe/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/api/v1/suppression", get(check))
        .route("/api/v1/suppression/add", post(add::<true>))
        .route("/api/v1/suppression/remove", post(add::<false>))
        .route("/api/v1/suppression/import", post(import).layer(DefaultBodyLimit::max(IMPORT_CHUNK_LIMIT)))
        .route("/api/v1/suppression/export", get(export))
        .with_state(state)
}

fn envelope(data: serde_json::Value) -> Response {
    Json(json!({"data": data, "status": "success", "message": ""})).into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"data": null, "status": "error", "message": message}))).into_response()
}

fn refusal(state: &HygieneState, peer: SocketAddr, headers: &HeaderMap, needed: Level) -> Option<Response> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let level = state.access.load().level(peer.ip(), key);
    match level {
        l if l >= needed => None,
        Level::None => Some(refuse(StatusCode::FORBIDDEN, "access denied (http-access)")),
        _ => Some(refuse(StatusCode::FORBIDDEN, "insufficient access level")),
    }
}

/// A browser on another site must not change the list with the operator's address-based rights
/// (a text/plain import needs no CORS preflight): an `Origin` must be this server.
fn cross_site(headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    (own != Some(host)).then(|| {
        refuse(StatusCode::FORBIDDEN, &format!("cross-site request refused (Origin {origin} is not this server)"))
    })
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{body}\n")).into_response()
}

/// RFC 8058 §3.2: the POST body holds `List-Unsubscribe=One-Click` (form-encoded or multipart).
async fn unsubscribe(
    State(state): State<Arc<HygieneState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body);
    if !body.contains("List-Unsubscribe=One-Click") {
        return text(StatusCode::BAD_REQUEST, "expected a one-click unsubscribe POST (List-Unsubscribe=One-Click)");
    }
    let ctx = state.contexts.load_full();
    let from = From { ip: peer.ip().to_string(), helo: "" };
    let ctx2 = Arc::clone(&ctx);
    // Suppression is an fdatasync: off the async workers.
    let outcome = tokio::task::spawn_blocking(move || ctx2.processors.unsubscribe(&token, "one-click", &from)).await;
    match outcome {
        Ok(Ok(Unsubscribed::Now(_))) => text(StatusCode::OK, "unsubscribed"),
        Ok(Ok(Unsubscribed::Already(_))) => text(StatusCode::OK, "already unsubscribed"),
        Ok(Err(UnsubscribeError::Token(e))) => text(StatusCode::BAD_REQUEST, &format!("invalid unsubscribe link: {e}")),
        Ok(Err(e @ UnsubscribeError::Address(_))) => text(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(Err(UnsubscribeError::NotConfigured)) => text(StatusCode::NOT_FOUND, "one-click unsubscribe is not enabled"),
        Ok(Err(UnsubscribeError::Store(e))) => {
            tracing::error!("unsubscribe: {e}");
            text(StatusCode::SERVICE_UNAVAILABLE, "cannot record the unsubscribe now, try again later")
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("unsubscribe failed: {e}")),
    }
}

/// A GET (a person following the link, or a scanner) changes nothing: it shows a button that
/// POSTs (RFC 8058 §3.2 forbids unsubscribing on GET).
async fn unsubscribe_page(Path(token): Path<String>) -> Response {
    let token: String = token.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <form method=post action=\"{token}\"><input type=hidden name=List-Unsubscribe value=One-Click>\
         <p>Stop receiving these messages?</p><button type=submit>Unsubscribe</button></form>"
    ))
    .into_response()
}

#[derive(serde::Deserialize)]
struct CheckQuery {
    address: String,
}

async fn check(
    State(state): State<Arc<HygieneState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<CheckQuery>,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Monitor) {
        return r;
    }
    let store = &state.contexts.load().global_suppression;
    envelope(json!({"address": q.address, "suppressed": store.contains(&q.address), "entries": store.len()}))
}

#[derive(serde::Deserialize)]
struct Addresses {
    addresses: Vec<String>,
}

/// `add` (ADD = true) and `remove`: every entry valid or nothing changes.
async fn add<const ADD: bool>(
    State(state): State<Arc<HygieneState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<Addresses>,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Operator).or_else(|| cross_site(&headers)) {
        return r;
    }
    let mut entries = Vec::new();
    for a in &req.addresses {
        match Entry::parse(a) {
            Ok(e) => entries.push(e),
            Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    let store = Arc::clone(&state.contexts.load().global_suppression);
    let n = entries.len();
    let done =
        tokio::task::spawn_blocking(move || if ADD { store.add(&entries) } else { store.remove(&entries) }).await;
    match done {
        Ok(Ok(changed)) => {
            tracing::info!(
                "suppression: {} {changed} of {n} entries (requested from {})",
                if ADD { "added" } else { "removed" },
                peer.ip()
            );
            envelope(json!({"requested": n, "changed": changed}))
        }
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct ImportQuery {
    /// The line number of the body's first line in the operator's file (for error messages).
    #[serde(default = "one")]
    first_line: u64,
}

fn one() -> u64 {
    1
}

/// A text body, one entry a line (`#` comments, blank lines ignored): the good lines are added,
/// the bad ones listed with their line numbers.
async fn import(
    State(state): State<Arc<HygieneState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Operator).or_else(|| cross_site(&headers)) {
        return r;
    }
    let store = Arc::clone(&state.contexts.load().global_suppression);
    let done = tokio::task::spawn_blocking(move || {
        let (entries, bad) = crate::hygiene::import::parse_lines(&body, q.first_line);
        store.add(&entries).map(|added| (entries.len(), added, bad))
    })
    .await;
    match done {
        Ok(Ok((valid, added, bad))) => envelope(json!({"valid": valid, "added": added, "bad_lines": bad})),
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Every entry, one a line (text/plain).
async fn export(
    State(state): State<Arc<HygieneState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&state, peer, &headers, Level::Monitor) {
        return r;
    }
    let store = Arc::clone(&state.contexts.load().global_suppression);
    let done = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        store
            .export(|e| {
                out.push_str(e);
                out.push('\n');
                Ok(())
            })
            .map(|_| out)
    })
    .await;
    match done {
        Ok(Ok(body)) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response(),
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
