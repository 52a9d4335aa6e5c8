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
        assert!(
            identical(&copy, &v),
            "a clone differs from its value: {v:?}"
        );
    }
}

/// Bit-for-bit equality: `==` on `Value` follows IEEE, so a NaN the pickle holds would make
/// a faithful clone compare unequal (the campaign's first finding was exactly that).
fn identical(a: &pickle::Value, b: &pickle::Value) -> bool {
    use pickle::Value::{Dict, Float, List, Tuple};
    let all = |x: &[pickle::Value], y: &[pickle::Value]| {
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| identical(p, q))
    };
    match (a, b) {
        (Float(x), Float(y)) => x.to_bits() == y.to_bits(),
        (Tuple(x), Tuple(y)) | (List(x), List(y)) => all(x, y),
        (Dict(x), Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, v), (l, w))| identical(k, l) && identical(v, w))
        }
        _ => a == b,
    }
}
