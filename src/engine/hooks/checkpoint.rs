//! Asks for periodic checkpoints (`every`, `save_last`) and for a best checkpoint when an
//! evaluation improves `save_best` by `rule`. Writing, `max_keep_ckpts` and `out_dir` are
//! the runner's [`CheckpointManager`](crate::engine::checkpoint::CheckpointManager) business.

use super::{Ctx, Hook, HookConfigError, HookError, HookPoint, SaveRequest};
use crate::engine::checkpoint::BestRule;
use crate::util::units::Period;
use serde::Deserialize;
use std::path::PathBuf;

/// The `checkpoint` hook's settings (mmcv's names).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    pub every: Period,
    /// Periodic checkpoints to keep; -1 keeps all.
    pub max_keep_ckpts: i64,
    pub save_optimizer: bool,
    pub save_last: bool,
    pub save_best: Option<String>,
    pub rule: Option<BestRule>,
    /// Folder for checkpoints; default `<work_dir>/checkpoints`.
    pub out_dir: Option<PathBuf>,
}

pub struct CheckpointHook {
    config: CheckpointConfig,
}

impl CheckpointHook {
    pub fn new(config: CheckpointConfig) -> Result<Self, HookConfigError> {
        if config.every.count == 0 {
            return Err(HookConfigError::Zero {
                hook: "checkpoint",
                key: "every",
            });
        }
        if config.max_keep_ckpts == 0 || config.max_keep_ckpts < -1 {
            return Err(HookConfigError::MaxKeep {
                max_keep: config.max_keep_ckpts,
            });
        }
        Ok(CheckpointHook { config })
    }
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }
    fn rule(&self, metric: &str) -> BestRule {
        self.config.rule.unwrap_or_else(|| BestRule::infer(metric))
    }
}

impl Hook for CheckpointHook {
    fn name(&self) -> &str {
        "checkpoint"
    }

    fn param_access(&self, _: HookPoint, _: &super::Progress) -> super::ParamAccess {
        super::ParamAccess::None
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        let s = &mut *cx.run;
        let p = s.progress;
        let at_epoch_end = match point {
            HookPoint::BeforeRun => {
                if let Some(m) = &self.config.save_best {
                    let names = cx.task.metric_names();
                    if !names.contains(m) {
                        return Err(HookError::new(
                            "checkpoint",
                            format!(
                                "save_best names `{m}`, which the evaluator does not produce (it produces: {})",
                                names.join(", ")
                            ),
                        ));
                    }
                }
                return Ok(());
            }
            HookPoint::AfterTrainIter => false,
            HookPoint::AfterTrainEpoch => true,
            _ => return Ok(()),
        };
        let by_iters = self.config.every.unit == crate::util::units::PeriodUnit::Iters;
        let tag = if at_epoch_end {
            format!("epoch_{}", p.epoch + 1)
        } else {
            format!("iter_{}", p.iter + 1)
        };
        let periodic = p.fires(self.config.every, at_epoch_end);
        let last = self.config.save_last
            && by_iters != at_epoch_end
            && if at_epoch_end {
                p.last_epoch()
            } else {
                p.last_iter()
            };
        if periodic || last {
            s.save_requests.push(SaveRequest::Periodic(tag.clone()));
        }
        if let (Some(metric), Some(metrics)) = (&self.config.save_best, &s.metrics)
            && let Some(&v) = metrics.get(metric)
        {
            let rule = self.rule(metric);
            // A non-finite score (a diverged evaluation) never becomes the best, first or
            // later: it would beat every finite one under one of the rules.
            let better = v.is_finite()
                && match &s.best {
                    Some((_, old, _)) => rule.better(v, *old),
                    None => true,
                };
            if better {
                s.best = Some((metric.clone(), v, p.iter + 1));
                s.messages.push(format!(
                    "new best {metric} = {v:.4} at {tag}; saving checkpoint"
                ));
                s.save_requests.push(SaveRequest::Best {
                    metric: metric.clone(),
                    tag,
                });
            }
        }
        Ok(())
    }
}
