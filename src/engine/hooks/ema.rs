//! Exponential moving average of the weights with mmcv's `EMAHook` rule:
//! `ema = (1 - m)·ema + m·param` every `interval` iterations, where
//! `m = min(momentum, (1 + iter) / (warm_up + iter))`. Buffers are copied. The shadow
//! weights live in the runner state (saved as `ema.safetensors`) and evaluation uses them.

use super::{Ctx, Hook, HookConfigError, HookError, HookPoint};
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    pub momentum: f64,
    pub interval: u64,
    pub warm_up: u64,
}

pub struct EmaHook {
    config: EmaConfig,
}

impl EmaHook {
    pub fn new(config: EmaConfig) -> Result<Self, HookConfigError> {
        if !(config.momentum > 0.0 && config.momentum < 1.0) {
            return Err(HookConfigError::EmaMomentum {
                momentum: config.momentum,
            });
        }
        if config.interval == 0 {
            return Err(HookConfigError::Zero {
                hook: "ema",
                key: "interval",
            });
        }
        Ok(EmaHook { config })
    }
}

impl Hook for EmaHook {
    fn name(&self) -> &str {
        "ema"
    }

    fn after(&self) -> Vec<String> {
        vec!["optimizer".into()]
    }

    fn param_access(&self, _: HookPoint, _: &super::Progress) -> super::ParamAccess {
        super::ParamAccess::Read
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        let s = &mut *cx.run;
        match point {
            HookPoint::BeforeRun if s.ema.is_none() => {
                s.ema = Some(s.params.clone());
            }
            HookPoint::AfterTrainIter => {
                let it = s.progress.iter;
                if !it.is_multiple_of(self.config.interval) {
                    return Ok(());
                }
                let m = self
                    .config
                    .momentum
                    .min((1 + it) as f64 / (self.config.warm_up + it) as f64)
                    as f32;
                let ema = s.ema.get_or_insert_with(|| s.params.clone());
                for (e, q) in ema.iter_mut().zip(s.params.iter()) {
                    if q.trainable {
                        for (x, &v) in e.values_mut().iter_mut().zip(q.values()) {
                            *x = *x * (1.0 - m) + m * v;
                        }
                    } else {
                        e.values_mut().copy_from_slice(q.values());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
