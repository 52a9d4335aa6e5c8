//! `check` (recipe front end): the committed corpus (`pipelines/` and `tests/ui` recipes)
//! and mutations of it never panic and give a recipe or diagnostics with valid spans.

use super::{committed_inputs, config, corpus, edits, mutate};
use proptest::prelude::*;

#[path = "../../../fuzz/harness/check.rs"]
pub mod harness;

#[test]
fn corpus_replays_without_panic() {
    for (path, bytes) in committed_inputs("check") {
        eprintln!("{}", path.display());
        harness::run(&bytes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_corpus_never_panics(pick in any::<prop::sample::Index>(), e in edits()) {
        let seeds = corpus("check");
        let (_, seed) = &seeds[pick.index(seeds.len())];
        harness::run(&mutate(seed, &e));
    }
}
