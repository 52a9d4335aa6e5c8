//! Gradient clipping with torch.nn.utils' semantics, over trainable parameters only.

use crate::engine::params::ParamSet;

/// Total L2 norm of all trainable gradients (the norm of the per-parameter norms), in f64.
pub fn grad_norm(params: &ParamSet) -> f64 {
    params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.grad.iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>())
        .sum::<f64>()
        .sqrt()
}

/// `clip_grad_norm_(max_norm, norm_type=2)`: scale all gradients by
/// `min(1, max_norm / (total + 1e-6))`. Returns the total norm before clipping.
pub fn clip_grad_norm(params: &mut ParamSet, max_norm: f64) -> f64 {
    let total = grad_norm(params);
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let c = coef as f32;
        for p in params.iter_mut().filter(|p| p.trainable) {
            p.grad.iter_mut().for_each(|g| *g *= c);
        }
    }
    total
}

/// `clip_grad_value_(clip_value)`: clamp every gradient into `[-v, v]`.
pub fn clip_grad_value(params: &mut ParamSet, clip_value: f64) {
    let v = clip_value as f32;
    for p in params.iter_mut().filter(|p| p.trainable) {
        p.grad.iter_mut().for_each(|g| *g = g.clamp(-v, v));
    }
}
