//! Stops the run at the first non-finite loss or gradient, before the optimizer can spread
//! it into the weights, naming the iteration and the loss term (or parameter). The runner
//! adds the last good checkpoint to the error. Under f16 loss scaling only the loss is
//! checked: non-finite scaled gradients are the loss scaler's to handle.

use super::{Ctx, Hook, HookError, HookPoint};

pub struct NanGuardHook;

impl Hook for NanGuardHook {
    fn name(&self) -> &str {
        "nan_guard"
    }
    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        if point != HookPoint::AfterTrainIter {
            return Ok(());
        }
        let s = &*cx.run;
        let p = s.progress;
        let at = format!(
            "iteration {} (epoch {}, iter {} of the epoch)",
            p.iter + 1,
            p.epoch + 1,
            p.inner_iter + 1
        );
        if let Some((name, v)) = s.record.losses.iter().find(|(_, v)| !v.is_finite()) {
            return Err(HookError::new(
                "nan_guard",
                format!("{name} is {v} at {at}; weights were not updated"),
            ));
        }
        // Under loss scaling a non-finite gradient is expected now and then: the optimizer
        // hook skips that step and lowers the scale.
        if s.scaler.is_some() {
            return Ok(());
        }
        for q in s.params.iter().filter(|q| q.trainable) {
            if let Some(g) = q.grad.iter().find(|g| !g.is_finite()) {
                return Err(HookError::new(
                    "nan_guard",
                    format!(
                        "the gradient of {} contains {g} at {at}; weights were not updated",
                        q.name
                    ),
                ));
            }
        }
        Ok(())
    }
}
