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
}

impl Hook for LrHook {
    fn name(&self) -> &str {
        "lr"
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        if point != HookPoint::BeforeTrainIter {
            return Ok(());
        }
        let s = &mut *cx.run;
        let p = s.progress;
        if let Some(l) = &self.lr {
            let v = l.value(&p, s.optimizer.base_lr());
            if !v.is_finite() || v < 0.0 {
                return Err(HookError::new(
                    "lr",
                    format!("the lr schedule gave {v} at iteration {}", p.iter),
                ));
            }
            s.optimizer.set_lr(v);
        }
        if let Some(m) = &self.momentum {
            let v = m.value(&p, s.optimizer.base_momentum());
            s.optimizer.set_momentum(v);
        }
        Ok(())
    }
}
