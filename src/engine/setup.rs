//! The typed training settings a plan hands the engine ([`TrainingSpec`], made by
//! `crate::plan` from a checked recipe) → the optimizer settings, the schedules laid over the
//! run, the hooks and the run config. Nothing here reads the recipe's config tree.

use crate::engine::checkpoint::KeepPolicy;
use crate::engine::hooks::{
    self, CheckpointConfig, CheckpointHook, Ctx, EarlyStopConfig, EarlyStopHook, EmaConfig,
    EmaHook, EvalConfig, EvalHook, Hook, HookError, HookPoint, LogConfig, LogHook, LrHook, Mode,
    NanGuardHook, OptimizerHook, OptimizerHookConfig, Progress, SamplerSeedHook,
};
use crate::engine::optim::{LossScaleConfig, OptimizerConfig};
use crate::engine::runner::{CheckpointSettings, RunConfig};
use crate::ir::Precision;
use crate::model::weights::Source;
use crate::schedule::{RunLength, ScheduleSpecs};
use crate::util::units::Period;
use serde_json::Value;
use std::path::PathBuf;

/// The `runtime` section.
#[derive(Clone, Debug, PartialEq)]
pub struct Runtime {
    pub seed: u64,
    /// Only deterministic cuDNN algorithms (`runtime.deterministic`; everything else is).
    pub deterministic: bool,
    /// TF32 tensor cores allowed for f32 convolutions and GEMMs on CUDA (`runtime.tf32`).
    pub tf32: bool,
    pub work_dir: PathBuf,
    /// The device count the batch size and LR were written for (a warning when it differs).
    pub devices: u64,
    /// `cpu`, `cuda:N` or `wgpu[:N|:NAME]` (`runtime.backend`; `mmrun exec --device` overrides it).
    pub device: String,
    pub resume: Option<String>,
    /// `runtime.precision`, or f16 where the recipe has the `fp16` hook.
    pub precision: Precision,
    /// f16's loss scaling (`hooks.fp16.loss_scale`; dynamic without the hook); `None`
    /// otherwise.
    pub loss_scale: Option<LossScaleConfig>,
    /// `runtime.auto_scale_lr`: the base batch size when enabled.
    pub auto_scale_lr: Option<u64>,
    /// `runtime.launcher`: how the ranks were started.
    pub launcher: crate::dist::launch::Launcher,
}

/// One hook of the recipe, typed: what it is, its name and its ordering constraints.
#[derive(Clone, Debug)]
pub struct HookSpec {
    /// The recipe's key (`hooks.<name>`).
    pub name: String,
    pub kind: HookKind,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

/// The hooks a recipe can configure.
#[derive(Clone, Debug)]
pub enum HookKind {
    Checkpoint(CheckpointConfig),
    Log(LogConfig),
    Eval(EvalConfig),
    Ema(EmaConfig),
    EarlyStopping(EarlyStopConfig),
    Optimizer(OptimizerHookConfig),
}

/// The run's length and phases.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub length: Period,
    /// Phases cycled until the run ends; empty for the default (train only).
    pub workflow: Vec<(Mode, Period)>,
}

/// Everything the runner is built from besides the model and data, typed.
#[derive(Clone, Debug)]
pub struct TrainingSpec {
    pub optimizer: OptimizerConfig,
    pub schedules: ScheduleSpecs,
    /// The recipe's hooks in the recipe's order (the runner orders them by their constraints);
    /// always holds an `optimizer` hook.
    pub hooks: Vec<HookSpec>,
    pub run: RunSpec,
    pub runtime: Runtime,
    /// The weights a run that does not resume starts from, in the order they are applied.
    pub weights: Vec<Source>,
    /// `data.samples_per_gpu`: images per device per step.
    pub samples_per_device: u64,
}

/// Everything the runner needs besides the model and data.
pub struct Training {
    pub optimizer: OptimizerConfig,
    pub hooks: Vec<Box<dyn Hook>>,
    pub run: RunConfig,
    pub runtime: Runtime,
    /// Iterations whose gradients add up before a step (for auto LR scaling).
    pub accumulation: u64,
    /// What `runtime.auto_scale_lr` did to the learning rate, in words.
    pub lr_note: Option<String>,
}

