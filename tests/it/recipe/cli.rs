//! `mmrun check | fmt | explain` as a user runs them: exit codes 0/1/2 and `--format json`.

use crate::bin::mmrun_split as mmrun;

#[test]
fn check_exit_codes() {
    let (c, _, _) = mmrun(&[
        "check",
        "--no-fs",
        "pipelines/retinanet_r50_fpn_1x_coco.recipe",
    ]);
    assert_eq!(c, 0);
    let (c, _, err) = mmrun(&["check", "--no-fs", "tests/ui/multiple_errors.recipe"]);
    assert_eq!(c, 1);
    assert!(err.contains("3 errors"), "{err}");
    let (c, _, _) = mmrun(&["check", "does/not/exist.recipe"]);
    assert_eq!(c, 2);
    let (c, _, _) = mmrun(&["check", "--bogus-flag", "x.recipe"]);
    assert_eq!(c, 2);
    let (c, _, _) = mmrun(&[
        "check",
        "--no-fs",
        "pipelines/retinanet_r50_fpn_1x_coco.recipe",
        "--set",
        "optimizer.lrr=0.1",
    ]);
    assert_eq!(c, 1);
}

#[test]
fn check_json_has_one_object_per_diagnostic() {
    let (c, out, _) = mmrun(&[
        "check",
        "--no-fs",
        "--format",
        "json",
        "tests/ui/multiple_errors.recipe",
    ]);
    assert_eq!(c, 1);
    let objs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 3);
    assert_eq!(objs[0]["code"], "E0302");
    assert_eq!(objs[0]["severity"], "error");
    assert_eq!(objs[0]["file"], "tests/ui/multiple_errors.recipe");
    assert_eq!(objs[0]["line"], 3);
    assert_eq!(objs[0]["column"], 11);
    assert_eq!(objs[0]["help"], "the key is `momentum`");
}

#[test]
fn env_is_denied_unless_allowed_and_always_reported() {
    let (c, _, _) = mmrun(&["check", "--no-fs", "tests/ui/e0210_env_denied.recipe"]);
    assert_eq!(c, 1);
    let (c, out, _) = mmrun(&[
        "check",
        "--no-fs",
        "--allow-env",
        "--format",
        "json",
        "tests/ui/e0210_env_denied.recipe",
    ]);
    assert_eq!(c, 0);
    assert!(
        out.contains("\"severity\":\"warning\"") && out.contains("E0210"),
        "{out}"
    );
}

#[test]
fn fmt_check_and_explain() {
    let (c, _, _) = mmrun(&[
        "fmt",
        "--check",
        "pipelines/retinanet_r50_fpn_1x_coco.recipe",
    ]);
    assert_eq!(c, 0, "shipped recipes are formatted");
    let (c, out, _) = mmrun(&["explain", "E0302"]);
    assert_eq!(c, 0);
    assert!(out.contains("unknown key"));
    let (c, out, _) = mmrun(&["explain", "retina_head"]);
    assert_eq!(c, 0);
    assert!(out.contains("num_classes") && out.contains("required"));
    let (c, _, _) = mmrun(&["explain", "no_such_thing"]);
    assert_eq!(c, 2);
}

#[test]
fn every_code_has_an_explanation() {
    let mut seen = std::collections::BTreeSet::new();
    for e in std::fs::read_dir("tests/ui").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(code) = name.split('_').next().filter(|c| c.starts_with('e')) {
            seen.insert(code.to_uppercase());
        }
    }
    for code in seen {
        assert!(
            mmrun::recipe::codes::lookup(&code).is_some(),
            "{code} has no explanation"
        );
    }
}

