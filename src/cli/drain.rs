//! `ember drain [--wait] [--to HOST:PORT]`: retire a node. Starts the drain over the management
//! API (`POST /api/v1/drain`), then follows it (`GET /api/v1/drain`), printing what was handed
//! over to which peer, until the node's spool is empty. When a whole pass hands nothing over
//! and mail stays (no peer takes it), it says so and exits 1; the node keeps offering that mail.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::inspect::fail;
use super::remote::Remote;

/// How often the progress is read.
const POLL: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// Do not hand the queue over: stop taking new mail and deliver it here until it is empty.
    #[arg(long, conflicts_with = "to")]
    pub wait: bool,
    /// Hand the queue over to this SMTP relay (HOST:PORT) instead of the cluster's peers.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Option<String>,
    /// Start the drain and return at once (`ember drain` again shows the progress).
    #[arg(long)]
    pub no_follow: bool,
}

fn per_peer(status: &Value) -> String {
    let peers: Vec<String> = status["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!("{} {} messages ({} recipients)", p["peer"].as_str().unwrap_or("?"), p["messages"], p["recipients"])
        })
        .collect();
    if peers.is_empty() { "nothing".into() } else { peers.join(", ") }
}

pub fn drain(remote: &Remote, args: &DrainArgs) -> ExitCode {
    let mode = if args.wait { "wait" } else { "hand-over" };
    let mut status = match remote.post("/api/v1/drain", &json!({"mode": mode, "to": args.to})) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if !remote.json {
        let how = match (args.wait, &args.to) {
            (true, _) => "delivering its queue until it is empty".to_string(),
            (false, Some(to)) => format!("handing its queue over to {to}"),
            (false, None) => "handing its queue over to the cluster's live peers".to_string(),
        };
        println!(
            "draining: the node takes no new mail; {how} ({} messages, {} recipients queued)",
            status["queued_messages"], status["queued_recipients"]
        );
    }
    let mut shown: Vec<Value> = Vec::new();
    // The pass and the handed total when mail was first seen kept: no progress over a later
    // pass means no peer takes it.
    let mut kept_since: Option<(u64, u64)> = None;
    loop {
        if !remote.json {
            for p in status["peers"].as_array().into_iter().flatten() {
                let before = shown.iter().find(|s| s["peer"] == p["peer"]);
                if before != Some(p) {
                    println!(
                        "handed over to {}: {} messages, {} recipients",
                        p["peer"].as_str().unwrap_or("?"),
                        p["messages"],
                        p["recipients"]
                    );
                }
            }
            shown = status["peers"].as_array().cloned().unwrap_or_default();
        }
        if status["done"] == true {
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&status).expect("plain JSON"));
            } else {
                println!(
                    "drain done: the spool is empty; handed over {} messages ({} recipients): {}",
                    status["handed_messages"],
                    status["handed_recipients"],
                    per_peer(&status)
                );
            }
            return ExitCode::SUCCESS;
        }
        let passes = status["passes"].as_u64().unwrap_or(0);
        let handed = status["handed_recipients"].as_u64().unwrap_or(0);
        if status["kept"].as_u64().unwrap_or(0) > 0 {
            match kept_since {
                None => kept_since = Some((passes, handed)),
                Some((p, h)) if passes > p && handed == h => {
                    if remote.json {
                        println!("{}", serde_json::to_string_pretty(&status).expect("plain JSON"));
                    } else {
                        eprintln!(
                            "ember: drain: {} recipients stay queued on this node, no peer takes them: {}; the node offers them again every few seconds (`ember drain` shows the progress)",
                            status["kept"],
                            status["kept_reason"].as_str().unwrap_or("no reason given")
                        );
                    }
                    return ExitCode::from(1);
                }
                Some(_) => {}
            }
        } else {
            kept_since = None;
        }
        if args.no_follow {
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&status).expect("plain JSON"));
            }
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(POLL);
        status = match remote.get("/api/v1/drain") {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
    }
}
