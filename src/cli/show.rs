//! `ember show …` computed offline from a configuration file (PowerMTA's `show settings`).

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, FileCheck, Loaded, show};

/// Loads `--config FILE`, or the embedded default.
pub(super) fn load(config: Option<&Path>, files: FileCheck) -> Loaded {
    match config {
        Some(path) => config::load_file(path, files),
        None => config::load_str(config::EMBEDDED_NAME, config::EMBEDDED_DEFAULT, Path::new("."), files),
    }
}

pub fn settings(queue: &str, config: Option<&Path>, json: bool) -> ExitCode {
    let loaded = load(config, FileCheck::Warn);
    if loaded.diagnostics.has_errors() {
        super::print_diagnostics(&loaded.diagnostics);
        return ExitCode::from(1);
    }
    let (domain, vmta) = match queue.split_once('/') {
        Some((d, v)) => (d, Some(v)),
        None => (queue, None),
    };
    match loaded.config.queue_settings(domain, vmta) {
        Ok(q) if json => {
            println!("{}", serde_json::to_string_pretty(&show::render_json(&q)).expect("JSON of plain values"));
            ExitCode::SUCCESS
        }
        Ok(q) => {
            print!("{}", show::render_text(&q));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ember: show settings {queue}: {e}");
            ExitCode::from(1)
        }
    }
}
