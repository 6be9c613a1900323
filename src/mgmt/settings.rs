//! `GET /api/v1/settings?queue=domain[/vmta]`: the effective merged settings of a queue in the
//! running configuration (PowerMTA's `show settings`), each with where its value comes from.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;

use super::api::{Shared, envelope, refuse};

pub async fn show(state: Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let Some(queue) = params.get("queue") else {
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
