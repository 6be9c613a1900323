//! `GET /api/v1/domains`: queues summed per destination (queue name) over their virtual MTAs,
//! PowerMTA's `show domains` / `show topdomains`; `GET /api/v1/domains/route`: where one
//! domain's mail goes (its MX hosts, its rollup and provider, its queue), for `ember explain`.

use std::collections::BTreeMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{Envelope, Shared, envelope, refuse};
use super::openapi::ReadRefusals;
use super::queues::max_items;
use crate::delivery::mx::PlanSource;
use crate::queue::manager::rollup::DomainRoute;

/// One destination's queues summed over its virtual MTAs.
#[derive(Default, Serialize, ToSchema)]
pub struct Domain {
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DomainFilter {
    /// only this VMTA
    vmta: Option<String>,
    /// name|rcpt|delivered
    sort: Option<String>,
    /// A number or `all`: at most this many (default: http-default-max-items, 10; all: every item)
    maxitems: Option<String>,
}

/// Queues summed per domain
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/domains", operation_id = "domains_list", tag = "domains", params(DomainFilter),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the domains", body = Envelope<Vec<Domain>>), ReadRefusals))]
pub async fn list(state: Shared, Query(filter): Query<DomainFilter>) -> Response {
    let max = match max_items(&state, filter.maxitems.as_deref()) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let mut domains: BTreeMap<String, Domain> = BTreeMap::new();
    for q in state.queues.snapshot().await {
        let (domain, vmta) = q.queue.split_once('/').unwrap_or((&q.queue, ""));
        if filter.vmta.as_deref().is_some_and(|v| v != vmta) {
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
    match filter.sort.as_deref() {
        None | Some("name") => {}
        Some("rcpt") => list.sort_by(|a, b| b.recipients.cmp(&a.recipients).then(a.domain.cmp(&b.domain))),
        Some("delivered") => list.sort_by(|a, b| b.delivered.cmp(&a.delivered).then(a.domain.cmp(&b.domain))),
        Some(other) => {
            return refuse(StatusCode::BAD_REQUEST, &format!("sort must be name, rcpt or delivered, not {other:?}"));
        }
    }
    list.truncate(max);
    envelope(list)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RouteQuery {
    /// the destination domain
    domain: String,
}

/// Where a domain's mail goes
///
/// The domain's most preferred MX hosts (resolved now, through the daemon's resolver and its
/// cache), the rollup and provider they put it in (`<mx-rollup-list>`, `auto-mx-rollup`), and
/// the queue its mail goes to. Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/domains/route", operation_id = "domains_route", tag = "domains", params(RouteQuery),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the domain's route", body = Envelope<DomainRoute>), ReadRefusals))]
pub async fn route(state: Shared, Query(query): Query<RouteQuery>) -> Response {
    let domain = query.domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return refuse(StatusCode::BAD_REQUEST, &format!("{:?} is not a domain name", query.domain));
    }
    // A domain whose mail goes to its smtp-hosts is never rolled up: no MX lookup for it.
    let smtp_hosts = state
        .config()
        .queue_settings(&domain, None)
        .is_ok_and(|s| s.settings.effective(crate::config::Dir::SmtpHosts).is_some());
    let (hosts, mx_error) = if smtp_hosts {
        (Vec::new(), Some("smtp-hosts: no MX lookup".to_string()))
    } else {
        match state.resolver.plan(&domain, None, 25).await {
            Ok(plan) if plan.source == PlanSource::Mx => {
                (plan.most_preferred().map(|h| h.name.clone()).collect(), None)
            }
            Ok(_) => (Vec::new(), Some("no MX records".to_string())),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    };
    match state.queues.domain_route(&domain, hosts).await {
        Some(route) => {
            let settings = state.config().queue_settings(&domain, None).ok();
            let use_policies = crate::delivery::tls_policy::UsePolicies {
                mta_sts: settings.as_ref().is_some_and(|s| s.policy.use_mta_sts),
                dane: settings.as_ref().is_some_and(|s| s.policy.use_dane),
            };
            let tls_policy = Some(state.tls_policies.describe(&domain, use_policies));
            envelope(DomainRoute { mx_error, tls_policy, ..route })
        }
        None => refuse(StatusCode::SERVICE_UNAVAILABLE, "the queue manager has stopped"),
    }
}
