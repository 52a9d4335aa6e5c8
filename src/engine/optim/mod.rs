//! Optimizers over a [`ParamSet`]: SGD and AdamW with torch.optim's update rules, paramwise
//! multipliers with mmcv's rules, gradient clipping, gradient accumulation, and f16 training's
//! loss scaling.
//!
//! Frozen parameters and buffers get no update and no state. State is keyed by parameter name
//! so checkpoints survive a reordering of the model's parameters.

pub mod clip;
mod paramwise;
mod scaler;

pub use clip::{clip_grad_norm, clip_grad_value, grad_norm};
pub use paramwise::{CustomKey, Paramwise, ParamwiseError};
pub use scaler::{
    DynamicName, DynamicScale, LossScaleConfig, LossScaleError, LossScaler, ScalerStateError,
};

use crate::backend::cpu;
use crate::backend::optim::{ParamHyper, UpdateRule};
use crate::engine::params::ParamSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `optimizer` section of a recipe.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        lr: f64,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: bool,
        #[serde(rename = "paramwise_cfg")]
        paramwise: Paramwise,
    },
    Adamw {
        lr: f64,
        betas: [f64; 2],
        eps: f64,
        weight_decay: f64,
        /// Accepted for mmcv compatibility; only `false` is supported.
        amsgrad: bool,
        #[serde(rename = "paramwise_cfg")]
        paramwise: Paramwise,
    },
}

impl OptimizerConfig {
    /// Plain SGD with momentum and weight decay (no dampening, no nesterov, no paramwise
    /// rules); mmdetection's detectors use `sgd(0.02, 0.9, 1e-4)` at 16 images per batch.
    pub fn sgd(lr: f64, momentum: f64, weight_decay: f64) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            dampening: 0.0,
            weight_decay,
            nesterov: false,
            paramwise: Paramwise::default(),
        }
    }

    /// The base learning rate the recipe wrote.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adamw { lr, .. } => *lr,
        }
    }
    /// Scale the base learning rate (auto LR scaling).
    pub fn scale_lr(&mut self, factor: f64) {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adamw { lr, .. } => *lr *= factor,
        }
    }
    fn paramwise(&self) -> &Paramwise {
        match self {
            OptimizerConfig::Sgd { paramwise, .. } | OptimizerConfig::Adamw { paramwise, .. } => {
                paramwise
            }
        }
    }
}

/// Errors of building an optimizer or loading its state.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("optimizer: {0}")]
    Config(String),
    #[error("optimizer state for `{name}` has {found} values, the parameter has {expected}")]
    StateShape {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("optimizer state: {0}")]
    State(String),
    #[error("optimizer: {0}")]
    Params(#[from] crate::engine::params::ParamError),
    /// `paramwise_cfg` settings that cannot work.
    #[error("optimizer: {0}")]
    Paramwise(#[from] ParamwiseError),
}

/// Per-parameter settings and state. Exists only for trainable parameters.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub index: usize,
    pub lr_mult: f64,
    pub decay_mult: f64,
    /// SGD: `[momentum_buffer]` (empty until the first step, like torch);
    /// AdamW: `[exp_avg, exp_avg_sq]`.
    pub bufs: Vec<Vec<f32>>,
    pub step: u64,
}

/// A live optimizer bound to one parameter set.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    /// Current (scheduled) base learning rate; each parameter uses `lr * lr_mult`.
    lr: f64,
    /// Current (scheduled) momentum (SGD) or beta1 (AdamW).
    momentum: f64,
    slots: Vec<Slot>,
}

/// Names of the state buffers, in `Slot::bufs` order.
fn buf_names(config: &OptimizerConfig) -> &'static [&'static str] {
    match config {
        OptimizerConfig::Sgd { .. } => &["momentum_buffer"],
        OptimizerConfig::Adamw { .. } => &["exp_avg", "exp_avg_sq"],
    }
}

