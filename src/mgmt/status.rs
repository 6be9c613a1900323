//! `GET /api/v1/status`: PowerMTA's `show status` — traffic, connections, DNS cache, queues,
//! spool, uptime — plus the last hour per minute for the dashboard's charts.

use axum::response::Response;
use serde_json::json;

use super::api::{Envelope, Shared, envelope};
use super::openapi::ReadRefusals;

/// Traffic, connections, DNS cache, queues, spool, uptime, the last hour per minute
///
/// Access level: monitor (or an X-API-Key). `data` holds `mta` {product, version}, `uptime_s`,
/// `traffic` {delivered, bounced, deferred, total, lastHr, lastMin, topPerMin} (each with `in`
/// {rcp, msg} and `out` {rcp}), `conn` {smtpIn, smtpOut} (each {cur, max}), `resolver`
/// {namesCached, queriesPending, queries, hits}, `queue` {smtp: {rcp, dom, paused}}, `spool`
/// {messages, recipients, segments, bytes, quarantined}, `minutes` (the last hour's counts per
/// minute, oldest first) and `events` (null without an event log; else {head, oldest, written,
/// dropped, lost, sinks: [{name, type, cursor, lag_events, lag_seconds, delivered, batches,
/// failures, lost, last_error}]}).
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    security((), ("api_key" = [])),
    responses((status = 200, description = "the daemon's status", body = Envelope<serde_json::Value>), ReadRefusals))]
pub async fn status(state: Shared) -> Response {
    let queues = state.queues.snapshot().await;
    let spool = state.spool.stats();
    let dns = state.resolver.stats();
    let totals = state.telemetry.totals();
    let minutes = state.telemetry.minutes();
    let last = minutes.last().copied().unwrap_or_default();
    let hour = minutes.iter().fold((0, 0, 0, 0), |a, m| {
        (a.0 + m.received_rcpts, a.1 + m.received_msgs, a.2 + m.delivered, a.3 + m.bounced + m.deferred)
    });
    let top_min = minutes.iter().map(|m| m.delivered).max().unwrap_or(0);
    let config = state.config();
    let max_out = config.global.uint(crate::config::Dir::TotalMaxSmtpOut).unwrap_or(1200);
    envelope(json!({
        "mta": {"product": "Ember", "version": env!("CARGO_PKG_VERSION")},
        "uptime_s": state.started.elapsed().as_secs(),
        "traffic": {
            "delivered": totals.delivered,
            "bounced": totals.bounced,
            "deferred": totals.deferred,
            "total": {"in": {"rcp": totals.received_rcpts, "msg": totals.received_msgs}, "out": {"rcp": totals.delivered}},
            "lastHr": {"in": {"rcp": hour.0, "msg": hour.1}, "out": {"rcp": hour.2}},
            "lastMin": {"in": {"rcp": last.received_rcpts, "msg": last.received_msgs}, "out": {"rcp": last.delivered}},
            "topPerMin": {"out": {"rcp": top_min}},
        },
        "conn": {
            "smtpIn": {"cur": state.smtp_in_max - state.smtp_in.available_permits(), "max": state.smtp_in_max},
            "smtpOut": {"cur": queues.iter().map(|q| q.connections).sum::<usize>(), "max": max_out},
        },
        "resolver": {"namesCached": dns.cached, "queriesPending": dns.pending, "queries": dns.queries, "hits": dns.hits},
        "queue": {
            "smtp": {
                "rcp": queues.iter().map(|q| q.recipients).sum::<usize>(),
                "dom": queues.len(),
                "paused": queues.iter().filter(|q| q.paused).count(),
            }
        },
        "spool": {
            "messages": spool.live_messages,
            "recipients": spool.live_recipients,
            "segments": spool.segments,
            "bytes": spool.bytes_on_disk,
            "quarantined": spool.quarantined,
        },
        "minutes": minutes,
        "events": crate::events::status(),
    }))
}
