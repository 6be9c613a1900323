//! Daemon-wide commands: `POST /api/v1/reload` (re-read the configuration atomically: a broken
//! file is refused with its errors and the running configuration stays) and
//! `POST /api/v1/acct/rotate` and `POST /api/v1/log/rotate` (PowerMTA's `rotate acct` and
//! `rotate log`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use tokio::sync::oneshot;

use super::api::{Body, Control, Shared, envelope, refuse};

/// Commands without parameters take `{}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

pub async fn reload(state: Shared, Body(_): Body<Empty>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.control.send(Control::Reload(tx)).is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down");
    }
    match rx.await {
        Ok(Ok(notes)) => envelope(json!({"reloaded": true, "notes": notes})),
        Ok(Err(errors)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("reload refused; the running configuration is unchanged:\n{errors}"),
        ),
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down"),
    }
}

pub async fn rotate_acct(state: Shared, Body(_): Body<Empty>) -> Response {
    let accounting = state.contexts.load().accounting.clone();
    match tokio::task::spawn_blocking(move || accounting.rotate()).await {
        Ok(Ok(moved)) => {
            envelope(json!({"rotated": moved.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()}))
        }
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate acct: {e}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate acct: {e}")),
    }
}

/// `rotated` is the name the old lines went to, or null when there is no `log-file` (lines go to
/// stderr) or it held no lines.
pub async fn rotate_log(_state: Shared, Body(_): Body<Empty>) -> Response {
    match tokio::task::spawn_blocking(crate::logfile::rotate).await {
        Ok(Ok(moved)) => envelope(json!({"rotated": moved.map(|p| p.display().to_string())})),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate log: {e}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("rotate log: {e}")),
    }
}
