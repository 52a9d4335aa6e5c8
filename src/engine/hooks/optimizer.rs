//! The optimizer step: gradient accumulation (mmcv's `GradientCumulativeOptimizerHook`
//! semantics, including the shorter last window), clipping by norm or value, then the update.
//! Under f16 loss scaling it is mmcv's `Fp16OptimizerHook` as well: the gradients are
//! unscaled before clipping, a step with a non-finite gradient is skipped, the scale updated.
//! With the parameters kept on a device the update runs there, clipping by norm included (the
//! norm from the gradients' sum of squares, the coefficient applied inside the update).

use super::{
    Ctx, Hook, HookConfigError, HookError, HookPoint, HookStateError, ParamAccess, Progress,
    Residence,
};
use crate::engine::checkpoint::{Tensor, Tensors};
use crate::engine::optim::{clip_grad_norm, clip_grad_value};
use serde::Deserialize;

/// `grad_clip`: exactly one of `max_norm` (total L2 norm) or `clip_value`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    pub max_norm: Option<f64>,
    pub norm_type: f64,
    pub clip_value: Option<f64>,
}

/// Settings of the optimizer hook.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerHookConfig {
    pub grad_clip: Option<ClipConfig>,
    /// Gradient accumulation: step once every this many iterations.
    #[serde(alias = "accumulation")]
    pub cumulative_iters: u64,
}

/// Steps the optimizer after each (or each `cumulative_iters`-th) training iteration.
pub struct OptimizerHook {
    config: OptimizerHookConfig,
    /// Gradients accumulated so far in the current window, by parameter index.
    acc: Vec<Vec<f32>>,
    /// Iterations accumulated in the current window.
    pending: u64,
}

impl OptimizerHook {
    pub fn new(config: OptimizerHookConfig) -> Result<Self, HookConfigError> {
        if config.cumulative_iters == 0 {
            return Err(HookConfigError::Zero {
                hook: "optimizer",
                key: "cumulative_iters",
            });
        }
        if let Some(c) = &config.grad_clip {
            match (c.max_norm, c.clip_value) {
                (Some(n), None) if n > 0.0 => {
                    if c.norm_type != 2.0 {
                        return Err(HookConfigError::NormType {
                            norm_type: c.norm_type,
                        });
                    }
                }
                (None, Some(v)) if v > 0.0 => {}
                _ => return Err(HookConfigError::ClipLimit),
            }
        }
        Ok(OptimizerHook {
            config,
            acc: Vec::new(),
            pending: 0,
        })
    }
}

impl OptimizerHook {
    /// The step with the parameters kept on the device (no accumulation, no f16 scaling, no
    /// clipping by value: `needs_host_grads` keeps those runs on the host).
    fn step_on_device(&mut self, cx: &mut Ctx) -> Result<(), HookError> {
        let s = &mut *cx.run;
        let device = |e: crate::engine::GraphRunError| HookError::new("optimizer", e.to_string());
        let kept = (cx.task.device_params())
            .ok_or_else(|| HookError::new("optimizer", "the parameters' device is gone"))?;
        let mut grad_scale = 1.0;
        if let Some(max_norm) = self.config.grad_clip.as_ref().and_then(|c| c.max_norm) {
            // clip_grad_norm_'s coefficient, as `optim::clip_grad_norm` computes it.
            let total = kept.grad_sum_squares(&s.params).map_err(device)?.sqrt();
            s.record.grad_norm = Some(total);
            let coef = max_norm / (total + 1e-6);
            if coef < 1.0 {
                grad_scale = coef;
            }
        }
        (kept.update(&mut s.optimizer, &s.params, grad_scale)).map_err(device)?;
        s.residence = Residence::DeviceAhead;
        Ok(())
    }
}

impl Hook for OptimizerHook {
    fn name(&self) -> &str {
        "optimizer"
    }

    fn param_access(&self, _: HookPoint, _: &Progress) -> ParamAccess {
        ParamAccess::None
    }

    fn needs_host_grads(&self) -> bool {
        self.config.cumulative_iters > 1
            || self
                .config
                .grad_clip
                .as_ref()
                .is_some_and(|c| c.max_norm.is_none())
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        if point != HookPoint::AfterTrainIter {
            return Ok(());
        }
        if cx.run.residence != Residence::Host {
            return self.step_on_device(cx);
        }
        let s = &mut *cx.run;
        let n = self.config.cumulative_iters;
        let p = s.progress;
        if n > 1 {
            // The loss of each iteration is divided by the window length; the last window of
            // the run may be shorter (mmcv divides by the remainder there).
            let divisible = p.max_iters / n * n;
            let factor = if p.iter < divisible {
                n
            } else {
                p.max_iters - divisible
            } as f32;
            if self.acc.is_empty() {
                self.acc = s.params.iter().map(|q| vec![0.0; q.grad.len()]).collect();
            }
            for (a, q) in self.acc.iter_mut().zip(s.params.iter()) {
                for (x, &g) in a.iter_mut().zip(&q.grad) {
                    *x += g / factor;
                }
            }
            self.pending += 1;
            if !(p.every_iters(n) || p.last_iter()) {
                return Ok(());
            }
            for (a, q) in self.acc.iter_mut().zip(s.params.iter_mut()) {
                q.grad.copy_from_slice(a);
                a.iter_mut().for_each(|x| *x = 0.0);
            }
            self.pending = 0;
        }
        // mmcv's Fp16OptimizerHook: unscale, clip, step unless a gradient overflowed, update
        // the scale.
        let found_inf = s
            .scaler
            .as_ref()
            .is_some_and(|sc| sc.unscale(&mut s.params));
        if let Some(c) = &self.config.grad_clip {
            if let Some(max_norm) = c.max_norm {
                s.record.grad_norm = Some(clip_grad_norm(&mut s.params, max_norm));
            } else if let Some(v) = c.clip_value {
                clip_grad_value(&mut s.params, v);
            }
        }
        if !found_inf {
            s.optimizer.step(&mut s.params);
        }
        if let Some(sc) = &mut s.scaler {
            sc.update(found_inf);
        }
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "pending": self.pending })
    }

    fn state_tensors(&self) -> Tensors {
        if self.pending == 0 {
            return Tensors::new();
        }
        self.acc
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    format!("acc.{i}"),
                    Tensor {
                        shape: vec![a.len()],
                        data: a.clone(),
                    },
                )
            })
            .collect()
    }

    fn load_state(
        &mut self,
        state: &serde_json::Value,
        tensors: &Tensors,
    ) -> Result<(), HookStateError> {
        self.pending = state.get("pending").and_then(|v| v.as_u64()).unwrap_or(0);
        self.acc.clear();
        if self.pending > 0 {
            let mut i = 0;
            while let Some(t) = tensors.get(&format!("acc.{i}")) {
                self.acc.push(t.data.clone());
                i += 1;
            }
            if self.acc.is_empty() {
                return Err(HookStateError::MissingAccumulation {
                    pending: self.pending,
                });
            }
        }
        Ok(())
    }
}
