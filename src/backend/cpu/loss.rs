//! Detection losses without reduction, forward and gradient, as plain functions on slices
//! (f32 or f64) so that other backends' parity tests can call them. Formulas are
//! torchvision's / PyTorch's; gradients are those autograd computes, including its choices at
//! kinks (|d| = 0 gives 0 for L1; ties in box min/max split the gradient in half).

use super::Float;
use super::elementwise::sigmoid;
use super::map::{map2, map3};
use crate::ir::op::IouKind;
use rayon::prelude::*;

/// `max(x, 0) - x t + ln(1 + exp(-|x|))`.
#[inline]
fn bce<T: Float>(x: T, t: T) -> T {
    x.max(T::ZERO) - x * t + (-x.abs()).exp().ln_1p()
}

/// Binary cross-entropy with logits per element.
pub fn bce_with_logits<T: Float>(x: &[T], t: &[T], out: &mut [T]) {
    map2(x, t, out, bce);
}

/// Its gradient w.r.t. the logits: `(σ(x) - t) dy`.
pub fn bce_with_logits_grad<T: Float>(x: &[T], t: &[T], dy: &[T], dx: &mut [T]) {
    map3(x, t, dy, dx, |x, t, d| (sigmoid(x) - t) * d);
}

/// The weights of `α_t = w1·t + w0·(1 - t)`: `(α, 1 - α)`, or `(1, 1)` when `α < 0` turns the
/// weighting off (so the loops need no branch on it).
fn alpha_weights<T: Float>(alpha: f64) -> (T, T) {
    if alpha < 0.0 {
        (T::ONE, T::ONE)
    } else {
        (T::from_f64(alpha), T::from_f64(1.0 - alpha))
    }
}

/// `(σ(x), bce(x, t))` sharing one `exp(-|x|)` (the same values as [`sigmoid`] and [`bce`]
/// up to the last bits: branch-free exp and log1p, so the loops vectorise).
#[inline(always)]
fn sigmoid_and_bce<T: Float>(x: T, t: T) -> (T, T) {
    let e = (-x.abs()).exp_nonpos();
    let p = if x >= T::ZERO {
        T::ONE / (T::ONE + e)
    } else {
        e / (T::ONE + e)
    };
    (p, x.max(T::ZERO) - x * t + e.ln_1p_unit())
}

/// torchvision's sigmoid focal loss per element: `α_t · bce(x, t) · (1 - p_t)^γ`.
pub fn sigmoid_focal<T: Float>(x: &[T], t: &[T], alpha: f64, gamma: f64, out: &mut [T]) {
    let (w1, w0) = alpha_weights::<T>(alpha);
    macro_rules! run {
        ($pow:expr) => {
            map2(x, t, out, |x, t| {
                let (p, bce) = sigmoid_and_bce(x, t);
                let p_t = p * t + (T::ONE - p) * (T::ONE - t);
                (w1 * t + w0 * (T::ONE - t)) * bce * $pow(T::ONE - p_t)
            })
        };
    }
    if gamma == 2.0 {
        run!(|m: T| m * m)
    } else if gamma == 1.0 {
        run!(|m: T| m)
    } else if gamma == 0.0 {
        run!(|_: T| T::ONE)
    } else {
        let g = T::from_f64(gamma);
        run!(|m: T| m.powf(g))
    }
}

/// Its gradient w.r.t. the logits.
pub fn sigmoid_focal_grad<T: Float>(
    x: &[T],
    t: &[T],
    alpha: f64,
    gamma: f64,
    dy: &[T],
    dx: &mut [T],
) {
    let (w1, w0) = alpha_weights::<T>(alpha);
    let g = T::from_f64(gamma);
    let two = T::from_f64(2.0);
    // (m^γ, m^(γ-1)) as a function of m = 1 - p_t.
    macro_rules! run {
        ($pow:expr) => {
            map3(x, t, dy, dx, |x, t, d| {
                let (p, bce) = sigmoid_and_bce(x, t);
                let p_t = p * t + (T::ONE - p) * (T::ONE - t);
                let m = T::ONE - p_t;
                let dm = -(p * (T::ONE - p)) * (two * t - T::ONE);
                let (m_g, m_g1) = $pow(m);
                let grad = (p - t) * m_g + bce * g * m_g1 * dm;
                (w1 * t + w0 * (T::ONE - t)) * grad * d
            })
        };
    }
    if gamma == 2.0 {
        run!(|m: T| (m * m, m))
    } else if gamma == 1.0 {
        run!(|m: T| (m, T::ONE))
    } else if gamma == 0.0 {
        // g = 0 zeroes the second term.
        run!(|_: T| (T::ONE, T::ZERO))
    } else {
        let g1 = T::from_f64(gamma - 1.0);
        run!(|m: T| (m.powf(g), m.powf(g1)))
    }
}

