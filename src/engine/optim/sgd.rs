//! SGD with torch.optim.SGD's update (single-tensor path), in f32 like torch on the CPU:
//! `d = g + wd·p; buf = d (first step) | μ·buf + (1-τ)·d; d = d + μ·buf (nesterov) | buf;
//! p -= lr·d`.

use super::Slot;

pub(super) struct Hyper {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

pub(super) fn update(value: &mut [f32], grad: &[f32], slot: &mut Slot, h: Hyper) {
    // torch converts the Python-float scalars to the tensor's dtype inside the kernels.
    let wd = h.weight_decay as f32;
    let mom = h.momentum as f32;
    let damp = (1.0 - h.dampening) as f32;
    let neg_lr = -h.lr as f32;
    slot.step += 1;
    if h.momentum == 0.0 {
        for (p, &g) in value.iter_mut().zip(grad) {
            let d = if wd != 0.0 { g + wd * *p } else { g };
            *p += neg_lr * d;
        }
        return;
    }
    let first = slot.bufs.is_empty();
    if first {
        slot.bufs.push(vec![0.0; value.len()]);
    }
    let buf = &mut slot.bufs[0];
    for ((p, &g), b) in value.iter_mut().zip(grad).zip(buf.iter_mut()) {
        let d = if wd != 0.0 { g + wd * *p } else { g };
        *b = if first { d } else { *b * mom + damp * d };
        let d = if h.nesterov { d + mom * *b } else { *b };
        *p += neg_lr * d;
    }
}
