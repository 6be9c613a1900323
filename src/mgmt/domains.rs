//! `GET /api/v1/domains`: queues summed per destination (queue name) over their virtual MTAs,
//! PowerMTA's `show domains` / `show topdomains`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::{Shared, envelope, refuse};
use super::queues::max_items;

#[derive(Default, serde::Serialize)]
struct Domain {
    domain: String,
    recipients: usize,
    connections: usize,
    delivered: u64,
    bounced: u64,
    deferred: u64,
    vmtas: Vec<String>,
    /// Modes of its queues other than normal, as `vmta: mode`.
    modes: Vec<String>,
}

/// GET /api/v1/domains?vmta=V&sort=name|rcpt&maxitems=N
pub async fn list(state: Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let max = match max_items(&state, &params) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let mut domains: BTreeMap<String, Domain> = BTreeMap::new();
    for q in state.queues.snapshot().await {
        let (domain, vmta) = q.queue.split_once('/').unwrap_or((&q.queue, ""));
        if params.get("vmta").is_some_and(|v| v != vmta) {
            continue;
        }
        let d =
            domains.entry(domain.to_string()).or_insert_with(|| Domain { domain: domain.into(), ..Domain::default() });
        d.recipients += q.recipients;
        d.connections += q.connections;
        d.delivered += q.delivered;
        d.bounced += q.bounced;
        d.deferred += q.deferred;
        d.vmtas.push(vmta.to_string());
        if q.mode != "normal" {
            d.modes.push(format!("{vmta}: {}", q.mode));
        }
    }
    let mut list: Vec<Domain> = domains.into_values().collect();
    match params.get("sort").map(String::as_str) {
        None | Some("name") => {}
        Some("rcpt") => list.sort_by(|a, b| b.recipients.cmp(&a.recipients).then(a.domain.cmp(&b.domain))),
        Some("delivered") => list.sort_by(|a, b| b.delivered.cmp(&a.delivered).then(a.domain.cmp(&b.domain))),
        Some(other) => {
            return refuse(StatusCode::BAD_REQUEST, &format!("sort must be name, rcpt or delivered, not {other:?}"));
        }
    }
    list.truncate(max);
    envelope(json!(list))
}
