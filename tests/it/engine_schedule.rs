//! LR and momentum schedules against mmcv 1.7.2's own hook code (run live by
//! `tests/fixtures/sched/mmcv_ref.py`), plus config errors, checks and the custom-expression
//! JIT against its interpreter.
//!
//! Over 600 lines: one case table per mmcv policy against the live reference; the cases are
//! the content.

use mmrun::schedule::{Quantity, RunLength, Schedule, Schedules, check};
use mmrun::util::units::Period;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

/// One schedule, in our config form and as the mmcv hook that defines it.
struct Case {
    name: &'static str,
    quantity: Quantity,
    ours: Value,
    hook: &'static str,
    kwargs: Value,
    epochs: u64,
    ipe: u64,
    bases: Vec<f64>,
    optim: &'static str,
}

fn lr(name: &'static str, ours: Value, hook: &'static str, kwargs: Value) -> Case {
    Case {
        name,
        quantity: Quantity::Lr,
        ours,
        hook,
        kwargs,
        epochs: 6,
        ipe: 7,
        bases: vec![0.02, 0.005],
        optim: "sgd",
    }
}

fn mom(name: &'static str, ours: Value, hook: &'static str, kwargs: Value) -> Case {
    Case {
        quantity: Quantity::Momentum,
        bases: vec![0.9, 0.95],
        ..lr(name, ours, hook, kwargs)
    }
}

