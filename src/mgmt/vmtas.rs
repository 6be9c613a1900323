//! `GET /api/v1/vmtas`: every configured virtual MTA (source hosts, pools) with its queues'
//! totals, PowerMTA's `show vmtas`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::{Shared, envelope};
use super::queues::max_items;
use crate::config::Dir;

#[derive(Default, serde::Serialize)]
struct Vmta {
    name: String,
    source_hosts: Vec<String>,
    pools: Vec<String>,
    max_smtp_out: Option<u64>,
    queues: usize,
    recipients: usize,
    connections: usize,
    delivered: u64,
    bounced: u64,
    deferred: u64,
}

/// GET /api/v1/vmtas?maxitems=N
pub async fn list(state: Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let max = match max_items(&state, &params) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let config = state.config();
    let mut vmtas: BTreeMap<String, Vmta> = BTreeMap::new();
    for v in &config.vmtas {
        let sources = v.settings.all(Dir::SmtpSourceHost).iter().map(|e| e.value.to_string()).collect();
        let pools =
            config.pools.iter().filter(|p| p.members().any(|(m, _)| m == v.name)).map(|p| p.name.clone()).collect();
        vmtas.insert(
            v.name.clone(),
            Vmta {
                name: v.name.clone(),
                source_hosts: sources,
                pools,
                max_smtp_out: v.settings.uint(Dir::MaxSmtpOut),
                ..Vmta::default()
            },
        );
    }
    for q in state.queues.snapshot().await {
        let vmta = q.queue.split_once('/').map_or("", |(_, v)| v).to_string();
        let v = vmtas.entry(vmta.clone()).or_insert_with(|| Vmta { name: vmta, ..Vmta::default() });
        v.queues += 1;
        v.recipients += q.recipients;
        v.connections += q.connections;
        v.delivered += q.delivered;
        v.bounced += q.bounced;
        v.deferred += q.deferred;
    }
    let list: Vec<Vmta> = vmtas.into_values().take(max).collect();
    envelope(json!(list))
}
