//! `ember check-config FILE`: validation without side effects, for operators and CI pipelines.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, FileCheck};

pub fn check(file: &Path, strict: bool, quiet: bool) -> ExitCode {
    let files = if strict { FileCheck::Require } else { FileCheck::Warn };
    let loaded = config::load_file(file, files);
    super::print_diagnostics(&loaded.diagnostics);
    let errors = loaded.diagnostics.errors().count();
    let warnings = loaded.diagnostics.warnings().count();
    if errors > 0 {
        eprintln!("{}: {errors} error{}, {warnings} warning{}", file.display(), plural(errors), plural(warnings));
        return ExitCode::from(1);
    }
    let pending = loaded.config.not_yet_enforced();
    println!(
        "{}: OK: {}; {warnings} warning{}; {} accepted, not yet enforced",
        file.display(),
        loaded.config.summary(),
        plural(warnings),
        pending.len()
    );
    if !quiet {
        for (name, location) in pending {
            eprintln!("{location}: note: {name}: accepted, not yet enforced");
        }
    }
    ExitCode::SUCCESS
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
