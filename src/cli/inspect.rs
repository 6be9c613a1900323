//! Offline views of the spool: `ember show queues`, `ember list`, `ember show message`. They open
//! the spool read-only (no lock, no repair), so they work beside a running daemon and on the spool
//! of a stopped or crashed one.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::client::Client;
use super::error::CliError;
use super::remote::Mgmt;
use crate::config::{Config, Dir, FileCheck};
use crate::message::{Envelope, MessageId, RecipientState};
use crate::spool::{Spool, SpoolOptions};

fn open(config_path: Option<&Path>) -> Result<(Config, Spool), CliError> {
    let loaded = super::show::load(config_path, FileCheck::Warn);
    if loaded.diagnostics.has_errors() {
        super::print_diagnostics(&loaded.diagnostics);
        return Err(CliError::ConfigErrors);
    }
    let options = SpoolOptions { read_only: true, ..crate::daemon::spool_options(&loaded.config) };
    let (spool, _) = Spool::open(options).map_err(CliError::Spool)?;
    Ok((loaded.config, spool))
}

/// `domain/vmta` of a recipient, after `queue-to`.
fn queue_of(config: &Config, envelope: &Envelope, domain: &str) -> String {
    let vmta = envelope.vmta.as_deref().unwrap_or(crate::config::DEFAULT_VMTA);
    let lookup = if config.vmta(vmta).is_some() { Some(vmta) } else { None };
    let queue = config.queue_settings(domain, lookup).map(|q| q.queue).unwrap_or_else(|_| domain.to_string());
    format!("{queue}/{vmta}")
}

fn state_name(s: &RecipientState) -> &'static str {
    match s {
        RecipientState::Pending { .. } => "queued",
        RecipientState::Delivered => "delivered",
        RecipientState::Bounced => "bounced",
        RecipientState::Deleted => "deleted",
    }
}

pub(super) fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ember: {e}");
    ExitCode::from(1)
}

/// The daemon's management API: `--mgmt`, else the config's `http-mgmt-port` on this host.
pub(super) fn mgmt_address(config_path: Option<&Path>, mgmt: Option<&Mgmt>) -> Result<Mgmt, CliError> {
    match mgmt {
        Some(m) => Ok(m.clone()),
        None => {
            let loaded = super::show::load(config_path, FileCheck::Warn);
            config_mgmt(&loaded.config).ok_or(CliError::MgmtDisabled)
        }
    }
}

/// The management API of a configuration: HTTPS when it has `http-tls-certificate`.
pub(super) fn config_mgmt(config: &Config) -> Option<Mgmt> {
    let https = config.global.path(Dir::HttpTlsCertificate).is_some();
    crate::daemon::mgmt_addr(config).map(|addr| Mgmt::from_listen(addr, https))
}

/// Asks the running daemon for `path`.
fn live(config_path: Option<&Path>, mgmt: Option<&Mgmt>, path: &str) -> Result<serde_json::Value, CliError> {
    Client::new(mgmt_address(config_path, mgmt)?)?.get(path)
}

