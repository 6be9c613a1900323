//! `ember run`: the daemon in the foreground.
//!
//! Today it loads and checks the configuration, creates the directories Ember owns, says where
//! it listens, and runs until SIGTERM or SIGINT; SIGHUP re-reads the configuration and keeps the
//! old one when the new one is broken. Ingress, spool and delivery attach here as they land.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::value::Value;
use crate::config::{Config, Dir, FileCheck, Loaded};

pub fn run(config_path: Option<&Path>) -> ExitCode {
    let Some(config) = load_for_run(config_path) else { return ExitCode::from(1) };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ember: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(config, config_path))
}

/// Loads a configuration for running: errors and missing files are fatal, and every problem is
/// printed as `FILE:LINE:COL`.
fn load_for_run(config_path: Option<&Path>) -> Option<Config> {
    let Loaded { config, diagnostics } = super::show::load(config_path, FileCheck::Warn);
    if diagnostics.has_errors() {
        super::print_diagnostics(&diagnostics);
        eprintln!("ember: {}: configuration has errors; not starting", describe(config_path));
        return None;
    }
    for dir in owned_dirs(&config) {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("ember: cannot create directory {}: {e}", dir.display());
            return None;
        }
    }
    let files = config.check_files(FileCheck::Require);
    if files.has_errors() {
        super::print_diagnostics(&files);
        eprintln!("ember: {}: files the configuration needs are missing; not starting", describe(config_path));
        return None;
    }
    Some(config)
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
    let mut dirs: Vec<PathBuf> =
        config.blocks_of("spool").filter_map(|b| b.arg.as_deref()).map(|a| config.path(Path::new(a))).collect();
    for e in config.global.all(Dir::SpoolDir) {
        if let Value::Path(p) = &e.value {
            dirs.push(config.path(p));
        }
    }
    if dirs.is_empty() {
        dirs.push(PathBuf::from("ember-data/spool"));
    }
    dirs
}

/// Where the daemon listens, as the operator should read it.
fn describe_endpoints(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    let mut listeners = 0;
    for e in config.global.all(Dir::SmtpListener) {
        if let Value::Words(w) = &e.value {
            let source = w.get(1).map(|s| format!(" ({s})")).unwrap_or_default();
            lines.push(format!("smtp listener {}{source}", w[0]));
            listeners += 1;
        }
    }
    for b in config.blocks_of("smtp-listener") {
        let tls = matches!(b.settings.get(Dir::ImmediateTls).map(|e| &e.value), Some(Value::Bool(true)));
        lines.push(format!(
            "smtp listener {}{}",
            b.arg.as_deref().unwrap_or(""),
            if tls { " (implicit TLS)" } else { "" }
        ));
        listeners += 1;
    }
    if listeners == 0 {
        lines.push("smtp listener 0.0.0.0:25 (PowerMTA's default: no smtp-listener configured)".into());
    }
    match config.global.effective(Dir::HttpMgmtPort) {
        Some(Value::Uint(0)) => lines.push("management http disabled (http-mgmt-port 0)".into()),
        Some(Value::Uint(port)) => lines.push(format!("management http 0.0.0.0:{port}")),
        Some(Value::Listen(addr)) => lines.push(format!("management http {addr}")),
        _ => {}
    }
    for dir in spool_dirs(config) {
        lines.push(format!("spool {}", dir.display()));
    }
    lines
}

async fn serve(mut config: Config, config_path: Option<&Path>) -> ExitCode {
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
    println!("ember ready (pid {})", std::process::id());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match load_for_run(config_path) {
                    Some(new) => {
                        config = new;
                        println!("configuration reloaded");
                        for line in describe_endpoints(&config) {
                            println!("{line}");
                        }
                    }
                    None => eprintln!("ember: reload refused; the running configuration is unchanged"),
                }
            }
        }
    }
    println!("ember stopping");
    ExitCode::SUCCESS
}
