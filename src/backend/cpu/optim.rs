//! torch.optim's SGD and AdamW updates on f32 slices, in f32 like torch on the CPU (its
//! single-tensor path): the rules' one host implementation, behind the CPU backend's `update`
//! and the runner's optimizer alike, and the reference the device kernels are tested against.
//!
//! SGD: `d = g + wd·p; buf = d (fresh) | μ·buf + (1-τ)·d; d = d + μ·buf (nesterov) | buf;
//! p -= lr·d`. AdamW: decoupled decay `p *= 1 - lr·wd`, moments by `lerp` and `addcmul`, bias
//! corrections computed in f64 as Python does, then applied in f32. A `grad_scale` other than
//! 1 multiplies each gradient first, as `clip_grad_norm_` does in place.

use super::unsupported;
use crate::backend::BackendError;
use crate::backend::optim::{ParamHyper, ParamUpdate, UpdateRule, check_update};
use crate::ir::{DType, HostData};

/// `Backend::update` on host buffers: every parameter checked, then each updated by [`update`].
pub(super) fn update_buffers(
    rule: &UpdateRule,
    params: &mut [ParamUpdate<'_, HostData>],
) -> Result<(), BackendError> {
    for p in params.iter() {
        check_update(rule, p, HostData::len).map_err(|message| BackendError::Invalid {
            backend: "cpu",
            op: "update",
            message,
        })?;
        let bufs = [&*p.value, p.grad].into_iter();
        if let Some(b) = bufs
            .chain(&p.state[..rule.state_buffers()])
            .find(|b| b.dtype() != DType::F32)
        {
            return Err(unsupported("update", b.dtype()));
        }
    }
    let need = rule.state_buffers();
    for p in params.iter_mut() {
        let n = p.len;
        let HostData::F32(grad) = p.grad else {
            return Err(unsupported("update", p.grad.dtype()));
        };
        let mut state = Vec::with_capacity(need);
        for s in p.state[..need].iter_mut() {
            match s {
                HostData::F32(s) => state.push(&mut s[..n]),
                other => return Err(unsupported("update", other.dtype())),
            }
        }
        let HostData::F32(value) = &mut *p.value else {
            return Err(unsupported("update", p.value.dtype()));
        };
        update(rule, &mut value[..n], &grad[..n], &mut state, p.hyper);
    }
    Ok(())
}

/// Updates `value` from `grad` and `state` ([`UpdateRule::state_buffers`] slices, each at
/// least `value.len()` long).
pub fn update(
    rule: &UpdateRule,
    value: &mut [f32],
    grad: &[f32],
    state: &mut [&mut [f32]],
    h: ParamHyper,
) {
    let c = h.grad_scale as f32;
    if c != 1.0 {
        let scaled: Vec<f32> = grad.iter().map(|&g| g * c).collect();
        return update(
            rule,
            value,
            &scaled,
            state,
            ParamHyper {
                grad_scale: 1.0,
                ..h
            },
        );
    }
    match *rule {
        UpdateRule::Sgd {
            momentum,
            dampening,
            nesterov,
        } => sgd(value, grad, state, h, momentum, dampening, nesterov),
        UpdateRule::AdamW { beta1, beta2, eps } => adamw(value, grad, state, h, beta1, beta2, eps),
    }
}

fn sgd(
    value: &mut [f32],
    grad: &[f32],
    state: &mut [&mut [f32]],
    h: ParamHyper,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
) {
    // torch converts the Python-float scalars to the tensor's dtype inside the kernels.
    let wd = h.weight_decay as f32;
    let neg_lr = -h.lr as f32;
    let direction = |g: f32, p: f32| if wd != 0.0 { g + wd * p } else { g };
    if momentum == 0.0 {
        for (p, &g) in value.iter_mut().zip(grad) {
            *p += neg_lr * direction(g, *p);
        }
        return;
    }
    let mom = momentum as f32;
    let damp = (1.0 - dampening) as f32;
    for ((p, &g), b) in value.iter_mut().zip(grad).zip(state[0].iter_mut()) {
        let d = direction(g, *p);
        *b = if h.fresh { d } else { *b * mom + damp * d };
        let d = if nesterov { d + mom * *b } else { *b };
        *p += neg_lr * d;
    }
}

fn adamw(
    value: &mut [f32],
    grad: &[f32],
    state: &mut [&mut [f32]],
    h: ParamHyper,
    beta1: f64,
    beta2: f64,
    eps: f64,
) {
    let step = h.step.min(i32::MAX as u64) as i32;
    let decay = (1.0 - h.lr * h.weight_decay) as f32;
    let w1 = (1.0 - beta1) as f32;
    let b2 = beta2 as f32;
    let w2 = (1.0 - beta2) as f32;
    let bc1 = 1.0 - beta1.powi(step);
    let bc2_sqrt = (1.0 - beta2.powi(step)).sqrt() as f32;
    let neg_step_size = (-(h.lr / bc1)) as f32;
    let eps = eps as f32;
    let (m, v) = state.split_at_mut(1);
    if h.fresh {
        m[0].fill(0.0);
        v[0].fill(0.0);
    }
    for (((p, &g), m), v) in value
        .iter_mut()
        .zip(grad)
        .zip(m[0].iter_mut())
        .zip(v[0].iter_mut())
    {
        *p *= decay;
        // torch's lerp with weight < 0.5: a + w·(b − a).
        *m += w1 * (g - *m);
        *v = *v * b2 + w2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p += neg_step_size * (*m / denom);
    }
}
