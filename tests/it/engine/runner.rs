//! Whole runs of the Runner with the stand-in model: logging, evaluation, checkpoints,
//! hook order, exact resume (in process and across a real `kill -9`), NaN guard, early
//! stopping, gradient accumulation, val phases.
//!
//! Over 600 lines: each test is one whole run with its own checks; they share the stand-in
//! model and the run helpers at the top.

use super::standin::Linear;
use mmrun::engine::checkpoint::{KeepPolicy, load_checkpoint, resolve_resume};
use mmrun::engine::hooks::tensorboard::decode_records;
use mmrun::engine::hooks::*;
use mmrun::engine::optim::{Optimizer, OptimizerConfig, Paramwise};
use mmrun::engine::params::ParamSet;
use mmrun::engine::{RunConfig, RunError, Runner};
use mmrun::util::units::Period;
use serde_json::{Value, json};
use std::path::Path;

pub struct Setup {
    pub epochs: u64,
    pub cumulative_iters: u64,
    pub ema: bool,
    pub interrupt_at: Option<u64>,
    pub save_best: Option<&'static str>,
    pub log_every: u64,
    pub lr: f64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            epochs: 4,
            cumulative_iters: 1,
            ema: false,
            interrupt_at: None,
            save_best: Some("r2"),
            log_every: 2,
            lr: 0.1,
        }
    }
}

/// Interrupts the run (as Ctrl-C would) after a given iteration.
struct InterruptAt(u64);
impl Hook for InterruptAt {
    fn name(&self) -> &str {
        "interrupt_at"
    }
    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        if point == HookPoint::AfterTrainIter && cx.run.progress.iter + 1 == self.0 {
            cx.run.interrupt = true;
        }
        Ok(())
    }
}

pub fn hooks(s: &Setup) -> Vec<Box<dyn Hook>> {
    let step = |p: &Progress, base: f64| if p.epoch >= 2 { base * 0.1 } else { base };
    let mut h: Vec<Box<dyn Hook>> = vec![
        Box::new(
            LogHook::new(LogConfig {
                every: Period::iters(s.log_every),
                to: vec![LogSink::Text, LogSink::Json, LogSink::Tensorboard],
                stdout: false,
                progress_bar: false,
                ignore_last: true,
            })
            .unwrap(),
        ),
        Box::new(NanGuardHook),
        Box::new(
            OptimizerHook::new(OptimizerHookConfig {
                grad_clip: Some(ClipConfig {
                    max_norm: Some(10.0),
                    norm_type: 2.0,
                    clip_value: None,
                }),
                cumulative_iters: s.cumulative_iters,
            })
            .unwrap(),
        ),
        Box::new(LrHook::new(Some(Box::new(step)), None)),
        Box::new(SamplerSeedHook),
        Box::new(EvalHook::new(super::hook_defaults::<EvalConfig>("eval")).unwrap()),
        Box::new(
            CheckpointHook::new(CheckpointConfig {
                max_keep_ckpts: 2,
                save_best: s.save_best.map(String::from),
                ..super::hook_defaults("checkpoint")
            })
            .unwrap(),
        ),
    ];
    if s.ema {
        h.push(Box::new(
            EmaHook::new(EmaConfig {
                momentum: 0.1,
                interval: 1,
                warm_up: 10,
            })
            .unwrap(),
        ));
    }
    if let Some(i) = s.interrupt_at {
        h.push(Box::new(InterruptAt(i)));
    }
    h
}

pub fn sgd(lr: f64) -> OptimizerConfig {
    OptimizerConfig::Sgd {
        lr,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 1e-3,
        nesterov: false,
        paramwise: Paramwise::default(),
    }
}

pub fn config(dir: &Path, s: &Setup) -> RunConfig {
    let mut c = RunConfig::new(Period::epochs(s.epochs), dir);
    c.checkpoint.keep = KeepPolicy::Last(2);
    c
}