/// A UTF-8 byte-order mark and CRLF or old-Mac CR line endings read as the same recipe: a
/// comment ends at its line whatever the ending (with CR only, the first comment used to
/// swallow the file and the check passed on an empty config).
#[test]
fn byte_order_mark_and_every_line_ending_give_the_same_config() {
    let quickstart = std::fs::canonicalize("pipelines/quickstart.recipe").unwrap();
    let src = format!(
        "// a header comment\nimport {:?}\n// the learning rate\noptimizer.lr = 0.02 // halved\n\nhooks.log.every = 5 iters\n",
        quickstart.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let (c, out, err) = mmrun(&["check", "--no-fs", "--print-config", p.to_str().unwrap()]);
        assert_eq!(c, 0, "{name}: {err}");
        // The work dir default reads the recipe's name; everything else must match.
        let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["runtime"]["work_dir"] = serde_json::Value::Null;
        v
    };
    let lf = config("lf.recipe", src.clone());
    assert_eq!(lf["optimizer"]["lr"], 0.02, "{lf}");
    assert_eq!(lf["hooks"]["log"]["every"], "5 iters", "{lf}");
    assert_eq!(config("bom.recipe", format!("\u{feff}{src}")), lf);
    assert_eq!(config("crlf.recipe", src.replace('\n', "\r\n")), lf);
    assert_eq!(config("cr.recipe", src.replace('\n', "\r")), lf);
    // `fmt` prints the canonical form (LF, no mark), and `--check` calls the others unformatted.
    let p = dir.path().join("cr.recipe");
    let (c, out, _) = mmrun(&["fmt", p.to_str().unwrap()]);
    assert_eq!(c, 0);
    assert!(!out.contains('\r') && !out.starts_with('\u{feff}'));
    let (c, _, _) = mmrun(&["fmt", "--check", p.to_str().unwrap()]);
    assert_eq!(c, 1);
}

/// Thousands of levels get a diagnostic from `check` and `fmt`, not a stack overflow.
#[test]
fn deep_nesting_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "records",
            format!("a = {}", "{ b = ".repeat(5000)) + &"}".repeat(5000),
        ),
        (
            "lists",
            format!("a = {}{}", "[".repeat(8000), "]".repeat(8000)),
        ),
        ("path", format!("{} = 1", vec!["a"; 20000].join("."))),
    ] {
        let p = dir.path().join(format!("{name}.recipe"));
        std::fs::write(&p, text).unwrap();
        let (c, _, err) = mmrun(&["check", "--no-fs", p.to_str().unwrap()]);
        assert_eq!(c, 1, "{name}: {err}");
        assert!(
            err.contains("E0102") && err.contains("deeper than 64"),
            "{name}: {err}"
        );
        let (c, _, err) = mmrun(&["fmt", p.to_str().unwrap()]);
        assert_eq!(c, 1, "{name}: {err}");
        assert!(err.contains("E0102"), "{name}: {err}");
    }
}

