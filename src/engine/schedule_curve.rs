//! A planned run's learning rate (and momentum, when scheduled) at every training iteration,
//! warmup included, before anything trains — what mmcv's LR visualisation tools show. The
//! values come from the pieces a run is built from: the training setup (`setup`, so
//! `auto_scale_lr` applies), the optimizer's base values, the schedules laid over the run's
//! length, and the `lr` hook's own [`LrHook::values_at`]; nothing here knows a policy.

use crate::data::{BadSampleLog, BatchSampler, DataConfig};
use crate::engine::hooks::{self, LrHook, Progress};
use crate::engine::optim::Optimizer;
use crate::engine::params::ParamSet;
use crate::engine::setup::{TrainingSpec, build_training};
use crate::schedule::RunLength;
use crate::util::units::PeriodUnit;

/// The scheduled values of a run, one per training iteration (0-based, as the runner counts).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleCurve {
    pub iters_per_epoch: u64,
    pub max_iters: u64,
    pub by_epoch: bool,
    /// The learning rate at each iteration (the base value where nothing schedules it).
    pub lr: Vec<f64>,
    /// The momentum at each iteration, when the recipe schedules it.
    pub momentum: Option<Vec<f64>>,
}

/// The most iterations sampled: a curve longer than this is a mistake in the inputs (the
/// picture has far fewer pixels), refused rather than filling memory.
pub const MAX_ITERS: u64 = 20_000_000;

/// Iterations per epoch of the recipe's train loader for `world` ranks: the train set's
/// annotations are read (no images) and batched by the recipe's sampler, as `exec` does.
pub fn train_iters_per_epoch(data: &DataConfig, world: usize, seed: u64) -> Result<u64, String> {
    let cfg = (data.train.as_ref())
        .ok_or("the recipe has no `data.train` dataset: there is nothing to train on")?;
    let (ds, _) = crate::data::build_dataset(cfg, data.on_bad_sample, &BadSampleLog::default())
        .map_err(|e| format!("data.train: {e}"))?;
    let sampler = BatchSampler::new(
        &data.sampler,
        ds.aspect_groups(),
        data.samples_per_gpu,
        0,
        world,
        seed,
    )
    .map_err(|e| format!("data.sampler: {e}"))?;
    Ok(sampler.batches_per_epoch() as u64)
}

/// The schedule of a planned run (`spec` and `data` of a plan) for `world` ranks, with
/// `iters_per_epoch` given or read from the train set ([`train_iters_per_epoch`]).
pub fn of_run(
    spec: &TrainingSpec,
    data: &DataConfig,
    iters_per_epoch: Option<u64>,
    world: usize,
) -> Result<ScheduleCurve, String> {
    let ipe = match iters_per_epoch {
        Some(n) => n,
        None => train_iters_per_epoch(data, world, spec.runtime.seed)?,
    };
    sample(spec, ipe, world)
}

/// `spec`'s schedules over a run of `iters_per_epoch` iterations per epoch on `world` ranks.
pub fn sample(
    spec: &TrainingSpec,
    iters_per_epoch: u64,
    world: usize,
) -> Result<ScheduleCurve, String> {
    if iters_per_epoch == 0 {
        return Err("the training set gives no batches".into());
    }
    let training =
        build_training(spec, iters_per_epoch, (0, world.max(1))).map_err(|es| es.join("; "))?;
    let optimizer = Optimizer::new(training.optimizer, &ParamSet::default())
        .map_err(|e| format!("optimizer: {e}"))?;
    let length = RunLength::from_period(spec.run.length, iters_per_epoch);
    if length.max_iters > MAX_ITERS {
        return Err(format!(
            "the run is {} iterations long; at most {MAX_ITERS} are sampled",
            length.max_iters
        ));
    }
    let schedules = spec.schedules.build(&length).map_err(|es| {
        (es.iter())
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let scheduled = schedules.momentum.is_some();
    let hook = LrHook::new(
        schedules
            .lr
            .map(|s| Box::new(s) as Box<dyn hooks::Schedule>),
        schedules
            .momentum
            .map(|s| Box::new(s) as Box<dyn hooks::Schedule>),
    );
    let by_epoch = spec.run.length.unit == PeriodUnit::Epochs;
    let (base_lr, base_momentum) = (optimizer.base_lr(), optimizer.base_momentum());
    let mut lr = Vec::with_capacity(length.max_iters as usize);
    let mut momentum = Vec::new();
    for iter in 0..length.max_iters {
        // The runner's coordinates before the iteration: the epoch turns every
        // `iters_per_epoch` iterations whatever the run's unit.
        let p = Progress {
            epoch: iter / iters_per_epoch,
            iter,
            inner_iter: iter % iters_per_epoch,
            iters_per_epoch,
            max_iters: length.max_iters,
            max_epochs: length.max_epochs,
            by_epoch,
            stop_iter: length.max_iters,
        };
        let (l, m) = hook
            .values_at(&p, base_lr, base_momentum)
            .map_err(|e| e.to_string())?;
        lr.push(l.unwrap_or(base_lr));
        momentum.extend(m);
    }
    Ok(ScheduleCurve {
        iters_per_epoch,
        max_iters: length.max_iters,
        by_epoch,
        lr,
        momentum: scheduled.then_some(momentum),
    })
}

impl ScheduleCurve {
    /// The values as JSON (`momentum` null when not scheduled).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "iters_per_epoch": self.iters_per_epoch,
            "max_iters": self.max_iters,
            "by_epoch": self.by_epoch,
            "lr": self.lr,
            "momentum": self.momentum,
        })
    }
}

/// The picture of named curves: an `lr` chart with one line each, and a `momentum` chart
/// when any schedules it.
pub fn picture(curves: &[(String, ScheduleCurve)]) -> Result<crate::viz::Picture, String> {
    use crate::viz::curves::{Panel, Series, draw};
    let line = |name: &str, v: &[f64]| Series {
        name: name.to_string(),
        points: v.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
    };
    let mut panels = vec![Panel {
        title: "lr".into(),
        x_label: "iter".into(),
        series: curves.iter().map(|(n, c)| line(n, &c.lr)).collect(),
    }];
    let momentum: Vec<Series> = (curves.iter())
        .filter_map(|(n, c)| Some(line(n, c.momentum.as_ref()?)))
        .collect();
    if !momentum.is_empty() {
        panels.push(Panel {
            title: "momentum".into(),
            x_label: "iter".into(),
            series: momentum,
        });
    }
    draw(&panels)
}
