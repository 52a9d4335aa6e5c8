//! The recipe's training sections drive the runner: `engine::setup` and `engine::job` with
//! the stand-in model and `tests/fixtures/engine/linear.recipe`.

use super::runner::json_lines;
use super::standin::Linear;
use mmrun::engine::job::{ExecOptions, execute, prepare};
use mmrun::engine::setup::{TrainingSpec, auto_scale_lr, build_training};
use mmrun::plan::training_spec;
use mmrun::recipe::{CheckOptions, load};
use std::path::Path;

fn config(sets: &[&str]) -> serde_json::Value {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load(
        Path::new("tests/fixtures/engine/linear.recipe"),
        &sets,
        &CheckOptions {
            no_fs: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config
}

/// The training sections of `linear.recipe` as the plan types them.
fn spec(sets: &[&str]) -> TrainingSpec {
    training_spec(&config(sets), 1, None).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn recipe_sections_build_hooks_optimizer_and_run() {
    let t = build_training(&spec(&[]), 8, (0, 1)).unwrap();
    let names: Vec<&str> = t.hooks.iter().map(|h| h.name()).collect();
    for n in [
        "nan_guard",
        "sampler_seed",
        "lr",
        "checkpoint",
        "log",
        "eval",
        "optimizer",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(t.optimizer.lr(), 0.1);
    assert_eq!(t.accumulation, 2);
    assert_eq!(t.runtime.seed, 3);
    assert_eq!(t.run.length.to_string(), "3 epochs");
}

#[test]
fn unsupported_hooks_and_lengths_are_reported_with_paths() {
    let mut c = config(&[]);
    c["hooks"]["profiler"] = serde_json::json!({"type": "profiler", "at": [1], "out_dir": null, "before": [], "after": []});
    c["run"]["iters"] = serde_json::json!(10);
    let errs = training_spec(&c, 1, None).err().unwrap();
    assert!(errs.iter().any(|e| e.path == "hooks.profiler"), "{errs:?}");
    assert!(errs.iter().any(|e| e.path == "run"), "{errs:?}");
}

#[test]
fn exec_trains_with_schedule_and_writes_the_work_dir() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ExecOptions {
        work_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let mut task = Linear::new(32, 4);
    let summary = execute(&spec(&[]), &config(&[]), &mut task, Linear::params(), &opts).unwrap();
    assert_eq!(summary.iters, 24);
    for f in [
        "config.json",
        "log.txt",
        "log.jsonl",
        "results",
        "checkpoints/epoch_3",
        "checkpoints/last_checkpoint",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let lines = json_lines(dir.path());
    // Linear warmup over 4 iterations from ratio 0.1 (mmcv: lr·(1 − (1 − r)(1 − i/4))):
    // the first logged line is iteration 2 (index 1).
    let lr0 = lines[0]["lr"].as_f64().unwrap();
    assert!(
        (lr0 - 0.1 * (1.0 - 0.9 * (1.0 - 1.0 / 4.0))).abs() < 1e-12,
        "{lr0}"
    );
    let last_train = lines.iter().rev().find(|l| l["mode"] == "train").unwrap();
    assert!((last_train["lr"].as_f64().unwrap() - 0.01).abs() < 1e-12);
    assert!(last_train.get("grad_norm").is_some());

    // Resuming a finished run does nothing more and says where it resumed.
    let mut task = Linear::new(32, 4);
    let opts = ExecOptions {
        resume: Some("auto".into()),
        ..opts
    };
    let p = prepare(&spec(&[]), &config(&[]), &mut task, Linear::params(), &opts).unwrap();
    assert_eq!(p.runner.iters_done(), 24);
}

#[test]
fn stop_at_iter_then_resume_auto_matches_a_straight_run() {
    let straight = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let opts = ExecOptions {
        work_dir: Some(straight.path().to_path_buf()),
        ..Default::default()
    };
    execute(&spec(&[]), &config(&[]), &mut task, Linear::params(), &opts).unwrap();

    let split = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    // Stop at the end of epoch 1 (a checkpoint is written there), then resume.
    let opts = ExecOptions {
        work_dir: Some(split.path().to_path_buf()),
        stop_at_iter: Some(8),
        ..Default::default()
    };
    let s = execute(&spec(&[]), &config(&[]), &mut task, Linear::params(), &opts).unwrap();
    assert!(s.stopped.unwrap().contains("8 of 24"));
    let mut task = Linear::new(32, 4);
    let opts = ExecOptions {
        stop_at_iter: None,
        resume: Some("auto".into()),
        ..opts
    };
    execute(&spec(&[]), &config(&[]), &mut task, Linear::params(), &opts).unwrap();
    let read = |d: &Path| std::fs::read(d.join("checkpoints/epoch_3/model.safetensors")).unwrap();
    assert_eq!(read(straight.path()), read(split.path()));
}

#[test]
fn load_from_reads_weights_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let opts = ExecOptions {
        work_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    execute(&spec(&[]), &config(&[]), &mut task, Linear::params(), &opts).unwrap();
    let from = dir.path().join("checkpoints/epoch_3");
    let other = tempfile::tempdir().unwrap();
    let c = config(&[&format!("runtime.load_from=\"{}\"", from.display())]);
    let mut task = Linear::new(32, 4);
    let opts = ExecOptions {
        work_dir: Some(other.path().to_path_buf()),
        ..Default::default()
    };
    let p = prepare(
        &training_spec(&c, 1, None).unwrap(),
        &c,
        &mut task,
        Linear::params(),
        &opts,
    )
    .unwrap();
    assert_eq!(p.runner.iters_done(), 0);
    assert!(p.notes[0].contains("loaded 3 tensors"), "{:?}", p.notes);
}

#[test]
fn auto_scale_lr_counts_devices_and_accumulation() {
    assert_eq!(auto_scale_lr(0.02, 2, 8, 1, 16), 0.02);
    assert_eq!(auto_scale_lr(0.02, 2, 1, 4, 16), 0.02 * 8.0 / 16.0);
}
