//! Sets the learning rate and momentum before every training iteration from schedules.
//! The formulas live in `schedule` (the `sched` module); this hook only asks them
//! for a value at the current position, so resume needs no schedule state beyond the
//! position itself.

use super::{Ctx, Hook, HookError, HookPoint, Progress};

/// A scheduled quantity: its value at a position, given the recipe's base value.
pub trait Schedule: Send {
    fn value(&self, progress: &Progress, base: f64) -> f64;
}

impl<F: Fn(&Progress, f64) -> f64 + Send> Schedule for F {
    fn value(&self, progress: &Progress, base: f64) -> f64 {
        self(progress, base)
    }
}

/// The `lr` hook.
pub struct LrHook {
    lr: Option<Box<dyn Schedule>>,
    momentum: Option<Box<dyn Schedule>>,
}

impl LrHook {
    pub fn new(lr: Option<Box<dyn Schedule>>, momentum: Option<Box<dyn Schedule>>) -> Self {
        LrHook { lr, momentum }
    }

    /// The learning rate and momentum for the iteration at `p`, from the optimizer's base
    /// values (`None`: that quantity is not scheduled): what the hook sets before each train
    /// iteration, and what `mmrun plan --schedule-plot` samples over a planned run.
    pub fn values_at(
        &self,
        p: &Progress,
        base_lr: f64,
        base_momentum: f64,
    ) -> Result<(Option<f64>, Option<f64>), HookError> {
        let lr = match &self.lr {
            Some(l) => {
                let v = l.value(p, base_lr);
                if !v.is_finite() || v < 0.0 {
                    return Err(HookError::new(
                        "lr",
                        format!("the lr schedule gave {v} at iteration {}", p.iter),
                    ));
                }
                Some(v)
            }
            None => None,
        };
        let momentum = self.momentum.as_ref().map(|m| m.value(p, base_momentum));
        Ok((lr, momentum))
    }
}

impl Hook for LrHook {
    fn name(&self) -> &str {
        "lr"
    }

    fn param_access(&self, _: HookPoint, _: &super::Progress) -> super::ParamAccess {
        super::ParamAccess::None
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        if point != HookPoint::BeforeTrainIter {
            return Ok(());
        }
        let s = &mut *cx.run;
        let base = (s.optimizer.base_lr(), s.optimizer.base_momentum());
        let (lr, momentum) = self.values_at(&s.progress, base.0, base.1)?;
        if let Some(v) = lr {
            s.optimizer.set_lr(v);
        }
        if let Some(v) = momentum {
            s.optimizer.set_momentum(v);
        }
        Ok(())
    }
}