/// mmdetection's `auto_scale_lr`: scale the base LR linearly by the total batch per
/// optimizer step (per-device batch × devices × accumulation) over the batch the LR was
/// tuned for.
pub fn auto_scale_lr(
    lr: f64,
    samples_per_device: u64,
    devices: u64,
    accumulation: u64,
    base_batch_size: u64,
) -> f64 {
    lr * (samples_per_device * devices * accumulation) as f64 / base_batch_size as f64
}

impl crate::engine::hooks::Schedule for crate::schedule::Schedule {
    fn value(&self, p: &Progress, base: f64) -> f64 {
        // One param group: paramwise multipliers scale the scheduled base value.
        crate::schedule::Schedule::value(self, 0, base, p.epoch, p.iter)
    }
}

/// A hook with extra ordering constraints from the recipe (`before`/`after`).
struct Ordered {
    inner: Box<dyn Hook>,
    before: Vec<String>,
    after: Vec<String>,
}

impl Hook for Ordered {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn before(&self) -> Vec<String> {
        let mut v = self.inner.before();
        v.extend(self.before.iter().cloned());
        v
    }
    fn after(&self) -> Vec<String> {
        let mut v = self.inner.after();
        v.extend(self.after.iter().cloned());
        v
    }
    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        self.inner.on(point, cx)
    }
    fn param_access(&self, point: HookPoint, progress: &Progress) -> hooks::ParamAccess {
        self.inner.param_access(point, progress)
    }
    fn needs_host_grads(&self) -> bool {
        self.inner.needs_host_grads()
    }
    fn state(&self) -> Value {
        self.inner.state()
    }
    fn state_tensors(&self) -> crate::engine::checkpoint::Tensors {
        self.inner.state_tensors()
    }
    fn load_state(
        &mut self,
        s: &Value,
        t: &crate::engine::checkpoint::Tensors,
    ) -> Result<(), hooks::HookStateError> {
        self.inner.load_state(s, t)
    }
}

/// The recipe's hooks, built, and where checkpoints go (the checkpoint hook's settings).
pub struct BuiltHooks {
    pub hooks: Vec<Box<dyn Hook>>,
    pub checkpoint: Option<CheckpointSettings>,
}

/// The recipe's hooks, built (each validates its settings). `plan` runs this too, so a recipe
/// `check` passes builds here.
pub fn build_hooks(specs: &[HookSpec], runtime: &Runtime) -> Result<BuiltHooks, Vec<String>> {
    build_hooks_of_rank(specs, runtime, true)
}

/// Holds the log hook's place in the hook order on ranks other than 0, which write nothing.
struct SilentLog;

impl Hook for SilentLog {
    fn name(&self) -> &str {
        "log"
    }
    fn on(&mut self, _: HookPoint, _: &mut Ctx) -> Result<(), HookError> {
        Ok(())
    }
    fn param_access(&self, _: HookPoint, _: &Progress) -> hooks::ParamAccess {
        hooks::ParamAccess::None
    }
}

