//! Daemon-wide commands: `POST /api/v1/reload` (re-read the configuration atomically: a broken
//! file is refused with its errors and the running configuration stays) and
//! `POST /api/v1/acct/rotate` and `POST /api/v1/log/rotate` (PowerMTA's `rotate acct` and
//! `rotate log`).

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::api::{Body, Control, Envelope, Failure, Shared, envelope, refuse};
use super::openapi::WriteRefusals;

/// Commands without parameters take `{}`.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Serialize, ToSchema)]
pub struct Reloaded {
    /// Always true (a refused reload is a 422).
    reloaded: bool,
    /// What the reload changed and what it could not change without a restart.
    notes: String,
}

/// The accounting files the old records went to.
#[derive(Serialize, ToSchema)]
pub struct AcctRotated {
    rotated: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LogRotated {
    /// The new name of the old file, or null without a log-file or when it was empty.
    rotated: Option<String>,
}

/// Reload the configuration; 422 with the errors when it is broken (nothing changes)
///
/// Access level: operator (or an X-API-Key).
#[utoipa::path(post, path = "/api/v1/reload", tag = "admin", request_body = Empty,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the new configuration is running", body = Envelope<Reloaded>),
        (status = 422, description = "the file is broken: every error, and nothing changed", body = Failure),
        (status = 503, description = "the daemon is shutting down", body = Failure), WriteRefusals))]
pub async fn reload(state: Shared, Body(_): Body<Empty>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.control.send(Control::Reload(tx)).is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down");
    }
    match rx.await {
        Ok(Ok(notes)) => envelope(Reloaded { reloaded: true, notes }),
        Ok(Err(errors)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("reload refused; the running configuration is unchanged:\n{errors}"),
        ),
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down"),
    }
}

/// rotate acct
///
/// Access level: operator (or an X-API-Key). Every accounting file is moved aside and a new one
/// started.
#[utoipa::path(post, path = "/api/v1/acct/rotate", tag = "admin", request_body = Empty,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the files rotated", body = Envelope<AcctRotated>),
        (status = 500, description = "a file could not be moved", body = Failure), WriteRefusals))]
pub async fn rotate_acct(state: Shared, Body(_): Body<Empty>) -> Response {
    let accounting = state.contexts.load().accounting.clone();
    match tokio::task::spawn_blocking(move || accounting.rotate()).await {
        Ok(Ok(moved)) => envelope(AcctRotated { rotated: moved.iter().map(|p| p.display().to_string()).collect() }),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate acct: {e}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate acct: {e}")),
    }
}

/// rotate log
///
/// Access level: operator (or an X-API-Key). Moves the log-file to FILE.1 (older ones to FILE.2,
/// ...; log-rotate are kept) and starts a new one. data.rotated: the new name of the old file, or
/// null without a log-file (lines go to stderr) or when it was empty.
#[utoipa::path(post, path = "/api/v1/log/rotate", tag = "admin", request_body = Empty,
    security((), ("api_key" = [])),
    responses((status = 200, description = "the log rotated", body = Envelope<LogRotated>),
        (status = 500, description = "the file could not be moved", body = Failure), WriteRefusals))]
pub async fn rotate_log(_state: Shared, Body(_): Body<Empty>) -> Response {
    match tokio::task::spawn_blocking(crate::logfile::rotate).await {
        Ok(Ok(moved)) => envelope(LogRotated { rotated: moved.map(|p| p.display().to_string()) }),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate log: {e}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate log: {e}")),
    }
}
