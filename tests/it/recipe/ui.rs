//! File-driven UI tests: every `tests/ui/*.recipe` must fail with the code its name starts
//! with, and its rendered diagnostics are snapshotted. A first-line comment `// set: P=V`
//! passes an override; `// fs` enables file checks (otherwise `--no-fs`), the weights files'
//! among them.

use mmrun::recipe::{self, CheckOptions};
use std::path::Path;

#[test]
fn ui_cases() {
    let mut cases: Vec<_> = std::fs::read_dir("tests/ui")
        .expect("tests/ui")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "recipe"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "only {} UI cases", cases.len());
    for path in cases {
        run_case(&path);
    }
}

fn run_case(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut overrides = Vec::new();
    let mut fs = false;
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        if let Some(s) = line.strip_prefix("// set: ") {
            overrides.push(s.to_string());
        }
        if line.trim() == "// fs" {
            fs = true;
        }
    }
    let opts = CheckOptions {
        no_fs: !fs,
        ..CheckOptions::default()
    };
    // As `mmrun check`: the recipe, then the weights files it names against its model.
    let out = mmrun::plan::check(path, &overrides, &opts);
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    assert!(
        out.diagnostics.has_errors(),
        "{name}: expected errors, the recipe checked clean"
    );
    let want = name.split('_').next().unwrap().to_uppercase();
    if want.starts_with('E') {
        assert!(
            out.diagnostics.iter().any(|d| d.code == want),
            "{name}: expected {want}, got {:?}",
            out.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>()
        );
    }
    for d in out.diagnostics.iter() {
        assert!(
            !d.labels.is_empty() || d.code == "E0201",
            "{name}: {} has no span",
            d.code
        );
        for l in &d.labels {
            let f = out.files.get(l.loc.file).expect("label file");
            assert!(
                l.loc.start <= l.loc.end && l.loc.end <= f.text.len(),
                "{name}: bad span"
            );
        }
    }
    let rendered = recipe::render::render_all(&out.diagnostics.0, &out.files, Default::default());
    insta::assert_snapshot!(name, rendered);
}
