//! Merge semantics: override, `:=` replace, named list items, lazy references following an
//! overridden root, `--set` on an unknown path.

use mmrun::recipe::{self, CheckOptions, Outcome};
use std::path::Path;

fn check(files: &[(&str, &str)], sets: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let opts = CheckOptions {
        no_fs: true,
        ..CheckOptions::default()
    };
    recipe::check(&dir.path().join(files[0].0), &sets, &opts)
}

const BASE: &str = r#"
let data_root = "data/coco"
optimizer = sgd { lr = 0.02, momentum = 0.9, paramwise_cfg = { bias_lr_mult = 2.0 } }
data = { val = coco_dataset { ann_file = "${data_root}/val.json", img_prefix = "${data_root}/val/",
  pipeline = [load_image, resize { scale = [1333, 800] }, pad { size_divisor = 32 }] } }
"#;

fn cfg(o: &Outcome, path: &str) -> serde_json::Value {
    let r = o
        .recipe
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", o.diagnostics));
    r.get(path).cloned().unwrap_or_else(|| panic!("{path}"))
}

#[test]
fn later_binding_overrides_and_records_merge() {
    let o = check(
        &[
            (
                "r.recipe",
                "import \"base.recipe\"\noptimizer.lr = 0.01\noptimizer.paramwise_cfg = { bias_decay_mult = 0.0 }",
            ),
            ("base.recipe", BASE),
        ],
        &[],
    );
    assert_eq!(cfg(&o, "optimizer.lr"), 0.01);
    assert_eq!(cfg(&o, "optimizer.momentum"), 0.9);
    assert_eq!(cfg(&o, "optimizer.paramwise_cfg.bias_lr_mult"), 2.0);
    assert_eq!(cfg(&o, "optimizer.paramwise_cfg.bias_decay_mult"), 0.0);
}

#[test]
fn replace_drops_the_old_keys() {
    let o = check(
        &[
            (
                "r.recipe",
                "import \"base.recipe\"\noptimizer.paramwise_cfg := { bias_decay_mult = 0.0 }",
            ),
            ("base.recipe", BASE),
        ],
        &[],
    );
    // bias_lr_mult is back to its registry default, not the base's 2.0.
    assert_eq!(cfg(&o, "optimizer.paramwise_cfg.bias_lr_mult"), 1.0);
}

#[test]
fn named_list_items_are_addressable() {
    let o = check(
        &[
            (
                "r.recipe",
                "import \"base.recipe\"\ndata.val.pipeline.resize.scale = [1000, 600]\ndata.val.pipeline.load_image.to_float32 = true",
            ),
            ("base.recipe", BASE),
        ],
        &[],
    );
    assert_eq!(
        cfg(&o, "data.val.pipeline.1.scale"),
        serde_json::json!([1000, 600])
    );
    assert_eq!(cfg(&o, "data.val.pipeline.0.to_float32"), true);
    assert_eq!(cfg(&o, "data.val.pipeline.2.size_divisor"), 32);
}

#[test]
fn references_follow_an_overridden_root() {
    let o = check(
        &[
            (
                "r.recipe",
                "import \"base.recipe\"\nlet data_root = \"/mnt/coco\"",
            ),
            ("base.recipe", BASE),
        ],
        &[],
    );
    assert_eq!(cfg(&o, "data.val.ann_file"), "/mnt/coco/val.json");
    let o = check(
        &[
            ("r.recipe", "import \"base.recipe\""),
            ("base.recipe", BASE),
        ],
        &["data_root=\"/ssd\""],
    );
    assert_eq!(cfg(&o, "data.val.img_prefix"), "/ssd/val/");
}

#[test]
fn set_overrides_and_fails_on_unknown_paths() {
    let o = check(
        &[
            ("r.recipe", "import \"base.recipe\""),
            ("base.recipe", BASE),
        ],
        &["optimizer.lr=0.5"],
    );
    assert_eq!(cfg(&o, "optimizer.lr"), 0.5);
    let o = check(
        &[
            ("r.recipe", "import \"base.recipe\""),
            ("base.recipe", BASE),
        ],
        &["optimizer.lrr=0.5"],
    );
    assert!(o.recipe.is_none());
    let d = o
        .diagnostics
        .iter()
        .find(|d| d.code == "E0302")
        .expect("unknown key");
    assert_eq!(d.help.as_deref(), Some("the key is `lr`"));
    let o = check(
        &[
            ("r.recipe", "import \"base.recipe\""),
            ("base.recipe", BASE),
        ],
        &["nothing.here=1"],
    );
    assert!(o.diagnostics.iter().any(|d| d.code == "E0310"));
}

