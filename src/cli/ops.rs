//! Operator commands sent to the running daemon (PowerMTA's `pause`, `resume`, `schedule`,
//! `delete`, `list`, `reload`, `rotate acct`, `rotate log`): each is one POST (or GET for `list`) of the
//! management API, its answer printed in `pmta`'s words or as JSON with `--json`.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::error::CliError;
use super::inspect::fail;
use super::remote::{Remote, query};

fn done(remote: &Remote, answer: Result<Value, CliError>, text: impl Fn(&Value) -> String) -> ExitCode {
    match answer {
        Ok(v) if remote.json => {
            println!("{}", serde_json::to_string_pretty(&v).expect("plain JSON"));
            ExitCode::SUCCESS
        }
        Ok(v) => {
            println!("{}", text(&v));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn queues_changed(v: &Value) -> String {
    let n = v["matched"].as_u64().unwrap_or(0);
    format!("{n} queue{} changed", if n == 1 { "" } else { "s" })
}

/// `pause queue Q` / `resume queue Q`.
pub fn queue(remote: &Remote, queue: &str, pause: bool) -> ExitCode {
    let path = if pause { "/api/v1/queues/pause" } else { "/api/v1/queues/resume" };
    done(remote, remote.post(path, &json!({"queue": queue})), queues_changed)
}

/// `pause job ID` / `resume job ID`.
pub fn job(remote: &Remote, id: &str, pause: bool) -> ExitCode {
    let path = if pause { "/api/v1/jobs/pause" } else { "/api/v1/jobs/resume" };
    done(remote, remote.post(path, &json!({"job_id": id})), |v| {
        format!(
            "job {id} {}: {} recipients {}",
            if pause { "paused" } else { "resumed" },
            v["recipients"],
            if pause { "held" } else { "released" }
        )
    })
}

/// `schedule [--retry-recipients] QUEUE`: "N of M matching queues scheduled."
pub fn schedule(remote: &Remote, queue: &str, retry_recipients: bool) -> ExitCode {
    let body = json!({"queue": queue, "retry_recipients": retry_recipients});
    done(remote, remote.post("/api/v1/queues/schedule", &body), |v| v["message"].as_str().unwrap_or("").to_string())
}

/// Filters of `list` and `delete` (PowerMTA's names are accepted as aliases).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Selection {
    /// `domain[/vmta]`, `*` for either part.
    #[arg(long)]
    pub queue: Option<String>,
    /// The envelope sender.
    #[arg(long)]
    pub orig: Option<String>,
    #[arg(long)]
    pub rcpt: Option<String>,
    #[arg(long, alias = "jobId")]
    pub job_id: Option<String>,
    #[arg(long, alias = "envId")]
    pub env_id: Option<String>,
}

/// `list` over the API: queued recipients.
pub fn list(remote: &Remote, sel: &Selection, maxitems: Option<usize>) -> ExitCode {
    let path = format!(
        "/api/v1/messages{}",
        query(&[
            ("queue", sel.queue.clone()),
            ("orig", sel.orig.clone()),
            ("rcpt", sel.rcpt.clone()),
            ("jobid", sel.job_id.clone()),
            ("envid", sel.env_id.clone()),
            ("maxitems", maxitems.map(|m| m.to_string())),
        ])
    );
    done(remote, remote.get(&path), |v| {
        let mut out = String::new();
        for r in v["recipients"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{}  {:<40} <{}> -> <{}>{}\n",
                r["id"].as_str().unwrap_or(""),
                r["queue"].as_str().unwrap_or(""),
                r["sender"].as_str().unwrap_or(""),
                r["rcpt"].as_str().unwrap_or(""),
                r["job_id"].as_str().map(|j| format!("  job {j}")).unwrap_or_default()
            ));
        }
        out.push_str(&format!("{} recipients", v["total"]));
        out
    })
}

/// `delete`: `--queue` or `--job-id` is mandatory, as in PowerMTA.
pub fn delete(remote: &Remote, sel: &Selection, older_than: Option<&str>, no_accounting: bool, dsn: bool) -> ExitCode {
    if sel.queue.is_none() && sel.job_id.is_none() {
        return fail("delete needs --queue or --job-id");
    }
    let older_than = match older_than.map(crate::config::values::Interval::parse) {
        None => None,
        Some(Ok(i)) => Some(i.seconds()),
        Some(Err(e)) => return fail(format!("--older-than: {e}")),
    };
    let body = json!({
        "queue": sel.queue, "orig": sel.orig, "rcpt": sel.rcpt, "job_id": sel.job_id, "env_id": sel.env_id,
        "older_than": older_than, "accounting": !no_accounting, "dsn": dsn,
    });
    done(remote, remote.post("/api/v1/messages/delete", &body), |v| {
        format!("{} recipients deleted from {} queues", v["deleted"], v["queues"])
    })
}

/// `reload`: the daemon re-reads its configuration; a broken one is refused with its errors.
pub fn reload(remote: &Remote) -> ExitCode {
    done(remote, remote.post("/api/v1/reload", &json!({})), |v| {
        let notes = v["notes"].as_str().unwrap_or("");
        if notes.is_empty() { "configuration reloaded".into() } else { format!("configuration reloaded\n{notes}") }
    })
}

/// `rotate acct`.
pub fn rotate_acct(remote: &Remote) -> ExitCode {
    done(remote, remote.post("/api/v1/acct/rotate", &json!({})), |v| {
        let files: Vec<&str> = v["rotated"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if files.is_empty() {
            "no accounting file had records to rotate".into()
        } else {
            format!("rotated to {}", files.join(", "))
        }
    })
}

/// `tlsrpt send`.
pub fn tlsrpt_send(remote: &Remote) -> ExitCode {
    done(remote, remote.post("/api/v1/tlsrpt/send", &json!({})), |v| {
        let mut out = format!("{} domains had sessions", v["domains"].as_u64().unwrap_or(0));
        for r in v["reports"].as_array().into_iter().flatten() {
            let rua: Vec<&str> = r["rua"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            out.push_str(&format!(
                "\nreport for {} queued as {} to {}",
                r["domain"].as_str().unwrap_or(""),
                r["message"].as_str().unwrap_or(""),
                rua.join(", ")
            ));
        }
        for s in v["skipped"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            out.push_str(&format!("\nnot reported: {s}"));
        }
        out
    })
}

/// `rotate log`.
pub fn rotate_log(remote: &Remote) -> ExitCode {
    done(remote, remote.post("/api/v1/log/rotate", &json!({})), |v| match v["rotated"].as_str() {
        Some(file) => format!("rotated to {file}"),
        None => "no log-file with lines to rotate (without log-file, lines go to stderr)".into(),
    })
}
