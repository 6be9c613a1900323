//! The `ember` binary: the daemon (`ember run`) and the operator's command-line tool.

use std::process::ExitCode;

// mimalloc instead of glibc's malloc: a relay profile spent about 8% of Ember's samples in
// glibc's malloc/free (chunk consolidation included); mimalloc's per-thread free lists are made
// for this churn of short-lived buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ember::cli::main()
}
