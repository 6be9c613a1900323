//! `ember check-config FILE`: validation without side effects, for operators and CI pipelines.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, FileCheck};

pub fn check(file: &Path, strict: bool, quiet: bool) -> ExitCode {
    let files = if strict { FileCheck::Require } else { FileCheck::Warn };
    let loaded = config::load_file(file, files);
    super::print_diagnostics(&loaded.diagnostics);
    // Keys are parsed too: a file that exists but holds no usable key is an error even without
    // --strict (missing files are already reported above).
    let key_errors = match crate::dkim::KeyStore::load(&loaded.config) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().filter(|e| !e.missing).collect(),
    };
    for e in &key_errors {
        eprintln!("{e}");
    }
    // One-click unsubscribe: a secret when headers are wanted, https URLs.
    let unsubscribe_errors = match crate::hygiene::unsubscribe::Tokens::from_config(&loaded.config) {
        Ok(tokens) => crate::hygiene::unsubscribe::check(&loaded.config, tokens.as_ref()),
        Err(e) => vec![e],
    };
    for e in &unsubscribe_errors {
        eprintln!("{e}");
    }
    let errors = loaded.diagnostics.errors().count() + key_errors.len() + unsubscribe_errors.len();
    let warnings = loaded.diagnostics.warnings().count();
    // The pending directives come last, with their count on the final line, in both outcomes: an
    // operator reading the end of the output sees how much of the file Ember does not act on yet.
    let pending = loaded.config.not_yet_enforced();
    if !quiet {
        for (name, location) in &pending {
            eprintln!("{location}: note: {name}: accepted, not yet enforced");
        }
    }
    if errors > 0 {
        eprintln!(
            "{}: {errors} error{}, {warnings} warning{}; {} accepted, not yet enforced",
            file.display(),
            plural(errors),
            plural(warnings),
            pending.len()
        );
        return ExitCode::from(1);
    }
    println!(
        "{}: OK: {}; {warnings} warning{}; {} accepted, not yet enforced",
        file.display(),
        loaded.config.summary(),
        plural(warnings),
        pending.len()
    );
    ExitCode::SUCCESS
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