/// The table: every mmcv policy, by epoch and by iter, each warmup kind, mmcv's inline
/// `lr_config` form and the recipe's phase form. Runs are 6 epochs of 7 iters, so epoch and
/// iter boundaries do not line up with round numbers.
fn cases() -> Vec<Case> {
    let mut v = vec![
        lr(
            "step at epochs, linear warmup (recipe form)",
            json!({"warmup": {"type": "linear", "duration": "10 iters", "ratio": 0.001},
                   "main": {"type": "step", "at": ["2 epochs", "4 epochs"], "gamma": 0.1}}),
            "StepLrUpdaterHook",
            json!({"step": [2, 4], "gamma": 0.1, "warmup": "linear", "warmup_iters": 10,
                   "warmup_ratio": 0.001}),
        ),
        lr(
            "step interval by iter with min_lr (mmcv form)",
            json!({"type": "step", "step": 10, "by_epoch": false, "gamma": 0.5, "min_lr": 0.003}),
            "StepLrUpdaterHook",
            json!({"step": 10, "by_epoch": false, "gamma": 0.5, "min_lr": 0.003}),
        ),
        lr(
            "step interval by epoch, constant warmup by epoch",
            json!({"type": "multistep", "step": 2, "warmup": "constant", "warmup_iters": 1,
                   "warmup_ratio": 0.3, "warmup_by_epoch": true}),
            "StepLrUpdaterHook",
            json!({"step": 2, "warmup": "constant", "warmup_iters": 1, "warmup_ratio": 0.3,
                   "warmup_by_epoch": true}),
        ),
        lr(
            "step at iters",
            json!({"type": "step", "at": ["9 iters", "30 iters"], "gamma": 0.2}),
            "StepLrUpdaterHook",
            json!({"step": [9, 30], "by_epoch": false, "gamma": 0.2}),
        ),
        lr(
            "exp by epoch, exp warmup",
            json!({"warmup": {"type": "exp", "duration": "12 iters", "ratio": 0.1},
                   "main": {"type": "exp", "gamma": 0.8}}),
            "ExpLrUpdaterHook",
            json!({"gamma": 0.8, "warmup": "exp", "warmup_iters": 12, "warmup_ratio": 0.1}),
        ),
        lr(
            "exp by iter",
            json!({"type": "exp", "gamma": 0.97, "by_epoch": false}),
            "ExpLrUpdaterHook",
            json!({"gamma": 0.97, "by_epoch": false}),
        ),
        lr(
            "poly by epoch",
            json!({"type": "poly", "power": 2.0, "min_lr": 1e-4}),
            "PolyLrUpdaterHook",
            json!({"power": 2.0, "min_lr": 1e-4}),
        ),
        lr(
            "poly by iter, linear warmup",
            json!({"type": "poly", "power": 0.9, "by_epoch": false, "warmup": "linear",
                   "warmup_iters": 8, "warmup_ratio": 0.01}),
            "PolyLrUpdaterHook",
            json!({"power": 0.9, "by_epoch": false, "warmup": "linear", "warmup_iters": 8,
                   "warmup_ratio": 0.01}),
        ),
        lr(
            "inv by iter",
            json!({"type": "inv", "gamma": 0.1, "power": 0.75, "by_epoch": false}),
            "InvLrUpdaterHook",
            json!({"gamma": 0.1, "power": 0.75, "by_epoch": false}),
        ),
        lr(
            "inv by epoch",
            json!({"type": "inv", "gamma": 0.5}),
            "InvLrUpdaterHook",
            json!({"gamma": 0.5}),
        ),
        lr(
            "cosine by epoch, min_lr",
            json!({"type": "cosine", "min_lr": 1e-5}),
            "CosineAnnealingLrUpdaterHook",
            json!({"min_lr": 1e-5}),
        ),
        lr(
            "cosine by iter, min_lr_ratio, linear warmup by epoch",
            json!({"warmup": {"type": "linear", "duration": "1 epoch", "ratio": 0.2},
                   "main": {"type": "cosine_annealing", "min_lr_ratio": 0.01, "by_epoch": false}}),
            "CosineAnnealingLrUpdaterHook",
            json!({"min_lr_ratio": 0.01, "by_epoch": false, "warmup": "linear",
                   "warmup_iters": 1, "warmup_ratio": 0.2, "warmup_by_epoch": true}),
        ),
        lr(
            "flat cosine by epoch",
            json!({"type": "flat_cosine", "start_percent": 0.5, "min_lr_ratio": 0.1}),
            "FlatCosineAnnealingLrUpdaterHook",
            json!({"start_percent": 0.5, "min_lr_ratio": 0.1}),
        ),
        lr(
            // 42 * 0.25 = 10.5: Python rounds half to even (10, not 11).
            "flat cosine by iter, start on a half",
            json!({"type": "flat_cosine_annealing", "start_percent": 0.25, "min_lr": 0.0,
                   "by_epoch": false}),
            "FlatCosineAnnealingLrUpdaterHook",
            json!({"start_percent": 0.25, "min_lr": 0.0, "by_epoch": false}),
        ),
        lr(
            "cosine restart by epoch",
            json!({"type": "cosine_restart", "periods": [2, 4], "restart_weights": [1.0, 0.5],
                   "min_lr": 0.0}),
            "CosineRestartLrUpdaterHook",
            json!({"periods": [2, 4], "restart_weights": [1.0, 0.5], "min_lr": 0.0}),
        ),
        lr(
            "cosine restart by iter, periods as quantities",
            json!({"type": "cosine_restart", "periods": ["20 iters", "22 iters"],
                   "restart_weights": [0.8, 1.0], "min_lr_ratio": 0.1, "by_epoch": false}),
            "CosineRestartLrUpdaterHook",
            json!({"periods": [20, 22], "restart_weights": [0.8, 1.0], "min_lr_ratio": 0.1,
                   "by_epoch": false}),
        ),
        lr(
            "cyclic cos",
            json!({"type": "cyclic", "target_ratio": [10.0, 1e-4], "cyclic_times": 2,
                   "step_ratio_up": 0.4}),
            "CyclicLrUpdaterHook",
            json!({"target_ratio": [10.0, 1e-4], "cyclic_times": 2, "step_ratio_up": 0.4}),
        ),
        lr(
            "cyclic linear with decay, one ratio",
            json!({"type": "cyclic", "target_ratio": 5.0, "cyclic_times": 3, "step_ratio_up": 0.3,
                   "anneal_strategy": "linear", "gamma": 0.5}),
            "CyclicLrUpdaterHook",
            json!({"target_ratio": 5.0, "cyclic_times": 3, "step_ratio_up": 0.3,
                   "anneal_strategy": "linear", "gamma": 0.5}),
        ),
        lr(
            "one cycle cos",
            json!({"type": "one_cycle", "max_lr": 0.1}),
            "OneCycleLrUpdaterHook",
            json!({"max_lr": 0.1}),
        ),
        lr(
            "one cycle three phase linear, per-group max_lr, total_steps",
            json!({"type": "one_cycle", "max_lr": [0.1, 0.05], "total_steps": 50,
                   "pct_start": 0.25, "anneal_strategy": "linear", "div_factor": 10.0,
                   "final_div_factor": 100.0, "three_phase": true}),
            "OneCycleLrUpdaterHook",
            json!({"max_lr": [0.1, 0.05], "total_steps": 50, "pct_start": 0.25,
                   "anneal_strategy": "linear", "div_factor": 10.0, "final_div_factor": 100.0,
                   "three_phase": true}),
        ),
        lr(
            "linear annealing by epoch",
            json!({"type": "linear_annealing", "min_lr": 0.0}),
            "LinearAnnealingLrUpdaterHook",
            json!({"min_lr": 0.0}),
        ),
        lr(
            "constant with exp warmup by iter",
            json!({"type": "constant", "by_epoch": false, "warmup": "exp", "warmup_iters": 9}),
            "FixedLrUpdaterHook",
            json!({"by_epoch": false, "warmup": "exp", "warmup_iters": 9}),
        ),
        lr(
            "custom expression vs mmcv poly (JIT when enabled)",
            json!({"type": "custom", "expr": "base_lr * (1 - progress) ^ 0.9"}),
            "PolyLrUpdaterHook",
            json!({"power": 0.9, "by_epoch": false}),
        ),
        mom(
            "momentum cosine by epoch, linear warmup",
            json!({"warmup": {"type": "linear", "duration": "10 iters"},
                   "main": {"type": "cosine", "min_momentum_ratio": 0.5}}),
            "CosineAnnealingMomentumUpdaterHook",
            json!({"min_momentum_ratio": 0.5, "warmup": "linear", "warmup_iters": 10}),
        ),
        mom(
            "momentum step, constant warmup by iter",
            json!({"type": "step", "step": [2, 4], "min_momentum": 0.3, "warmup": "constant",
                   "warmup_iters": 5, "warmup_ratio": 0.95}),
            "StepMomentumUpdaterHook",
            json!({"step": [2, 4], "min_momentum": 0.3, "warmup": "constant",
                   "warmup_iters": 5, "warmup_ratio": 0.95}),
        ),
        mom(
            "momentum linear annealing by iter, exp warmup",
            json!({"type": "linear_annealing", "min_momentum": 0.5, "by_epoch": false,
                   "warmup": "exp", "warmup_iters": 6}),
            "LinearAnnealingMomentumUpdaterHook",
            json!({"min_momentum": 0.5, "by_epoch": false, "warmup": "exp", "warmup_iters": 6}),
        ),
        mom(
            "momentum cyclic defaults",
            json!({"type": "cyclic", "cyclic_times": 2}),
            "CyclicMomentumUpdaterHook",
            json!({"cyclic_times": 2}),
        ),
        mom(
            "momentum one cycle",
            json!({"type": "one_cycle"}),
            "OneCycleMomentumUpdaterHook",
            json!({}),
        ),
    ];
    let mut adam = mom(
        "momentum one cycle three phase linear on adam betas, per group",
        json!({"type": "one_cycle", "base_momentum": [0.8, 0.85], "max_momentum": 0.9,
               "three_phase": true, "anneal_strategy": "linear", "pct_start": 0.4}),
        "OneCycleMomentumUpdaterHook",
        json!({"base_momentum": [0.8, 0.85], "max_momentum": [0.9, 0.9], "three_phase": true,
               "anneal_strategy": "linear", "pct_start": 0.4}),
    );
    adam.optim = "adam";
    v.push(adam);
    v
}