/// Softmax cross-entropy of `logits [N,K]` vs `labels [N]` per row, PyTorch's label
/// smoothing `(1-ε) nll + ε mean_k(-log p_k)`; rows whose label is `ignore_index` give 0.
pub fn cross_entropy<T: Float>(
    logits: &[T],
    labels: &[i32],
    k: usize,
    ignore_index: i64,
    smoothing: f64,
    out: &mut [T],
) {
    let eps = T::from_f64(smoothing);
    let kt = T::from_f64(k as f64);
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        let lab = labels[i] as i64;
        if lab == ignore_index || lab < 0 || lab as usize >= k {
            *o = T::ZERO;
            return;
        }
        let row = &logits[i * k..(i + 1) * k];
        let lse = logsumexp(row);
        let nll = lse - row[lab as usize];
        *o = if smoothing == 0.0 {
            nll
        } else {
            let mut s = T::ZERO;
            for &v in row {
                s += lse - v;
            }
            (T::ONE - eps) * nll + eps * s / kt
        };
    });
}

fn logsumexp<T: Float>(row: &[T]) -> T {
    let mx = row.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
    let mut s = T::ZERO;
    for &v in row {
        s += (v - mx).exp();
    }
    mx + s.ln()
}

/// Gradient of [`cross_entropy`] w.r.t. the logits: `(p_k - (1-ε)[k = y] - ε/K) dy`.
pub fn cross_entropy_grad<T: Float>(
    logits: &[T],
    labels: &[i32],
    k: usize,
    ignore_index: i64,
    smoothing: f64,
    dy: &[T],
    dx: &mut [T],
) {
    let eps = T::from_f64(smoothing);
    let kt = T::from_f64(k as f64);
    dx.par_chunks_mut(k).enumerate().for_each(|(i, o)| {
        let lab = labels[i] as i64;
        if lab == ignore_index || lab < 0 || lab as usize >= k {
            o.fill(T::ZERO);
            return;
        }
        let row = &logits[i * k..(i + 1) * k];
        let lse = logsumexp(row);
        for (j, (o, &v)) in o.iter_mut().zip(row).enumerate() {
            let mut g = (v - lse).exp() - eps / kt;
            if j == lab as usize {
                g -= T::ONE - eps;
            }
            *o = g * dy[i];
        }
    });
}

fn sign<T: Float>(d: T) -> T {
    if d > T::ZERO {
        T::ONE
    } else if d < T::ZERO {
        -T::ONE
    } else {
        T::ZERO
    }
}

/// `|a - b|` per element.
pub fn l1<T: Float>(a: &[T], b: &[T], out: &mut [T]) {
    map2(a, b, out, |a, b| (a - b).abs());
}

/// Gradient of [`l1`] w.r.t. `a` (or `b` when `wrt_b`).
pub fn l1_grad<T: Float>(a: &[T], b: &[T], dy: &[T], wrt_b: bool, dx: &mut [T]) {
    let s = if wrt_b { -T::ONE } else { T::ONE };
    map3(a, b, dy, dx, |a, b, d| s * sign(a - b) * d);
}

/// Smooth L1 per element: `0.5 d²/β` if `|d| < β` else `|d| - 0.5 β`.
pub fn smooth_l1<T: Float>(a: &[T], b: &[T], beta: f64, out: &mut [T]) {
    let bt = T::from_f64(beta);
    let half = T::from_f64(0.5);
    map2(a, b, out, |a, b| {
        let d = (a - b).abs();
        if d < bt {
            half * d * d / bt
        } else {
            d - half * bt
        }
    });
}

/// Gradient of [`smooth_l1`] w.r.t. `a` (or `b` when `wrt_b`).
pub fn smooth_l1_grad<T: Float>(a: &[T], b: &[T], beta: f64, dy: &[T], wrt_b: bool, dx: &mut [T]) {
    let bt = T::from_f64(beta);
    let s = if wrt_b { -T::ONE } else { T::ONE };
    map3(a, b, dy, dx, |a, b, d| {
        let diff = a - b;
        let g = if diff.abs() < bt {
            diff / bt
        } else {
            sign(diff)
        };
        s * g * d
    });
}

