//! COCO annotation loader: bytes as an instances JSON file, read by `read_coco`.
//! The properties are in `fuzz/harness/coco_json.rs`, shared with the bounded test in
//! `tests/it/fuzz/coco_json.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/coco_json.rs"]
#[allow(dead_code)]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
