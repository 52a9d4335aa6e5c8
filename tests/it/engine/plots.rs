//! Charts of a run, through the binary: `mmrun plot` draws a short quickstart run's log, and
//! `mmrun plan --schedule-plot` samples the schedule the run then followed — its values are
//! the learning rates the run logged, iteration for iteration.

use super::detector::{dataset, exec, log_records, mmrun, overrides_stepped};

/// Pixels of `colour` in the PNG at `path`, and its size.
fn coloured_pixels(path: &std::path::Path, colour: [u8; 3]) -> (usize, (u32, u32)) {
    let pic = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let n = pic.pixels().filter(|p| p.0 == colour).count();
    (n, pic.dimensions())
}

#[test]
fn plot_draws_a_runs_curves_and_the_planned_schedule_is_the_lr_it_logged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = overrides_stepped(&root, 3, 2);
    let work = dir.path().join("w");
    // 3 epochs of 4 iterations planned; the run stops after 10 (the schedule still spans 12).
    let (code, text) = exec(&work, &sets, &["--max-iters", "10"]);
    assert_eq!(code, 0, "{text}");
    let w = work.to_str().unwrap();
    let line = mmrun::viz::class_colour(0);

    let out = dir.path().join("curves.png");
    let (code, text) = mmrun(&[
        "plot",
        w,
        "--keys",
        "loss",
        "lr",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let (n, size) = coloured_pixels(&out, line);
    assert_eq!(size, (900, 600), "two charts stacked");
    assert!(n > 300, "the run's lines are drawn ({n} pixels)");
    // The default keys: `loss` and the val `bbox_mAP` (one point per evaluated epoch).
    let (code, text) = mmrun(&[
        "plot",
        w,
        w,
        "--legend",
        "a",
        "b",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(coloured_pixels(&out, mmrun::viz::class_colour(1)).0 > 100);

    let (code, text) = mmrun(&["plot", w, "--keys", "loss", "loss_foo", "--out", "x.png"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("`loss_foo`") && text.contains("loss_cls"),
        "{text}"
    );

    // The planned schedule, before training, against what the run logged at every iteration.
    let plot = dir.path().join("schedule.png");
    let mut args = vec![
        "plan".to_string(),
        "pipelines/quickstart.recipe".into(),
        "--schedule-plot".into(),
        plot.display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    for s in &sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let (code, text) = mmrun(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{text}");
    let json = text.lines().find(|l| l.starts_with('{')).unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let s = &v["schedule"];
    assert_eq!(
        (s["iters_per_epoch"].as_u64(), s["max_iters"].as_u64()),
        (Some(4), Some(12))
    );
    let lr: Vec<f64> = serde_json::from_value(s["lr"].clone()).unwrap();
    let train: Vec<_> = log_records(&work)
        .into_iter()
        .filter(|r| r["mode"] == "train")
        .collect();
    assert_eq!(train.len(), 10, "one line per iteration");
    for r in &train {
        let at = (r["epoch"].as_u64().unwrap() - 1) * 4 + r["iter"].as_u64().unwrap() - 1;
        assert_eq!(
            lr[at as usize],
            r["lr"].as_f64().unwrap(),
            "iteration {at}: {r}"
        );
    }
    // Its shape: a linear warmup over 4 iterations from 0.1 × lr, flat, ×0.1 at epoch 2.
    assert!(
        (lr[0] - 0.002).abs() < 1e-12 && lr[0] < lr[1] && lr[2] < lr[3],
        "{lr:?}"
    );
    assert_eq!((lr[4], lr[7]), (0.02, 0.02), "{lr:?}");
    assert!((lr[8] - 0.002).abs() < 1e-12 && lr[11] == lr[8], "{lr:?}");
    assert!(
        s["momentum"].is_null(),
        "the quickstart schedules no momentum"
    );
    let (n, size) = coloured_pixels(&plot, line);
    assert_eq!(size, (900, 300));
    assert!(n > 100, "the lr line is drawn ({n} pixels)");
}

#[test]
fn schedule_plot_draws_momentum_when_the_recipe_schedules_it() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("schedule.png");
    let (code, text) = mmrun(&[
        "plan",
        "pipelines/quickstart.recipe",
        "--set",
        "schedule.lr.warmup=none",
        "--set",
        "schedule.lr.main=cyclic { target_ratio = [10.0, 0.0001], cyclic_times = 1, step_ratio_up = 0.4 }",
        "--set",
        "schedule.momentum.main=cyclic { target_ratio = [0.85, 1.0], cyclic_times = 1, step_ratio_up = 0.4 }",
        "--iters-per-epoch",
        "10",
        "--schedule-plot",
        plot.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{text}");
    let json = text.lines().find(|l| l.starts_with('{')).unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let m: Vec<f64> = serde_json::from_value(v["schedule"]["momentum"].clone()).unwrap();
    let lr: Vec<f64> = serde_json::from_value(v["schedule"]["lr"].clone()).unwrap();
    assert_eq!(
        (m.len(), lr.len()),
        (240, 240),
        "24 epochs of 10 iterations"
    );
    // The momentum falls from 0.9 to 0.85 × 0.9 while the lr rises, at 40% of the run.
    assert_eq!(m[0], 0.9);
    let low = m.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((low - 0.765).abs() < 1e-9, "{low}");
    let top = (lr.iter().enumerate())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert!(
        (90..=100).contains(&top),
        "the lr peaks at 40% of the run: {top}"
    );
    let (_, size) = coloured_pixels(&plot, mmrun::viz::class_colour(0));
    assert_eq!(size, (900, 600), "an lr and a momentum chart");
}