/// `max(a, b)` and how its gradient splits between `a` and `b` (half each on ties).
#[inline]
fn max_split<T: Float>(a: T, b: T) -> (T, T, T) {
    let half = T::from_f64(0.5);
    if a > b {
        (a, T::ONE, T::ZERO)
    } else if a < b {
        (b, T::ZERO, T::ONE)
    } else {
        (a, half, half)
    }
}

#[inline]
fn min_split<T: Float>(a: T, b: T) -> (T, T, T) {
    let half = T::from_f64(0.5);
    if a < b {
        (a, T::ONE, T::ZERO)
    } else if a > b {
        (b, T::ZERO, T::ONE)
    } else {
        (a, half, half)
    }
}

/// Loss of one box pair and, with upstream `g`, its gradients w.r.t. both boxes.
fn iou_pair<T: Float>(p: &[T], t: &[T], kind: IouKind, eps: T, g: T) -> (T, [T; 4], [T; 4]) {
    let (one, two, half) = (T::ONE, T::from_f64(2.0), T::from_f64(0.5));
    let (x1, y1, x2, y2) = (p[0], p[1], p[2], p[3]);
    let (x1g, y1g, x2g, y2g) = (t[0], t[1], t[2], t[3]);
    let (xk1, ax1, bx1) = max_split(x1, x1g);
    let (yk1, ay1, by1) = max_split(y1, y1g);
    let (xk2, ax2, bx2) = min_split(x2, x2g);
    let (yk2, ay2, by2) = min_split(y2, y2g);
    let mask = yk2 > yk1 && xk2 > xk1;
    let inter = if mask {
        (xk2 - xk1) * (yk2 - yk1)
    } else {
        T::ZERO
    };
    let a1 = (x2 - x1) * (y2 - y1);
    let a2 = (x2g - x1g) * (y2g - y1g);
    let union = a1 + a2 - inter;
    let iou = inter / (union + eps);
    let (xc1, cx1, dx1c) = min_split(x1, x1g);
    let (yc1, cy1, dy1c) = min_split(y1, y1g);
    let (xc2, cx2, dx2c) = max_split(x2, x2g);
    let (yc2, cy2, dy2c) = max_split(y2, y2g);
    let (wc, hc) = (xc2 - xc1, yc2 - yc1);
    let mut dp = [T::ZERO; 4];
    let mut dt = [T::ZERO; 4];
    // Adjoints of the enclosing box edges, filled per kind.
    let (mut dxc1, mut dyc1, mut dxc2, mut dyc2) = (T::ZERO, T::ZERO, T::ZERO, T::ZERO);
    let diou = -g;
    let mut dunion = T::ZERO;
    let loss = match kind {
        IouKind::IoU => one - iou,
        IouKind::GIoU => {
            let ac = wc * hc;
            let term = (ac - union) / (ac + eps);
            let dterm = g;
            let dac = dterm * (one / (ac + eps) - (ac - union) / ((ac + eps) * (ac + eps)));
            dunion += -dterm / (ac + eps);
            dxc2 += dac * hc;
            dxc1 -= dac * hc;
            dyc2 += dac * wc;
            dyc1 -= dac * wc;
            one - (iou - term)
        }
        IouKind::DIoU | IouKind::CIoU => {
            let diag = wc * wc + hc * hc + eps;
            let (xp, yp) = ((x2 + x1) / two, (y2 + y1) / two);
            let (xg, yg) = ((x1g + x2g) / two, (y1g + y2g) / two);
            let cd = (xp - xg) * (xp - xg) + (yp - yg) * (yp - yg);
            let dcd = g / diag;
            let ddiag = -g * cd / (diag * diag);
            dxc2 += ddiag * two * wc;
            dxc1 -= ddiag * two * wc;
            dyc2 += ddiag * two * hc;
            dyc1 -= ddiag * two * hc;
            let dxp = dcd * two * (xp - xg);
            let dyp = dcd * two * (yp - yg);
            dp[0] += dxp * half;
            dp[2] += dxp * half;
            dp[1] += dyp * half;
            dp[3] += dyp * half;
            dt[0] -= dxp * half;
            dt[2] -= dxp * half;
            dt[1] -= dyp * half;
            dt[3] -= dyp * half;
            let mut loss = one - iou + cd / diag;
            if kind == IouKind::CIoU {
                let (wp, hp, wg, hg) = (x2 - x1, y2 - y1, x2g - x1g, y2g - y1g);
                let k = T::from_f64(4.0 / (std::f64::consts::PI * std::f64::consts::PI));
                let delta = (wg / hg).atan() - (wp / hp).atan();
                let v = k * delta * delta;
                // α is a constant in the gradient, as in torchvision (computed under no_grad).
                let alpha = v / (one - iou + v + eps);
                loss += alpha * v;
                let dv = g * alpha;
                let ddelta = dv * k * two * delta;
                let (rp, rg) = (wp / hp, wg / hg);
                let (sp, sg) = (one / (one + rp * rp), one / (one + rg * rg));
                let (dwp, dhp) = (-ddelta * sp / hp, ddelta * sp * wp / (hp * hp));
                let (dwg, dhg) = (ddelta * sg / hg, -ddelta * sg * wg / (hg * hg));
                dp[2] += dwp;
                dp[0] -= dwp;
                dp[3] += dhp;
                dp[1] -= dhp;
                dt[2] += dwg;
                dt[0] -= dwg;
                dt[3] += dhg;
                dt[1] -= dhg;
            }
            loss
        }
    };
    // iou = inter / (union + eps)
    let dinter_direct = diou / (union + eps);
    dunion += -diou * inter / ((union + eps) * (union + eps));
    // union = a1 + a2 - inter
    let (da1, da2) = (dunion, dunion);
    let dinter = dinter_direct - dunion;
    dp[2] += da1 * (y2 - y1);
    dp[0] -= da1 * (y2 - y1);
    dp[3] += da1 * (x2 - x1);
    dp[1] -= da1 * (x2 - x1);
    dt[2] += da2 * (y2g - y1g);
    dt[0] -= da2 * (y2g - y1g);
    dt[3] += da2 * (x2g - x1g);
    dt[1] -= da2 * (x2g - x1g);
    if mask {
        let (dxk2, dxk1) = (dinter * (yk2 - yk1), -dinter * (yk2 - yk1));
        let (dyk2, dyk1) = (dinter * (xk2 - xk1), -dinter * (xk2 - xk1));
        dp[0] += dxk1 * ax1;
        dt[0] += dxk1 * bx1;
        dp[1] += dyk1 * ay1;
        dt[1] += dyk1 * by1;
        dp[2] += dxk2 * ax2;
        dt[2] += dxk2 * bx2;
        dp[3] += dyk2 * ay2;
        dt[3] += dyk2 * by2;
    }
    dp[0] += dxc1 * cx1;
    dt[0] += dxc1 * dx1c;
    dp[1] += dyc1 * cy1;
    dt[1] += dyc1 * dy1c;
    dp[2] += dxc2 * cx2;
    dt[2] += dxc2 * dx2c;
    dp[3] += dyc2 * cy2;
    dt[3] += dyc2 * dy2c;
    (loss, dp, dt)
}

/// IoU/GIoU/DIoU/CIoU loss per row of xyxy boxes `[N,4]`.
pub fn iou_loss<T: Float>(pred: &[T], target: &[T], kind: IouKind, eps: f64, out: &mut [T]) {
    let e = T::from_f64(eps);
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        *o = iou_pair(
            &pred[4 * i..4 * i + 4],
            &target[4 * i..4 * i + 4],
            kind,
            e,
            T::ZERO,
        )
        .0;
    });
}

/// Gradient of [`iou_loss`] w.r.t. `pred` (or `target` when `wrt_target`).
pub fn iou_loss_grad<T: Float>(
    pred: &[T],
    target: &[T],
    kind: IouKind,
    eps: f64,
    dy: &[T],
    wrt_target: bool,
    dx: &mut [T],
) {
    let e = T::from_f64(eps);
    dx.par_chunks_mut(4).enumerate().for_each(|(i, o)| {
        let (_, dp, dt) = iou_pair(
            &pred[4 * i..4 * i + 4],
            &target[4 * i..4 * i + 4],
            kind,
            e,
            dy[i],
        );
        o.copy_from_slice(if wrt_target { &dt } else { &dp });
    });
}