fn build(c: &Case) -> Schedule {
    let run = RunLength::epochs(c.epochs, c.ipe);
    Schedule::from_config(
        c.quantity,
        &crate::support::schedule(&c.ours),
        &run,
        "schedule.x",
    )
    .unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

/// Runs mmcv's hooks on every case; `None` (with the reason printed) when mmcv or Python
/// is unavailable.
fn mmcv_values(cases: &[Case]) -> Option<Vec<Vec<Vec<f64>>>> {
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"hook": c.hook, "quantity": c.quantity, "kwargs": c.kwargs,
                   "epochs": c.epochs, "ipe": c.ipe, "bases": c.bases, "optim": c.optim})
        })
        .collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sched/mmcv_ref.py"
    );
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/mmcv");
    let child = Command::new("python3")
        .args([script, cache])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIP mmcv reference: cannot run python3: {e}");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        eprintln!("SKIP mmcv reference: {}", stderr.trim());
        return None;
    }
    assert!(out.status.success(), "mmcv_ref.py failed:\n{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(serde_json::from_value(v["values"].clone()).unwrap())
}

#[test]
fn every_policy_matches_mmcv_hooks() {
    let cases = cases();
    let Some(reference) = mmcv_values(&cases) else {
        return;
    };
    let mut failures = Vec::new();
    for (c, want) in cases.iter().zip(&reference) {
        let s = build(c);
        assert_eq!(want.len() as u64, c.epochs * c.ipe, "{}", c.name);
        for (iter, row) in want.iter().enumerate() {
            let iter = iter as u64;
            let epoch = iter / c.ipe;
            for (g, (&base, &w)) in c.bases.iter().zip(row).enumerate() {
                let got = s.value(g, base, epoch, iter);
                // Same formulas in the same operation order on the same machine's libm:
                // expect the very same double.
                if got.to_bits() != w.to_bits() {
                    failures.push(format!(
                        "{}: epoch {epoch} iter {iter} group {g}: mmrun {got:e}, mmcv {w:e}",
                        c.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Points computed by hand from mmcv's formulas, so the suite checks the common schedule
/// even where the live reference cannot be fetched. mmcv 1.7.2 lr_updater.py:
/// `StepLrUpdaterHook.get_lr` (`base_lr * gamma ** exp`) and `get_warmup_lr` 'linear'
/// (`k = (1 - cur_iters / warmup_iters) * (1 - warmup_ratio)`, `lr * (1 - k)`).
#[test]
fn schedule_1x_by_hand() {
    let cfg = json!({"warmup": {"type": "linear", "duration": "500 iters", "ratio": 0.001},
                     "main": {"type": "step", "at": ["8 epochs", "11 epochs"], "gamma": 0.1}});
    let s = Schedule::from_config(
        Quantity::Lr,
        &cfg,
        &RunLength::epochs(12, 1000),
        "schedule.lr",
    )
    .unwrap();
    let at = |epoch, iter| s.value(0, 0.02, epoch, iter);
    // k = 1 * (1 - 0.001) and 1 - k is 0.001 only to within rounding.
    assert!((at(0, 0) - 0.02 * 0.001).abs() < 1e-18);
    assert!((at(0, 250) - 0.02 * (1.0 - 0.5 * 0.999)).abs() < 1e-18);
    assert_eq!(at(0, 500), 0.02);
    assert_eq!(at(7, 7999), 0.02);
    assert_eq!(at(8, 8000), 0.02 * 0.1);
    assert_eq!(at(11, 11000), 0.02 * 0.1f64.powf(2.0));
}

#[test]
fn sequential_phases_use_their_own_clock() {
    // 2 epochs flat, then cosine over the remaining 4 epochs (by epoch) to 0.
    let cfg = json!({"main": [{"type": "constant", "duration": "2 epochs"},
                              {"type": "cosine", "min_lr": 0.0}]});
    let cfg = crate::support::schedule(&cfg);
    let s = Schedule::from_config(Quantity::Lr, &cfg, &RunLength::epochs(6, 10), "schedule.lr")
        .unwrap();
    assert_eq!(s.value(0, 1.0, 1, 19), 1.0);
    assert_eq!(s.value(0, 1.0, 2, 20), 1.0); // cosine at local epoch 0
    let want = 0.5 * (std::f64::consts::PI * 2.0 / 4.0).cos() + 0.5;
    assert!((s.value(0, 1.0, 4, 45) - want).abs() < 1e-15);
}

fn errors_of(cfg: Value, run: RunLength) -> String {
    match Schedules::from_config(&crate::support::schedule(&cfg), &run, "schedule") {
        Ok(_) => panic!("expected an error for {cfg}"),
        Err(es) => es
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn config_errors_name_the_path_and_key() {
    let run = RunLength::epochs(12, 100);
    let e = errors_of(
        json!({"lr": {"type": "step", "at": ["8 epochs"], "gama": 0.1}}),
        run,
    );
    assert!(e.starts_with("schedule.lr: unknown field `gama`"), "{e}");
    let e = errors_of(json!({"lr": {"type": "cosin", "min_lr": 0}}), run);
    assert!(e.contains("unknown variant `cosin`"), "{e}");
    let e = errors_of(
        json!({"lr": {"warmup": {"type": "linear", "duration": "5 days"}, "main": {"type": "constant"}}}),
        run,
    );
    assert!(
        e.starts_with("schedule.lr.warmup:") && e.contains("unknown unit `days`"),
        "{e}"
    );
    let e = errors_of(json!({"lr": {"type": "cosine"}}), run);
    assert!(
        e.contains("exactly one of `min_lr` and `min_lr_ratio`"),
        "{e}"
    );
    let e = errors_of(json!({"momentum": {"type": "cosine", "min_lr": 0.1}}), run);
    assert!(e.contains("min_momentum"), "{e}");
    let e = errors_of(
        json!({"lr": {"type": "one_cycle", "max_lr": 0.1, "by_epoch": true}}),
        run,
    );
    assert!(e.starts_with("schedule.lr.by_epoch"), "{e}");
    let e = errors_of(
        json!({"lr": {"type": "custom", "expr": "base_lr * (1 - progres)"}}),
        run,
    );
    assert!(
        e.starts_with("schedule.lr.expr: unknown variable `progres`"),
        "{e}"
    );
    let e = errors_of(
        json!({"lr": {"type": "cosine_restart", "periods": [4, 4], "min_lr": 0}}),
        run,
    );
    assert!(
        e.starts_with("schedule.lr.periods") && e.contains("cover 8 epochs"),
        "{e}"
    );
    let e = errors_of(
        json!({"lr": {"main": [{"type": "constant"}, {"type": "exp", "gamma": 0.9}]}}),
        run,
    );
    assert!(
        e.starts_with("schedule.lr.main[0]") && e.contains("duration"),
        "{e}"
    );
    let e = errors_of(
        json!({"lr": {"type": "constant"}, "weight_decay": {"type": "constant"}}),
        run,
    );
    assert!(
        e.contains("schedule.weight_decay: unknown scheduled quantity"),
        "{e}"
    );
    let e = errors_of(
        json!({"lr": {"type": "constant", "duration": "6 epochs"}}),
        run,
    );
    assert!(
        e.starts_with("schedule.lr.duration: the phases end at iter 600"),
        "{e}"
    );
    let e = errors_of(
        json!({"lr": {"type": "custom", "expr": "base_lr / progress"}}),
        run,
    );
    assert!(
        e.starts_with("schedule.lr.expr: the expression gives inf at epoch 0, iter 0"),
        "{e}"
    );
    let e = errors_of(json!({"lr": {"type": "one_cycle", "max_lr": []}}), run);
    assert!(e.starts_with("schedule.lr.max_lr"), "{e}");
    // 0.1 * 10 - 1 = 0: the first phase has no length (mmcv: ZeroDivisionError at iter 0).
    let e = errors_of(
        json!({"lr": {"type": "one_cycle", "max_lr": 0.1, "pct_start": 0.1}}),
        RunLength::iters(10, 5),
    );
    assert!(e.starts_with("schedule.lr.pct_start"), "{e}");
    let e = errors_of(
        json!({"lr": {"type": "step", "step": [8], "at": ["8 epochs"]}}),
        run,
    );
    assert!(e.contains("milestones once"), "{e}");
}

#[test]
fn one_cycle_group_lists_are_checked_against_the_optimizer() {
    let cfg = json!({"type": "one_cycle", "max_lr": [0.1, 0.2, 0.3]});
    let cfg = crate::support::schedule(&cfg);
    let s = Schedule::from_config(Quantity::Lr, &cfg, &RunLength::epochs(2, 10), "schedule.lr")
        .unwrap();
    assert!(s.check_groups(3).is_ok());
    let e = s.check_groups(2).unwrap_err();
    assert_eq!(e.path, "schedule.lr.max_lr");
}

#[test]
fn check_finds_milestones_outside_the_run_and_long_warmup() {
    let section = json!({
        "lr": {"warmup": {"type": "linear", "duration": "13 epochs", "ratio": 0.001},
               "main": {"type": "step", "at": ["8 epochs", "12 epochs", "900 iters"]}},
        "momentum": {"type": "step", "step": [3, 20]}
    });
    let errs = check(&section, "schedule", Period::epochs(12), None);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    // `900 iters` cannot be compared with 12 epochs without the epoch length.
    assert_eq!(
        paths,
        [
            "schedule.lr.warmup.duration",
            "schedule.lr.main.at[1]",
            "schedule.momentum.step[1]"
        ],
        "{errs:?}"
    );
    let errs = check(&section, "schedule", Period::epochs(12), Some(50));
    assert!(
        errs.iter().any(|e| e.path == "schedule.lr.main.at[2]"),
        "{errs:?}"
    );
    let ok = json!({"lr": {"warmup": {"type": "linear", "duration": "500 iters", "ratio": 0.001},
                           "main": {"type": "step", "at": ["8 epochs", "11 epochs"]}}});
    assert!(check(&ok, "schedule", Period::epochs(12), Some(100)).is_empty());
    assert!(check(&ok, "schedule", Period::epochs(12), None).is_empty());
}

// ---- custom expressions: the JIT against the interpreter ----

#[cfg(feature = "jit")]
mod jit {
    use mmrun::schedule::compiled::compile_expr;
    use mmrun::schedule::expr::{Expr, Vars, parse};
    use proptest::prelude::*;

    const FUNCS1: [&str; 8] = ["cos", "sin", "exp", "log", "sqrt", "abs", "floor", "ceil"];
    const VARS: [&str; 8] = [
        "epoch",
        "iter",
        "progress",
        "base_lr",
        "max_epochs",
        "max_iters",
        "base",
        "base_momentum",
    ];
    const OPS: [&str; 11] = ["+", "-", "*", "/", "^", "<", "<=", ">", ">=", "==", "!="];

    /// Random expression source text (exercising the parser as well).
    fn expr_src() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (0usize..VARS.len()).prop_map(|i| VARS[i].to_string()),
            (-1e3f64..1e3).prop_map(|x| format!("{x:?}")),
            (0u32..5).prop_map(|x| x.to_string()),
        ];
        leaf.prop_recursive(6, 48, 3, |inner| {
            prop_oneof![
                (inner.clone(), 0usize..OPS.len(), inner.clone())
                    .prop_map(|(a, o, b)| format!("({a} {} {b})", OPS[o])),
                (0usize..FUNCS1.len(), inner.clone())
                    .prop_map(|(f, a)| format!("{}({a})", FUNCS1[f])),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("min({a}, {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("max({a}, {b})")),
                inner.clone().prop_map(|a| format!("-{a}")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(c, a, b)| format!("if({c}, {a}, {b})")),
            ]
        })
    }

    fn vars() -> impl Strategy<Value = Vars> {
        (
            0u32..100,
            0u32..100_000,
            0.0f64..1.0,
            -1.0f64..1.0,
            1u32..100,
            1u32..100_000,
        )
            .prop_map(|(e, i, p, b, me, mi)| Vars {
                epoch: e as f64,
                iter: i as f64,
                progress: p,
                base: b,
                max_epochs: me as f64,
                max_iters: mi as f64,
            })
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn jit_agrees_with_interpreter(src in expr_src(), inputs in prop::collection::vec(vars(), 8)) {
            let e: Expr = parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
            let c = compile_expr(&e).unwrap();
            for v in &inputs {
                let (j, i) = (c.call(v), e.eval(v));
                prop_assert!(same(j, i), "{src} at {v:?}: jit {j:e}, interpreter {i:e}");
            }
        }
    }

    proptest! {
        /// Any text: an error at a valid byte offset, never a panic (the recipe checker
        /// turns the offset into a span).
        #[test]
        fn parse_never_panics(src in "[0-9a-z_ ().,+*/^<>=!é-]{0,40}") {
            if let Err(e) = parse(&src) {
                prop_assert!(e.offset <= src.len() && src.is_char_boundary(e.offset), "{e:?}");
            }
        }
    }

    #[test]
    fn nan_and_signed_zero_edges() {
        for src in [
            "min(0 * -1, 0)",
            "max(-0 * 1, 0)",
            "min(log(-1), 1)",
            "if(log(-1), 1, 2)",
            "log(-1) != log(-1)",
            "log(-1) == log(-1)",
            "-0 * 1",
        ] {
            let e = parse(src).unwrap();
            let c = compile_expr(&e).unwrap();
            let v = Vars::default();
            assert!(
                same(c.call(&v), e.eval(&v)),
                "{src}: {} vs {}",
                c.call(&v),
                e.eval(&v)
            );
        }
    }
}

/// The registry's defaults (what a checked recipe hands the engine) build into schedules,
/// so the registry and this module cannot drift apart.
#[test]
fn registry_policy_defaults_build() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Schedule>();
    use mmrun::registry::{Category, find, instance_defaults, names};
    let run = RunLength::epochs(12, 10);
    let mut warmup = instance_defaults(find(Category::Warmup, "linear").unwrap());
    warmup["duration"] = json!("10 iters");
    for name in names(Category::Policy) {
        let mut main = instance_defaults(find(Category::Policy, name).unwrap());
        let required: &[(&str, Value)] = match name {
            "step" => &[("at", json!(["8 epochs", "11 epochs"]))],
            "exp" => &[("gamma", json!(0.9))],
            "inv" => &[("gamma", json!(0.1))],
            "cosine" | "flat_cosine" | "linear_annealing" => &[("min_lr", json!(0.0))],
            "cosine_restart" => &[
                ("periods", json!(["6 epochs", "6 epochs"])),
                ("min_lr", json!(0.0)),
            ],
            "one_cycle" => &[("max_lr", json!(0.1))],
            "custom" => &[("expr", json!("base_lr * (1 - progress)"))],
            _ => &[],
        };
        for (k, v) in required {
            main[*k] = v.clone();
        }
        let cfg = json!({"warmup": warmup, "main": main});
        let s = Schedule::from_config(Quantity::Lr, &cfg, &run, "schedule.lr");
        assert!(
            s.is_ok(),
            "registry `{name}` defaults: {:?}\n{cfg}",
            s.err()
        );
    }
}
