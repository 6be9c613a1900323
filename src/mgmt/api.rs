//! The management API's common ground: the state handlers share, PowerMTA's JSON envelope
//! `{"data": …, "status": "success", "message": ""}`, refusals with clear JSON messages, the
//! access guard every route but the transmissions API passes, the JSON body reader, and the
//! router that puts the resource modules together.
//!
//! Access (docs/operations.md, "Management API, dashboard and metrics"): reads (GET) need
//! `monitor`, state changes (POST) need `operator`; an `X-API-Key` from `http-api-key` is admin; a
//! client no `http-access` rule lists gets 403 for everything. CSRF: no GET changes anything; a
//! POST must carry `Content-Type: application/json` (which a cross-site HTML form cannot send and a
//! cross-site script cannot send without a CORS preflight, which is never granted) and, when the
//! browser sends `Origin`, come from this server's own origin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::access::{Access, Level};
use super::reqlog::{self, Scope};
use super::routes::Route;
use crate::config::Dir;
use crate::delivery::mx::MxResolver;
use crate::ingress::context::Context;
use crate::queue::QueueHandle;
use crate::spool::Spool;
use crate::telemetry::Telemetry;

/// Largest JSON body the command endpoints take (the transmissions API has its own limit).
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// What the management API asks the daemon's main loop to do. Defined here, with the sender,
/// so the API does not depend on the daemon that runs it.
pub enum Control {
    /// Re-read the configuration file: the notes of a good reload, or every error of a broken
    /// file (nothing changes then).
    Reload(oneshot::Sender<Result<String, ReloadRefused>>),
}

/// Why a reload was refused: every line the operator was shown (the `FILE:LINE:COL: …`
/// diagnostics, then what was not done), in order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", lines.join("\n"))]
pub struct ReloadRefused {
    pub lines: Vec<String>,
}

pub struct ApiState {
    pub access: Arc<ArcSwap<Access>>,
    pub queues: QueueHandle,
    pub spool: Spool,
    pub started: Instant,
    pub telemetry: Arc<Telemetry>,
    pub resolver: MxResolver,
    /// The current configuration generation (its config and accounting).
    pub contexts: Arc<ArcSwap<Context>>,
    /// Inbound SMTP session slots (`total-max-smtp-in`): in use = max − available.
    pub smtp_in: Arc<Semaphore>,
    pub smtp_in_max: usize,
    /// Requests the daemon's main loop carries out (reload).
    pub control: mpsc::UnboundedSender<Control>,
    /// Cluster mode: the cluster view and its state.
    pub cluster: Option<crate::cluster::Cluster>,
    /// `ember drain` on this node.
    pub drain: Arc<crate::queue::drain::Drain>,
    /// MTA-STS policies and TLS-RPT counts.
    pub tls_policies: Arc<crate::delivery::tls_policy::TlsPolicies>,
}

impl ApiState {
    pub fn config(&self) -> Arc<crate::config::Config> {
        Arc::clone(&self.contexts.load().config)
    }
}

pub type Shared = State<Arc<ApiState>>;

/// PowerMTA's envelope around every answer of the command and view endpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    pub data: T,
    /// `success`
    pub status: &'static str,
    /// Empty on success.
    pub message: &'static str,
}

/// The envelope of a refusal: no data, and a message that says why.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Failure {
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub data: (),
    /// `error`
    pub status: &'static str,
    pub message: String,
}

pub fn envelope<T: Serialize>(data: T) -> Response {
    Json(Envelope { data, status: "success", message: "" }).into_response()
}

pub fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(Failure { data: (), status: "error", message: message.to_string() })).into_response()
}

/// A refusal as a small value (a `Response` is too large to carry in every `Result`).
pub struct Refusal(pub StatusCode, pub String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, &self.1)
    }
}

/// The refusal to send, or `None` when the client may do what `needed` allows.
pub fn refusal(state: &ApiState, peer: SocketAddr, headers: &HeaderMap, needed: Level) -> Option<Response> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let access = state.access.load();
    let level = access.level(peer.ip(), key);
    if level >= needed {
        return None;
    }
    if key.is_some() && !access.is_key(key.unwrap_or_default()) {
        return Some(refuse(StatusCode::UNAUTHORIZED, "invalid API key (X-API-Key matches no http-api-key)"));
    }
    Some(if level == Level::None {
        refuse(StatusCode::FORBIDDEN, &format!("access denied: {} has no http-access level", peer.ip()))
    } else {
        refuse(
            StatusCode::FORBIDDEN,
            &format!("insufficient access level: {level:?} may not do this ({needed:?} needed)"),
        )
    })
}

/// The guard in front of every route: access level by method, then the CSRF rules for POST.
async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let needed = match *request.method() {
        Method::GET | Method::HEAD => Level::Monitor,
        Method::POST => Level::Operator,
        _ => return refuse(StatusCode::METHOD_NOT_ALLOWED, "only GET (to read) and POST (to change) are served"),
    };
    if let Some(r) = refusal(&state, peer, request.headers(), needed) {
        return r;
    }
    // `http-csrf-protection no` drops the two rules below (for scripts on trusted networks that
    // post forms or plain text); access levels and keys still apply.
    if request.method() == Method::POST && state.config().global.flag(Dir::HttpCsrfProtection) {
        let headers = request.headers();
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "state changes take a JSON body (Content-Type: application/json)",
            );
        }
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
            let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            if own != Some(host) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    &format!("cross-site request refused (Origin {origin} is not this server)"),
                );
            }
        }
    }
    next.run(request).await
}

