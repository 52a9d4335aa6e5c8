//! Hook points, the context hooks see, and the ordering of hooks by name.
//!
//! A hook reacts to [`HookPoint`]s. Hooks run in one order for every point: the built-in
//! default order ([`DEFAULT_ORDER`]) adjusted by each hook's `before`/`after` names; there are
//! no priorities. Hooks do not save checkpoints or stop the run themselves: they put a request
//! in the context and the runner acts on it after the point, so a checkpoint always holds the
//! state of every hook.

mod checkpoint;
mod early_stop;
mod ema;
mod error;
mod eval;
mod log;
mod lr;
pub mod mmdet_json;
mod nan_guard;
mod optimizer;
mod order;
mod sampler_seed;
pub mod tensorboard;

pub use checkpoint::{CheckpointConfig, CheckpointHook};
pub use early_stop::{EarlyStopConfig, EarlyStopHook};
pub use ema::{EmaConfig, EmaHook};
pub use error::{HookConfigError, HookOrderError, HookStateError};
pub use eval::{EvalConfig, EvalHook};
pub use log::{LogConfig, LogHook, LogSink};
pub use lr::{LrHook, Schedule};
pub use nan_guard::NanGuardHook;
pub use optimizer::{ClipConfig, OptimizerHook, OptimizerHookConfig};
pub use order::{DEFAULT_ORDER, order_hooks};
pub use sampler_seed::SamplerSeedHook;

use crate::engine::checkpoint::Tensors;
use crate::engine::optim::{LossScaler, Optimizer};
use crate::engine::params::ParamSet;
use crate::engine::task::{Metrics, Task};
use crate::util::units::Period;
use std::path::PathBuf;

/// Where in the run a hook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPoint {
    BeforeRun,
    BeforeTrainEpoch,
    BeforeTrainIter,
    AfterTrainIter,
    AfterTrainEpoch,
    BeforeValEpoch,
    BeforeValIter,
    AfterValIter,
    AfterValEpoch,
    AfterRun,
    BeforeSaveCheckpoint,
    AfterLoadCheckpoint,
}

/// Where the run is. Epochs and iterations are 0-based counts of what has *started*:
/// during a train iteration `iter` is its global index and `inner_iter` its index within
/// `epoch`; after it, they still name it (the runner advances them between iterations).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub epoch: u64,
    pub iter: u64,
    pub inner_iter: u64,
    pub iters_per_epoch: u64,
    /// Whole run length in iterations.
    pub max_iters: u64,
    /// Whole run length in epochs (epoch-based runs); `ceil(max_iters / iters_per_epoch)`
    /// otherwise.
    pub max_epochs: u64,
    pub by_epoch: bool,
    /// Where this process stops: `max_iters`, or earlier under `--max-iters` (progress bars
    /// and ETAs count to it; schedules and `last_iter` still count to `max_iters`).
    pub stop_iter: u64,
}

impl Progress {
    /// Whether a hook running `every` period should fire after the current iteration
    /// (`Iters`) or the current epoch (`Epochs`), counting from `start` completed units.
    pub fn every_iters(&self, n: u64) -> bool {
        n > 0 && (self.iter + 1).is_multiple_of(n)
    }
    pub fn every_epochs(&self, n: u64) -> bool {
        n > 0 && (self.epoch + 1).is_multiple_of(n)
    }
    pub fn last_iter(&self) -> bool {
        self.iter + 1 == self.max_iters
    }
    pub fn last_epoch(&self) -> bool {
        self.epoch + 1 >= self.max_epochs
    }
    /// Whether a period fires at the end of the current iteration (for `Iters`) or, when
    /// `at_epoch_end`, the current epoch (for `Epochs`).
    pub fn fires(&self, every: Period, at_epoch_end: bool) -> bool {
        use crate::util::units::PeriodUnit::*;
        match (every.unit, at_epoch_end) {
            (Iters, false) => self.every_iters(every.count),
            (Epochs, true) => self.every_epochs(every.count),
            _ => false,
        }
    }
}

/// Train or validation phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Train,
    Val,
}

/// What the current iteration produced, filled by the runner and the optimizer hook.
#[derive(Clone, Debug, Default)]
pub struct IterRecord {
    /// Loss terms followed by the total `loss`.
    pub losses: Vec<(String, f64)>,
    pub data_time: f64,
    /// Wall seconds of the whole iteration (data, step, hooks before it).
    pub time: f64,
    pub grad_norm: Option<f64>,
}

/// What the run prints on stdout: log lines for people, or each log record as one JSON
/// object per line for scripts (the human lines then go to stderr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Console {
    #[default]
    Text,
    Json,
}

/// A checkpoint a hook asks the runner to write after the current point.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveRequest {
    /// A periodic checkpoint (`epoch_N` / `iter_N`); counts against `max_keep_ckpts`.
    Periodic(String),
    /// A new best of `metric`, tagged with the position (`epoch_3`).
    Best { metric: String, tag: String },
}

