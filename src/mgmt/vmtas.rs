//! `GET /api/v1/vmtas`: every configured virtual MTA (source hosts, pools) with its queues'
//! totals, PowerMTA's `show vmtas`.

use std::collections::BTreeMap;

use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{Envelope, Shared, envelope};
use super::openapi::ReadRefusals;
use super::queues::max_items;
use crate::config::Dir;

/// A virtual MTA with its queues' totals.
#[derive(Default, Serialize, ToSchema)]
pub struct Vmta {
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

/// `maxitems`, the only parameter of the plain listings.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// A number or `all`: at most this many (default: http-default-max-items, 10; all: every item)
    pub maxitems: Option<String>,
}

/// Virtual MTAs with source hosts, pools and totals
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/vmtas", operation_id = "vmtas_list", tag = "vmtas", params(Page),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the virtual MTAs", body = Envelope<Vec<Vmta>>), ReadRefusals))]
pub async fn list(state: Shared, Query(page): Query<Page>) -> Response {
    let max = match max_items(&state, page.maxitems.as_deref()) {
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
    envelope(list)
}
