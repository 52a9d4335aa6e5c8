//! Max pooling and nearest-neighbour resampling with their gradients, one rayon task per
//! (image, channel) plane.

use super::Float;
use rayon::prelude::*;

/// Max pooling (floor mode, −∞ padding); ties take the first maximum in scan order.
pub fn max_pool2d<T: Float>(
    x: &[T],
    xs: &[usize],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    y: &mut [T],
    ys: &[usize],
) {
    let (h, w, ho, wo) = (xs[2], xs[3], ys[2], ys[3]);
    y.par_chunks_mut(ho * wo).enumerate().for_each(|(pl, out)| {
        let plane = &x[pl * h * w..(pl + 1) * h * w];
        for oh in 0..ho {
            for ow in 0..wo {
                out[oh * wo + ow] = window_argmax(plane, h, w, oh, ow, k, s, p).1;
            }
        }
    });
}

/// The in-bounds part of window `o` along one axis: `(first input index, tap count)`.
#[inline]
fn window(o: usize, k: usize, s: usize, p: usize, len: usize) -> (usize, usize) {
    let start = o * s;
    let lo = start.max(p);
    let hi = (start + k).min(len + p);
    (lo - p, hi.saturating_sub(lo))
}

/// Index (in the plane) and value of the window's first maximum in scan order; the index is
/// `usize::MAX` for a window entirely in the padding. Bounds are clipped once per window, so
/// the scan itself has no per-tap checks.
#[allow(clippy::too_many_arguments)]
#[inline]
fn window_argmax<T: Float>(
    plane: &[T],
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
) -> (usize, T) {
    let (ih, kh) = window(oh, k[0], s[0], p[0], h);
    let (iw, kw) = window(ow, k[1], s[1], p[1], w);
    if kh == 0 || kw == 0 {
        return (usize::MAX, T::NEG_INFINITY);
    }
    let mut best = (ih * w + iw, plane[ih * w + iw]);
    for r in ih..ih + kh {
        let row = &plane[r * w + iw..r * w + iw + kw];
        for (j, &v) in row.iter().enumerate() {
            if v > best.1 {
                best = (r * w + iw + j, v);
            }
        }
    }
    best
}

/// Gradient of max pooling: `dy` routed to each window's first maximum.
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d_grad<T: Float>(
    x: &[T],
    xs: &[usize],
    dy: &[T],
    ys: &[usize],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    dx: &mut [T],
) {
    let (h, w, ho, wo) = (xs[2], xs[3], ys[2], ys[3]);
    dx[..xs.iter().product::<usize>()]
        .par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(pl, d)| {
            d.fill(T::ZERO);
            let plane = &x[pl * h * w..(pl + 1) * h * w];
            let g = &dy[pl * ho * wo..(pl + 1) * ho * wo];
            for oh in 0..ho {
                for ow in 0..wo {
                    let (idx, _) = window_argmax(plane, h, w, oh, ow, k, s, p);
                    if idx != usize::MAX {
                        d[idx] += g[oh * wo + ow];
                    }
                }
            }
        });
}

/// PyTorch's `nearest` source index: `floor(dst * in / out)`.
#[inline]
fn src_index(dst: usize, input: usize, output: usize) -> usize {
    ((dst * input) / output).min(input - 1)
}

/// Nearest-neighbour resize of `x [N,C,H,W]` to `ys`.
pub fn upsample_nearest<T: Float>(x: &[T], xs: &[usize], y: &mut [T], ys: &[usize]) {
    let (h, w, ho, wo) = (xs[2], xs[3], ys[2], ys[3]);
    y.par_chunks_mut(ho * wo).enumerate().for_each(|(pl, out)| {
        let plane = &x[pl * h * w..(pl + 1) * h * w];
        for oh in 0..ho {
            let ih = src_index(oh, h, ho);
            for ow in 0..wo {
                out[oh * wo + ow] = plane[ih * w + src_index(ow, w, wo)];
            }
        }
    });
}

