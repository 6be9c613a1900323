//! Ember's fuzz harnesses. The bodies live in `targets.rs`, which the main crate's
//! `tests/fuzz_smoke.rs` also includes, so `cargo test` replays the corpus and the regressions
//! through exactly the code libFuzzer runs.

pub mod targets;
