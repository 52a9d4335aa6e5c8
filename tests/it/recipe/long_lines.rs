//! Diagnostics on very long lines (a 70k-character `--set` value, a generated recipe with one
//! huge line): they render, fancy and plain, with the right line and column, clipped to a
//! readable width; `--format json` keeps the exact positions. miette used to panic past
//! column 65,535.

use mmrun::recipe::render::render_all;
use mmrun::recipe::{self, CheckOptions, RenderOptions};

use crate::bin::mmrun_split as mmrun;

const RECIPE: &str = "pipelines/retinanet_r50_fpn_1x_coco.recipe";

/// A `--set` whose syntax error sits past column 70,000.
fn long_set() -> (String, usize) {
    let value = format!("optimizer.lr=[{} @]", "1,".repeat(35_000));
    let col = value.find('@').unwrap() + 1;
    (value, col)
}

fn assert_readable(err: &str) {
    assert!(!err.contains("panicked"), "{}", &err[..err.len().min(2000)]);
    let widest = err.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    // The message itself quotes the value (wrapped at the render width); the source
    // excerpt is clipped, so no line is anywhere near the original 70k characters.
    assert!(widest < 1000, "a {widest}-character line in the report");
}

#[test]
fn check_reports_an_error_past_column_65535_of_a_set_value() {
    let (value, col) = long_set();
    let (c, _, err) = mmrun(&["check", "--no-fs", RECIPE, "--set", &value]);
    assert_eq!(c, 1, "{}", &err[..err.len().min(2000)]);
    assert_readable(&err);
    assert!(err.contains(&format!("<--set 1>:1:{col}]")), "{err}");
    assert!(err.contains("E0206") && err.contains("1 error"), "{err}");
}

/// A recipe whose one long line holds a 140k-character string and, after it, a syntax error
/// past column 140,000.
fn long_recipe(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let line = format!("optimizer.lr = \"{}\" @", "a".repeat(140_000));
    let text = format!(
        "import \"{}\"\n{line}\n",
        std::fs::canonicalize(RECIPE).unwrap().display()
    );
    let p = dir.join("long.recipe");
    std::fs::write(&p, &text).unwrap();
    (p, line)
}

/// The label covers the whole string: its middle, where miette puts the label text, is past
/// column 65,535.
#[test]
fn check_reports_a_type_error_on_a_140k_character_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("optimizer.lr = \"{}\"", "a".repeat(140_000));
    let text = format!(
        "import \"{}\"\n{line}\n",
        std::fs::canonicalize(RECIPE).unwrap().display()
    );
    let p = dir.path().join("long.recipe");
    std::fs::write(&p, &text).unwrap();
    let path = p.to_str().unwrap();
    let (c, _, err) = mmrun(&["check", "--no-fs", path]);
    assert_eq!(c, 1, "{}", &err[..err.len().min(2000)]);
    assert_readable(&err);
    assert!(err.contains("long.recipe:2:16]"), "{err}");
    assert!(err.contains("expects number"), "{err}");

    // JSON keeps exact positions: the string starts at column 16 and ends after its quote.
    let (c, out, _) = mmrun(&["check", "--no-fs", "--format", "json", path]);
    assert_eq!(c, 1);
    let d: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(16))
    );
    assert_eq!(
        (d["end_line"].as_u64(), d["end_column"].as_u64()),
        (Some(2), Some(line.len() as u64 + 1))
    );
}

#[test]
fn syntax_error_past_column_140000_renders_fancy_and_plain() {
    let dir = tempfile::tempdir().unwrap();
    let (p, line) = long_recipe(dir.path());
    let col = line.find('@').unwrap() + 1;
    let out = recipe::check(&p, &[], &CheckOptions::default());
    assert!(!out.diagnostics.is_empty());
    for fancy in [false, true] {
        let opts = RenderOptions {
            fancy,
            ..RenderOptions::default()
        };
        let text = render_all(&out.diagnostics.0, &out.files, opts);
        assert_readable(&text);
        // (fancy output styles the location: no `]` right after it)
        assert!(text.contains(&format!("long.recipe:2:{col}")), "{text}");
        // The start of the line and the place of the error are both shown.
        assert!(text.contains("optimizer.lr = \"aaaa"), "{text}");
        assert!(text.contains("aaa\" @"), "{text}");
        let ellipsis = if fancy { "…" } else { "..." };
        assert!(text.contains(ellipsis), "{text}");
    }
    let (c, out, err) = mmrun(&["check", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(c, 1, "{err}");
    let d: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(col as u64))
    );
}
