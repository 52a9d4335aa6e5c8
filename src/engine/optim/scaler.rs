//! Loss scaling for f16 training, with `torch.amp.GradScaler`'s arithmetic and mmcv's
//! `Fp16OptimizerHook` settings: the loss is multiplied by the scale before the backward pass,
//! the gradients are unscaled (multiplied by the f32 reciprocal of the scale) before clipping
//! and the update, and a step whose gradients hold an inf or NaN is skipped.
//!
//! - `dynamic`: torch's defaults — start at 65536, halve after a non-finite step, double after
//!   2000 finite steps in a row (a doubling that would overflow f32 is dropped).
//! - a number (mmcv's `loss_scale = 512.0`): that scale always (mmcv calls
//!   `GradScaler.update(512.0)` after each step); non-finite steps are still skipped.
//! - a record (`{init_scale, growth_factor, backoff_factor, growth_interval}`): dynamic with
//!   those settings (mmcv passes the dict to `GradScaler`).
//!
//! The state saved in checkpoints is `GradScaler.state_dict()`'s, key for key.

use crate::engine::params::ParamSet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `fp16` hook's `loss_scale` (or `runtime.precision = fp16`'s default, dynamic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LossScaleConfig {
    /// `dynamic`, with torch's defaults.
    Named(DynamicName),
    /// A fixed scale.
    Static(f64),
    /// Dynamic with these settings.
    Dynamic(DynamicScale),
}

/// The one name `loss_scale` takes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DynamicName {
    Dynamic,
}

/// `torch.amp.GradScaler`'s settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamicScale {
    pub init_scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: u64,
}

impl Default for DynamicScale {
    fn default() -> Self {
        DynamicScale {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

/// Loss-scale settings that cannot work (`check` reports them at `hooks.fp16.loss_scale`).
#[derive(Debug, thiserror::Error)]
pub enum LossScaleError {
    /// A static scale that is not a positive number.
    #[error("a loss scale must be > 0, found {0}")]
    Static(f64),
    /// A dynamic scale's `init_scale` that is not a positive number.
    #[error("init_scale must be > 0, found {0}")]
    InitScale(f64),
    /// A `growth_factor` that would not grow the scale.
    #[error("growth_factor must be > 1, found {0}")]
    GrowthFactor(f64),
    /// A `backoff_factor` that would not shrink the scale.
    #[error("backoff_factor must be in (0, 1), found {0}")]
    BackoffFactor(f64),
    /// A `growth_interval` of 0.
    #[error("growth_interval must be at least 1")]
    GrowthInterval,
}

/// Why a checkpoint's loss-scaler state is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScalerStateError {
    /// A number the state must hold is missing (or not a number).
    #[error("the loss scaler state has no number `{0}`")]
    Missing(&'static str),
    /// The growth tracker is missing (or not a whole number).
    #[error("the loss scaler state has no `_growth_tracker`")]
    NoTracker,
    /// A saved scale that is not a positive number.
    #[error("the saved loss scale {0} is not a positive number")]
    Scale(f64),
    /// The checkpoint's growth settings differ from the recipe's (resuming would half-apply
    /// them).
    #[error(
        "the checkpoint's loss scaler grows ×{} / backs off ×{} / every {} steps, this recipe's ×{} / ×{} / {}",
        saved.0, saved.1, saved.2, recipe.0, recipe.1, recipe.2
    )]
    Settings {
        /// `(growth_factor, backoff_factor, growth_interval)` saved.
        saved: (f64, f64, u64),
        /// The same of this recipe.
        recipe: (f64, f64, u64),
    },
}

impl LossScaleConfig {
    /// The settings' first problem.
    pub fn validate(&self) -> Result<(), LossScaleError> {
        match self {
            LossScaleConfig::Named(_) => Ok(()),
            LossScaleConfig::Static(s) if s.is_finite() && *s > 0.0 => Ok(()),
            LossScaleConfig::Static(s) => Err(LossScaleError::Static(*s)),
            LossScaleConfig::Dynamic(d) => {
                if !(d.init_scale.is_finite() && d.init_scale > 0.0) {
                    return Err(LossScaleError::InitScale(d.init_scale));
                }
                if !(d.growth_factor > 1.0 && d.growth_factor.is_finite()) {
                    return Err(LossScaleError::GrowthFactor(d.growth_factor));
                }
                if !(d.backoff_factor > 0.0 && d.backoff_factor < 1.0) {
                    return Err(LossScaleError::BackoffFactor(d.backoff_factor));
                }
                if d.growth_interval == 0 {
                    return Err(LossScaleError::GrowthInterval);
                }
                Ok(())
            }
        }
    }
}

/// A loss scaler's state: the scale (an f32, as torch keeps it) and the count of finite steps
/// since the last change.
#[derive(Clone, Debug, PartialEq)]
pub struct LossScaler {
    scale: f32,
    growth_tracker: u64,
    settings: DynamicScale,
    /// A static scale: `update` resets to it (mmcv's `update(loss_scale)`).
    fixed: Option<f32>,
}

impl LossScaler {
    pub fn new(config: &LossScaleConfig) -> Result<Self, LossScaleError> {
        config.validate()?;
        let (settings, fixed) = match config {
            LossScaleConfig::Named(DynamicName::Dynamic) => (DynamicScale::default(), None),
            LossScaleConfig::Static(s) => (
                DynamicScale {
                    init_scale: *s,
                    ..DynamicScale::default()
                },
                Some(*s as f32),
            ),
            LossScaleConfig::Dynamic(d) => (*d, None),
        };
        Ok(LossScaler {
            scale: settings.init_scale as f32,
            growth_tracker: 0,
            settings,
            fixed,
        })
    }

