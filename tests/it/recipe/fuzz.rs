//! Random and mutated inputs never panic: they give a recipe or diagnostics with valid spans.

use proptest::prelude::*;

const SEED: &str = include_str!("../../../pipelines/quickstart.recipe");

/// The `check` fuzz target's own properties (`fuzz/harness/check.rs`).
fn check_text(text: &str) {
    crate::fuzz::check::harness::run(text.as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "[a-z_ ={}\\[\\],.:\"$0-9\\n/]{0,80}") {
        check_text(&s);
    }

    #[test]
    fn mutated_recipes_never_panic(pos in 0usize..2000, len in 0usize..8, ins in "[a-z{}\\[\\]=,.\" 0-9$]{0,6}") {
        let start = SEED.char_indices().map(|(i, _)| i).find(|&i| i >= pos % SEED.len()).unwrap_or(0);
        let end = SEED[start..].char_indices().map(|(i, _)| start + i).nth(len).unwrap_or(SEED.len());
        let text = format!("{}{}{}", &SEED[..start], ins, &SEED[end..]);
        check_text(&text);
    }
}

/// Every way of nesting values, left unclosed 40 levels deep, is rejected at once. Before the
/// `named` rule committed to a component at `{`, a list re-read each failed component body as
/// a record, so each level doubled the parse (2^40 steps here); the thread would not finish.
#[test]
fn unclosed_nesting_is_rejected_without_backtracking_per_level() {
    let shapes = [
        "x { b = [",
        "[x { b = ",
        "{ b = [x ",
        "x { y { b = [",
        "f(x { b = ",
        "[{ b = x { c = ",
    ];
    for shape in shapes {
        let text = format!("a = {}", shape.repeat(40));
        let (tx, rx) = std::sync::mpsc::channel();
        let t = text.clone();
        std::thread::spawn(move || {
            check_text(&t);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(60)).is_ok(),
            "checking {shape:?} × 40 did not finish in a minute"
        );
    }
}

/// Nesting at the limit (`syntax::MAX_DEPTH`: the key `a` and 63 levels below it) parses and
/// checks within a test thread's 2 MiB stack, in a debug build; past it is E0102.
#[test]
fn nesting_at_the_limit_fits_a_small_stack() {
    let n = mmrun::syntax::MAX_DEPTH;
    for (open, close) in [("[", "]"), ("{ b = ", "}"), ("x { b = ", "}"), ("f(", ")")] {
        for depth in [n - 1, n + 1] {
            let text = format!("a = {}1{}\n", open.repeat(depth), close.repeat(depth));
            check_text(&text);
            let parsed = mmrun::syntax::parse(&text);
            assert_eq!(
                parsed.is_err_and(|e| e[0].code == "E0102"),
                depth > n - 1,
                "{open:?} × {depth}"
            );
        }
    }
}
