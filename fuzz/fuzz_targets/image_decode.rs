//! Image decoding of the data loader, then two loader pipelines on what decodes.
//! The properties are in `fuzz/harness/image_decode.rs`, shared with the bounded test in
//! `tests/it/fuzz/image_decode.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/image_decode.rs"]
#[allow(dead_code)]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