    /// The current scale.
    pub fn scale(&self) -> f64 {
        self.scale as f64
    }

    /// Finite steps since the scale last changed (torch's `_growth_tracker`).
    pub fn growth_tracker(&self) -> u64 {
        self.growth_tracker
    }

    /// `GradScaler.unscale_`: every trainable gradient times the f32 reciprocal of the scale;
    /// whether any of them held an inf or NaN (then the step must be skipped).
    pub fn unscale(&self, params: &mut ParamSet) -> bool {
        let inv = (1.0f64 / self.scale as f64) as f32;
        let mut found_inf = false;
        for p in params.iter_mut().filter(|p| p.trainable) {
            for g in &mut p.grad {
                found_inf |= !g.is_finite();
                *g *= inv;
            }
        }
        found_inf
    }

    /// `GradScaler.update` after a step: back off after a non-finite one, grow after
    /// `growth_interval` finite ones in a row; a static scale stays where it is.
    pub fn update(&mut self, found_inf: bool) {
        if let Some(s) = self.fixed {
            self.scale = s;
            return;
        }
        let d = &self.settings;
        if found_inf {
            self.scale = (self.scale as f64 * d.backoff_factor) as f32;
            self.growth_tracker = 0;
            return;
        }
        let successful = self.growth_tracker + 1;
        if successful == d.growth_interval {
            let grown = (self.scale as f64 * d.growth_factor) as f32;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        } else {
            self.growth_tracker = successful;
        }
    }

    /// `GradScaler.state_dict()`.
    pub fn state_dict(&self) -> Value {
        json!({
            "scale": self.scale,
            "growth_factor": self.settings.growth_factor,
            "backoff_factor": self.settings.backoff_factor,
            "growth_interval": self.settings.growth_interval,
            "_growth_tracker": self.growth_tracker,
        })
    }

    /// `GradScaler.load_state_dict`: the scale and growth tracker of a checkpoint; its
    /// settings must be this run's (a changed recipe is refused rather than half-applied).
    pub fn load_state_dict(&mut self, state: &Value) -> Result<(), ScalerStateError> {
        let num = |k: &'static str| {
            (state.get(k).and_then(Value::as_f64)).ok_or(ScalerStateError::Missing(k))
        };
        let scale = num("scale")?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(ScalerStateError::Scale(scale));
        }
        let tracker = (state.get("_growth_tracker").and_then(Value::as_u64))
            .ok_or(ScalerStateError::NoTracker)?;
        let saved = (
            num("growth_factor")?,
            num("backoff_factor")?,
            num("growth_interval")? as u64,
        );
        let d = &self.settings;
        let recipe = (d.growth_factor, d.backoff_factor, d.growth_interval);
        if self.fixed.is_none() && saved != recipe {
            return Err(ScalerStateError::Settings { saved, recipe });
        }
        self.scale = scale as f32;
        self.growth_tracker = tracker;
        Ok(())
    }
}
