#![no_main]
//! libFuzzer entry point; the harness and its invariants are in `src/targets.rs` (`spool_records`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| ember_fuzz::targets::spool_records(data));
