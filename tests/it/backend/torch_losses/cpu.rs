//! The CPU backend's loss functions (`backend::cpu::loss`, f64) composed with per-element
//! weights and mmdetection's reduction factor, pinned to the independent reference in
//! `formulas.rs`, which is itself pinned to PyTorch (`torch.rs`): the CPU backend — the
//! reference of the shared backend suite — is checked against torch.

use mmrun::backend::cpu::loss as cpu;
use mmrun::ir::op::IouKind;
use mmrun::util::rng::Rng;

use super::formulas::{self as reference, LossOut, cases};

/// `scale * Σ w L` and `scale * w * dL/dx` from per-element CPU losses; `w` per element.
fn reduce(out: &[f64], w: &[f64], scale: f64, grad: impl FnOnce(&[f64]) -> Vec<f64>) -> LossOut {
    let dy: Vec<f64> = w.iter().map(|w| scale * w).collect();
    LossOut {
        loss: scale * out.iter().zip(w).map(|(l, w)| l * w).sum::<f64>(),
        grad: grad(&dy),
    }
}

fn ones(n: usize) -> Vec<f64> {
    vec![1.0; n]
}

pub fn focal(
    x: &[f64],
    labels: &[i32],
    row_w: Option<&[f64]>,
    n_cls: usize,
    gamma: f64,
    alpha: f64,
    scale: f64,
) -> LossOut {
    let t: Vec<f64> = (0..x.len())
        .map(|i| {
            if labels[i / n_cls] == (i % n_cls) as i32 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let w: Vec<f64> = (0..x.len())
        .map(|i| row_w.map_or(1.0, |w| w[i / n_cls]))
        .collect();
    let mut out = vec![0.0; x.len()];
    cpu::sigmoid_focal(x, &t, alpha, gamma, &mut out);
    reduce(&out, &w, scale, |dy| {
        let mut dx = vec![0.0; x.len()];
        cpu::sigmoid_focal_grad(x, &t, alpha, gamma, dy, &mut dx);
        dx
    })
}

pub fn cross_entropy(
    x: &[f64],
    labels: &[i32],
    row_w: Option<&[f64]>,
    n_cls: usize,
    ignore: i32,
    scale: f64,
) -> LossOut {
    let n = labels.len();
    let w = row_w.map_or_else(|| ones(n), |w| w.to_vec());
    let mut out = vec![0.0; n];
    cpu::cross_entropy(x, labels, n_cls, ignore as i64, 0.0, &mut out);
    reduce(&out, &w, scale, |dy| {
        let mut dx = vec![0.0; x.len()];
        cpu::cross_entropy_grad(x, labels, n_cls, ignore as i64, 0.0, dy, &mut dx);
        dx
    })
}

pub fn bce(x: &[f64], t: &[f64], w: Option<&[f64]>, scale: f64) -> LossOut {
    let w = w.map_or_else(|| ones(x.len()), |w| w.to_vec());
    let mut out = vec![0.0; x.len()];
    cpu::bce_with_logits(x, t, &mut out);
    reduce(&out, &w, scale, |dy| {
        let mut dx = vec![0.0; x.len()];
        cpu::bce_with_logits_grad(x, t, dy, &mut dx);
        dx
    })
}

pub fn l1(x: &[f64], t: &[f64], w: Option<&[f64]>, scale: f64) -> LossOut {
    let w = w.map_or_else(|| ones(x.len()), |w| w.to_vec());
    let mut out = vec![0.0; x.len()];
    cpu::l1(x, t, &mut out);
    reduce(&out, &w, scale, |dy| {
        let mut dx = vec![0.0; x.len()];
        cpu::l1_grad(x, t, dy, false, &mut dx);
        dx
    })
}

pub fn smooth_l1(x: &[f64], t: &[f64], w: Option<&[f64]>, beta: f64, scale: f64) -> LossOut {
    let w = w.map_or_else(|| ones(x.len()), |w| w.to_vec());
    let mut out = vec![0.0; x.len()];
    cpu::smooth_l1(x, t, beta, &mut out);
    reduce(&out, &w, scale, |dy| {
        let mut dx = vec![0.0; x.len()];
        cpu::smooth_l1_grad(x, t, beta, dy, false, &mut dx);
        dx
    })
}

pub fn giou(p: &[f64], t: &[f64], w: Option<&[f64]>, eps: f64, scale: f64) -> LossOut {
    let n = p.len() / 4;
    let w = w.map_or_else(|| ones(n), |w| w.to_vec());
    let mut out = vec![0.0; n];
    cpu::iou_loss(p, t, IouKind::GIoU, eps, &mut out);
    reduce(&out, &w, scale, |dy| {
        let mut dx = vec![0.0; p.len()];
        cpu::iou_loss_grad(p, t, IouKind::GIoU, eps, dy, false, &mut dx);
        dx
    })
}

fn same(name: &str, a: &LossOut, b: &LossOut) {
    close(name, a, b, 1e-10);
}

fn close(name: &str, a: &LossOut, b: &LossOut, rel: f64) {
    let tol = |v: f64| rel * (1.0 + v.abs());
    assert!(
        (a.loss - b.loss).abs() <= tol(b.loss),
        "{name}: cpu loss {} vs reference {}",
        a.loss,
        b.loss
    );
    assert_eq!(a.grad.len(), b.grad.len());
    for (i, (x, y)) in a.grad.iter().zip(&b.grad).enumerate() {
        assert!(
            (x - y).abs() <= tol(*y),
            "{name}: cpu grad[{i}] {x} vs reference {y}"
        );
    }
}

#[test]
fn cpu_backend_losses_match_the_f64_reference() {
    let mut rng = Rng::seed(0xc0ffee);
    let c = cases::cls(&mut rng, 41, 7, None);
    for gamma in [2.0, 1.5, 0.0] {
        same(
            "focal",
            &focal(
                &c.logits,
                &c.labels,
                Some(&c.row_w),
                c.n_cls,
                gamma,
                0.25,
                0.3,
            ),
            &reference::focal(
                &c.logits,
                &c.labels,
                Some(&c.row_w),
                c.n_cls,
                gamma,
                0.25,
                0.3,
            ),
        );
    }
    let c = cases::cls(&mut rng, 33, 9, Some(-100));
    same(
        "ce",
        &cross_entropy(&c.logits, &c.labels, Some(&c.row_w), c.n_cls, -100, 0.7),
        &reference::cross_entropy(&c.logits, &c.labels, Some(&c.row_w), c.n_cls, -100, 0.7),
    );
    let p = cases::pointwise(&mut rng, 200, true);
    same(
        "bce",
        &bce(&p.x, &p.t, Some(&p.w), 0.1),
        &reference::bce(&p.x, &p.t, Some(&p.w), 0.1),
    );
    let p = cases::pointwise(&mut rng, 200, false);
    same(
        "l1",
        &l1(&p.x, &p.t, Some(&p.w), 0.1),
        &reference::l1(&p.x, &p.t, Some(&p.w), 0.1),
    );
    same(
        "smooth_l1",
        &smooth_l1(&p.x, &p.t, None, 0.5, 1.0),
        &reference::smooth_l1(&p.x, &p.t, None, 0.5, 1.0),
    );
    let b = cases::boxes(&mut rng, 60);
    // The CPU backend places eps as torchvision does (`ov / (union + eps)`), the reference as
    // mmdetection's bbox_overlaps (`ov / max(union, eps)`): equal up to eps-sized terms.
    close(
        "giou",
        &giou(&b.x, &b.t, Some(&b.w), 1e-6, 0.5),
        &reference::giou(&b.x, &b.t, Some(&b.w), 1e-6, 0.5),
        1e-6,
    );
}
