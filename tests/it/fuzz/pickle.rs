//! `pickle` (the restricted reader of `.pth` weights): the committed corpus (the `data.pkl` of
//! state dicts and an mmcv checkpoint saved by PyTorch) reads, and mutations of it never panic.

use super::{committed_inputs, config, corpus, edits, mutate};
use proptest::prelude::*;

#[path = "../../../fuzz/harness/pickle.rs"]
mod harness;

#[test]
fn corpus_reads_and_replays_without_panic() {
    for (path, bytes) in committed_inputs("pickle") {
        harness::run(&bytes);
        if path.starts_with(super::root().join("fuzz/corpus")) {
            let v = mmrun::model::weights::pickle::load(&bytes);
            assert!(v.is_ok(), "{}: {v:?}", path.display());
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn mutated_corpus_never_panics(pick in any::<prop::sample::Index>(), e in edits()) {
        let seeds = corpus("pickle");
        let (_, seed) = &seeds[pick.index(seeds.len())];
        harness::run(&mutate(seed, &e));
    }
}
