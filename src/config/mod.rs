//! The PowerMTA configuration engine: grammar, typed model, validation with `FILE:LINE:COL`
//! diagnostics, and effective settings per queue and per injecting source.
//!
//! Knows nothing about sockets or the spool. The flow is `tree` (files, blocks, includes) →
//! `model` (typed values, dialect) → `validate` (cross-references, files) → `resolve` (per queue).

pub mod compiled_regex;
pub mod diag;
pub mod dialect;
pub mod docs;
pub mod event_sinks;
pub mod lexer;
pub mod macros;
pub mod model;
pub mod pattern;
pub mod policy;
pub mod resolve;
pub mod rewrite;
pub mod rules;
pub mod settings;
pub mod shaping;
pub mod show;
pub mod table;
pub mod table_def;
pub mod template;
pub mod tls_names;
pub mod tree;
pub mod validate;
pub mod value;
pub mod values;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics, Location, Severity};
pub use model::Config;
pub use resolve::{DEFAULT_VMTA, QueueSettings};
pub use table::Dir;
pub use validate::FileCheck;

/// The configuration `ember run` uses when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.conf");
/// The name diagnostics use for the embedded default.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// The OS host name: what `host-name` means where the configuration does not set it, for the
/// ingress greeting and the delivery HELO alike.
pub fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<(&'static str, &Location)> {
    /// File order, so the notes read like the config.
    fn tap_sort(mut self) -> Self {
        self.sort_by(|a, b| (&a.1.file, a.1.line, a.1.col).cmp(&(&b.1.file, b.1.line, b.1.col)));
        self
    }
}

/// A configuration and what was found wrong with it. The config is usable only when
/// `diagnostics.has_errors()` is false.
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Diagnostics,
}

/// Loads a configuration file and everything it includes.
pub fn load_file(path: &Path, files: FileCheck) -> Loaded {
    let mut diagnostics = Diagnostics::default();
    let nodes = tree::parse_file(path, &mut diagnostics);
    let base = path.parent().unwrap_or(Path::new("."));
    finish(&nodes, base, files, diagnostics)
}

/// Loads configuration text; relative paths resolve against `base_dir`.
pub fn load_str(name: &str, text: &str, base_dir: &Path, files: FileCheck) -> Loaded {
    let mut diagnostics = Diagnostics::default();
    let nodes = tree::parse_text(name, text, base_dir, &mut diagnostics);
    finish(&nodes, base_dir, files, diagnostics)
}

fn finish(nodes: &[tree::Node], base: &Path, files: FileCheck, mut diagnostics: Diagnostics) -> Loaded {
    let config = model::build(nodes, base, &mut diagnostics);
    validate::validate(&config, files, &mut diagnostics);
    Loaded { config, diagnostics }
}

impl Config {
    /// Directives used by this config that Ember accepts but does not act on yet, with the first
    /// place each is used.
    pub fn not_yet_enforced(&self) -> Vec<(&'static str, &Location)> {
        self.first_use
            .iter()
            .filter(|(dir, _)| dir.def().status == table_def::Status::Pending)
            .map(|(dir, loc)| (dir.def().name, loc))
            .collect::<Vec<_>>()
            .tap_sort()
    }

    /// One line describing the configuration, for `check-config`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let listeners = self.global.all(Dir::SmtpListener).len() + self.blocks_of("smtp-listener").count();
        format!(
            "{}, {}, {}, {}, {}, {}",
            plural(self.vmtas.len(), "virtual-mta"),
            plural(self.pools.len(), "pool"),
            plural(
                self.domains.len()
                    + self.vmtas.iter().map(|v| v.domains.len()).sum::<usize>()
                    + self.pools.iter().map(|p| p.domains.len()).sum::<usize>(),
                "domain block"
            ),
            plural(self.sources.len(), "source"),
            plural(listeners, "listener"),
            plural(self.first_use.len(), "distinct directive"),
        )
    }
}
