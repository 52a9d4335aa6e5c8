//! Elementwise ops, broadcasting, reductions and data movement on slices. Parallel only over
//! disjoint output chunks; every output element is computed by one sequential expression, so
//! results do not depend on the thread count. Reductions accumulate in f64.

use super::{Float, map};
use crate::ir::op::{BinaryOp, UnaryOp};
use rayon::prelude::*;

/// Applies a unary op; `dy` is the second input of the `*Grad` variants.
pub fn unary<T: Float>(op: &UnaryOp, x: &[T], dy: Option<&[T]>, out: &mut [T]) {
    let zero = T::ZERO;
    let one = T::ONE;
    macro_rules! map1 {
        ($f:expr) => {
            map::map1(x, out, $f)
        };
    }
    macro_rules! map2 {
        ($f:expr) => {
            map::map2(x, dy.expect("gradient ops take (y, dy)"), out, $f)
        };
    }
    match op {
        UnaryOp::Relu => map1!(|x: T| if x > zero { x } else { zero }),
        UnaryOp::Sigmoid => map1!(|x: T| sigmoid(x)),
        UnaryOp::Exp => map1!(|x: T| x.exp()),
        UnaryOp::Log => map1!(|x: T| x.ln()),
        UnaryOp::Scale(f) => {
            let f = T::from_f64(*f);
            map1!(|x: T| x * f)
        }
        UnaryOp::AddScalar(v) => {
            let v = T::from_f64(*v);
            map1!(|x: T| x + v)
        }
        UnaryOp::Clamp { lo, hi } => {
            let (lo, hi) = (T::from_f64(*lo), T::from_f64(*hi));
            map1!(|x: T| x.max(lo).min(hi))
        }
        UnaryOp::ReluGrad => map2!(|y: T, d: T| if y > zero { d } else { zero }),
        UnaryOp::SigmoidGrad => map2!(|y: T, d: T| d * y * (one - y)),
        UnaryOp::ExpGrad => map2!(|y: T, d: T| d * y),
        UnaryOp::LogGrad => map2!(|x: T, d: T| d / x),
        UnaryOp::ClampGrad { lo, hi } => {
            let (lo, hi) = (T::from_f64(*lo), T::from_f64(*hi));
            map2!(|x: T, d: T| if x >= lo && x <= hi { d } else { zero })
        }
        UnaryOp::Cast(_) => unreachable!("casts are handled by the backend"),
    }
}

/// Numerically stable logistic function.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// Strides of `shape` (row-major), aligned to `out_rank` dims, 0 on broadcast axes.
pub fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let r = out_shape.len();
    let mut strides = vec![0; r];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let oi = i + r - shape.len();
        strides[oi] = if shape[i] == 1 && out_shape[oi] != 1 {
            0
        } else {
            s
        };
        s *= shape[i];
    }
    strides
}

/// Offset of row `row` (multi-index over all but the last axis) given aligned strides.
#[inline]
fn row_offset(mut row: usize, out_shape: &[usize], strides: &[usize]) -> usize {
    let r = out_shape.len();
    let mut off = 0;
    for i in (0..r.saturating_sub(1)).rev() {
        let d = out_shape[i];
        off += (row % d) * strides[i];
        row /= d;
    }
    off
}

/// `out = a (op) b` with numpy broadcasting.
pub fn binary<T: Float>(
    op: BinaryOp,
    a: &[T],
    sa: &[usize],
    b: &[T],
    sb: &[usize],
    out: &mut [T],
    so: &[usize],
) {
    // One instance per op, so that no loop branches on it.
    match op {
        BinaryOp::Add => binary_with(|x, y| x + y, a, sa, b, sb, out, so),
        BinaryOp::Sub => binary_with(|x, y| x - y, a, sa, b, sb, out, so),
        BinaryOp::Mul => binary_with(|x, y| x * y, a, sa, b, sb, out, so),
        BinaryOp::Div => binary_with(|x, y| x / y, a, sa, b, sb, out, so),
    }
}

/// [`binary`] for one op `f`.
fn binary_with<T: Float>(
    f: impl Fn(T, T) -> T + Sync + Copy,
    a: &[T],
    sa: &[usize],
    b: &[T],
    sb: &[usize],
    out: &mut [T],
    so: &[usize],
) {
    if a.len() == out.len() && b.len() == out.len() {
        map::map2(a, b, out, f);
        return;
    }
    if b.len() == 1 && a.len() == out.len() {
        let y = b[0];
        map::map1(a, out, move |x| f(x, y));
        return;
    }
    let (st_a, st_b) = (broadcast_strides(sa, so), broadcast_strides(sb, so));
    let last = *so.last().unwrap_or(&1);
    let (la, lb) = (*st_a.last().unwrap_or(&0), *st_b.last().unwrap_or(&0));
    out.par_chunks_mut(last.max(1))
        .enumerate()
        .for_each(|(row, o)| {
            let (oa, ob) = (row_offset(row, so, &st_a), row_offset(row, so, &st_b));
            for (j, o) in o.iter_mut().enumerate() {
                *o = f(a[oa + j * la], b[ob + j * lb]);
            }
        });
}