pub fn runner<'t>(task: &'t mut Linear, dir: &Path, s: &Setup) -> Runner<'t> {
    let params = Linear::params();
    let opt = Optimizer::new(sgd(s.lr), &params).unwrap();
    Runner::new(task, params, opt, hooks(s), config(dir, s)).unwrap()
}

pub fn json_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Log lines without the fields that measure wall time or memory.
pub fn deterministic(mut v: Value) -> Value {
    for k in ["time", "data_time", "memory"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

fn values(p: &ParamSet) -> Vec<Vec<u32>> {
    p.iter()
        .map(|q| q.values().iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn trains_logs_evaluates_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let mut r = runner(&mut task, dir.path(), &Setup::default());
    assert_eq!(
        r.hook_names(),
        [
            "nan_guard",
            "optimizer",
            "lr",
            "sampler_seed",
            "eval",
            "checkpoint",
            "log"
        ]
    );
    let summary = r.run().unwrap();
    assert_eq!((summary.iters, summary.epochs), (32, 4));
    assert_eq!(r.params().get("fc.frozen").unwrap().values(), [7.0]);
    let lines = json_lines(dir.path());
    let train: Vec<&Value> = lines.iter().filter(|l| l["mode"] == "train").collect();
    let val: Vec<&Value> = lines.iter().filter(|l| l["mode"] == "val").collect();
    assert_eq!(train.len(), 16);
    assert_eq!(val.len(), 4);
    for k in [
        "epoch",
        "iter",
        "lr",
        "time",
        "data_time",
        "memory",
        "loss",
        "loss_mse",
        "loss_reg",
        "grad_norm",
    ] {
        assert!(
            train[0].get(k).is_some(),
            "train line lacks {k}: {}",
            train[0]
        );
    }
    assert_eq!(
        (train[0]["epoch"].clone(), train[0]["iter"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(train[15]["lr"].as_f64().unwrap(), 0.1 * 0.1);
    let first = train[0]["loss"].as_f64().unwrap();
    let last = train[15]["loss"].as_f64().unwrap();
    assert!(last < first * 0.2, "loss did not fall: {first} -> {last}");
    assert!(val[3]["r2"].as_f64().unwrap() > 0.9, "{}", val[3]);
    // max_keep_ckpts = 2, plus the best checkpoint.
    let ck = dir.path().join("checkpoints");
    assert!(ck.join("epoch_3").is_dir() && ck.join("epoch_4").is_dir());
    assert!(!ck.join("epoch_2").exists());
    let best = summary.best.unwrap();
    assert_eq!(best.0, "r2");
    let best_dir = ck.join(format!("best_r2_epoch_{}", best.2 / 8));
    assert!(best_dir.is_dir(), "{best_dir:?}");
    let text = std::fs::read_to_string(dir.path().join("log.txt")).unwrap();
    assert!(
        text.contains("Epoch [1][2/8]") && text.contains("sanity evaluation"),
        "{text}"
    );
    // TensorBoard: a version event then one event per logged line.
    let tb = std::fs::read_dir(dir.path().join("tf_logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let records = decode_records(&std::fs::read(tb.path()).unwrap()).unwrap();
    assert_eq!(records.len(), 1 + 16 + 4);
    assert!(records[1].windows(10).any(|w| w == b"train/loss"));
}

#[test]
fn resume_after_interrupt_continues_exactly() {
    for (cumulative_iters, ema, at) in [(1, false, 13), (3, true, 13), (3, true, 16)] {
        let s = Setup {
            cumulative_iters,
            ema,
            ..Default::default()
        };
        let a = tempfile::tempdir().unwrap();
        let mut task = Linear::new(32, 4);
        let mut r = runner(&mut task, a.path(), &s);
        r.run().unwrap();
        let (want, want_ema) = (
            values(r.params()),
            values(r.ema().unwrap_or(&ParamSet::new())),
        );

        let b = tempfile::tempdir().unwrap();
        let mut task = Linear::new(32, 4);
        let interrupted = Setup {
            interrupt_at: Some(at),
            ..s
        };
        let err = runner(&mut task, b.path(), &interrupted).run().unwrap_err();
        let RunError::Interrupted { iter, checkpoint } = &err else {
            panic!("expected an interrupt, got {err}");
        };
        assert_eq!(*iter, at);
        assert!(err.to_string().contains("--resume"), "{err}");
        let interrupted_lines = json_lines(b.path()).len();

        let mut task = Linear::new(32, 4);
        let mut r = runner(
            &mut task,
            b.path(),
            &Setup {
                cumulative_iters,
                ema,
                ..Default::default()
            },
        );
        let (path, data) = resolve_resume("auto", &b.path().join("checkpoints"))
            .unwrap()
            .unwrap();
        assert_eq!(&path, checkpoint);
        r.resume(&path, data).unwrap();
        r.run().unwrap();
        assert_eq!(
            values(r.params()),
            want,
            "weights differ (accumulate {cumulative_iters}, at {at})"
        );
        assert_eq!(
            values(r.ema().unwrap_or(&ParamSet::new())),
            want_ema,
            "EMA differs"
        );
        let la: Vec<Value> = json_lines(a.path())
            .into_iter()
            .map(deterministic)
            .collect();
        let lb: Vec<Value> = json_lines(b.path())
            .into_iter()
            .map(deterministic)
            .collect();
        assert_eq!(lb[..interrupted_lines], la[..interrupted_lines]);
        assert_eq!(lb[interrupted_lines..], la[interrupted_lines..]);
    }
}

struct Named(&'static str, Vec<String>, Vec<String>);
impl Hook for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn before(&self) -> Vec<String> {
        self.1.clone()
    }
    fn after(&self) -> Vec<String> {
        self.2.clone()
    }
    fn on(&mut self, _: HookPoint, _: &mut Ctx) -> Result<(), HookError> {
        Ok(())
    }
}

#[test]
fn hooks_are_ordered_by_name_with_clear_errors() {
    let names = |hs: Vec<Box<dyn Hook>>| -> Result<Vec<String>, String> {
        order_hooks(hs)
            .map(|v| v.iter().map(|h| h.name().to_string()).collect())
            .map_err(|e| e.to_string())
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let got = names(vec![
        Box::new(Named("log", vec![], vec![])),
        Box::new(Named("mine", s(&["lr"]), s(&["optimizer"]))),
        Box::new(Named("lr", vec![], vec![])),
        Box::new(Named("optimizer", vec![], vec![])),
        Box::new(Named("last_word", vec![], s(&["log"]))),
    ])
    .unwrap();
    assert_eq!(got, ["optimizer", "mine", "lr", "log", "last_word"]);
    let e = names(vec![
        Box::new(Named("a", s(&["b"]), vec![])),
        Box::new(Named("b", s(&["a"]), vec![])),
    ])
    .unwrap_err();
    assert!(
        e.contains("cycle") && e.contains('a') && e.contains('b'),
        "{e}"
    );
    let e = names(vec![Box::new(Named("a", s(&["nope"]), vec![]))]).unwrap_err();
    assert!(e.contains("`nope`"), "{e}");
    let e = names(vec![Box::new(NanGuardHook), Box::new(NanGuardHook)]).unwrap_err();
    assert!(e.contains("twice"), "{e}");
}

#[test]
fn nan_guard_names_iteration_and_term_and_keeps_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    task.nan_at = Some(10);
    let mut r = runner(&mut task, dir.path(), &Setup::default());
    let err = r.run().unwrap_err().to_string();
    assert!(
        err.contains("loss_mse is NaN at iteration 11 (epoch 2, iter 3"),
        "{err}"
    );
    assert!(
        err.contains("last good checkpoint") && err.contains("epoch_1"),
        "{err}"
    );
    // The weights were not touched by the bad iteration: they are those after iteration 10,
    // all finite.
    assert!(
        r.params()
            .iter()
            .all(|p| p.values().iter().all(|v| v.is_finite()))
    );
    load_checkpoint(&dir.path().join("checkpoints/epoch_1")).unwrap();
}

#[test]
fn save_best_names_an_unknown_metric_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let s = Setup {
        save_best: Some("iou"),
        ..Default::default()
    };
    let mut r = runner(&mut task, dir.path(), &s);
    let err = r.run().unwrap_err().to_string();
    assert!(
        err.contains("`iou`") && err.contains("bbox_mAP, mse, r2"),
        "{err}"
    );
    assert_eq!(r.iters_done(), 0);
}

#[test]
fn a_non_finite_score_never_becomes_the_best_and_every_checkpoint_loads() {
    for diverged in [f64::INFINITY, f64::NAN] {
        let dir = tempfile::tempdir().unwrap();
        let mut task = Linear::new(32, 4);
        // The first evaluation is the sanity pass before training; the second is epoch 1's.
        task.r2_from_eval = Some((2, diverged));
        let s = Setup::default();
        let mut r = runner(&mut task, dir.path(), &s);
        let summary = r.run().unwrap();
        let (metric, best, _) = summary.best.expect("epoch 1 scored a finite best");
        assert_eq!(metric, "r2");
        assert!(best.is_finite(), "{diverged}: best {best}");
        for e in std::fs::read_dir(dir.path().join("checkpoints")).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                mmrun::engine::checkpoint::load_checkpoint(&path)
                    .unwrap_or_else(|e| panic!("{diverged}: {e}"));
            }
        }
    }
}

#[test]
fn early_stopping_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let s = Setup {
        epochs: 10,
        lr: 0.0,
        ..Default::default()
    };
    let params = Linear::params();
    let opt = Optimizer::new(sgd(s.lr), &params).unwrap();
    let mut hs = hooks(&s);
    hs.push(Box::new(
        EarlyStopHook::new(EarlyStopConfig {
            monitor: "mse".into(),
            rule: None,
            patience: 2,
            min_delta: 0.0,
        })
        .unwrap(),
    ));
    let mut r = Runner::new(&mut task, params, opt, hs, config(dir.path(), &s)).unwrap();
    let summary = r.run().unwrap();
    assert_eq!(summary.epochs, 3, "{summary:?}");
    assert!(summary.stopped.unwrap().contains("early stopping"));
}

#[test]
fn gradient_accumulation_equals_the_larger_batch() {
    let run = |batch: usize, cumulative_iters: u64| {
        let dir = tempfile::tempdir().unwrap();
        let mut task = Linear::new(32, batch);
        let params = Linear::params();
        let cfg = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            paramwise: Paramwise::default(),
        };
        let opt = Optimizer::new(cfg, &params).unwrap();
        let hs: Vec<Box<dyn Hook>> = vec![
            Box::new(
                OptimizerHook::new(OptimizerHookConfig {
                    grad_clip: None,
                    cumulative_iters,
                })
                .unwrap(),
            ),
            Box::new(SamplerSeedHook),
        ];
        let c = RunConfig::new(Period::epochs(2), dir.path());
        let mut r = Runner::new(&mut task, params, opt, hs, c).unwrap();
        r.run().unwrap();
        r.params().get("fc.weight").unwrap().values().to_vec()
    };
    let big = run(8, 1);
    let acc = run(4, 2);
    for (a, b) in acc.iter().zip(&big) {
        assert!((a - b).abs() < 1e-6, "{acc:?} vs {big:?}");
    }
    assert_ne!(run(4, 1), big);
}

#[test]
fn iteration_based_run_with_val_phases() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let params = Linear::params();
    let opt = Optimizer::new(sgd(0.05), &params).unwrap();
    let hs: Vec<Box<dyn Hook>> = vec![
        Box::new(
            OptimizerHook::new(super::hook_defaults::<OptimizerHookConfig>("optimizer")).unwrap(),
        ),
        Box::new(SamplerSeedHook),
        Box::new(
            LogHook::new(LogConfig {
                every: Period::iters(5),
                stdout: false,
                ..super::hook_defaults("log")
            })
            .unwrap(),
        ),
    ];
    let mut c = RunConfig::new(Period::iters(20), dir.path());
    c.workflow = vec![
        (Mode::Train, Period::iters(10)),
        (Mode::Val, Period::epochs(1)),
    ];
    let mut r = Runner::new(&mut task, params, opt, hs, c).unwrap();
    let summary = r.run().unwrap();
    assert_eq!(summary.iters, 20);
    let lines = json_lines(dir.path());
    let modes: Vec<&str> = lines.iter().map(|l| l["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["train", "train", "val", "train", "train", "val"]);
    assert_eq!(lines[1]["iter"], 10);
    assert!(
        lines[2]["loss_mse"].as_f64().unwrap() < lines[5]["loss_mse"].as_f64().unwrap() * 100.0
    );
}

#[test]
fn load_from_reports_missing_and_unexpected_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let mut r = runner(
        &mut task,
        dir.path(),
        &Setup {
            epochs: 1,
            ..Default::default()
        },
    );
    r.run().unwrap();
    let mut data = load_checkpoint(&dir.path().join("checkpoints/epoch_1")).unwrap();
    data.weights.remove("fc.bias");
    let extra = data.weights["fc.weight"].clone();
    data.weights.insert("head.extra".into(), extra);
    let mut task = Linear::new(32, 4);
    let mut r2 = runner(&mut task, dir.path(), &Setup::default());
    let lax = mmrun::model::weights::LoadRule {
        strict: false,
        ..mmrun::model::weights::LoadRule::exact()
    };
    let report = r2.load_weights(&data.weights, &lax).unwrap();
    assert_eq!(report.missing, ["fc.bias"]);
    assert_eq!(report.unexpected, ["head.extra"]);
    assert_eq!(
        r2.params().get("fc.weight").unwrap().values(),
        r.params().get("fc.weight").unwrap().values()
    );
    // Resume refuses a partial checkpoint.
    let err = r2.resume(Path::new("x"), data).unwrap_err().to_string();
    assert!(
        err.contains("missing keys") && err.contains("load_from"),
        "{err}"
    );
}

#[test]
fn eval_at_points_and_log_without_ignore_last() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Linear::new(32, 4);
    let params = Linear::params();
    let opt = Optimizer::new(sgd(0.05), &params).unwrap();
    let hs: Vec<Box<dyn Hook>> = vec![
        Box::new(
            OptimizerHook::new(super::hook_defaults::<OptimizerHookConfig>("optimizer")).unwrap(),
        ),
        Box::new(
            EvalHook::new(EvalConfig {
                at: Some(vec![Period::epochs(1), Period::epochs(3)]),
                sanity_batches: 0,
                ..super::hook_defaults("eval")
            })
            .unwrap(),
        ),
        Box::new(
            LogHook::new(LogConfig {
                every: Period::iters(3),
                stdout: false,
                ignore_last: false,
                ..super::hook_defaults("log")
            })
            .unwrap(),
        ),
    ];
    let c = RunConfig::new(Period::epochs(3), dir.path());
    Runner::new(&mut task, params, opt, hs, c)
        .unwrap()
        .run()
        .unwrap();
    let lines = json_lines(dir.path());
    let at: Vec<(String, u64, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["mode"].as_str().unwrap().to_string(),
                l["epoch"].as_u64().unwrap(),
                l["iter"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64, u64)> = [
        ("train", 1, 3),
        ("train", 1, 6),
        ("train", 1, 8),
        ("val", 1, 8),
        ("train", 2, 3),
        ("train", 2, 6),
        ("train", 2, 8),
        ("train", 3, 3),
        ("train", 3, 6),
        ("train", 3, 8),
        ("val", 3, 8),
    ]
    .iter()
    .map(|(m, e, i)| (m.to_string(), *e, *i))
    .collect();
    assert_eq!(at, want);
}
