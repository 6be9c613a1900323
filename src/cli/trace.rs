//! `ember trace ADDR|ID`: a recipient's or a message's life from the running daemon's event
//! log (reception, every attempt with the reply and the MX, the outcome, complaints,
//! suppression), one line per event, oldest first; `--json` prints the events as the API gives
//! them.

use std::process::ExitCode;

use serde_json::Value;

use super::inspect::fail;
use super::remote::{Remote, query};

/// What `trace` looks up.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// A recipient address, or a message id (16 hex digits, as in the 250 reply); with --job, a
    /// job id.
    pub target: String,
    /// TARGET is a job id.
    #[arg(long)]
    pub job: bool,
    /// Only events at or after this time (Unix seconds or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many events (the newest), default 1000.
    #[arg(long)]
    pub limit: Option<usize>,
}

pub fn trace(args: &TraceArgs, remote: &Remote) -> ExitCode {
    let target = Some(args.target.clone());
    let (rcpt, message_id, job) = if args.job {
        (None, None, target)
    } else if args.target.contains('@') {
        (target, None, None)
    } else {
        (None, target, None)
    };
    let path = format!(
        "/api/v1/events{}",
        query(&[
            ("rcpt", rcpt),
            ("message_id", message_id),
            ("job", job),
            ("since", args.since.clone()),
            ("limit", args.limit.map(|l| l.to_string())),
        ])
    );
    let v = match remote.get(&path) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let events = v["events"].as_array().cloned().unwrap_or_default();
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&events).expect("plain JSON"));
        return ExitCode::SUCCESS;
    }
    if events.is_empty() {
        eprintln!("no events for {} in the retained event log", args.target);
        return ExitCode::from(1);
    }
    for e in &events {
        println!("{}", line(e));
    }
    ExitCode::SUCCESS
}

/// `TIME TYPE RCPT [message ID] queue Q: REPLY (mx MX)`, leaving out what the event lacks.
fn line(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("");
    let mut out = format!("{} #{:<8} {:<13} {}", s("time"), e["id"].as_u64().unwrap_or(0), s("type"), s("rcpt"));
    for (label, key) in [("message", "message_id"), ("queue", "queue"), ("job", "job"), ("mode", "mode")] {
        if !s(key).is_empty() {
            out.push_str(&format!(" {label} {}", s(key)));
        }
    }
    for key in ["reply", "reason", "feedback_type"] {
        if !s(key).is_empty() {
            out.push_str(&format!(": {}", s(key)));
        }
    }
    if !s("mx").is_empty() {
        out.push_str(&format!(" (mx {})", s("mx")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_what_the_event_has() {
        let e = serde_json::json!({"id": 9, "type": "deferral", "time": "2026-12-06T19:22:43.123Z",
            "rcpt": "a@example.com", "message_id": "00000000000000ab", "queue": "example.com/{default}",
            "reply": "smtp;451 4.7.1 greylisted", "mx": "mx1.example.com"});
        assert_eq!(
            line(&e),
            "2026-12-06T19:22:43.123Z #9        deferral      a@example.com message 00000000000000ab queue example.com/{default}: smtp;451 4.7.1 greylisted (mx mx1.example.com)"
        );
    }
}
