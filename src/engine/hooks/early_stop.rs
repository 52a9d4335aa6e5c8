//! Early stopping: end the run when `monitor` has not improved by more than `min_delta`
//! for `patience` evaluations in a row.

use super::{Ctx, Hook, HookConfigError, HookError, HookPoint};
use crate::engine::checkpoint::BestRule;
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopConfig {
    pub monitor: String,
    pub rule: Option<BestRule>,
    pub patience: u64,
    pub min_delta: f64,
}

pub struct EarlyStopHook {
    config: EarlyStopConfig,
    best: Option<f64>,
    wait: u64,
}

impl EarlyStopHook {
    pub fn new(config: EarlyStopConfig) -> Result<Self, HookConfigError> {
        if config.patience == 0 || config.min_delta < 0.0 {
            return Err(HookConfigError::EarlyStop);
        }
        Ok(EarlyStopHook {
            config,
            best: None,
            wait: 0,
        })
    }
}

impl Hook for EarlyStopHook {
    fn name(&self) -> &str {
        "early_stopping"
    }

    fn param_access(&self, _: HookPoint, _: &super::Progress) -> super::ParamAccess {
        super::ParamAccess::None
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        let monitor = &self.config.monitor;
        if point == HookPoint::BeforeRun {
            let names = cx.task.metric_names();
            if !names.contains(monitor) {
                return Err(HookError::new(
                    "early_stopping",
                    format!(
                        "monitor names `{monitor}`, which the evaluator does not produce (it produces: {})",
                        names.join(", ")
                    ),
                ));
            }
            return Ok(());
        }
        let s = &mut *cx.run;
        let Some(v) = s.metrics.as_ref().and_then(|m| m.get(monitor)).copied() else {
            return Ok(());
        };
        let rule = self.config.rule.unwrap_or_else(|| BestRule::infer(monitor));
        let improved = match self.best {
            None => true,
            Some(b) => match rule {
                BestRule::Greater => v > b + self.config.min_delta,
                BestRule::Less => v < b - self.config.min_delta,
            },
        };
        if improved {
            self.best = Some(v);
            self.wait = 0;
        } else {
            self.wait += 1;
            if self.wait >= self.config.patience {
                s.stop = Some(format!(
                    "early stopping: {monitor} has not improved on {:.4} for {} evaluations",
                    self.best.unwrap_or(f64::NAN),
                    self.wait
                ));
            }
        }
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "best": self.best, "wait": self.wait })
    }

    fn load_state(
        &mut self,
        state: &serde_json::Value,
        _: &crate::engine::checkpoint::Tensors,
    ) -> Result<(), super::HookStateError> {
        self.best = state.get("best").and_then(|v| v.as_f64());
        self.wait = state.get("wait").and_then(|v| v.as_u64()).unwrap_or(0);
        Ok(())
    }
}
