//! Live views from the running daemon (PowerMTA's `show …`): status, queues with filters,
//! topqueues, domains, topdomains, VMTAs, jobs and a queue's effective settings. `--json`
//! prints the API's `data` as is; the text mirrors `pmta`'s columns so operators' scripts keep
//! working.

use std::process::ExitCode;

use serde_json::Value;

use super::inspect::fail;
use super::remote::{Remote, query};

fn print_json(v: &Value) -> ExitCode {
    println!("{}", serde_json::to_string_pretty(v).expect("plain JSON"));
    ExitCode::SUCCESS
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `show status`: `pmta show status`'s blocks.
pub fn status(remote: &Remote) -> ExitCode {
    let v = match remote.get("/api/v1/status") {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if remote.json {
        return print_json(&v);
    }
    let t = &v["traffic"];
    println!("Ember {} status, up {}s", s(&v["mta"]["version"]), v["uptime_s"]);
    println!("Traffic        ------inbound------   ------outbound-----");
    println!("                    rcpts      msgs         rcpts");
    for (name, key) in [("Total", "total"), ("Last Hour", "lastHr"), ("Last Min.", "lastMin")] {
        println!(
            "  {name:<12} {:>9} {:>9} {:>13}",
            n(&t[key]["in"]["rcp"]),
            n(&t[key]["in"]["msg"]),
            n(&t[key]["out"]["rcp"])
        );
    }
    println!("  {:<12} {:>9} {:>9} {:>13}", "Top/Min.", "", "", n(&t["topPerMin"]["out"]["rcp"]));
    println!("Outcomes       delivered {}  deferred {}  bounced {}", t["delivered"], t["deferred"], t["bounced"]);
    let c = &v["conn"];
    println!("Connections    active   maximum");
    println!("  Inbound      {:>6}   {:>7}", n(&c["smtpIn"]["cur"]), n(&c["smtpIn"]["max"]));
    println!("  Outbound     {:>6}   {:>7}", n(&c["smtpOut"]["cur"]), n(&c["smtpOut"]["max"]));
    let r = &v["resolver"];
    println!(
        "Domain names   cached {}  pending {}  queries {}  hits {}",
        r["namesCached"], r["queriesPending"], r["queries"], r["hits"]
    );
    let q = &v["queue"]["smtp"];
    println!("SMTP queue     rcpts {}  domains {}  paused {}", q["rcp"], q["dom"], q["paused"]);
    let sp = &v["spool"];
    println!(
        "Spool          messages {}  recipients {}  segments {}  bytes {}",
        sp["messages"], sp["recipients"], sp["segments"], sp["bytes"]
    );
    let ev = &v["events"];
    if ev.is_object() {
        println!(
            "Event log      newest #{}  oldest #{}  written {}  dropped {}  lost {}",
            n(&ev["head"]),
            n(&ev["oldest"]),
            n(&ev["written"]),
            n(&ev["dropped"]),
            n(&ev["lost"])
        );
        for sink in ev["sinks"].as_array().into_iter().flatten() {
            println!(
                "  sink {:<14} {:<5} at #{}  lag {} events, {:.1}s  delivered {}  failures {}  lost {}{}",
                s(&sink["name"]),
                s(&sink["type"]),
                n(&sink["cursor"]),
                n(&sink["lag_events"]),
                sink["lag_seconds"].as_f64().unwrap_or(0.0),
                n(&sink["delivered"]),
                n(&sink["failures"]),
                n(&sink["lost"]),
                if s(&sink["last_error"]).is_empty() {
                    String::new()
                } else {
                    format!("  last error: {}", s(&sink["last_error"]))
                }
            );
        }
    }
    ExitCode::SUCCESS
}

/// The filters of `show queues` (PowerMTA's spelling).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct QueueFilters {
    /// yes: only queues with open connections; no: only those without.
    #[arg(long, value_parser = ["yes", "no"])]
    pub connected: Option<String>,
    #[arg(long, value_parser = ["yes", "no"])]
    pub paused: Option<String>,
    #[arg(long, value_parser = ["normal", "backoff", "retry", "paused"])]
    pub mode: Option<String>,
    #[arg(long)]
    pub maxitems: Option<usize>,
    #[arg(long, value_parser = ["name", "rcpt"])]
    pub sort: Option<String>,
    /// Show each queue's recent errors.
    #[arg(long)]
    pub errors: bool,
    /// `domain[/vmta]`, `*` for either part.
    pub queue: Option<String>,
}

fn print_queues(list: &Value) {
    println!(
        "{:<44} {:>7} {:>5} {:<8} {:<20} {:<12} last error",
        "queue", "#rcpt", "conn", "mode", "retry", "provider"
    );
    for q in list.as_array().into_iter().flatten() {
        let retry = q["retry_until"].as_u64().map(crate::time::acct).unwrap_or_default();
        println!(
            "{:<44} {:>7} {:>5} {:<8} {:<20} {:<12} {}",
            s(&q["queue"]),
            n(&q["recipients"]),
            n(&q["connections"]),
            s(&q["mode"]),
            retry,
            q["provider"].as_str().unwrap_or("-"),
            s(&q["last_error"])
        );
    }
}

/// `maxitems` for a listing: the number given; else every item, or for a `top` view the
/// daemon's `http-default-max-items` (PowerMTA's default 10).
fn all_unless_top(maxitems: Option<usize>, top: bool) -> Option<String> {
    match maxitems {
        Some(m) => Some(m.to_string()),
        None if top => None,
        None => Some("all".to_string()),
    }
}

/// `show queues [filters] [QUEUE]` and `show topqueues` (sorted by recipients, the daemon's
/// `http-default-max-items` by default).
pub fn queues(remote: &Remote, f: &QueueFilters, top: bool) -> ExitCode {
    let sort = if top { Some("rcpt".to_string()) } else { f.sort.clone() };
    let max = all_unless_top(f.maxitems, top);
    let filtered = f.connected.is_some() || f.paused.is_some() || f.mode.is_some() || f.queue.is_some() || top;
    let path = format!(
        "/api/v1/queues{}",
        query(&[
            ("connected", f.connected.clone()),
            ("paused", f.paused.clone()),
            ("mode", f.mode.clone()),
            ("queue", f.queue.clone()),
            ("sort", sort),
            ("maxitems", max),
        ])
    );
    let list = match remote.get(&path) {
        Ok(v) => v,
        // No daemon: the spool still says what is queued (without filters).
        Err(e) if !filtered && !f.errors => {
            eprintln!("ember: {e}; reading the spool instead");
            return super::inspect::show_queues(remote.config.as_deref(), remote.mgmt.as_ref(), remote.json);
        }
        Err(e) => return fail(e),
    };
    if !f.errors {
        if remote.json {
            return print_json(&list);
        }
        print_queues(&list);
        return ExitCode::SUCCESS;
    }
    // --errors: each queue with its recent errors, from the queue detail.
    let mut out = Vec::new();
    for q in list.as_array().into_iter().flatten() {
        match remote.get(&format!("/api/v1/queues/detail{}", query(&[("queue", Some(s(&q["queue"]).to_string()))]))) {
            Ok(d) => out.push(d),
            Err(e) => return fail(e),
        }
    }
    if remote.json {
        return print_json(&Value::Array(out));
    }
    for d in &out {
        print_queues(&Value::Array(vec![d["queue"].clone()]));
        for e in d["errors"].as_array().into_iter().flatten() {
            println!(
                "    {} {:<13} {} {}",
                crate::time::acct(n(&e["time"])),
                s(&e["kind"]),
                s(&e["rcpt"]),
                s(&e["diag"])
            );
        }
    }
    ExitCode::SUCCESS
}

/// `show domains [--vmta V]` and `show topdomains`.
pub fn domains(remote: &Remote, vmta: Option<String>, maxitems: Option<usize>, top: bool) -> ExitCode {
    let sort = top.then(|| "rcpt".to_string());
    let max = all_unless_top(maxitems, top);
    let path = format!("/api/v1/domains{}", query(&[("vmta", vmta), ("sort", sort), ("maxitems", max)]));
    let list = match remote.get(&path) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if remote.json {
        return print_json(&list);
    }
    println!(
        "{:<40} {:>7} {:>5} {:>10} {:>9} {:>9}  vmtas",
        "domain", "#rcpt", "conn", "delivered", "deferred", "bounced"
    );
    for d in list.as_array().into_iter().flatten() {
        let vmtas: Vec<&str> = d["vmtas"].as_array().into_iter().flatten().map(s).collect();
        println!(
            "{:<40} {:>7} {:>5} {:>10} {:>9} {:>9}  {}",
            s(&d["domain"]),
            n(&d["recipients"]),
            n(&d["connections"]),
            n(&d["delivered"]),
            n(&d["deferred"]),
            n(&d["bounced"]),
            vmtas.join(",")
        );
    }
    ExitCode::SUCCESS
}

/// `show vmtas`.
pub fn vmtas(remote: &Remote, maxitems: Option<usize>) -> ExitCode {
    let list = match remote.get(&format!("/api/v1/vmtas{}", query(&[("maxitems", all_unless_top(maxitems, false))]))) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if remote.json {
        return print_json(&list);
    }
    println!(
        "{:<24} {:>6} {:>7} {:>5} {:>10} {:>9} {:>9}  source hosts",
        "vmta", "queues", "#rcpt", "conn", "delivered", "deferred", "bounced"
    );
    for v in list.as_array().into_iter().flatten() {
        let hosts: Vec<&str> = v["source_hosts"].as_array().into_iter().flatten().map(s).collect();
        println!(
            "{:<24} {:>6} {:>7} {:>5} {:>10} {:>9} {:>9}  {}",
            s(&v["name"]),
            n(&v["queues"]),
            n(&v["recipients"]),
            n(&v["connections"]),
            n(&v["delivered"]),
            n(&v["deferred"]),
            n(&v["bounced"]),
            hosts.join(", ")
        );
    }
    ExitCode::SUCCESS
}

/// `show cluster`.
pub fn cluster(remote: &Remote) -> ExitCode {
    let view = match remote.get("/api/v1/cluster") {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if remote.json {
        return print_json(&view);
    }
    if view["enabled"] != true {
        println!("cluster mode is off (no cluster-redis)");
        return ExitCode::SUCCESS;
    }
    let state = match (view["degraded"] == true, view["refused"] == true) {
        (true, _) => "degraded: Redis unreachable, limits on this node's share",
        (false, true) => "refused membership: another live node holds this name",
        (false, false) => "member",
    };
    println!("node {} ({state}); {} live node(s)", s(&view["node"]), n(&view["live"]));
    println!(
        "{:<20} {:<5} {:<22} {:<22} {:<8} {:<17} {:>7} {:>8}  last seen",
        "node", "live", "smtp", "mgmt", "version", "config", "#msg", "#rcpt"
    );
    for node in view["nodes"].as_array().into_iter().flatten() {
        let hash = s(&node["config_hash"]);
        let config = if node["config_differs"] == true { format!("{hash} DIFFERS") } else { hash.to_string() };
        println!(
            "{:<20} {:<5} {:<22} {:<22} {:<8} {:<17} {:>7} {:>8}  {}",
            s(&node["name"]),
            if node["live"] == true { "yes" } else { "no" },
            s(&node["smtp"]),
            s(&node["mgmt"]),
            s(&node["version"]),
            config,
            n(&node["messages"]),
            n(&node["recipients"]),
            crate::time::acct(node["last_seen"].as_u64().unwrap_or(0)),
        );
    }
    ExitCode::SUCCESS
}

/// `show jobs`.
pub fn jobs(remote: &Remote, maxitems: Option<usize>) -> ExitCode {
    let list = match remote.get(&format!("/api/v1/jobs{}", query(&[("maxitems", all_unless_top(maxitems, false))]))) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if remote.json {
        return print_json(&list);
    }
    println!(
        "{:<32} {:<7} {:>8} {:>8} {:>10} {:>9} {:>9} {:>8}",
        "job", "state", "msgs", "rcpts", "delivered", "deferred", "bounced", "queued"
    );
    for j in list.as_array().into_iter().flatten() {
        println!(
            "{:<32} {:<7} {:>8} {:>8} {:>10} {:>9} {:>9} {:>8}",
            s(&j["job_id"]),
            if j["paused"] == true { "paused" } else { "active" },
            n(&j["received_msgs"]),
            n(&j["received_rcpts"]),
            n(&j["delivered"]),
            n(&j["deferred"]),
            n(&j["bounced"]),
            n(&j["queued"])
        );
    }
    ExitCode::SUCCESS
}

/// `show settings QUEUE --live`: the running configuration's effective settings.
pub fn settings(remote: &Remote, queue: &str) -> ExitCode {
    let v = match remote.get(&format!("/api/v1/settings{}", query(&[("queue", Some(queue.to_string()))]))) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if remote.json {
        let mut v = v;
        if let Some(o) = v.as_object_mut() {
            o.remove("text");
        }
        return print_json(&v);
    }
    print!("{}", s(&v["text"]));
    ExitCode::SUCCESS
}
