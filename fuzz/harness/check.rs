//! `check`: bytes as a recipe file, checked as `mmrun check` does (`plan::check`: the recipe
//! checks, the model built part by part and its train graph, the plan). Any input gives a
//! recipe or error diagnostics whose labels lie inside their file on character boundaries
//! and render; `fmt` is idempotent.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/check.rs`) and the bounded property
//! test (`tests/it/fuzz/check.rs`), so CI checks exactly what a campaign checks.

use mmrun::recipe::{self, CheckOptions};

/// Run one input; panics (the finding) when a property does not hold.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("r.recipe");
    std::fs::write(&p, text).expect("write the recipe");
    let opts = CheckOptions {
        no_fs: true,
        ..CheckOptions::default()
    };
    let out = mmrun::plan::check(&p, &[], &opts);
    assert!(
        out.recipe.is_some() || out.diagnostics.has_errors(),
        "no recipe and no error"
    );
    for d in out.diagnostics.iter() {
        for l in &d.labels {
            let f = out
                .files
                .get(l.loc.file)
                .expect("a label names a known file");
            assert!(l.loc.start <= l.loc.end && l.loc.end <= f.text.len());
            assert!(f.text.is_char_boundary(l.loc.start) && f.text.is_char_boundary(l.loc.end));
        }
        let _ = recipe::render::render(d, &out.files, Default::default());
    }
    if let Ok(once) = mmrun::syntax::fmt::format(text) {
        assert_eq!(
            mmrun::syntax::fmt::format(&once).ok().as_deref(),
            Some(once.as_str()),
            "fmt is not idempotent"
        );
    }
}