impl Optimizer {
    /// Bind an optimizer to the trainable parameters of `params`, applying paramwise rules.
    pub fn new(config: OptimizerConfig, params: &ParamSet) -> Result<Self, OptimError> {
        // Updates, EMA and checkpoints read f32 values (`Param::values`).
        params.require_f32()?;
        let pw = config.paramwise().clone();
        pw.validate()?;
        match &config {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                nesterov,
                dampening,
                weight_decay,
                ..
            } => {
                if *lr < 0.0 || *momentum < 0.0 || *weight_decay < 0.0 {
                    return Err(OptimError::Config(
                        "sgd: lr, momentum and weight_decay must not be negative".into(),
                    ));
                }
                if *nesterov && (*momentum <= 0.0 || *dampening != 0.0) {
                    return Err(OptimError::Config(
                        "sgd: nesterov needs momentum > 0 and dampening = 0".into(),
                    ));
                }
            }
            OptimizerConfig::Adamw {
                lr,
                betas,
                eps,
                weight_decay,
                amsgrad,
                ..
            } => {
                if *amsgrad {
                    return Err(OptimError::Config("adamw: amsgrad is not supported".into()));
                }
                if *lr < 0.0 || *eps < 0.0 || *weight_decay < 0.0 {
                    return Err(OptimError::Config(
                        "adamw: lr, eps and weight_decay must not be negative".into(),
                    ));
                }
                if !(0.0..1.0).contains(&betas[0]) || !(0.0..1.0).contains(&betas[1]) {
                    return Err(OptimError::Config("adamw: betas must lie in [0, 1)".into()));
                }
            }
        }
        let (lr, momentum) = match &config {
            OptimizerConfig::Sgd { lr, momentum, .. } => (*lr, *momentum),
            OptimizerConfig::Adamw { lr, betas, .. } => (*lr, betas[0]),
        };
        let mut slots = Vec::new();
        for (index, p) in params.iter().enumerate() {
            if !p.trainable {
                continue;
            }
            let (lr_mult, decay_mult) = pw.multipliers(&p.name, p.kind);
            slots.push(Slot {
                index,
                lr_mult,
                decay_mult,
                bufs: Vec::new(),
                step: 0,
            });
        }
        Ok(Optimizer {
            config,
            lr,
            momentum,
            slots,
        })
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }
    /// The recipe's base learning rate (before schedules).
    pub fn base_lr(&self) -> f64 {
        self.config.lr()
    }
    /// The recipe's base momentum (SGD momentum or AdamW beta1).
    pub fn base_momentum(&self) -> f64 {
        match &self.config {
            OptimizerConfig::Sgd { momentum, .. } => *momentum,
            OptimizerConfig::Adamw { betas, .. } => betas[0],
        }
    }
    pub fn lr(&self) -> f64 {
        self.lr
    }
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    pub fn momentum(&self) -> f64 {
        self.momentum
    }
    pub fn set_momentum(&mut self, m: f64) {
        self.momentum = m;
    }

    /// `(lr_mult, decay_mult)` of a parameter, `None` when it is frozen.
    pub fn multipliers(&self, params: &ParamSet, name: &str) -> Option<(f64, f64)> {
        let i = params.position(name)?;
        self.slots
            .iter()
            .find(|s| s.index == i)
            .map(|s| (s.lr_mult, s.decay_mult))
    }

    /// The update rule at the current (scheduled) momentum or beta1.
    pub fn rule(&self) -> UpdateRule {
        match &self.config {
            OptimizerConfig::Sgd {
                dampening,
                nesterov,
                ..
            } => UpdateRule::Sgd {
                momentum: self.momentum,
                dampening: *dampening,
                nesterov: *nesterov,
            },
            OptimizerConfig::Adamw { betas, eps, .. } => UpdateRule::AdamW {
                beta1: self.momentum,
                beta2: betas[1],
                eps: *eps,
            },
        }
    }

    fn weight_decay(&self) -> f64 {
        match &self.config {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adamw { weight_decay, .. } => *weight_decay,
        }
    }

    /// A slot's settings for the update about to run, counting its step.
    fn advance(&self, slot: &mut Slot, fresh: bool, grad_scale: f64) -> ParamHyper {
        slot.step += 1;
        ParamHyper {
            lr: self.lr * slot.lr_mult,
            weight_decay: self.weight_decay() * slot.decay_mult,
            step: slot.step,
            fresh,
            grad_scale,
        }
    }

    /// Apply one update from the gradients in `params` (the CPU backend's update rules).
    pub fn step(&mut self, params: &mut ParamSet) {
        let rule = self.rule();
        let need = rule.state_buffers();
        let mut slots = std::mem::take(&mut self.slots);
        for slot in &mut slots {
            let p = params.at_mut(slot.index);
            let value = (p.value.as_f32_mut()).expect("f32: checked in Optimizer::new");
            // torch creates the state on a parameter's first update; SGD keeps no buffer
            // while its momentum is 0.
            let fresh = slot.bufs.len() < need;
            if fresh {
                slot.bufs = vec![vec![0.0; value.len()]; need];
            }
            let hyper = self.advance(slot, fresh, 1.0);
            let mut state: Vec<&mut [f32]> = slot.bufs.iter_mut().map(|b| &mut b[..]).collect();
            cpu::optim::update(&rule, value, &p.grad, &mut state, hyper);
        }
        self.slots = slots;
    }

    /// The settings of one update that runs elsewhere (a device keeping the parameters), by
    /// parameter index, counting each parameter's step: `fresh(index)` says whether its state
    /// starts with this update; every gradient is multiplied by `grad_scale` first.
    pub fn plan_update(
        &mut self,
        fresh: impl Fn(usize) -> bool,
        grad_scale: f64,
    ) -> Vec<(usize, ParamHyper)> {
        let mut slots = std::mem::take(&mut self.slots);
        let plan = (slots.iter_mut())
            .map(|slot| {
                let index = slot.index;
                (index, self.advance(slot, fresh(index), grad_scale))
            })
            .collect();
        self.slots = slots;
        plan
    }

    /// The state buffers of the parameter at `index` (empty before its first update, or when
    /// frozen).
    pub fn state_of(&self, index: usize) -> &[Vec<f32>] {
        (self.slots.iter().find(|s| s.index == index)).map_or(&[], |s| &s.bufs)
    }

    /// Replaces the state buffers of the parameter at `index` (read back from a device).
    pub fn set_state_of(&mut self, index: usize, bufs: Vec<Vec<f32>>) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.index == index) {
            s.bufs = bufs;
        }
    }

    /// State tensors keyed `<param name>.<buffer>`, for the optimizer safetensors file.
    pub fn state_tensors(&self, params: &ParamSet) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        let names = buf_names(&self.config);
        let mut out = BTreeMap::new();
        for slot in &self.slots {
            let p = params.at(slot.index);
            for (b, buf) in slot.bufs.iter().enumerate() {
                out.insert(
                    format!("{}.{}", p.name, names[b]),
                    (p.shape().to_vec(), buf.clone()),
                );
            }
        }
        out
    }

    /// Scalar state (current lr, momentum, per-parameter step counts) as JSON.
    pub fn state_json(&self, params: &ParamSet) -> serde_json::Value {
        let steps: BTreeMap<String, u64> = self
            .slots
            .iter()
            .map(|s| (params.at(s.index).name.clone(), s.step))
            .collect();
        serde_json::json!({
            "type": match self.config { OptimizerConfig::Sgd { .. } => "sgd", OptimizerConfig::Adamw { .. } => "adamw" },
            "lr": self.lr,
            "momentum": self.momentum,
            "steps": steps,
        })
    }

    /// Restore what [`Self::state_tensors`] and [`Self::state_json`] saved.
    pub fn load_state(
        &mut self,
        params: &ParamSet,
        json: &serde_json::Value,
        tensors: &BTreeMap<String, Vec<f32>>,
    ) -> Result<(), OptimError> {
        let want = match self.config {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adamw { .. } => "adamw",
        };
        let ty = json.get("type").and_then(|v| v.as_str()).unwrap_or("");
        if ty != want {
            return Err(OptimError::State(format!(
                "checkpoint holds `{ty}` state, the recipe's optimizer is `{want}`"
            )));
        }
        let num = |k: &str| {
            json.get(k)
                .and_then(|v| v.as_f64())
                .ok_or_else(|| OptimError::State(format!("missing `{k}`")))
        };
        self.lr = num("lr")?;
        self.momentum = num("momentum")?;
        let steps = json.get("steps").and_then(|v| v.as_object());
        let names = buf_names(&self.config);
        for slot in &mut self.slots {
            let p = params.at(slot.index);
            slot.step = steps
                .and_then(|s| s.get(&p.name))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            slot.bufs.clear();
            for b in names {
                let key = format!("{}.{}", p.name, b);
                match tensors.get(&key) {
                    Some(t) if t.len() == p.numel() => slot.bufs.push(t.clone()),
                    Some(t) => {
                        return Err(OptimError::StateShape {
                            name: key,
                            expected: p.numel(),
                            found: t.len(),
                        });
                    }
                    None => {
                        slot.bufs.clear();
                        break;
                    }
                }
            }
            if slot.bufs.is_empty()
                && slot.step > 0
                && matches!(self.config, OptimizerConfig::Adamw { .. })
            {
                return Err(OptimError::State(format!(
                    "`{}` has taken {} steps but its moments are missing",
                    p.name, slot.step
                )));
            }
        }
        Ok(())
    }
}