/// Gradient of the resize: each input element sums the outputs copied from it.
pub fn upsample_nearest_grad<T: Float>(dy: &[T], ys: &[usize], dx: &mut [T], xs: &[usize]) {
    let (h, w, ho, wo) = (xs[2], xs[3], ys[2], ys[3]);
    dx[..xs.iter().product::<usize>()]
        .par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(pl, d)| {
            d.fill(T::ZERO);
            let g = &dy[pl * ho * wo..(pl + 1) * ho * wo];
            for oh in 0..ho {
                let ih = src_index(oh, h, ho);
                for ow in 0..wo {
                    d[ih * w + src_index(ow, w, wo)] += g[oh * wo + ow];
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::Rng;

    /// The definition, tap by tap with bounds checks: first maximum in scan order.
    fn naive_argmax(
        plane: &[f64],
        h: usize,
        w: usize,
        o: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        for i in 0..k[0] {
            for j in 0..k[1] {
                let (ih, iw) = (
                    (o[0] * s[0] + i) as isize - p[0] as isize,
                    (o[1] * s[1] + j) as isize - p[1] as isize,
                );
                if ih < 0 || iw < 0 || ih >= h as isize || iw >= w as isize {
                    continue;
                }
                let idx = ih as usize * w + iw as usize;
                if best.is_none_or(|b| plane[idx] > plane[b]) {
                    best = Some(idx);
                }
            }
        }
        best
    }

    /// Random sizes, kernels, strides and paddings (windows partly or wholly in the padding),
    /// inputs from a few levels so that ties are common: values and routed gradients equal the
    /// definition's.
    #[test]
    fn max_pool_matches_the_definition_with_ties_and_padding() {
        let mut rng = Rng::seed(11);
        for _ in 0..200 {
            let (h, w) = (1 + rng.below(9) as usize, 1 + rng.below(9) as usize);
            let k = [1 + rng.below(4) as usize, 1 + rng.below(4) as usize];
            let s = [1 + rng.below(3) as usize, 1 + rng.below(3) as usize];
            let p = [
                rng.below(k[0] as u64) as usize,
                rng.below(k[1] as u64) as usize,
            ];
            if h + 2 * p[0] < k[0] || w + 2 * p[1] < k[1] {
                continue;
            }
            let (ho, wo) = (
                (h + 2 * p[0] - k[0]) / s[0] + 1,
                (w + 2 * p[1] - k[1]) / s[1] + 1,
            );
            let planes = 3;
            let x: Vec<f64> = (0..planes * h * w).map(|_| rng.below(4) as f64).collect();
            let dy: Vec<f64> = (0..planes * ho * wo)
                .map(|_| rng.range_f64(-1.0, 1.0))
                .collect();
            let (xs, ys) = ([1, planes, h, w], [1, planes, ho, wo]);
            let mut y = vec![f64::NAN; planes * ho * wo];
            max_pool2d(&x, &xs, k, s, p, &mut y, &ys);
            let mut dx = vec![f64::NAN; x.len()];
            max_pool2d_grad(&x, &xs, &dy, &ys, k, s, p, &mut dx);
            let mut want_dx = vec![0.0; x.len()];
            for pl in 0..planes {
                let plane = &x[pl * h * w..][..h * w];
                for oh in 0..ho {
                    for ow in 0..wo {
                        let o = pl * ho * wo + oh * wo + ow;
                        match naive_argmax(plane, h, w, [oh, ow], k, s, p) {
                            Some(i) => {
                                assert_eq!(
                                    y[o], plane[i],
                                    "value at {o} for {h}x{w} k{k:?} s{s:?} p{p:?}"
                                );
                                want_dx[pl * h * w + i] += dy[o];
                            }
                            None => assert_eq!(y[o], f64::NEG_INFINITY),
                        }
                    }
                }
            }
            assert_eq!(dx, want_dx, "gradient for {h}x{w} k{k:?} s{s:?} p{p:?}");
        }
    }
}
