//! Evaluation: a short sanity pass before training (so a broken metric fails in seconds),
//! then the task's evaluation every `every` from `start`, on the EMA weights when an EMA
//! hook keeps them. Results go into the context for the checkpoint, early-stopping and log
//! hooks that run after it.

use super::{Ctx, Hook, HookConfigError, HookError, HookPoint, ParamAccess, Progress};
use crate::util::units::{Period, PeriodUnit};
use serde::Deserialize;

/// The `eval` hook's settings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub every: Period,
    /// First evaluation after this much training (same unit as `every`).
    pub start: Option<Period>,
    /// Evaluate exactly at these points instead of `every`.
    pub at: Option<Vec<Period>>,
    /// The evaluator (`coco_bbox` …); the task provides it, the hook only records the name.
    pub metric: Option<String>,
    /// Batches of the sanity pass before training; 0 turns it off.
    pub sanity_batches: u64,
}

pub struct EvalHook {
    config: EvalConfig,
}

impl EvalHook {
    pub fn new(config: EvalConfig) -> Result<Self, HookConfigError> {
        if config.every.count == 0 {
            return Err(HookConfigError::Zero {
                hook: "eval",
                key: "every",
            });
        }
        if let Some(s) = config.start
            && s.unit != config.every.unit
        {
            return Err(HookConfigError::EvalUnits {
                start: s,
                every: config.every,
            });
        }
        Ok(EvalHook { config })
    }

    fn due_at(&self, done: u64, unit: PeriodUnit) -> bool {
        match &self.config.at {
            Some(at) => at.iter().any(|p| p.unit == unit && p.count == done),
            None => self.config.every.unit == unit && self.due(done),
        }
    }

    fn due(&self, done: u64) -> bool {
        let every = self.config.every.count;
        match self.config.start {
            Some(s) => done >= s.count && (done - s.count).is_multiple_of(every),
            None => done.is_multiple_of(every),
        }
    }
}

impl Hook for EvalHook {
    fn name(&self) -> &str {
        "eval"
    }

    fn param_access(&self, point: HookPoint, p: &Progress) -> ParamAccess {
        let evaluates = match point {
            HookPoint::BeforeRun => self.config.sanity_batches > 0 && p.iter == 0,
            HookPoint::AfterTrainIter => self.due_at(p.iter + 1, PeriodUnit::Iters),
            HookPoint::AfterTrainEpoch => self.due_at(p.epoch + 1, PeriodUnit::Epochs),
            _ => false,
        };
        if evaluates {
            ParamAccess::Read
        } else {
            ParamAccess::None
        }
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        let p = cx.run.progress;
        let limit = match point {
            HookPoint::BeforeRun => {
                if self.config.sanity_batches == 0 || p.iter > 0 {
                    return Ok(());
                }
                Some(self.config.sanity_batches)
            }
            HookPoint::AfterTrainIter if self.due_at(p.iter + 1, PeriodUnit::Iters) => None,
            HookPoint::AfterTrainEpoch if self.due_at(p.epoch + 1, PeriodUnit::Epochs) => None,
            _ => return Ok(()),
        };
        let s = &mut *cx.run;
        let params = s.ema.as_ref().unwrap_or(&s.params);
        let metrics = cx.task.evaluate(params, limit).map_err(|e| {
            let what = if limit.is_some() {
                "the sanity evaluation before training failed"
            } else {
                "evaluation failed"
            };
            HookError::new("eval", format!("{what}: {e}"))
        })?;
        if let Some(n) = limit {
            s.messages
                .push(format!("sanity evaluation over {n} batches passed"));
        } else {
            s.metrics = Some(metrics);
        }
        Ok(())
    }
}
