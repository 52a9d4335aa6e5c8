//! `check` ≡ `exec` for hook settings: each case is a setting the registry types, written once
//! as a recipe override and once as the engine sees it. `check` must refuse the override, and
//! what `exec` runs (`plan::training_spec`, then `engine::setup::build_training` after the
//! data is loaded) must refuse the same value in a config that it otherwise accepts.

use mmrun::recipe::{self, CheckOptions};
use serde_json::{Value, json};

const QUICKSTART: &str = "pipelines/quickstart.recipe";

fn checked(sets: &[&str]) -> Result<Value, String> {
    let opts = CheckOptions {
        no_fs: true,
        ..CheckOptions::default()
    };
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let out = recipe::check(std::path::Path::new(QUICKSTART), &sets, &opts);
    match out.recipe {
        Some(r) => Ok(r.config),
        None => Err(recipe::render::render_all(
            &out.diagnostics.0,
            &out.files,
            Default::default(),
        )),
    }
}

/// What `exec` does with the training sections: the plan types them, the engine builds them.
fn builds(config: &Value) -> Result<(), Vec<String>> {
    let spec = mmrun::plan::training_spec(config, 2, None).map_err(|es| {
        es.into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
    })?;
    mmrun::engine::setup::build_training(&spec, 10, (0, 1)).map(|_| ())
}

/// (override that checks clean, override `check` must refuse, JSON pointer, value the engine
/// must refuse there).
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "hooks.log.every=20 iters",
        "hooks.log.every=2 epochs",
        "/hooks/log/every",
        r#""2 epochs""#,
    ),
    (
        "hooks.log.every=20 iters",
        "hooks.log.every=0 iters",
        "/hooks/log/every",
        r#""0 iters""#,
    ),
    (
        "hooks.checkpoint.every=2 epochs",
        "hooks.checkpoint.every=0 epochs",
        "/hooks/checkpoint/every",
        r#""0 epochs""#,
    ),
    (
        "hooks.eval.every=2 epochs",
        "hooks.eval.every=0 epochs",
        "/hooks/eval/every",
        r#""0 epochs""#,
    ),
    (
        "hooks.checkpoint.max_keep_ckpts=3",
        "hooks.checkpoint.max_keep_ckpts=0",
        "/hooks/checkpoint/max_keep_ckpts",
        "0",
    ),
    (
        "hooks.ema={momentum=0.5}",
        "hooks.ema={momentum=1}",
        "/hooks/ema/momentum",
        "1.0",
    ),
    (
        "hooks.optimizer.grad_clip={max_norm=35}",
        "hooks.optimizer.grad_clip={max_norm=35, norm_type=1}",
        "/hooks/optimizer/grad_clip/norm_type",
        "1.0",
    ),
    (
        "hooks.optimizer.grad_clip={max_norm=35}",
        "hooks.optimizer.grad_clip={max_norm=35, clip_value=1}",
        "/hooks/optimizer/grad_clip/clip_value",
        "1.0",
    ),
];

#[test]
fn check_refuses_what_the_engine_refuses() {
    for &(good, bad, pointer, value) in CASES {
        let mut config = checked(&[good]).unwrap_or_else(|e| panic!("{good}: {e}"));
        builds(&config).unwrap_or_else(|e| panic!("{good}: the engine refuses it: {e:?}"));
        *config
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{good} has no {pointer}")) =
            serde_json::from_str(value).unwrap();
        assert!(
            builds(&config).is_err(),
            "the engine accepts {pointer} = {value}"
        );
        let refused = checked(&[bad]).expect_err(&format!("check accepts {bad}"));
        let key = bad.split('=').next().unwrap();
        assert!(
            refused.contains(key),
            "{bad}: the error does not name {key}:\n{refused}"
        );
    }
}

/// Hooks this build cannot run: the engine refuses them, and so does `check`; the `fp16`
/// hook both accept.
#[test]
fn hooks_this_build_cannot_run_are_refused_by_both() {
    let fp16 = checked(&["hooks.fp16=fp16 {}"]).expect("check accepts the fp16 hook");
    assert!(builds(&fp16).is_ok(), "the engine refuses the fp16 hook");
    let (name, set) = ("profiler", "hooks.profiler=profiler {}");
    let mut config = checked(&[]).unwrap();
    config["hooks"][name] = json!({ "type": name });
    assert!(builds(&config).is_err(), "the engine accepts hooks.{name}");
    let refused = checked(&[set]).expect_err(&format!("check accepts {set}"));
    assert!(
        refused.contains("E0311") && refused.contains("not supported"),
        "{refused}"
    );
}

/// `check` accepts a shapes dataset that does not exist yet, as `exec` does (which generates
/// it on its first run, in the folder above the train annotation file's), but still refuses a
/// missing file outside the folder `exec` would generate.
#[test]
fn a_missing_shapes_dataset_is_what_exec_generates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shapes");
    let r = root.display();
    let sets = |val_ann: String| -> Vec<String> {
        vec![
            format!("data.train.ann_file=\"{r}/annotations/instances_train.json\""),
            format!("data.train.img_prefix=\"{r}/train/\""),
            format!("data.val.ann_file=\"{val_ann}\""),
            format!("data.val.img_prefix=\"{r}/val/\""),
        ]
    };
    let check = |sets: &[String]| {
        recipe::check(
            std::path::Path::new(QUICKSTART),
            sets,
            &CheckOptions::default(),
        )
    };
    let out = check(&sets(format!("{r}/annotations/instances_val.json")));
    assert!(out.recipe.is_some(), "{:?}", out.diagnostics.0);
    assert_eq!(
        mmrun::data::synth::missing_shapes_root(
            &mmrun::plan::load(
                std::path::Path::new(QUICKSTART),
                &sets(format!("{r}/annotations/instances_val.json")),
                &CheckOptions::default()
            )
            .unwrap()
            .1
            .data
        ),
        Some(root.clone())
    );
    let elsewhere = dir.path().join("other/val.json");
    let out = check(&sets(elsewhere.display().to_string()));
    let codes: Vec<&str> = out.diagnostics.0.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0411"], "{:?}", out.diagnostics.0);
}
