//! `pickle`: bytes as the `data.pkl` of a `.pth` weights file, read by the restricted pickle
//! reader. Any input gives a value or an error: no panic, no stack overflow, and memory
//! bounded by `pickle::MAX_UNITS` (libFuzzer's `-rss_limit_mb` catches a bomb that gets
//! past it). A value never holds a global the reader refuses: refusal is checked by the
//! reader's own tests; here, that what it returns can be dropped and compared safely.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/pickle.rs`) and the bounded property
//! test (`tests/it/fuzz/pickle.rs`).

use mmrun::model::weights::pickle;

/// Run one input; panics (the finding) when a property does not hold.
pub fn run(data: &[u8]) {
    if let Ok(v) = pickle::load(data) {
        // Clone and compare walk the whole value: they must not recurse past the limit.
        let copy = v.clone();
        assert_eq!(copy, v);
    }
}
