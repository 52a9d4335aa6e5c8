//! The Runner: owns the parameters, the optimizer and the hooks, drives a [`Task`] through
//! the workflow, saves and resumes checkpoints.
//!
//! `run.rs` is the loop; `state.rs` turns the runner into checkpoint data and back.

mod run;
mod state;

use crate::engine::checkpoint::{CheckpointError, CheckpointManager, KeepPolicy};
use crate::engine::ddp::DataParallel;
use crate::engine::hooks::{
    Console, Hook, HookError, IterRecord, Mode, Progress, Residence, RunnerState, order_hooks,
};
use crate::engine::optim::{LossScaleConfig, LossScaler, Optimizer};
use crate::engine::params::ParamSet;
use crate::engine::task::{Metrics, Task, TaskError};
use crate::util::units::{Period, PeriodUnit};
use std::path::PathBuf;

/// How long to train and in what phases.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Run length: `N epochs` (epoch-based) or `N iters` (iteration-based).
    pub length: Period,
    /// Phases cycled until the run ends, e.g. `[(Train, 1 epoch), (Val, 1 epoch)]`.
    pub workflow: Vec<(Mode, Period)>,
    pub work_dir: PathBuf,
    /// sha256 of the merged recipe, recorded in checkpoints.
    pub recipe_hash: String,
    /// Stop after this many iterations in total without changing the schedule (smoke runs).
    pub stop_at_iter: Option<u64>,
    pub checkpoint: CheckpointSettings,
    /// f16 training's loss scaling (`hooks.fp16.loss_scale`); `None` trains unscaled.
    pub loss_scale: Option<LossScaleConfig>,
    /// What the run is, for the logs (mmcv's `runner.meta`); empty when not known.
    pub meta: Vec<(String, serde_json::Value)>,
    /// What stdout carries (`exec --format`).
    pub console: Console,
}

/// Where and how checkpoints are written.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointSettings {
    pub dir: PathBuf,
    pub keep: KeepPolicy,
    pub save_optimizer: bool,
}

impl RunConfig {
    /// A plain config: train only, checkpoints in `<work_dir>/checkpoints`, keep all.
    pub fn new(length: Period, work_dir: impl Into<PathBuf>) -> Self {
        let work_dir = work_dir.into();
        let phase = match length.unit {
            PeriodUnit::Epochs => Period::epochs(1),
            PeriodUnit::Iters => length,
        };
        RunConfig {
            length,
            workflow: vec![(Mode::Train, phase)],
            checkpoint: CheckpointSettings {
                dir: work_dir.join("checkpoints"),
                keep: KeepPolicy::All,
                save_optimizer: true,
            },
            work_dir,
            recipe_hash: String::new(),
            stop_at_iter: None,
            loss_scale: None,
            meta: Vec::new(),
            console: Console::Text,
        }
    }
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    /// The hooks' `before`/`after` names cannot be satisfied.
    #[error(transparent)]
    HookOrder(#[from] crate::engine::hooks::HookOrderError),
    #[error("{error}{}", last_hint(.last_checkpoint))]
    Task {
        error: TaskError,
        last_checkpoint: Option<PathBuf>,
    },
    #[error("{error}{}", last_hint(.last_checkpoint))]
    Hook {
        error: HookError,
        last_checkpoint: Option<PathBuf>,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The ranks of a data-parallel run could not communicate.
    #[error("data-parallel run: {0}")]
    Dist(#[from] crate::dist::DistError),
    #[error(
        "interrupted after iteration {iter}; checkpoint written to {}; continue with `--resume auto` (or `--resume {}`)",
        .checkpoint.display(), .checkpoint.display()
    )]
    Interrupted { iter: u64, checkpoint: PathBuf },
    /// A hook asked to stop with a checkpoint (a log that can no longer be written).
    #[error(
        "stopped after iteration {iter}: {reason}\ncheckpoint written to {}; fix the cause and continue with `--resume auto`",
        .checkpoint.display()
    )]
    Halted {
        iter: u64,
        reason: String,
        checkpoint: PathBuf,
    },
}

fn last_hint(p: &Option<PathBuf>) -> String {
    match p {
        Some(p) => format!("\nthe last good checkpoint is {}", p.display()),
        None => "\nno checkpoint was written before this".into(),
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    pub iters: u64,
    pub epochs: u64,
    pub last_metrics: Option<Metrics>,
    pub best: Option<(String, f64, u64)>,
    /// Why the run ended before its length (early stopping, `stop_at_iter`).
    pub stopped: Option<String>,
    pub last_checkpoint: Option<PathBuf>,
    /// Training samples skipped under `on_bad_sample = skip` since the process started.
    pub skipped_samples: usize,
}

/// Position in the run (what has been completed).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Position {
    pub epoch: u64,
    pub iter: u64,
    pub inner: u64,
    pub phase: usize,
    pub phase_done: u64,
}