/// Where the current parameter values and optimizer state are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residence {
    /// In `params` and `optimizer` on the host: the CPU, or a run that needs the gradients there.
    #[default]
    Host,
    /// Kept on the device between steps ([`crate::engine::device_params`]), and `params` and
    /// `optimizer` hold the same (the runner read them back, or nothing was updated since).
    DeviceInSync,
    /// Kept on the device, which has updated them since: `params` and `optimizer` are stale
    /// until the runner reads them back, before any hook that reads them runs.
    DeviceAhead,
}

/// What a hook does with `params` and the optimizer's state at a point, so that the runner
/// reads parameters kept on a device back before it runs (and uploads them again after).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamAccess {
    /// Touches neither (or works with the device through [`Ctx::task`]'s `device_params`).
    None,
    /// Reads them.
    Read,
    /// May change them.
    Write,
}

/// State shared by the runner and its hooks.
pub struct RunnerState {
    /// The parameters; stale while [`RunnerState::residence`] is `DeviceAhead`.
    pub params: ParamSet,
    pub optimizer: Optimizer,
    /// Where the parameters' current values are.
    pub residence: Residence,
    /// f16 training's loss scaler: the runner scales the loss by it, the optimizer hook
    /// unscales the gradients, skips non-finite steps and updates it.
    pub scaler: Option<LossScaler>,
    /// EMA shadow of `params`, when an EMA hook runs; evaluation uses it instead of `params`.
    pub ema: Option<ParamSet>,
    pub progress: Progress,
    pub mode: Mode,
    pub record: IterRecord,
    /// Metrics of an evaluation that ran at this point (cleared after the point).
    pub metrics: Option<Metrics>,
    /// Best score so far, `(metric, value, iteration)`.
    pub best: Option<(String, f64, u64)>,
    pub save_requests: Vec<SaveRequest>,
    /// Set to end the run cleanly after the current point, with the reason.
    pub stop: Option<String>,
    /// Set to stop as Ctrl-C does: checkpoint after this iteration, then fail naming it.
    pub interrupt: bool,
    /// Set to stop like an interrupt, with the reason: checkpoint after this iteration, then
    /// fail naming it (a log that can no longer be written).
    pub halt: Option<String>,
    pub work_dir: PathBuf,
    /// What the run is (mmcv's `runner.meta`: `env_info`, `config`, `seed`, `exp_name`), in
    /// order; the log hook writes it first in mmdetection's `<timestamp>.log.json`.
    pub meta: Vec<(String, serde_json::Value)>,
    /// Lines the runner and hooks want printed (by the log hook, or stderr without one).
    pub messages: Vec<String>,
    /// What stdout carries.
    pub console: Console,
}

/// What a hook sees: the task, and the run's state (progress, metrics, messages, the
/// requests a hook may make — saves, stops).
pub struct Ctx<'a> {
    pub task: &'a mut dyn Task,
    pub run: &'a mut RunnerState,
}

/// A hook failed; the run stops with this message.
#[derive(Debug, thiserror::Error)]
#[error("{hook}: {message}")]
pub struct HookError {
    pub hook: String,
    pub message: String,
}

impl HookError {
    pub fn new(hook: &str, message: impl Into<String>) -> Self {
        HookError {
            hook: hook.to_string(),
            message: message.into(),
        }
    }
}

/// A unit of behaviour attached to hook points.
pub trait Hook: Send {
    /// Unique name, used for ordering and in checkpoints.
    fn name(&self) -> &str;
    /// Names of hooks this one must run before.
    fn before(&self) -> Vec<String> {
        Vec::new()
    }
    /// Names of hooks this one must run after.
    fn after(&self) -> Vec<String> {
        Vec::new()
    }
    /// React to a point.
    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError>;
    /// What the hook does with the parameters at `point` (`progress` as the hook will see
    /// it). The default, `Write`, is always correct; a narrower answer lets parameters kept on
    /// a device stay there.
    fn param_access(&self, _point: HookPoint, _progress: &Progress) -> ParamAccess {
        ParamAccess::Write
    }
    /// Whether the hook needs every step's gradients on the host (accumulating or clipping
    /// them element by element): the parameters then stay on the host for the whole run.
    fn needs_host_grads(&self) -> bool {
        false
    }
    /// Small state saved in the checkpoint's `state.json`.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Tensor state saved in the checkpoint's `hooks.safetensors` (prefixed by hook name).
    fn state_tensors(&self) -> Tensors {
        Tensors::new()
    }
    /// Restore what `state` and `state_tensors` saved.
    fn load_state(
        &mut self,
        _state: &serde_json::Value,
        _tensors: &Tensors,
    ) -> Result<(), HookStateError> {
        Ok(())
    }
}
