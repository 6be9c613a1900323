//! The `ember` binary: the daemon (`ember run`) and the operator's command-line tool.

use std::process::ExitCode;

fn main() -> ExitCode {
    ember::cli::main()
}