pub struct Runner<'t> {
    task: &'t mut dyn Task,
    hooks: Vec<Box<dyn Hook>>,
    st: RunnerState,
    config: RunConfig,
    ckpt: CheckpointManager,
    pos: Position,
    ipe: u64,
    max_iters: u64,
    last_saved: Option<PathBuf>,
    last_metrics: Option<Metrics>,
    resumed: bool,
    /// This rank's share of a data-parallel run; `None` for one process.
    ddp: Option<DataParallel>,
    /// A device keeping the parameters has updated the optimizer's state since the host last
    /// read it (values were read back without it).
    host_state_stale: bool,
}

impl<'t> Runner<'t> {
    /// Build a runner; hooks are ordered here (an ordering error is returned, not panicked).
    pub fn new(
        task: &'t mut dyn Task,
        params: ParamSet,
        optimizer: Optimizer,
        hooks: Vec<Box<dyn Hook>>,
        config: RunConfig,
    ) -> Result<Self, RunError> {
        let hooks = order_hooks(hooks)?;
        let ipe = task.iters_per_epoch();
        if ipe == 0 {
            return Err(RunError::Config(
                "the training set gives no batches (is it empty, or smaller than one batch with drop_last?)"
                    .into(),
            ));
        }
        if config.length.count == 0 {
            return Err(RunError::Config("the run length must be at least 1".into()));
        }
        if config.workflow.is_empty() || !config.workflow.iter().any(|(m, _)| *m == Mode::Train) {
            return Err(RunError::Config(
                "the workflow needs at least one train phase".into(),
            ));
        }
        if config.workflow.iter().any(|(_, p)| p.count == 0) {
            return Err(RunError::Config(
                "workflow phases must be at least 1 long".into(),
            ));
        }
        if config.workflow.iter().any(|(m, _)| *m == Mode::Val) && task.val_iters() == 0 {
            return Err(RunError::Config(
                "the workflow has a val phase but the model gives no validation batches".into(),
            ));
        }
        let by_epoch = config.length.unit == PeriodUnit::Epochs;
        let max_iters = if by_epoch {
            config.length.count.checked_mul(ipe).ok_or_else(|| {
                RunError::Config(format!(
                    "the run length ({}) times {ipe} iterations per epoch does not fit in 64 bits",
                    config.length
                ))
            })?
        } else {
            config.length.count
        };
        let max_epochs = max_iters.div_ceil(ipe);
        let ckpt = CheckpointManager::new(&config.checkpoint.dir, config.checkpoint.keep);
        let scaler = (config.loss_scale.as_ref())
            .map(LossScaler::new)
            .transpose()
            .map_err(|e| RunError::Config(format!("hooks.fp16.loss_scale: {e}")))?;
        let st = RunnerState {
            params,
            optimizer,
            residence: Residence::Host,
            scaler,
            ema: None,
            progress: Progress {
                iters_per_epoch: ipe,
                max_iters,
                max_epochs,
                by_epoch,
                stop_iter: config.stop_at_iter.map_or(max_iters, |s| s.min(max_iters)),
                ..Default::default()
            },
            mode: Mode::Train,
            record: IterRecord::default(),
            metrics: None,
            best: None,
            save_requests: Vec::new(),
            stop: None,
            interrupt: false,
            halt: None,
            work_dir: config.work_dir.clone(),
            meta: config.meta.clone(),
            messages: Vec::new(),
            console: config.console,
        };
        Ok(Runner {
            task,
            hooks,
            st,
            config,
            ckpt,
            pos: Position::default(),
            ipe,
            max_iters,
            last_saved: None,
            last_metrics: None,
            resumed: false,
            ddp: None,
            host_state_stale: false,
        })
    }

    /// Train as one rank of a data-parallel run: gradients averaged over the ranks each step,
    /// and only rank 0 writes checkpoints or prints.
    pub fn with_data_parallel(mut self, ddp: DataParallel) -> Self {
        self.ddp = Some(ddp);
        self
    }

    /// Whether this process writes (rank 0, or the only process).
    pub(crate) fn is_main(&self) -> bool {
        self.ddp.as_ref().is_none_or(|d| d.dist().rank() == 0)
    }

    /// Replace the checkpoint manager (tests inject faulty writers through it).
    pub fn with_checkpoint_manager(mut self, m: CheckpointManager) -> Self {
        self.ckpt = m;
        self
    }

    pub fn params(&self) -> &ParamSet {
        &self.st.params
    }
    pub fn params_mut(&mut self) -> &mut ParamSet {
        &mut self.st.params
    }
    pub fn optimizer(&self) -> &Optimizer {
        &self.st.optimizer
    }
    pub fn ema(&self) -> Option<&ParamSet> {
        self.st.ema.as_ref()
    }
    /// Names of the hooks in the order they run.
    pub fn hook_names(&self) -> Vec<String> {
        self.hooks.iter().map(|h| h.name().to_string()).collect()
    }
    pub fn max_iters(&self) -> u64 {
        self.max_iters
    }
    pub fn iters_done(&self) -> u64 {
        self.pos.iter
    }
}
