//! `ember run`: the daemon in the foreground.
//!
//! Loads and checks the configuration, creates the directories Ember owns, starts the daemon
//! (spool, listeners, pickup) and runs until SIGTERM or SIGINT; SIGHUP re-reads the
//! configuration and keeps the old one when the new one is broken.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::net::SocketAddr;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::value::Value;
use crate::config::{Config, Dir, FileCheck, Loaded};
use crate::daemon::Daemon;
use crate::mgmt::api::{Control, ReloadRefused};

pub fn run(config_path: Option<&Path>) -> ExitCode {
    let Some(config) = load_for_run(config_path, "starting") else { return ExitCode::from(1) };
    // Log lines go to `log-file` when the configuration names one (`logfile`), else stderr.
    match crate::logfile::prepare(&config) {
        Ok(target) => {
            if let Some(path) = target.path() {
                println!("logging to {}", path.display());
            }
            crate::logfile::init(target);
        }
        Err(e) => {
            eprintln!("ember: {e}");
            return ExitCode::from(1);
        }
    }
    // Tasks woken from outside the runtime wait in its global queue; in Ember those are above all
    // sessions whose message the spool writer has just made durable, so their `250` is due. By
    // default a busy worker looks there only after about 200 us of its own tasks. Looking first
    // cut the writer-to-session hop from 126-163 to 99-124 us at the median; the relay's rate
    // gain (about 6% in alternating rounds) is smaller than this host's drift between
    // benchmark sets (docs/benchmarks.md). Local tasks run whenever that queue is empty.
    let runtime = match tokio::runtime::Builder::new_multi_thread().global_queue_interval(1).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ember: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(serve(config, config_path));
    // The log's writer thread may still hold the last lines (why the daemon stopped).
    crate::logfile::flush();
    code
}

/// Loads a configuration for running: errors and missing files are fatal, and every problem is
/// printed as `FILE:LINE:COL`.
fn load_for_run(config_path: Option<&Path>, action: &str) -> Option<Config> {
    match load_checked(config_path, action) {
        Ok(config) => Some(config),
        Err(errors) => {
            for line in errors {
                eprintln!("{line}");
            }
            None
        }
    }
}

/// The configuration, or every problem (`FILE:LINE:COL: …` lines, then what was not done).
fn load_checked(config_path: Option<&Path>, action: &str) -> Result<Config, Vec<String>> {
    let Loaded { config, diagnostics } = super::show::load(config_path, FileCheck::Warn);
    if diagnostics.has_errors() {
        let mut lines: Vec<String> = diagnostics.sorted().iter().map(ToString::to_string).collect();
        lines.push(format!("ember: {}: configuration has errors; not {action}", describe(config_path)));
        return Err(lines);
    }
    for dir in owned_dirs(&config) {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Err(vec![format!("ember: cannot create directory {}: {e}", dir.display())]);
        }
    }
    let files = config.check_files(FileCheck::Require);
    if files.has_errors() {
        let mut lines: Vec<String> = files.sorted().iter().map(ToString::to_string).collect();
        lines
            .push(format!("ember: {}: files the configuration needs are missing; not {action}", describe(config_path)));
        return Err(lines);
    }
    Ok(config)
}

/// SIGHUP, `ember reload` and `POST /api/v1/reload`: the new generation, or every error with
/// the running configuration unchanged.
async fn reload(
    daemon: &Daemon,
    config_path: Option<&Path>,
    listeners: &[SocketAddr],
) -> Result<String, ReloadRefused> {
    let refused = |errors: Vec<String>| {
        for line in &errors {
            eprintln!("{line}");
        }
        eprintln!("ember: reload refused; the running configuration is unchanged");
        ReloadRefused { lines: errors }
    };
    let new = load_checked(config_path, "reloading").map_err(refused)?;
    let changed = crate::ingress::listener::specs(&new).iter().map(|l| l.addr).collect::<Vec<_>>() != listeners;
    // Opened first, switched to last: a log file the daemon cannot write refuses the reload.
    let log = crate::logfile::prepare(&new).map_err(|e| refused(vec![format!("ember: {e}")]))?;
    daemon.reload(new).await.map_err(|e| refused(vec![e.to_string()]))?;
    log.install();
    println!("configuration reloaded");
    let mut notes = String::new();
    if changed {
        notes = "smtp listeners changed: restart ember to listen on the new addresses".into();
        println!("{notes}");
    }
    Ok(notes)
}

fn describe(path: Option<&Path>) -> String {
    path.map_or_else(|| crate::config::EMBEDDED_NAME.to_string(), |p| p.display().to_string())
}

/// Directories Ember creates if absent: spools, and the directories of logs and accounting files.
fn owned_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = spool_dirs(config);
    if let Some(Value::Path(log)) = config.global.get(Dir::LogFile).map(|e| &e.value)
        && let Some(parent) = log.parent().filter(|p| !p.as_os_str().is_empty())
    {
        dirs.push(config.path(parent));
    }
    if let Some(Value::Words(w)) = config.global.get(Dir::Pickup).map(|e| &e.value) {
        dirs.extend(w.iter().map(|d| config.path(Path::new(d))));
    }
    for acct in config.blocks_of("acct-file") {
        if let Some(arg) = acct.arg.as_deref().filter(|a| !a.starts_with('|'))
            && let Some(parent) = Path::new(arg).parent().filter(|p| !p.as_os_str().is_empty())
        {
            dirs.push(config.path(parent));
        }
    }
    dirs
}

fn spool_dirs(config: &Config) -> Vec<PathBuf> {
    crate::daemon::spool_options(config).dirs.into_iter().map(|d| d.path).collect()
}

/// What the operator should know about endpoints the daemon does not print itself.
fn describe_endpoints(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    if crate::daemon::mgmt_addr(config).is_none() {
        lines.push("management http disabled (http-mgmt-port 0)".into());
    }
    for dir in spool_dirs(config) {
        lines.push(format!("spool {}", dir.display()));
    }
    lines
}

async fn serve(config: Config, config_path: Option<&Path>) -> ExitCode {
    let (mut term, mut int, mut hup) =
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) {
            (Ok(t), Ok(i), Ok(h)) => (t, i, h),
            _ => {
                eprintln!("ember: cannot install signal handlers");
                return ExitCode::from(1);
            }
        };
    println!("ember {}: configuration {} loaded", env!("CARGO_PKG_VERSION"), describe(config_path));
    for line in describe_endpoints(&config) {
        println!("{line}");
    }
    let listeners: Vec<SocketAddr> = crate::ingress::listener::specs(&config).iter().map(|l| l.addr).collect();
    let mut daemon = match Daemon::start(config).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ember: {e}");
            return ExitCode::from(1);
        }
    };
    println!("ember ready (pid {})", std::process::id());
    // Without a management port nothing sends here: a channel that stays empty.
    let mut control = daemon.control.take().unwrap_or_else(|| mpsc::unbounded_channel().1);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // A refused reload has printed its reasons; the daemon goes on as it was.
                let _refused = reload(&daemon, config_path, &listeners).await;
            }
            Some(request) = control.recv() => match request {
                Control::Reload(answer) => {
                    let outcome = reload(&daemon, config_path, &listeners).await;
                    if answer.send(outcome).is_err() {
                        tracing::info!("the reload's requester left before its answer (the reload stands)");
                    }
                }
            },
        }
    }
    println!("ember stopping");
    daemon.shutdown().await;
    println!("ember stopped");
    ExitCode::SUCCESS
}
