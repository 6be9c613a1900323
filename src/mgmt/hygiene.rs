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
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::{Access, Level};
use super::api::{Envelope, Failure, envelope, refuse};
use super::openapi::ListRefusals;
use super::routes::Route;
use crate::hygiene::processor::{From, UnsubscribeError, Unsubscribed};
use crate::hygiene::store::Entry;
use crate::ingress::context::Context;

pub struct HygieneState {
    pub contexts: Arc<ArcSwap<Context>>,
    pub access: Arc<ArcSwap<Access>>,
}

/// The largest import body one request may carry; the CLI sends larger files in chunks.
pub const IMPORT_CHUNK_LIMIT: usize = 64 << 20;

/// One-click unsubscribe and the suppression list, each checking access itself.
pub fn routes() -> Vec<Route<Arc<HygieneState>>> {
    vec![
        Route::get("/unsubscribe/{token}", unsubscribe_page),
        Route::post("/unsubscribe/{token}", unsubscribe),
        Route::get("/api/v1/suppression", check),
        Route::post("/api/v1/suppression/add", add),
        Route::post("/api/v1/suppression/remove", remove),
        Route::post("/api/v1/suppression/import", import).map(|m| m.layer(DefaultBodyLimit::max(IMPORT_CHUNK_LIMIT))),
        Route::get("/api/v1/suppression/export", export),
    ]
}

pub fn router(state: Arc<HygieneState>) -> Router {
    super::routes::router(routes()).with_state(state)
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

/// One-click unsubscribe (RFC 8058)
///
/// Open to anyone: the signed token is the authorisation. The body holds
/// `List-Unsubscribe=One-Click` (form-encoded or multipart). Answers are plain text.
#[utoipa::path(post, path = "/unsubscribe/{token}", tag = "unsubscribe", security(()),
    params(("token" = String, Path, description = "the signed token of the List-Unsubscribe link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "List-Unsubscribe=One-Click"),
    responses(
        (status = 200, description = "unsubscribed, or already unsubscribed", content_type = "text/plain", body = String),
        (status = 400, description = "not a one-click POST, or an invalid link", content_type = "text/plain", body = String),
        (status = 404, description = "one-click unsubscribe is not enabled", content_type = "text/plain", body = String),
        (status = 503, description = "cannot record it now, try again later", content_type = "text/plain", body = String)))]
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

/// The unsubscribe page: a button that POSTs
///
/// Open to anyone. A GET (a person following the link, or a scanner) changes nothing (RFC 8058
/// §3.2 forbids unsubscribing on GET).
#[utoipa::path(get, path = "/unsubscribe/{token}", tag = "unsubscribe", security(()),
    params(("token" = String, Path, description = "the signed token of the List-Unsubscribe link")),
    responses((status = 200, description = "the page", content_type = "text/html", body = String)))]
async fn unsubscribe_page(Path(token): Path<String>) -> Response {
    let token: String = token.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <form method=post action=\"{token}\"><input type=hidden name=List-Unsubscribe value=One-Click>\
         <p>Stop receiving these messages?</p><button type=submit>Unsubscribe</button></form>"
    ))
    .into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// The address (or domain entry) to look up.
    address: String,
}

#[derive(Serialize, ToSchema)]
pub struct Checked {
    address: String,
    suppressed: bool,
    /// Entries in the list.
    entries: usize,
}

/// Is an address on the global suppression list
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/suppression", operation_id = "suppression_check", tag = "suppression", params(CheckQuery),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the answer", body = Envelope<Checked>),
        (status = 403, description = "no access, or an insufficient level", body = Failure)))]
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
    let suppressed = store.contains(&q.address);
    envelope(Checked { address: q.address, suppressed, entries: store.len() })
}

#[derive(Deserialize, ToSchema)]
pub struct Addresses {
    /// Addresses or domain entries.
    addresses: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Changed {
    requested: usize,
    /// Entries added (or removed) that were not (or were) on the list.
    changed: usize,
}

/// Add entries to the global suppression list
///
/// Access level: operator (or an X-API-Key). Every entry valid or nothing changes.
#[utoipa::path(post, path = "/api/v1/suppression/add", operation_id = "suppression_add", tag = "suppression", request_body = Addresses,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the list changed", body = Envelope<Changed>), ListRefusals))]
async fn add(
    state: State<Arc<HygieneState>>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: Json<Addresses>,
) -> Response {
    change::<true>(state, peer, headers, req).await
}

/// Remove entries from the global suppression list
///
/// Access level: operator (or an X-API-Key). Every entry valid or nothing changes.
#[utoipa::path(post, path = "/api/v1/suppression/remove", operation_id = "suppression_remove", tag = "suppression", request_body = Addresses,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the list changed", body = Envelope<Changed>), ListRefusals))]
async fn remove(
    state: State<Arc<HygieneState>>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: Json<Addresses>,
) -> Response {
    change::<false>(state, peer, headers, req).await
}

/// `add` (ADD = true) and `remove`: every entry valid or nothing changes.
async fn change<const ADD: bool>(
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
    let done = tokio::task::spawn_blocking(move || {
        if !ADD {
            return store.remove(&entries);
        }
        let new: Vec<String> = entries.iter().map(Entry::text).filter(|t| !store.contains(t)).collect();
        let added = store.add(&entries)?;
        for text in &new {
            crate::events::suppressed(text, "operator (api)");
        }
        Ok(added)
    })
    .await;
    match done {
        Ok(Ok(changed)) => {
            tracing::info!(
                "suppression: {} {changed} of {n} entries (requested from {})",
                if ADD { "added" } else { "removed" },
                peer.ip()
            );
            envelope(Changed { requested: n, changed })
        }
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The line number of the body's first line in the operator's file (for error messages).
    #[serde(default = "one")]
    first_line: u64,
}

fn one() -> u64 {
    1
}

#[derive(Serialize, ToSchema)]
pub struct Imported {
    /// Good lines.
    valid: usize,
    /// Entries that were not on the list yet.
    added: usize,
    #[schema(value_type = Vec<BadLineDoc>)]
    bad_lines: Vec<crate::hygiene::import::BadLine>,
}

/// A line that is not an entry (the schema of `hygiene::import::BadLine`).
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes BadLine's JSON for the OpenAPI document only")]
pub struct BadLineDoc {
    line: u64,
    text: String,
    error: String,
}

/// Import entries into the global suppression list
///
/// Access level: operator (or an X-API-Key). A text body, one entry a line (`#` comments, blank
/// lines ignored): the good lines are added, the bad ones listed with their line numbers. Larger
/// files are sent in chunks of at most 64 MiB.
#[utoipa::path(post, path = "/api/v1/suppression/import", operation_id = "suppression_import", tag = "suppression", params(ImportQuery),
    request_body(content = String, content_type = "text/plain"),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the good lines added", body = Envelope<Imported>), ListRefusals))]
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
        Ok(Ok((valid, added, bad))) => envelope(Imported { valid, added, bad_lines: bad }),
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Export the global suppression list
///
/// Access level: monitor (or an X-API-Key). Every entry, one a line (text/plain).
#[utoipa::path(get, path = "/api/v1/suppression/export", operation_id = "suppression_export", tag = "suppression",
    security((), ("api_key" = [])),
    responses((status = 200, description = "the list", content_type = "text/plain", body = String),
        (status = 403, description = "no access, or an insufficient level", body = Failure),
        (status = 503, description = "the list cannot be read now", body = Failure)))]
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
