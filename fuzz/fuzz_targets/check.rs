//! Recipe front end: bytes as a recipe file (`mmrun check` without file-system access).
//! The properties are in `fuzz/harness/check.rs`, shared with the bounded test in
//! `tests/it/fuzz/check.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/check.rs"]
#[allow(dead_code)]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
