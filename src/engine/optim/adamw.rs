//! AdamW with torch.optim.AdamW's update (single-tensor path, no amsgrad): decoupled weight
//! decay `p *= 1 - lr·wd`, moments by `lerp` and `addcmul`, bias corrections computed in f64
//! like Python does, then applied in f32.

use super::Slot;

pub(super) struct Hyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

pub(super) fn update(value: &mut [f32], grad: &[f32], slot: &mut Slot, h: Hyper) {
    if slot.bufs.is_empty() {
        slot.bufs = vec![vec![0.0; value.len()], vec![0.0; value.len()]];
    }
    slot.step += 1;
    let step = slot.step as i32;
    let decay = (1.0 - h.lr * h.weight_decay) as f32;
    let w1 = (1.0 - h.beta1) as f32;
    let b2 = h.beta2 as f32;
    let w2 = (1.0 - h.beta2) as f32;
    let bc1 = 1.0 - h.beta1.powi(step);
    let bc2_sqrt = (1.0 - h.beta2.powi(step)).sqrt();
    let neg_step_size = (-(h.lr / bc1)) as f32;
    let bc2_sqrt = bc2_sqrt as f32;
    let eps = h.eps as f32;
    let (m, v) = slot.bufs.split_at_mut(1);
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