/// `mmrun check DIR` checks every recipe below the folder (base files included); a folder
/// with none is an error that says so.
#[test]
fn check_a_folder_checks_every_recipe_below_it() {
    let (c, _, err) = mmrun(&["check", "--no-fs", "pipelines"]);
    assert_eq!(c, 0, "{err}");
    for f in [
        "quickstart",
        "base/schedule_1x",
        "retinanet_r50_fpn_1x_coco",
    ] {
        assert!(
            err.contains(&format!("pipelines/{f}.recipe: ok")),
            "{f}: {err}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let (c, _, err) = mmrun(&["check", empty.path().to_str().unwrap()]);
    assert_eq!(c, 2);
    assert!(err.contains("no `.recipe` file"), "{err}");
}

/// A file without `model` (a base meant for import) is a partial recipe: `check` checks it and
/// says it was not planned; `exec`, `plan` and `test` refuse it, saying why.
#[test]
fn a_partial_recipe_is_checked_not_planned_and_not_run() {
    let base = "pipelines/base/schedule_1x.recipe";
    let (c, _, err) = mmrun(&["check", "--no-fs", base]);
    assert_eq!(c, 0, "{err}");
    assert!(
        err.contains("a partial recipe") && err.contains("not planned"),
        "{err}"
    );
    for cmd in [vec!["exec", base], vec!["plan", base]] {
        let (c, _, err) = mmrun(&cmd);
        assert_ne!(c, 0, "{cmd:?}: {err}");
        assert!(
            err.contains("partial recipe") && err.contains("nothing to run"),
            "{cmd:?}: {err}"
        );
    }
    // Its mistakes are still found.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("base.recipe");
    std::fs::write(&bad, "optimizer = sgd { lr = -1 }\n").unwrap();
    let (c, _, err) = mmrun(&["check", bad.to_str().unwrap()]);
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("E0304"), "{err}");
}

/// `docs/recipe.md` is `mmrun explain --reference` (the registry and error codes rendered):
/// stale when a component, parameter or code changes. `MMRUN_WRITE_REFERENCE=1` rewrites it.
#[test]
fn the_language_reference_is_generated_and_current() {
    let (c, out, _) = mmrun(&["explain", "--reference"]);
    assert_eq!(c, 0);
    for must in [
        "## The language",
        "#### `retina_head`",
        "### E0102:",
        "| `num_classes` |",
    ] {
        assert!(out.contains(must), "{must}");
    }
    if std::env::var_os("MMRUN_WRITE_REFERENCE").is_some_and(|v| v == "1") {
        std::fs::write("docs/recipe.md", &out).unwrap();
    }
    let committed = std::fs::read_to_string("docs/recipe.md").unwrap_or_default();
    assert!(
        committed == out,
        "docs/recipe.md is stale: run `mmrun explain --reference > docs/recipe.md` \
         (or this test with MMRUN_WRITE_REFERENCE=1)"
    );
}

/// `explain --list` names every registered component of a category with its one-line doc, or
/// all of them by category; an unknown category lists the real ones.
#[test]
fn explain_lists_the_components_of_a_category() {
    let (code, out, _) = mmrun(&["explain", "--list", "hooks"]);
    assert_eq!(code, 0, "{out}");
    let hooks: Vec<&str> = mmrun::registry::components()
        .filter(|c| c.category == mmrun::registry::Category::Hook)
        .map(|c| c.name)
        .collect();
    assert!(hooks.len() > 5);
    for h in &hooks {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(h)),
            "{h} missing:\n{out}"
        );
    }
    assert!(!out.contains("retinanet"), "{out}");
    let (code, out, _) = mmrun(&["explain", "--list", "norm"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("norm layer:") && out.contains("  group_norm "),
        "{out}"
    );
    let (code, all, _) = mmrun(&["explain", "--list"]);
    assert_eq!(code, 0);
    assert_eq!(
        all.lines().filter(|l| l.starts_with("  ")).count(),
        mmrun::registry::components().count()
    );
    let (code, _, err) = mmrun(&["explain", "--list", "widgets"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no category `widgets`") && err.contains("box_coder"),
        "{err}"
    );
}

/// `explain --format json`: a component's parameters with their types and default values, an
/// error code, and `--list` by category, each one parsable object with the registry's content.
#[test]
fn explain_reports_as_json() {
    let json = |args: &[&str]| {
        let (code, out, err) = mmrun(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let v = json(&["explain", "focal_loss", "--format", "json"]);
    let focal = &v["components"][0];
    assert_eq!(
        (&focal["name"], &focal["category"]),
        (&"focal_loss".into(), &"loss".into())
    );
    let gamma = focal["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "gamma");
    let gamma = gamma.expect("gamma");
    assert_eq!(
        (&gamma["default"], &gamma["required"]),
        (&2.0.into(), &false.into())
    );
    let v = json(&["explain", "E0404", "--format", "json"]);
    assert_eq!(v["code"], "E0404");
    assert!(
        v["explanation"].as_str().unwrap().contains("milestone"),
        "{v}"
    );
    let v = json(&["explain", "--list", "--format", "json"]);
    let listed: usize = (v["categories"].as_array().unwrap().iter())
        .map(|c| c["components"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed, mmrun::registry::components().count());
    let (code, out, _) = mmrun(&["explain", "--list", "widgets", "--format", "json"]);
    assert_eq!((code, out.as_str()), (1, ""));
}
