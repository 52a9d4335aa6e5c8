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
    let mut best = (usize::MAX, T::NEG_INFINITY);
    for i in 0..k[0] {
        let ih = (oh * s[0] + i) as isize - p[0] as isize;
        if ih < 0 || ih >= h as isize {
            continue;
        }
        for j in 0..k[1] {
            let iw = (ow * s[1] + j) as isize - p[1] as isize;
            if iw < 0 || iw >= w as isize {
                continue;
            }
            let idx = ih as usize * w + iw as usize;
            let v = plane[idx];
            if v > best.1 || best.0 == usize::MAX {
                best = (idx, v);
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
