//! Restricted pickle reader: bytes as the `data.pkl` of a `.pth` weights file.
//! The properties are in `fuzz/harness/pickle.rs`, shared with the bounded test in
//! `tests/it/fuzz/pickle.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/pickle.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
