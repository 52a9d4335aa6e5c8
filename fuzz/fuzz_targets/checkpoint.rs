//! Checkpoint reader: records that make a checkpoint folder, read by `load_checkpoint`.
//! The properties are in `fuzz/harness/checkpoint.rs`, shared with the bounded test in
//! `tests/it/fuzz/checkpoint.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/checkpoint.rs"]
#[allow(dead_code)]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
