//! Reseeds the sampler at the start of every epoch (also when resuming into the middle of
//! one), so each epoch's order depends only on the task's seed and the epoch number.

use super::{Ctx, Hook, HookError, HookPoint};

pub struct SamplerSeedHook;

impl Hook for SamplerSeedHook {
    fn name(&self) -> &str {
        "sampler_seed"
    }
    fn param_access(&self, _: HookPoint, _: &super::Progress) -> super::ParamAccess {
        super::ParamAccess::None
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        if point == HookPoint::BeforeTrainEpoch {
            cx.task.set_epoch(cx.run.progress.epoch);
        }
        Ok(())
    }
}