#[test]
fn sibling_conflicts_need_a_decision() {
    let files = [
        ("r.recipe", "import \"a.recipe\"\nimport \"b.recipe\""),
        ("a.recipe", "optimizer = sgd { lr = 0.1 }"),
        ("b.recipe", "optimizer = sgd { lr = 0.2 }"),
    ];
    let o = check(&files, &[]);
    let d = o
        .diagnostics
        .iter()
        .find(|d| d.code == "E0203")
        .expect("conflict");
    assert_eq!(d.labels.len(), 2);
    assert_ne!(d.labels[0].loc.file, d.labels[1].loc.file);
    let o = check(&files, &["optimizer.lr=0.3"]);
    assert_eq!(cfg(&o, "optimizer.lr"), 0.3);
    let files = [
        (
            "r.recipe",
            "import \"a.recipe\"\nimport \"b.recipe\"\noptimizer.lr = 0.4",
        ),
        files[1],
        files[2],
    ];
    assert_eq!(cfg(&check(&files, &[]), "optimizer.lr"), 0.4);
}

#[test]
fn import_cycles_name_the_cycle() {
    let o = check(
        &[
            ("r.recipe", "import \"a.recipe\""),
            ("a.recipe", "import \"r.recipe\""),
        ],
        &[],
    );
    let d = o
        .diagnostics
        .iter()
        .find(|d| d.code == "E0202")
        .expect("cycle");
    assert!(
        d.message.contains("r.recipe") && d.message.contains("a.recipe"),
        "{}",
        d.message
    );
    let _ = Path::new("");
}

#[test]
fn diamond_imports_do_not_conflict() {
    let files = [
        ("r.recipe", "import \"a.recipe\"\nimport \"b.recipe\""),
        ("a.recipe", "import \"base.recipe\""),
        (
            "b.recipe",
            "import \"base.recipe\"\noptimizer.momentum = 0.8",
        ),
        ("base.recipe", BASE),
    ];
    let o = check(&files, &[]);
    assert_eq!(cfg(&o, "optimizer.lr"), 0.02);
    assert_eq!(cfg(&o, "optimizer.momentum"), 0.8);
}

#[test]
fn named_list_item_replaced_wholesale() {
    let o = check(
        &[
            (
                "r.recipe",
                "import \"base.recipe\"\ndata.val.pipeline.resize := resize { scale = [10, 10], keep_ratio = false }",
            ),
            ("base.recipe", BASE),
        ],
        &[],
    );
    assert_eq!(cfg(&o, "data.val.pipeline.1.keep_ratio"), false);
    assert_eq!(
        cfg(&o, "data.val.pipeline.1.scale"),
        serde_json::json!([10, 10])
    );
}

#[test]
fn env_reads_are_reported() {
    let files = [(
        "r.recipe",
        "runtime = { work_dir = env(\"MMRUN_TEST_UNSET_VAR\", \"w\") }",
    )];
    let o = check(&files, &[]);
    assert!(
        o.diagnostics
            .iter()
            .any(|d| d.code == "E0210" && d.is_error())
    );
}

/// Another component over one set before starts empty, as the language reference says; the
/// settings that do not carry over are named in an E0214 warning (mmcv would merge them),
/// and `:=` or writing every setting again says nothing.
#[test]
fn another_component_replaces_whole_and_the_dropped_settings_are_named() {
    let main = "import \"base.recipe\"\noptimizer = adamw { lr = 0.0001 }\n";
    let o = check(&[("main.recipe", main), ("base.recipe", BASE)], &[]);
    assert_eq!(cfg(&o, "optimizer.type"), "adamw");
    assert!(cfg(&o, "optimizer").get("momentum").is_none());
    let w: Vec<_> = o.diagnostics.iter().filter(|d| d.code == "E0214").collect();
    assert_eq!(w.len(), 1, "{:?}", o.diagnostics);
    assert!(
        w[0].message.contains("`momentum`")
            && w[0].message.contains("`paramwise_cfg`")
            && !w[0].message.contains("`lr`"),
        "{}",
        w[0].message
    );
    for quiet in [
        "import \"base.recipe\"\noptimizer := adamw { lr = 0.0001 }\n",
        "import \"base.recipe\"\noptimizer = sgd { lr = 0.01 }\n",
    ] {
        let o = check(&[("main.recipe", quiet), ("base.recipe", BASE)], &[]);
        assert!(o.diagnostics.iter().all(|d| d.code != "E0214"), "{quiet}");
    }
}
