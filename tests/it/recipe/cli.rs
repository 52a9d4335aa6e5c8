//! `mmrun check | fmt | explain` as a user runs them: exit codes 0/1/2 and `--format json`.

use std::process::Command;

fn mmrun(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(args)
        .output()
        .expect("run mmrun");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

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