/// [`build_hooks`] for one rank: only rank 0 (`main`) logs.
fn build_hooks_of_rank(
    specs: &[HookSpec],
    runtime: &Runtime,
    main: bool,
) -> Result<BuiltHooks, Vec<String>> {
    let mut hooks = Vec::new();
    let mut ckpt = None;
    let mut errors = Vec::new();
    for spec in specs {
        let path = format!("hooks.{}", spec.name);
        let built: Result<Box<dyn Hook>, hooks::HookConfigError> = match &spec.kind {
            HookKind::Checkpoint(c) => {
                ckpt = Some(CheckpointSettings {
                    dir: (c.out_dir.clone())
                        .unwrap_or_else(|| runtime.work_dir.join("checkpoints")),
                    keep: match usize::try_from(c.max_keep_ckpts) {
                        Ok(n) => KeepPolicy::Last(n),
                        Err(_) => KeepPolicy::All,
                    },
                    save_optimizer: c.save_optimizer,
                });
                CheckpointHook::new(c.clone()).map(|h| Box::new(h) as Box<dyn Hook>)
            }
            HookKind::Log(c) => LogHook::new(c.clone()).map(|h| match main {
                true => Box::new(h) as Box<dyn Hook>,
                false => Box::new(SilentLog),
            }),
            HookKind::Eval(c) => EvalHook::new(c.clone()).map(|h| Box::new(h) as Box<dyn Hook>),
            HookKind::Ema(c) => EmaHook::new(c.clone()).map(|h| Box::new(h) as Box<dyn Hook>),
            HookKind::EarlyStopping(c) => {
                EarlyStopHook::new(c.clone()).map(|h| Box::new(h) as Box<dyn Hook>)
            }
            HookKind::Optimizer(c) => {
                OptimizerHook::new(c.clone()).map(|h| Box::new(h) as Box<dyn Hook>)
            }
        };
        match built {
            Ok(h) if spec.before.is_empty() && spec.after.is_empty() => hooks.push(h),
            Ok(inner) => hooks.push(Box::new(Ordered {
                inner,
                before: spec.before.clone(),
                after: spec.after.clone(),
            })),
            Err(e) => errors.push(format!("{path}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(BuiltHooks {
            hooks,
            checkpoint: ckpt,
        })
    } else {
        Err(errors)
    }
}

/// Build the training setup from its typed spec for rank `ranks.0` of `ranks.1` (`(0, 1)`
/// for one process). `iters_per_epoch` comes from the train loader (schedules and
/// epoch-based lengths need it).
pub fn build_training(
    spec: &TrainingSpec,
    iters_per_epoch: u64,
    ranks: (usize, usize),
) -> Result<Training, Vec<String>> {
    let mut errors = Vec::new();
    let run_length = RunLength::from_period(spec.run.length, iters_per_epoch);
    let schedules = match spec.schedules.build(&run_length) {
        Ok(s) => s,
        Err(es) => {
            errors.extend(es.into_iter().map(|e| format!("{}: {}", e.path, e.message)));
            Default::default()
        }
    };
    let mut hooks: Vec<Box<dyn Hook>> = vec![Box::new(NanGuardHook), Box::new(SamplerSeedHook)];
    let lr = schedules
        .lr
        .map(|s| Box::new(s) as Box<dyn hooks::Schedule>);
    let mom = schedules
        .momentum
        .map(|s| Box::new(s) as Box<dyn hooks::Schedule>);
    hooks.push(Box::new(LrHook::new(lr, mom)));
    let ckpt = match build_hooks_of_rank(&spec.hooks, &spec.runtime, ranks.0 == 0) {
        Ok(built) => {
            hooks.extend(built.hooks);
            built.checkpoint
        }
        Err(es) => {
            errors.extend(es);
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let accumulation = (spec.hooks.iter())
        .find_map(|h| match &h.kind {
            HookKind::Optimizer(c) => Some(c.cumulative_iters),
            _ => None,
        })
        .unwrap_or(1);
    let mut run = RunConfig::new(spec.run.length, &spec.runtime.work_dir);
    if !spec.run.workflow.is_empty() {
        run.workflow = spec.run.workflow.clone();
    }
    if let Some(c) = ckpt {
        run.checkpoint = c;
    }
    run.loss_scale = spec.runtime.loss_scale.clone();
    let mut optimizer = spec.optimizer.clone();
    let lr_note = spec.runtime.auto_scale_lr.map(|base| {
        // The ranks this run trains on, as mmdetection counts the GPUs it runs on.
        let devices = ranks.1 as u64;
        let spd = spec.samples_per_device;
        let before = optimizer.lr();
        optimizer.scale_lr(auto_scale_lr(1.0, spd, devices, accumulation, base));
        let batch = spd * devices * accumulation;
        format!(
            "auto_scale_lr: {devices} {} × {spd} images × {accumulation} accumulated = {batch} per step, base {base}: optimizer.lr {before} → {}",
            if devices == 1 { "device" } else { "devices" },
            optimizer.lr(),
        )
    });
    Ok(Training {
        optimizer,
        hooks,
        run,
        runtime: spec.runtime.clone(),
        accumulation,
        lr_note,
    })
}