/// A JSON request body, with refusals in the API's own JSON: 413 past `MAX_JSON_BODY`, 400 with
/// serde's message (field, line and column) when malformed or carrying unknown fields.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                refuse(status, &format!("request body too large (at most {MAX_JSON_BODY} bytes)"))
            } else {
                refuse(status, &format!("cannot read the request body: {e}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, &format!("malformed JSON request: {e}")))
    }
}

/// How many queues a queue command reached.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Matched {
    pub matched: usize,
}

/// `{"matched": n}`, or 404 when no queue matched.
pub fn matched(n: usize, what: &str) -> Response {
    if n == 0 {
        refuse(StatusCode::NOT_FOUND, &format!("no queue matches {what}"))
    } else {
        envelope(Matched { matched: n })
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    refuse(StatusCode::NOT_FOUND, &format!("no such endpoint: {}", uri.path()))
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> Response {
    let hint = if method == Method::GET { " (it changes state: use POST with a JSON body)" } else { "" };
    refuse(StatusCode::METHOD_NOT_ALLOWED, &format!("{method} is not allowed on {}{hint}", uri.path()))
}

/// The routes behind the access guard, the dashboard's included.
pub fn guarded_routes() -> Vec<Route<Arc<ApiState>>> {
    use super::{
        admin, domains, events, jobs, messages, metrics, openapi, queues, settings, sources, status, ui, vmtas,
    };
    let mut routes = vec![
        Route::get("/api/v1/status", status::status),
        Route::get("/api/v1/queues", queues::list),
        Route::get("/api/v1/queues/detail", queues::detail),
        Route::post("/api/v1/queues/mode", queues::set_mode),
        Route::post("/api/v1/queues/pause", queues::pause),
        Route::post("/api/v1/queues/resume", queues::resume),
        Route::post("/api/v1/queues/schedule", queues::schedule),
        Route::get("/api/v1/domains", domains::list),
        Route::get("/api/v1/domains/route", domains::route),
        Route::get("/api/v1/vmtas", vmtas::list),
        Route::get("/api/v1/cluster", super::cluster::show),
        Route::post("/api/v1/drain", super::drain::start),
        Route::get("/api/v1/drain", super::drain::show),
        Route::post("/api/v1/tlsrpt/send", super::tlsrpt::send),
        Route::get("/api/v1/jobs", jobs::list),
        Route::post("/api/v1/jobs/pause", jobs::pause),
        Route::post("/api/v1/jobs/resume", jobs::resume),
        Route::get("/api/v1/settings", settings::show),
        Route::get("/api/v1/messages", messages::list),
        Route::post("/api/v1/messages/delete", messages::delete),
        Route::get("/api/v1/events", events::history),
        Route::post("/api/v1/sources/disable", sources::disable),
        Route::post("/api/v1/sources/enable", sources::enable),
        Route::post("/api/v1/reload", admin::reload),
        Route::post("/api/v1/acct/rotate", admin::rotate_acct),
        Route::post("/api/v1/log/rotate", admin::rotate_log),
        Route::get("/api/v1/openapi.json", openapi::document),
        Route::get("/metrics", metrics::scrape),
    ];
    routes.extend(ui::routes());
    routes
}

/// HTTP injection, which authorises and answers in SparkPost's own terms.
pub fn injection_routes() -> Vec<Route<Arc<ApiState>>> {
    vec![Route::post("/api/v1/transmissions", super::transmissions::transmit)]
}

pub fn router(state: Arc<ApiState>) -> Router {
    use super::routes::router as build;
    let guarded = build(guarded_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn_with_state((Arc::clone(&state), Scope::Management), reqlog::log));
    // HTTP injection authorises and answers in SparkPost's own terms, with its own size limit.
    let injection = build(injection_routes())
        .layer(DefaultBodyLimit::max(super::transmissions::MAX_REQUEST))
        .layer(middleware::from_fn_with_state((Arc::clone(&state), Scope::Transmissions), reqlog::log));
    // One-click unsubscribe and the suppression list check access themselves: the unsubscribe
    // route is open to mailbox providers, and imports are text, not JSON.
    let hygiene = super::hygiene::router(Arc::new(super::hygiene::HygieneState {
        contexts: Arc::clone(&state.contexts),
        access: Arc::clone(&state.access),
    }))
    .layer(middleware::from_fn_with_state((Arc::clone(&state), Scope::Lists), reqlog::log));
    injection.merge(guarded).with_state(state).merge(hygiene)
}

/// Serves the API on a bound listener until the task is dropped; over HTTPS too when `tls` (from
/// `http-tls-certificate`) is given (`tls.rs`).
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>, tls: Option<Arc<rustls::ServerConfig>>) {
    if let Some(tls) = tls {
        let app = router(Arc::clone(&state));
        return super::tls::serve(listener, state, app, tls).await;
    }
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("management http stopped: {e}");
    }
}