/// Sends an operator command to the running daemon and reports how many queues it changed.
pub fn command(config_path: Option<&Path>, mgmt: Option<&Mgmt>, path: &str, body: serde_json::Value) -> ExitCode {
    match mgmt_address(config_path, mgmt).and_then(Client::new).and_then(|c| c.post(path, &body)) {
        Ok(v) => {
            let n = v["matched"].as_u64().unwrap_or(0);
            println!("{n} queue{} changed", if n == 1 { "" } else { "s" });
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `ember explain QUEUE|DOMAIN`. For a domain (no `/VMTA`), first where its mail goes: its MX
/// hosts, its provider and the queue (its rollup's or its own), then that queue.
pub fn explain(queue: &str, config_path: Option<&Path>, mgmt: Option<&Mgmt>, json: bool) -> ExitCode {
    let route = if queue.contains('/') {
        None
    } else {
        let path = format!("/api/v1/domains/route?domain={}", super::remote::encode(queue));
        match live(config_path, mgmt, &path) {
            Ok(route) => Some(route),
            Err(e) => return fail(e),
        }
    };
    let queues = match live(config_path, mgmt, "/api/v1/queues?maxitems=all") {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    // A domain's mail may be in its rollup's queue.
    let target = route.as_ref().and_then(|r| r["queue"].as_str()).unwrap_or(queue);
    let wanted = |q: &&serde_json::Value| {
        let name = q["queue"].as_str().unwrap_or("");
        name == queue || name.split('/').next() == Some(target) || name.split('/').next() == Some(queue)
    };
    let found = queues.as_array().and_then(|a| a.iter().find(wanted));
    if json {
        let out = match (found, &route) {
            (Some(q), None) => q.clone(),
            (Some(q), Some(r)) => {
                let mut q = q.clone();
                q["route"] = r.clone();
                q
            }
            (None, Some(r)) => json!({ "route": r }),
            (None, None) => {
                return fail(format!("no queue {queue} in the running daemon (it has nothing queued for it)"));
            }
        };
        println!("{}", serde_json::to_string_pretty(&out).expect("plain JSON"));
        return ExitCode::SUCCESS;
    }
    if let Some(r) = &route {
        print_route(r);
    }
    let Some(q) = found else {
        if route.is_some() {
            println!("  nothing queued for it in the running daemon");
            return ExitCode::SUCCESS;
        }
        return fail(format!("no queue {queue} in the running daemon (it has nothing queued for it)"));
    };
    println!("queue {}: mode {}", q["queue"].as_str().unwrap_or(""), q["mode"].as_str().unwrap_or(""));
    if let Some(r) = q["mode_reason"].as_str() {
        println!("  because {r}");
    }
    match q["waiting_reason"].as_str() {
        Some(w) => println!("  waiting: {w}"),
        None if q["recipients"].as_u64().unwrap_or(0) > 0 => println!("  sending"),
        None => println!("  idle: nothing queued"),
    }
    println!(
        "  {} recipients ({} messages ready, {} waiting for a retry), {} connections",
        q["recipients"], q["messages_ready"], q["messages_waiting"], q["connections"]
    );
    println!("  since start: {} delivered, {} bounced, {} deferred", q["delivered"], q["bounced"], q["deferred"]);
    if let Some(e) = q["last_error"].as_str() {
        println!("  last error: {e}");
    }
    let name = q["queue"].as_str().unwrap_or("");
    let detail = format!(
        "/api/v1/queues/detail?queue={}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    if let Ok(detail) = live(config_path, mgmt, &detail)
        && let Some(policy) = detail["tls_policy"].as_str()
    {
        println!("  TLS policy: {policy}");
    }
    if let Some(w) = q.get("warmup").filter(|w| w.is_object()) {
        println!(
            "  warm-up: step {} of {} ({}), {} used; this step so far: {} delivered, {} deferred, {} bounced",
            w["step"],
            w["steps"],
            w["per"].as_str().unwrap_or(""),
            w["used"],
            w["delivered"],
            w["deferred"],
            w["bounced"]
        );
        match w["held"].as_str() {
            Some(h) => println!("  warm-up ramp paused: {h}"),
            None => println!("  warm-up ramp advancing"),
        }
    }
    if let Some(a) = q.get("adaptive").filter(|a| a.is_object()) {
        println!(
            "  adaptive delivery: rate {} to {}, connections {} to {}, at most one step up per {}s",
            a["min_rate"].as_str().unwrap_or(""),
            a["max_rate"].as_str().unwrap_or(""),
            a["min_connections"],
            a["max_connections"],
            a["interval_secs"].as_f64().unwrap_or(0.0)
        );
        for s in a["sources"].as_array().into_iter().flatten() {
            let learned = |yes: bool| if yes { "learned" } else { "configured" };
            let conns_learned = s["connections"] != a["max_connections"];
            println!(
                "    source {}: rate {} ({}), connections {} ({}), {} open",
                s["source_ip"].as_str().unwrap_or(""),
                s["rate"].as_str().unwrap_or(""),
                learned(s["rate_learned"].as_bool().unwrap_or(false)),
                s["connections"],
                learned(conns_learned),
                s["connections_open"]
            );
        }
    }
    for ev in q["mode_events"].as_array().into_iter().flatten() {
        println!(
            "  {} -> {}: {}",
            crate::time::acct(ev["time"].as_u64().unwrap_or(0)),
            ev["mode"].as_str().unwrap_or(""),
            ev["reason"].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}

/// A domain's route (`GET /api/v1/domains/route`) in a few lines.
fn print_route(r: &serde_json::Value) {
    println!("domain {}", r["domain"].as_str().unwrap_or(""));
    let hosts: Vec<&str> = r["mx"].as_array().into_iter().flatten().filter_map(|h| h.as_str()).collect();
    match r["mx_error"].as_str() {
        Some(e) if hosts.is_empty() => println!("  MX hosts: none ({e})"),
        _ => println!("  MX hosts: {}", hosts.join(", ")),
    }
    match (r["provider"].as_str(), r["basis"].as_str()) {
        (Some(p), Some(basis)) => println!("  provider: {p} ({basis})"),
        (Some(p), None) => println!("  provider: {p}"),
        _ => println!("  provider: none"),
    }
    println!("  queue: {} ({})", r["queue"].as_str().unwrap_or(""), r["note"].as_str().unwrap_or(""));
    if let Some(policy) = r["tls_policy"].as_str() {
        println!("  TLS policy: {policy}");
    }
}

/// The running daemon's queues, when one answers on the config's management port.
fn live_queues(config_path: Option<&Path>, mgmt: Option<&Mgmt>) -> Option<serde_json::Value> {
    match live(config_path, mgmt, "/api/v1/queues?maxitems=all") {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("ember: {e}; reading the spool instead");
            None
        }
    }
}

pub fn show_queues(config_path: Option<&Path>, mgmt: Option<&Mgmt>, json: bool) -> ExitCode {
    if let Some(live) = live_queues(config_path, mgmt) {
        if json {
            println!("{}", serde_json::to_string_pretty(&live).expect("plain JSON"));
        } else {
            println!(
                "{:<48} {:>8} {:>6} {:>6} {:<7} {:<12} last error",
                "queue", "#rcpt", "conn", "ready", "mode", "provider"
            );
            for q in live.as_array().into_iter().flatten() {
                println!(
                    "{:<48} {:>8} {:>6} {:>6} {:<7} {:<12} {}",
                    q["queue"].as_str().unwrap_or(""),
                    q["recipients"],
                    q["connections"],
                    q["messages_ready"],
                    q["mode"].as_str().unwrap_or(""),
                    q["provider"].as_str().unwrap_or("-"),
                    q["last_error"].as_str().unwrap_or("")
                );
            }
        }
        return ExitCode::SUCCESS;
    }
    let (config, spool) = match open(config_path) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    // queue -> (recipients, messages seen, bytes, oldest arrival)
    let mut queues: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for env in spool.live() {
        for (_, r) in env.live_recipients() {
            let q = queues.entry(queue_of(&config, &env, &r.domain())).or_insert((0, 0, u64::MAX));
            q.0 += 1;
            q.2 = q.2.min(env.arrival_ms);
        }
    }
    if json {
        let rows: Vec<_> = queues
            .iter()
            .map(|(q, (rcpt, _, oldest))| json!({"queue": q, "rcpt": rcpt, "oldest_arrival_ms": oldest}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("plain JSON"));
        return ExitCode::SUCCESS;
    }
    println!("{:<48} {:>10}", "queue", "#rcpt");
    for (q, (rcpt, _, _)) in &queues {
        println!("{q:<48} {rcpt:>10}");
    }
    println!("{} queues, {} recipients", queues.len(), queues.values().map(|v| v.0).sum::<u64>());
    ExitCode::SUCCESS
}

pub fn list(config_path: Option<&Path>, queue: Option<&str>, json: bool) -> ExitCode {
    let (config, spool) = match open(config_path) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let mut rows = Vec::new();
    let mut envelopes = spool.live();
    envelopes.sort_by_key(|e| e.id);
    for env in envelopes {
        for (i, r) in env.recipients.iter().enumerate() {
            if r.state.is_final() {
                continue;
            }
            let q = queue_of(&config, &env, &r.domain());
            let wanted = match queue {
                None => true,
                Some(f) if f.contains('/') => q == f,
                Some(f) => q.split('/').next() == Some(f),
            };
            if wanted {
                rows.push((env.clone(), i, q));
            }
        }
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(env, i, q)| {
                let r = &env.recipients[*i];
                json!({
                    "id": env.id.to_string(),
                    "sender": env.sender,
                    "rcpt": r.address,
                    "queue": q,
                    "state": state_name(&r.state),
                    "vmta": env.vmta,
                    "job_id": env.job_id,
                    "env_id": env.env_id,
                    "arrival_ms": env.arrival_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&out).expect("plain JSON"));
        return ExitCode::SUCCESS;
    }
    for (env, i, q) in &rows {
        println!("{}  {:<40} <{}> -> <{}>", env.id, q, env.sender, env.recipients[*i].address);
    }
    println!("{} recipients", rows.len());
    ExitCode::SUCCESS
}

pub fn show_message(config_path: Option<&Path>, id: &str) -> ExitCode {
    let Ok(id) = id.parse::<MessageId>() else { return fail(format!("{id:?} is not a message id (16 hex digits)")) };
    let (_, spool) = match open(config_path) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let Some(env) = spool.envelope(id) else { return fail(format!("message {id} is not in the spool")) };
    match spool.read_body(id) {
        Ok(body) => {
            println!("{}", serde_json::to_string(&env).expect("plain JSON"));
            use std::io::Write;
            let _ = std::io::stdout().write_all(&body);
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("cannot read message {id}: {e}")),
    }
}
