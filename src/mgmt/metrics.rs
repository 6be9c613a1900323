//! `GET /metrics`: Prometheus text format (prometheus-client). Event counters live in
//! `Telemetry`; per-queue, per-VMTA and per-domain gauges, spool, connections, DNS and
//! accounting writers are computed at scrape time from the live state, so a scrape shows the
//! queues as they are now and costs nothing between scrapes.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::api::{Shared, refuse};
use super::openapi::ReadRefusals;
use crate::telemetry::Labels;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn gauge_family(registry: &mut Registry, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, i64)>) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, v) in values {
        family.get_or_create(&labels).set(v);
    }
    registry.register(name, help, family);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, v: u64) {
    registry.register(name, help, ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)));
}

/// A histogram read from the spool at scrape time (prometheus-client has no constant one).
#[derive(Debug)]
struct ConstHistogram(crate::spool::latency::Snapshot);

impl TypedMetric for ConstHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.0.sum_seconds, self.0.count, &self.0.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Prometheus metrics (OpenMetrics text)
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    security((), ("api_key" = [])),
    responses((status = 200, description = "the metrics", content_type = "application/openmetrics-text", body = String),
        ReadRefusals))]
pub async fn scrape(state: Shared) -> Response {
    let queues = state.queues.snapshot().await;
    let mut registry = Registry::default();
    state.telemetry.register(&mut registry);

    let queue_labels = |q: &str| {
        let (d, v) = q.split_once('/').unwrap_or((q, ""));
        l(&[("domain", d), ("vmta", v)])
    };
    let per_queue = |f: &dyn Fn(&crate::queue::QueueStatus) -> i64| {
        queues.iter().map(|q| (queue_labels(&q.queue), f(q))).collect::<Vec<_>>()
    };
    gauge_family(
        &mut registry,
        "ember_queue_recipients",
        "Recipients queued, by queue",
        per_queue(&|q| q.recipients as i64),
    );
    gauge_family(
        &mut registry,
        "ember_queue_ready_messages",
        "Messages ready to send now, by queue",
        per_queue(&|q| q.messages_ready as i64),
    );
    gauge_family(
        &mut registry,
        "ember_queue_retry_messages",
        "Messages waiting for a retry time, by queue",
        per_queue(&|q| q.messages_waiting as i64),
    );
    gauge_family(
        &mut registry,
        "ember_queue_connections",
        "Open outbound connections, by queue",
        per_queue(&|q| q.connections as i64),
    );
    gauge_family(
        &mut registry,
        "ember_queue_paused",
        "1 when an operator paused the queue",
        per_queue(&|q| i64::from(q.paused)),
    );
    gauge_family(
        &mut registry,
        "ember_queue_mode",
        "1 for the queue's current mode (normal, backoff, retry, paused)",
        queues.iter().map(|q| {
            let mut labels = queue_labels(&q.queue);
            labels.push(("mode".into(), q.mode.clone()));
            (labels, 1)
        }),
    );

    // Adaptive delivery's learned limits, by queue and source IP.
    let learned: Vec<(Labels, &crate::queue::adaptive::per_queue::LearnedStatus)> = queues
        .iter()
        .flat_map(|q| q.adaptive.iter().flat_map(|a| a.sources.iter()).map(move |s| (q, s)))
        .map(|(q, s)| {
            let mut labels = queue_labels(&q.queue);
            labels.push(("source_ip".into(), s.source_ip.clone()));
            (labels, s)
        })
        .collect();
    let rates = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (labels, s) in &learned {
        if let Some(r) = s.rate_per_second {
            rates.get_or_create(labels).set(r);
        }
    }
    registry.register(
        "ember_adaptive_rate",
        "Messages a second adaptive delivery lets the queue send from the source IP (learned, or the configured max-msg-rate)",
        rates,
    );
    gauge_family(
        &mut registry,
        "ember_adaptive_connections",
        "Connections adaptive delivery lets the queue open from the source IP",
        learned.iter().map(|(labels, s)| (labels.clone(), s.connections as i64)),
    );

    let mut vmtas: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut domains: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for q in &queues {
        let (d, v) = q.queue.split_once('/').unwrap_or((&q.queue, ""));
        for (map, key) in [(&mut vmtas, v), (&mut domains, d)] {
            let e = map.entry(key).or_default();
            e.0 += q.recipients as i64;
            e.1 += q.connections as i64;
        }
    }
    gauge_family(
        &mut registry,
        "ember_vmta_recipients",
        "Recipients queued, by virtual MTA",
        vmtas.iter().map(|(v, x)| (l(&[("vmta", v)]), x.0)),
    );
    gauge_family(
        &mut registry,
        "ember_vmta_connections",
        "Open outbound connections, by virtual MTA",
        vmtas.iter().map(|(v, x)| (l(&[("vmta", v)]), x.1)),
    );
    gauge_family(
        &mut registry,
        "ember_domain_recipients",
        "Recipients queued, by domain (queue name)",
        domains.iter().map(|(d, x)| (l(&[("domain", d)]), x.0)),
    );
    gauge_family(
        &mut registry,
        "ember_domain_connections",
        "Open outbound connections, by domain",
        domains.iter().map(|(d, x)| (l(&[("domain", d)]), x.1)),
    );

    let spool = state.spool.stats();
    gauge(
        &mut registry,
        "ember_spool_messages",
        "Messages in the spool with recipients still to do",
        spool.live_messages as u64,
    );
    gauge(&mut registry, "ember_spool_recipients", "Recipients in the spool still to do", spool.live_recipients);
    gauge(&mut registry, "ember_spool_segments", "Spool segment files", spool.segments as u64);
    gauge(&mut registry, "ember_spool_bytes", "Bytes of spool segment files on disk", spool.bytes_on_disk);
    registry.register(
        "ember_spool_quarantined_records",
        "Damaged spool records quarantined",
        ConstCounter::new(spool.quarantined),
    );
    registry.register(
        "ember_spool_fsyncs",
        "fdatasync calls of the spool (group commits and compactions)",
        ConstCounter::new(spool.fsyncs),
    );
    registry.register("ember_spool_batches", "Group-commit batches written", ConstCounter::new(spool.batches));
    registry.register(
        "ember_spool_stored_messages",
        "Messages stored since start",
        ConstCounter::new(spool.messages_stored),
    );
    registry.register_with_unit(
        "ember_spool_store",
        "What each stored message waited for before its 250: queueing for the writer, the write and fdatasync, the answer back to the session",
        prometheus_client::registry::Unit::Seconds,
        ConstHistogram(spool.store_wait),
    );
    registry.register_with_unit(
        "ember_spool_sync",
        "Duration of each fdatasync of the spool (group commits and compactions)",
        prometheus_client::registry::Unit::Seconds,
        ConstHistogram(spool.sync_time),
    );

    let in_use = state.smtp_in_max.saturating_sub(state.smtp_in.available_permits());
    gauge(&mut registry, "ember_smtp_in_connections", "Inbound SMTP sessions open", in_use as u64);
    if let Some(cluster) = &state.cluster {
        let live = cluster.view().iter().filter(|n| n.live).count();
        gauge(
            &mut registry,
            "ember_cluster_degraded",
            "1 while Redis is unreachable and limits run on this node's share",
            u64::from(cluster.degraded()),
        );
        gauge(
            &mut registry,
            "ember_cluster_refused",
            "1 while another live node holds this node's name",
            u64::from(cluster.refused()),
        );
        gauge(
            &mut registry,
            "ember_cluster_nodes_live",
            "Live nodes in this node's last view of the cluster",
            live as u64,
        );
    }
    gauge(&mut registry, "ember_smtp_in_connections_max", "total-max-smtp-in", state.smtp_in_max as u64);
    gauge(
        &mut registry,
        "ember_smtp_out_connections",
        "Outbound SMTP connections open",
        queues.iter().map(|q| q.connections as u64).sum(),
    );

    gauge(
        &mut registry,
        "ember_queue_manager_backlog",
        "Events waiting in the queue manager's inbox (sessions and connections wait while it is full)",
        state.queues.backlog() as u64,
    );
    gauge(
        &mut registry,
        "ember_queue_manager_backlog_max",
        "The queue manager's inbox size",
        crate::queue::manager::EVENT_CAPACITY as u64,
    );

    let dns = state.resolver.stats();
    gauge(&mut registry, "ember_dns_cached_answers", "Fresh answers in the MX/A/AAAA cache", dns.cached as u64);
    gauge(&mut registry, "ember_dns_pending_queries", "DNS queries in flight", dns.pending as u64);
    registry.register("ember_dns_queries", "DNS queries sent", ConstCounter::new(dns.queries));
    registry.register(
        "ember_dns_cache_hits",
        "Lookups answered by the cache or a query in flight",
        ConstCounter::new(dns.hits),
    );

    let sessions = Family::<Labels, prometheus_client::metrics::counter::Counter>::default();
    for ((policy, result), n) in state.tls_policies.sessions() {
        sessions.get_or_create(&l(&[("policy", policy), ("result", result)])).inc_by(n);
    }
    registry.register(
        "ember_tls_sessions",
        "Outbound sessions by transport-security policy type (sts, no-policy-found) and TLS-RPT result",
        sessions,
    );

    let figures = state.contexts.load().accounting.figures();
    let written = Family::<Labels, prometheus_client::metrics::counter::Counter>::default();
    let lost = Family::<Labels, prometheus_client::metrics::counter::Counter>::default();
    for (name, w, x) in figures {
        written.get_or_create(&l(&[("file", &name)])).inc_by(w);
        lost.get_or_create(&l(&[("file", &name)])).inc_by(x);
    }
    registry.register("ember_accounting_records_written", "Accounting records written, by <acct-file>", written);
    registry.register("ember_accounting_records_lost", "Accounting records in batches that failed to write", lost);
    if let Some(ev) = crate::events::status() {
        register_events(&mut registry, &ev);
    }
    gauge(&mut registry, "ember_uptime_seconds", "Seconds since the daemon started", state.started.elapsed().as_secs());

    let mut text = String::new();
    if let Err(e) = encode_registry(&mut text, &registry).and_then(|()| encode_eof(&mut text)) {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot encode metrics: {e}"));
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// The event log's counters and each sink's lag.
fn register_events(registry: &mut Registry, ev: &crate::events::EventsStatus) {
    registry.register("ember_events_written", "Events written to the event log", ConstCounter::new(ev.written));
    registry.register(
        "ember_events_dropped",
        "Events dropped because the event log could not keep up (mail is never slowed for events)",
        ConstCounter::new(ev.dropped),
    );
    registry.register(
        "ember_events_lost",
        "Events in batches the event log's disk refused",
        ConstCounter::new(ev.lost),
    );
    gauge(registry, "ember_events_head", "Id of the newest durable event", ev.head);
    let per_sink = |f: &dyn Fn(&crate::events::sink::SinkStatus) -> u64| {
        ev.sinks
            .iter()
            .map(|s| (l(&[("sink", &s.name), ("type", &s.kind)]), i64::try_from(f(s)).unwrap_or(i64::MAX)))
            .collect::<Vec<_>>()
    };
    gauge_family(
        registry,
        "ember_event_sink_lag_events",
        "Durable events a sink has not delivered yet",
        per_sink(&|s| s.lag_events),
    );
    gauge_family(
        registry,
        "ember_event_sink_lag_seconds",
        "How long the oldest event a sink has not delivered has waited (whole seconds)",
        per_sink(&|s| s.lag_seconds as u64),
    );
    gauge_family(
        registry,
        "ember_event_sink_delivered",
        "Events a sink delivered since start",
        per_sink(&|s| s.delivered),
    );
    gauge_family(
        registry,
        "ember_event_sink_failures",
        "Failed delivery attempts of a sink since start (each retried)",
        per_sink(&|s| s.failures),
    );
    gauge_family(
        registry,
        "ember_event_sink_lost",
        "Events deleted by retention before a sink delivered them",
        per_sink(&|s| s.lost),
    );
}
