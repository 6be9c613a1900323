#![no_main]
//! libFuzzer entry point; the harness and its invariants are in `src/targets.rs` (`data_bdat`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| ember_fuzz::targets::data_bdat(data));
