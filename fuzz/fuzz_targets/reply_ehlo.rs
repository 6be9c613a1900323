#![no_main]
//! libFuzzer entry point; the harness and its invariants are in `src/targets.rs` (`reply_ehlo`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| ember_fuzz::targets::reply_ehlo(data));
