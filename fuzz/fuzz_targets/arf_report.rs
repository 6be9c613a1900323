#![no_main]
//! libFuzzer entry point; the harness and its invariants are in `src/targets.rs` (`arf_report`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| ember_fuzz::targets::arf_report(data));
