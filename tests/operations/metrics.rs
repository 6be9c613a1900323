//! `/metrics`: parsed by Python's prometheus_client (both its Prometheus text parser and its
//! OpenMetrics parser), and the delivered counter equals the `d` records of the accounting file
//! after real traffic; the spool's latency histograms count every stored message and sync.

use super::{acct_rows, config, inject, mgmt, route_all, until};
use crate::support::http;
use crate::support::peers::{Sink, free_port};
use crate::support::{Ember, python};

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
text = open(sys.argv[1]).read()
list(openmetrics(text))  # strict: raises on anything OpenMetrics does not allow
out = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        out.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps(out))
"#;

fn parse(e: &Ember) -> serde_json::Value {
    let answer = http::get(mgmt(e), "/metrics");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let file = e.path("metrics.txt");
    std::fs::write(&file, &answer.body).unwrap();
    let out = python(PARSE, &[file.display().to_string()]);
    assert!(
        out.status.success(),
        "prometheus_client cannot parse /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        answer.body
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sum(m: &serde_json::Value, name: &str) -> f64 {
    m[name].as_array().map_or(0.0, |s| s.iter().map(|x| x[1].as_f64().unwrap()).sum())
}

#[test]
fn delivered_counter_matches_the_accounting_file_and_queue_gauges_are_live() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    // held.example waits on a port nobody listens on: its recipients stay queued.
    let extra = format!(
        "<domain held.example>\n    smtp-hosts [127.0.0.1]:9\n    retry-after 1h\n</domain>\n{}",
        route_all(sink.addr.port())
    );
    let e = Ember::start_in(dir, &config("monitor", &extra));
    for n in 0..5 {
        inject(&e, &format!("r{n}@metrics.example"), &["--header", "X-Job: m1"]);
    }
    inject(&e, "x@held.example", &[]);
    let d = acct_rows(&e, "d", 5);
    let m = until("the held queue in /metrics", || {
        let m = parse(&e);
        (sum(&m, "ember_queue_recipients") >= 1.0).then_some(m)
    });
    assert_eq!(sum(&m, "ember_delivered_recipients_total"), d.len() as f64, "{m}");
    assert_eq!(sink.messages().len(), 5);
    let delivered = &m["ember_delivered_recipients_total"][0][0];
    assert_eq!(delivered["domain"], "metrics.example");
    assert_eq!(delivered["vmta"], "{default}");
    assert_eq!(sum(&m, "ember_received_messages_total"), 6.0);
    // The held queue is a gauge computed at scrape time.
    let held =
        m["ember_queue_recipients"].as_array().unwrap().iter().find(|s| s[0]["domain"] == "held.example").unwrap();
    assert_eq!(held[1], 1.0);
    assert_eq!(sum(&m, "ember_spool_recipients"), 1.0);
    assert!(sum(&m, "ember_accounting_records_written_total") >= 5.0, "{m}");
    assert!(m.get("ember_smtp_in_connections").is_some() && m.get("ember_dns_queries_total").is_some(), "{m}");
    // The queue manager's inbox: its size, and a backlog that is back to nothing once mail is out.
    assert_eq!(sum(&m, "ember_queue_manager_backlog_max"), 8192.0, "{m}");
    assert!(sum(&m, "ember_queue_manager_backlog") < 8192.0, "{m}");
    assert_eq!(sum(&m, "ember_worker_failures_total"), 0.0, "no delivery worker died: {m}");
    // Every stored message's wait for its 250 is in the store histogram, every fdatasync in the
    // sync one.
    assert_eq!(sum(&m, "ember_spool_store_seconds_count"), 6.0, "{m}");
    assert!(sum(&m, "ember_spool_store_seconds_sum") > 0.0, "{m}");
    let inf =
        |name: &str| m[name].as_array().unwrap().iter().find(|s| s[0]["le"] == "+Inf").map(|s| s[1].as_f64().unwrap());
    assert_eq!(inf("ember_spool_store_seconds_bucket"), Some(6.0), "{m}");
    let (syncs, fsyncs) = (sum(&m, "ember_spool_sync_seconds_count"), sum(&m, "ember_spool_fsyncs_total"));
    assert!(syncs >= 1.0 && syncs == fsyncs, "{syncs} syncs timed, {fsyncs} made: {m}");
}
