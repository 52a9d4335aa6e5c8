//! An f64 reference of every loss (mmdetection formulas, torch autograd gradients), written
//! independently of the backends and checked against PyTorch in `torch.rs`. Each returns the
//! reduced loss `scale * sum(w * L)` (mmdetection's `weight_reduce_loss` folded into one
//! `scale`) and `d(loss)/d(input)`.

/// Reduced loss and input gradient.
pub struct LossOut {
    pub loss: f64,
    pub grad: Vec<f64>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Stable BCE-with-logits for one element.
fn bce1(x: f64, t: f64) -> f64 {
    x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
}

/// mmdetection `py_sigmoid_focal_loss`; labels outside `0..n_cls` are background;
/// `row_w` per row.
pub fn focal(
    x: &[f64],
    labels: &[i32],
    row_w: Option<&[f64]>,
    n_cls: usize,
    gamma: f64,
    alpha: f64,
    scale: f64,
) -> LossOut {
    let mut loss = 0.0;
    let mut grad = vec![0.0; x.len()];
    for (i, &xi) in x.iter().enumerate() {
        let (r, c) = (i / n_cls, i % n_cls);
        let t = if labels[r] == c as i32 { 1.0 } else { 0.0 };
        let w = row_w.map_or(1.0, |w| w[r]);
        let p = sigmoid(xi);
        let pt = (1.0 - p) * t + p * (1.0 - t);
        let af = alpha * t + (1.0 - alpha) * (1.0 - t);
        let b = bce1(xi, t);
        loss += w * af * pt.powf(gamma) * b;
        // d/dx [af pt^g b] = af (g pt^(g-1) dpt/dx b + pt^g (p - t)), dpt/dx = (1-2t) p (1-p)
        let dpt = (1.0 - 2.0 * t) * p * (1.0 - p);
        let pg1 = if gamma == 0.0 {
            0.0
        } else {
            gamma * pt.powf(gamma - 1.0)
        };
        grad[i] = scale * w * af * (pg1 * dpt * b + pt.powf(gamma) * (p - t));
    }
    LossOut {
        loss: scale * loss,
        grad,
    }
}

/// Softmax cross-entropy per row (torch `cross_entropy(reduction="none")`), rows with
/// `ignore_index` (or out of range) give 0; `row_w` per row.
pub fn cross_entropy(
    x: &[f64],
    labels: &[i32],
    row_w: Option<&[f64]>,
    n_cls: usize,
    ignore_index: i32,
    scale: f64,
) -> LossOut {
    let mut loss = 0.0;
    let mut grad = vec![0.0; x.len()];
    for (r, row) in x.chunks(n_cls).enumerate() {
        let l = labels[r];
        if l == ignore_index || l < 0 || l as usize >= n_cls {
            continue;
        }
        let w = row_w.map_or(1.0, |w| w[r]);
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        loss += w * (m + s.ln() - row[l as usize]);
        for (c, v) in row.iter().enumerate() {
            let onehot = if c as i32 == l { 1.0 } else { 0.0 };
            grad[r * n_cls + c] = scale * w * ((v - m).exp() / s - onehot);
        }
    }
    LossOut {
        loss: scale * loss,
        grad,
    }
}

/// BCE with logits, per-element weight.
pub fn bce(x: &[f64], t: &[f64], w: Option<&[f64]>, scale: f64) -> LossOut {
    let mut loss = 0.0;
    let mut grad = vec![0.0; x.len()];
    for i in 0..x.len() {
        let wi = w.map_or(1.0, |w| w[i]);
        loss += wi * bce1(x[i], t[i]);
        grad[i] = scale * wi * (sigmoid(x[i]) - t[i]);
    }
    LossOut {
        loss: scale * loss,
        grad,
    }
}

fn sign(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// L1, per-element weight.
pub fn l1(x: &[f64], t: &[f64], w: Option<&[f64]>, scale: f64) -> LossOut {
    let mut loss = 0.0;
    let mut grad = vec![0.0; x.len()];
    for i in 0..x.len() {
        let wi = w.map_or(1.0, |w| w[i]);
        let d = x[i] - t[i];
        loss += wi * d.abs();
        grad[i] = scale * wi * sign(d);
    }
    LossOut {
        loss: scale * loss,
        grad,
    }
}

/// mmdetection `smooth_l1_loss`, per-element weight.
pub fn smooth_l1(x: &[f64], t: &[f64], w: Option<&[f64]>, beta: f64, scale: f64) -> LossOut {
    let mut loss = 0.0;
    let mut grad = vec![0.0; x.len()];
    for i in 0..x.len() {
        let wi = w.map_or(1.0, |w| w[i]);
        let d = x[i] - t[i];
        let a = d.abs();
        if a < beta {
            loss += wi * 0.5 * a * a / beta;
            grad[i] = scale * wi * d / beta;
        } else {
            loss += wi * (a - 0.5 * beta);
            grad[i] = scale * wi * sign(d);
        }
    }
    LossOut {
        loss: scale * loss,
        grad,
    }
}

/// d max(a, b) / da as torch's `maximum` backward: 1, 1/2 at a tie, 0.
fn dmax(a: f64, b: f64) -> f64 {
    if a > b {
        1.0
    } else if a == b {
        0.5
    } else {
        0.0
    }
}

/// d min(a, b) / da: 1, 1/2 at a tie, 0.
fn dmin(a: f64, b: f64) -> f64 {
    dmax(b, a)
}

/// mmdetection `giou_loss` over boxes of 4, per-box weight; reverse mode written out by hand.
pub fn giou(p: &[f64], t: &[f64], w: Option<&[f64]>, eps: f64, scale: f64) -> LossOut {
    let mut loss = 0.0;
    let mut grad = vec![0.0; p.len()];
    for b in 0..p.len() / 4 {
        let (px1, py1, px2, py2) = (p[4 * b], p[4 * b + 1], p[4 * b + 2], p[4 * b + 3]);
        let (tx1, ty1, tx2, ty2) = (t[4 * b], t[4 * b + 1], t[4 * b + 2], t[4 * b + 3]);
        let wi = w.map_or(1.0, |w| w[b]);
        let (pw, ph) = (px2 - px1, py2 - py1);
        let ap = pw * ph;
        let at = (tx2 - tx1) * (ty2 - ty1);
        let (iwr, ihr) = (px2.min(tx2) - px1.max(tx1), py2.min(ty2) - py1.max(ty1));
        let (iw, ih) = (iwr.max(0.0), ihr.max(0.0));
        let ov = iw * ih;
        let ur = ap + at - ov;
        let u = ur.max(eps);
        let iou = ov / u;
        let (ewr, ehr) = (px2.max(tx2) - px1.min(tx1), py2.max(ty2) - py1.min(ty1));
        let (ew, eh) = (ewr.max(0.0), ehr.max(0.0));
        let ear = ew * eh;
        let ea = ear.max(eps);
        let g = iou - (ea - u) / ea;
        loss += wi * (1.0 - g);
        // backward of L = 1 - iou + (ea - u) / ea
        let gl = scale * wi;
        let g_u = gl * (ov / (u * u) - 1.0 / ea);
        let g_ea = gl * u / (ea * ea);
        let g_ur = g_u * dmax(ur, eps);
        let g_ov = -gl / u - g_ur;
        let g_ap = g_ur;
        let g_ear = g_ea * dmax(ear, eps);
        let g_ewr = if ewr >= 0.0 { g_ear * eh } else { 0.0 };
        let g_ehr = if ehr >= 0.0 { g_ear * ew } else { 0.0 };
        let g_iwr = if iwr >= 0.0 { g_ov * ih } else { 0.0 };
        let g_ihr = if ihr >= 0.0 { g_ov * iw } else { 0.0 };
        grad[4 * b] = -g_ap * ph - g_iwr * dmax(px1, tx1) - g_ewr * dmin(px1, tx1);
        grad[4 * b + 1] = -g_ap * pw - g_ihr * dmax(py1, ty1) - g_ehr * dmin(py1, ty1);
        grad[4 * b + 2] = g_ap * ph + g_iwr * dmin(px2, tx2) + g_ewr * dmax(px2, tx2);
        grad[4 * b + 3] = g_ap * pw + g_ihr * dmin(py2, ty2) + g_ehr * dmax(py2, ty2);
    }
    LossOut {
        loss: scale * loss,
        grad,
    }
}

/// Random inputs shared by the torch and CPU checks.
pub mod cases {
    use mmrun::util::rng::Rng;

    pub struct Cls {
        pub n_rows: usize,
        pub n_cls: usize,
        pub logits: Vec<f64>,
        /// In `0..=n_cls` (n_cls = background) plus a few `ignore` labels.
        pub labels: Vec<i32>,
        pub row_w: Vec<f64>,
    }

    pub fn cls(rng: &mut Rng, n_rows: usize, n_cls: usize, ignore: Option<i32>) -> Cls {
        let logits = (0..n_rows * n_cls)
            .map(|_| 4.0 * rng.normal_f64())
            .collect();
        let labels = (0..n_rows)
            .map(|_| match ignore {
                Some(ig) if rng.below(10) == 0 => ig,
                _ => rng.below(n_cls as u64 + 1) as i32,
            })
            .collect();
        let row_w = (0..n_rows)
            .map(|_| {
                if rng.below(8) == 0 {
                    0.0
                } else {
                    rng.range_f64(0.1, 2.0)
                }
            })
            .collect();
        Cls {
            n_rows,
            n_cls,
            logits,
            labels,
            row_w,
        }
    }

    pub struct Pointwise {
        pub x: Vec<f64>,
        pub t: Vec<f64>,
        pub w: Vec<f64>,
    }

    /// `x` around `t`, some exactly equal (sign(0) and the smooth-L1 boundary matter).
    pub fn pointwise(rng: &mut Rng, n: usize, probs: bool) -> Pointwise {
        let t: Vec<f64> = (0..n)
            .map(|_| {
                if probs {
                    rng.uniform_f64()
                } else {
                    2.0 * rng.normal_f64()
                }
            })
            .collect();
        let x = t
            .iter()
            .map(|&t| {
                if rng.below(16) == 0 {
                    t
                } else {
                    t + 3.0 * rng.normal_f64()
                }
            })
            .collect();
        let w = (0..n).map(|_| rng.range_f64(0.0, 2.0)).collect();
        Pointwise { x, t, w }
    }

    /// Box pairs: overlapping, disjoint, and some with coordinates tied to the target.
    pub fn boxes(rng: &mut Rng, n: usize) -> Pointwise {
        let mut x = Vec::with_capacity(4 * n);
        let mut t = Vec::with_capacity(4 * n);
        for i in 0..n {
            let (cx, cy) = (rng.range_f64(0.0, 100.0), rng.range_f64(0.0, 100.0));
            let (w, h) = (rng.range_f64(1.0, 40.0), rng.range_f64(1.0, 40.0));
            let tb = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
            let shift = if i % 5 == 0 { 60.0 } else { 8.0 };
            let mut pb = [0.0; 4];
            for (k, v) in pb.iter_mut().enumerate() {
                *v = tb[k] + shift * rng.normal_f64() / 4.0;
            }
            if pb[2] < pb[0] {
                pb.swap(0, 2);
            }
            if pb[3] < pb[1] {
                pb.swap(1, 3);
            }
            if i % 7 == 3 {
                pb[0] = tb[0]; // tie on x1
                pb[3] = tb[3]; // tie on y2
            }
            x.extend(pb);
            t.extend(tb);
        }
        let w = (0..n).map(|_| rng.range_f64(0.0, 2.0)).collect();
        Pointwise { x, t, w }
    }
}