/// Copies `x` broadcast to `so`.
pub fn broadcast_to<T: Float>(x: &[T], sx: &[usize], out: &mut [T], so: &[usize]) {
    let st = broadcast_strides(sx, so);
    let last = *so.last().unwrap_or(&1);
    let l = *st.last().unwrap_or(&0);
    out.par_chunks_mut(last.max(1))
        .enumerate()
        .for_each(|(row, o)| {
            let off = row_offset(row, so, &st);
            for (j, o) in o.iter_mut().enumerate() {
                *o = x[off + j * l];
            }
        });
}

/// Sum over sorted `axes` (output laid out over the kept axes), accumulating in f64.
pub fn sum_axes<T: Float>(x: &[T], sx: &[usize], axes: &[usize], out: &mut [T]) {
    let r = sx.len();
    let mut strides = vec![1; r];
    for i in (0..r.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * sx[i + 1];
    }
    let kept: Vec<usize> = (0..r).filter(|i| !axes.contains(i)).collect();
    let red_len: usize = axes.iter().map(|&a| sx[a]).product();
    // Reduced axes forming a suffix: each output sums one contiguous block.
    let is_suffix = axes
        .iter()
        .enumerate()
        .all(|(k, &a)| a == r - axes.len() + k);
    if is_suffix {
        out.par_iter_mut().enumerate().for_each(|(o, v)| {
            let blk = &x[o * red_len..(o + 1) * red_len];
            *v = T::from_f64(blk.iter().fold(0.0, |s, &e| s + e.to_f64()));
        });
        return;
    }
    let mut roff = Vec::with_capacity(red_len);
    let mut idx = vec![0usize; axes.len()];
    for _ in 0..red_len {
        roff.push(
            axes.iter()
                .zip(&idx)
                .map(|(&a, &i)| i * strides[a])
                .sum::<usize>(),
        );
        for k in (0..axes.len()).rev() {
            idx[k] += 1;
            if idx[k] < sx[axes[k]] {
                break;
            }
            idx[k] = 0;
        }
    }
    out.par_iter_mut().enumerate().for_each(|(o, v)| {
        let mut rem = o;
        let mut base = 0;
        for &k in kept.iter().rev() {
            base += (rem % sx[k]) * strides[k];
            rem /= sx[k];
        }
        *v = T::from_f64(roff.iter().fold(0.0, |s, &ro| s + x[base + ro].to_f64()));
    });
}

/// `out.shape[i] = x.shape[perm[i]]`.
pub fn permute<T: Float>(x: &[T], sx: &[usize], perm: &[usize], out: &mut [T]) {
    let r = sx.len();
    let mut strides = vec![1; r];
    for i in (0..r.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * sx[i + 1];
    }
    let so: Vec<usize> = perm.iter().map(|&p| sx[p]).collect();
    let ps: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let last = *so.last().unwrap_or(&1);
    let l = *ps.last().unwrap_or(&0);
    out.par_chunks_mut(last.max(1))
        .enumerate()
        .for_each(|(row, o)| {
            let off = row_offset(row, &so, &ps);
            for (j, o) in o.iter_mut().enumerate() {
                *o = x[off + j * l];
            }
        });
}

fn outer_inner(shape: &[usize], axis: usize) -> (usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis + 1..].iter().product(),
    )
}

/// `x[.., start..end, ..]` along `axis`.
pub fn slice<T: Float>(
    x: &[T],
    sx: &[usize],
    axis: usize,
    start: usize,
    end: usize,
    out: &mut [T],
) {
    let (outer, inner) = outer_inner(sx, axis);
    let (d, len) = (sx[axis], end - start);
    for o in 0..outer {
        out[o * len * inner..(o + 1) * len * inner]
            .copy_from_slice(&x[(o * d + start) * inner..(o * d + end) * inner]);
    }
}

/// Zeros of shape `so` with `x` placed at `start` along `axis`.
pub fn slice_pad<T: Float>(
    x: &[T],
    sx: &[usize],
    axis: usize,
    start: usize,
    out: &mut [T],
    so: &[usize],
) {
    out.fill(T::ZERO);
    let (outer, inner) = outer_inner(so, axis);
    let (d, len) = (so[axis], sx[axis]);
    for o in 0..outer {
        out[(o * d + start) * inner..(o * d + start + len) * inner]
            .copy_from_slice(&x[o * len * inner..(o + 1) * len * inner]);
    }
}

/// Concatenation along `axis`.
pub fn concat<T: Float>(xs: &[&[T]], shapes: &[&[usize]], axis: usize, out: &mut [T]) {
    let (outer, inner) = outer_inner(shapes[0], axis);
    let total: usize = shapes.iter().map(|s| s[axis]).sum();
    let mut off = 0;
    for (x, s) in xs.iter().zip(shapes) {
        let len = s[axis];
        for o in 0..outer {
            out[(o * total + off) * inner..(o * total + off + len) * inner]
                .copy_from_slice(&x[o * len * inner..(o + 1) * len * inner]);
        }
        off += len;
    }
}
