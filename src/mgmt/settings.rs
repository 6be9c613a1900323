//! `GET /api/v1/settings?queue=domain[/vmta]`: the effective merged settings of a queue in the
//! running configuration (PowerMTA's `show settings`), each with where its value comes from.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use super::api::{Envelope, Failure, Shared, envelope, refuse};
use super::openapi::ReadRefusals;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SettingsQuery {
    /// domain[/vmta]
    #[param(required = true)]
    queue: Option<String>,
}

/// Effective settings of a queue in the running configuration
///
/// Access level: monitor (or an X-API-Key). `data` maps each directive to its value and where the
/// value comes from; `data.text` is the same as `show settings` prints it.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", params(SettingsQuery),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the settings", body = Envelope<serde_json::Value>),
        (status = 404, description = "the configuration has no such queue", body = Failure), ReadRefusals))]
pub async fn show(state: Shared, Query(query): Query<SettingsQuery>) -> Response {
    let Some(queue) = query.queue else {
        return refuse(StatusCode::BAD_REQUEST, "queue=domain[/vmta] is required");
    };
    let (domain, vmta) = match queue.split_once('/') {
        Some((d, v)) => (d, Some(v)),
        None => (queue.as_str(), None),
    };
    let config = state.config();
    match config.queue_settings(domain, vmta) {
        Ok(q) => {
            let mut data = crate::config::show::render_json(&q);
            if let Some(obj) = data.as_object_mut() {
                obj.insert("text".into(), crate::config::show::render_text(&q).into());
            }
            envelope(data)
        }
        Err(e) => refuse(StatusCode::NOT_FOUND, &format!("show settings {queue}: {e}")),
    }
}
