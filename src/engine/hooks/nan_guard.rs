//! Stops the run at the first non-finite loss or gradient, before the optimizer can spread
//! it into the weights, naming the iteration and the loss term (or parameter). The runner
//! adds the last good checkpoint to the error. Under f16 loss scaling only the loss is
//! checked: non-finite scaled gradients are the loss scaler's to handle. Gradients kept on a
//! device are checked there, by their sum of squares (finite exactly when every element is,
//! barring an overflow, which reading them back then tells apart).

use super::{Ctx, Hook, HookError, HookPoint, ParamAccess, Progress, Residence};

pub struct NanGuardHook;

impl Hook for NanGuardHook {
    fn name(&self) -> &str {
        "nan_guard"
    }
    fn param_access(&self, _: HookPoint, _: &Progress) -> ParamAccess {
        ParamAccess::None
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
        let bad = |name: &str, g: f32| {
            HookError::new(
                "nan_guard",
                format!("the gradient of {name} contains {g} at {at}; weights were not updated"),
            )
        };
        if s.residence != Residence::Host {
            let device = |e: crate::engine::GraphRunError| {
                HookError::new("nan_guard", format!("checking the gradients: {e}"))
            };
            let kept = cx
                .task
                .device_params()
                .ok_or_else(|| HookError::new("nan_guard", "the parameters' device is gone"))?;
            if kept
                .grad_sum_squares(&s.params)
                .map_err(device)?
                .is_finite()
            {
                return Ok(());
            }
            return match kept.first_non_finite_grad(&s.params).map_err(device)? {
                Some((name, g)) => Err(bad(&name, g)),
                None => Ok(()),
            };
        }
        for q in s.params.iter().filter(|q| q.trainable) {
            if let Some(g) = q.grad.iter().find(|g| !g.is_finite()) {
                return Err(bad(&q.name, *g));
            }
        }
        Ok(())
    }
}
