//! Operating a running Ember: the management API, `/metrics`, the CLI over the API, hot reload
//! and graceful shutdown, the dashboard in a real browser. Every test runs the real daemon with
//! real traffic (swaks in, smtp-sink or the scripted receiver out) and asserts on the JSON the
//! daemon serves, the accounting file, and what the receivers got.

mod api;
mod cli;
mod cli_https;
mod dashboard;
mod lifecycle;
mod logfile;
mod metrics;
mod transmissions;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::peers::read_acct;
use crate::support::{Ember, swaks};

/// A feeder on loopback, a spool, an accounting file with d, b, t and tq records, the
/// management API for 127.0.0.1 at `level`, then `extra`.
pub fn config(level: &str, extra: &str) -> String {
    format!(
        "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 127.0.0.1:0\nhttp-access 127.0.0.1 {level}\n<source 127.0.0.1>\n    always-allow-relaying yes\n    process-x-virtual-mta yes\n    process-x-job yes\n</source>\n<spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b,t,tq\n</acct-file>\n{extra}"
    )
}

/// `<domain *>` delivering to `port` on loopback.
pub fn route_all(port: u16) -> String {
    format!("<domain *>\n    smtp-hosts [127.0.0.1]:{port}\n    retry-after 1h\n</domain>\n")
}

/// Injects one message with swaks; `extra` are more swaks arguments.
pub fn inject(e: &Ember, to: &str, extra: &[&str]) {
    let server = e.smtp().to_string();
    let mut args = vec!["--server", server.as_str(), "--from", "sender@example.net", "--to", to];
    args.extend_from_slice(extra);
    let out = swaks(&args);
    assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
}

/// Accounting rows of `kind` once there are at least `n` (polled, with a deadline).
pub fn acct_rows(e: &Ember, kind: &str, n: usize) -> Vec<std::collections::HashMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if e.path("acct.csv").exists() {
            let (_, rows) = read_acct(&e.path("acct.csv"));
            let of_kind: Vec<_> = rows.into_iter().filter(|r| r["type"] == kind).collect();
            if of_kind.len() >= n {
                return of_kind;
            }
        }
        assert!(Instant::now() < deadline, "the accounting file never had {n} {kind} records");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it returns Some, with a deadline; `what` names the wait in the panic.
pub fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn mgmt(e: &Ember) -> SocketAddr {
    e.mgmt.expect("the daemon printed its management address")
}
