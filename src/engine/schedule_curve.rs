//! A planned run's learning rate (and momentum, when scheduled) at every training iteration,
//! warmup included, before anything trains — what mmcv's LR visualisation tools show. The
//! values come from the pieces a run is built from: the training setup (`setup`, so
//! `auto_scale_lr` applies), the optimizer's base values, the schedules laid over the run's
//! length, and the `lr` hook's own [`LrHook::values_at`]; nothing here knows a policy.

use crate::data::{BadSampleLog, BatchSampler, DataConfig, DataError};
use crate::engine::hooks::{self, HookError, LrHook, Progress};
use crate::engine::optim::{OptimError, Optimizer};
use crate::engine::params::ParamSet;
use crate::engine::setup::{TrainingSpec, build_training};
use crate::schedule::{ConfigError, RunLength};
use crate::util::units::PeriodUnit;

/// Why a run's schedule could not be sampled. Each names the recipe section at fault.
#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    /// The recipe has no train set to count iterations over.
    #[error("the recipe has no `data.train` dataset: there is nothing to train on")]
    NoTrainSet,
    /// The train set's annotations could not be read.
    #[error("data.train: {0}")]
    Dataset(#[source] DataError),
    /// The recipe's sampler could not batch the train set.
    #[error("data.sampler: {0}")]
    Sampler(#[source] DataError),
    /// The train set makes no batch at all.
    #[error("the training set gives no batches")]
    NoBatches,
    /// The training sections do not build (the problems, with their config paths).
    #[error("{}", .0.join("; "))]
    Training(Vec<String>),
    /// The optimizer does not build.
    #[error("optimizer: {0}")]
    Optimizer(#[source] OptimError),
    /// A run too long to sample.
    #[error("the run is {iters} iterations long; at most {MAX_ITERS} are sampled")]
    TooLong { iters: u64 },
    /// The schedules do not fit the run's length.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Schedules(Vec<ConfigError>),
    /// The `lr` hook's values could not be computed.
    #[error(transparent)]
    Hook(#[from] HookError),
}

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
pub fn train_iters_per_epoch(
    data: &DataConfig,
    world: usize,
    seed: u64,
) -> Result<u64, CurveError> {
    let cfg = data.train.as_ref().ok_or(CurveError::NoTrainSet)?;
    let (ds, _) = crate::data::build_dataset(cfg, data.on_bad_sample, &BadSampleLog::default())
        .map_err(CurveError::Dataset)?;
    let sampler = BatchSampler::new(
        &data.sampler,
        ds.aspect_groups(),
        data.samples_per_gpu,
        0,
        world,
        seed,
    )
    .map_err(CurveError::Sampler)?;
    Ok(sampler.batches_per_epoch() as u64)
}

/// The schedule of a planned run (`spec` and `data` of a plan) for `world` ranks, with
/// `iters_per_epoch` given or read from the train set ([`train_iters_per_epoch`]).
pub fn of_run(
    spec: &TrainingSpec,
    data: &DataConfig,
    iters_per_epoch: Option<u64>,
    world: usize,
) -> Result<ScheduleCurve, CurveError> {
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
) -> Result<ScheduleCurve, CurveError> {
    if iters_per_epoch == 0 {
        return Err(CurveError::NoBatches);
    }
    let training =
        build_training(spec, iters_per_epoch, (0, world.max(1))).map_err(CurveError::Training)?;
    let optimizer =
        Optimizer::new(training.optimizer, &ParamSet::default()).map_err(CurveError::Optimizer)?;
    let length = RunLength::from_period(spec.run.length, iters_per_epoch);
    if length.max_iters > MAX_ITERS {
        return Err(CurveError::TooLong {
            iters: length.max_iters,
        });
    }
    let schedules = (spec.schedules.build(&length)).map_err(CurveError::Schedules)?;
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
        let (l, m) = hook.values_at(&p, base_lr, base_momentum)?;
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
pub fn picture(
    curves: &[(String, ScheduleCurve)],
) -> Result<crate::viz::Picture, crate::viz::PictureError> {
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
