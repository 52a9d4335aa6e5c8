//! Mixed precision through `mmrun exec` on the shortened quickstart: f16 with a loss scale
//! that overflows at first backs off and skips those steps by torch's GradScaler rule, logs
//! the scale and keeps it in checkpoints, and a stopped and resumed run ends with the same
//! weights and scale as a straight one; bf16 and f16 start where f32 does; `check` refuses
//! the settings that cannot work.

use super::detector::{dataset, exec, log_records, mmrun, overrides};
use std::path::Path;

/// The train records' values of `key`.
fn train_values(work: &Path, key: &str) -> Vec<Option<f64>> {
    log_records(work)
        .iter()
        .filter(|r| r["mode"] == "train")
        .map(|r| r[key].as_f64())
        .collect()
}

/// The shortened quickstart over `epochs` epochs, its LR step inside the run.
fn short_run(root: &Path, epochs: u32) -> Vec<String> {
    let mut sets = overrides(root, epochs);
    sets.retain(|s| !s.starts_with("schedule.lr.main.at"));
    sets.push("schedule.lr.main.at=[3 iters]".into());
    sets
}

fn loss_scaler_state(ckpt: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(ckpt.join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["loss_scaler"].clone()
}

#[test]
fn fp16_backs_off_an_overflowing_scale_skips_those_steps_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let mut sets = short_run(&root, 3);
    // 2^32 overflows f16 (largest finite: 65504) in the backward pass; backing off ×2^-6 finds
    // a scale that does not within a few steps.
    const INIT: f64 = 4294967296.0;
    sets.push(format!(
        "hooks.fp16={{ loss_scale = {{ init_scale = {INIT:.1}, backoff_factor = 0.015625, growth_interval = 2 }} }}"
    ));
    sets.push("hooks.checkpoint.every=3 iters".into());
    let a = dir.path().join("a");
    let (code, text) = exec(&a, &sets, &[]);
    assert_eq!(code, 0, "{text}");
    let losses = train_values(&a, "loss");
    assert_eq!(losses.len(), 12, "{text}");
    assert!(
        losses.iter().all(|l| l.is_some_and(f64::is_finite)),
        "{losses:?}"
    );

    // torch's GradScaler.update, replayed over the logged scales: each iteration either backed
    // off (a skipped step) or counted a finite one, doubling after two in a row.
    let scales: Vec<f64> = train_values(&a, "loss_scale")
        .into_iter()
        .map(|s| s.expect("f16 runs log loss_scale"))
        .collect();
    let (mut scale, mut tracker, mut skipped) = (INIT, 0, 0);
    for (i, &s) in scales.iter().enumerate() {
        if s == scale * 0.015625 {
            skipped += 1;
            tracker = 0;
        } else {
            tracker += 1;
            let want = if tracker == 2 { scale * 2.0 } else { scale };
            assert_eq!(s, want, "iteration {}: {scales:?}", i + 1);
            tracker %= 2;
        }
        scale = s;
    }
    assert!(skipped >= 1, "the first scale must overflow: {scales:?}");
    assert!(skipped < 12, "some steps must be finite: {scales:?}");
    assert_eq!(
        loss_scaler_state(&a.join("checkpoints/iter_12"))["scale"],
        scale
    );

    // Stopped after 7 iterations, resumed from iter_6: the same weights and scaler state.
    let b = dir.path().join("b");
    let (code, text) = exec(&b, &sets, &["--max-iters", "7"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = exec(&b, &sets, &["--resume", "auto"]);
    assert_eq!(code, 0, "{text}");
    let weights = |ckpt: &Path| std::fs::read(ckpt.join("model.safetensors")).unwrap();
    let (end_a, end_b) = (a.join("checkpoints/iter_12"), b.join("checkpoints/iter_12"));
    assert!(
        weights(&end_a) == weights(&end_b),
        "resumed weights differ from the straight run's"
    );
    assert_eq!(loss_scaler_state(&end_a), loss_scaler_state(&end_b));
}

#[test]
fn bf16_and_fp16_start_where_fp32_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let first_losses = |precision: &str| {
        let mut sets = short_run(&root, 1);
        sets.push(format!("runtime.precision={precision}"));
        let work = dir.path().join(precision);
        let (code, text) = exec(&work, &sets, &["--max-iters", "2"]);
        assert_eq!(code, 0, "{text}");
        let scales = train_values(&work, "loss_scale");
        assert_eq!(
            scales.iter().all(Option::is_some),
            precision == "fp16",
            "only f16 scales its loss: {scales:?}"
        );
        train_values(&work, "loss")
            .into_iter()
            .map(Option::unwrap)
            .collect::<Vec<f64>>()
    };
    let f32_losses = first_losses("fp32");
    for p in ["bf16", "fp16"] {
        let half = first_losses(p);
        // Same weights, same batch: the first loss differs by half-precision rounding only.
        let rel = (half[0] - f32_losses[0]).abs() / f32_losses[0];
        assert!(
            rel < 0.01,
            "{p}: first loss {} against f32's {}",
            half[0],
            f32_losses[0]
        );
        assert!(half[0] != f32_losses[0], "{p} computed in f32");
    }
}

#[test]
fn check_refuses_precisions_that_cannot_work() {
    let q = "pipelines/quickstart.recipe";
    for (sets, want) in [
        (
            vec!["runtime.precision=bf16", "hooks.fp16={}"],
            "hooks.fp16",
        ),
        (
            vec!["hooks.fp16={ loss_scale = { growth_interval = 0 } }"],
            "growth_interval",
        ),
        (vec!["hooks.fp16={ loss_scale = -4.0 }"], "loss_scale"),
    ] {
        let mut args = vec!["check", q, "--no-fs"];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let (code, text) = mmrun(&args);
        assert_ne!(code, 0, "{sets:?} passed check:\n{text}");
        assert!(text.contains(want), "{sets:?}: no `{want}` in\n{text}");
    }
    let (code, text) = mmrun(&["check", q, "--no-fs", "--set", "hooks.fp16={}"]);
    assert_eq!(code, 0, "the fp16 hook checks clean:\n{text}");
    let on_wgpu = ["runtime.precision=bf16", "runtime.backend=wgpu"];
    let (code, text) = mmrun(&[
        "check", q, "--no-fs", "--set", on_wgpu[0], "--set", on_wgpu[1],
    ]);
    if cfg!(feature = "wgpu") {
        assert_eq!(code, 0, "bf16 on wgpu checks clean:\n{text}");
    }
    let on_cuda = ["runtime.precision=fp16", "runtime.backend=cuda"];
    let (code, text) = mmrun(&[
        "check", q, "--no-fs", "--set", on_cuda[0], "--set", on_cuda[1],
    ]);
    assert_eq!(code, 0, "fp16 on cuda checks clean:\n{text}");
}
