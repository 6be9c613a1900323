#![no_main]
//! libFuzzer entry point; the harness and its invariants are in `src/targets.rs` (`smtp_session`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| ember_fuzz::targets::smtp_session(data));
