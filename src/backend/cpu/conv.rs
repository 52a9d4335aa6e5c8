//! 2-D convolution via im2col/col2im and GEMM (PyTorch semantics: NCHW, weight
//! `[Co, Ci/groups, kh, kw]`, zero padding, dilation, groups). A 1×1 stride-1 unpadded
//! convolution skips im2col. The weight gradient sums images in a fixed order.

use super::Float;
use super::gemm::{gemm, gemm_tile};
use crate::graph::op::Conv2dAttrs;
use rayon::prelude::*;

/// Geometry of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    g: usize,
    a: Conv2dAttrs,
}

impl Geo {
    fn new(xs: &[usize], ws: &[usize], ys: &[usize], a: &Conv2dAttrs) -> Self {
        Geo {
            n: xs[0],
            c: xs[1],
            h: xs[2],
            w: xs[3],
            co: ws[0],
            kh: ws[2],
            kw: ws[3],
            ho: ys[2],
            wo: ys[3],
            g: a.groups,
            a: *a,
        }
    }
    fn cg(&self) -> usize {
        self.c / self.g
    }
    fn cog(&self) -> usize {
        self.co / self.g
    }
    fn ckk(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    fn hw_out(&self) -> usize {
        self.ho * self.wo
    }
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.a.stride == [1, 1] && self.a.padding == [0, 0]
    }
}

/// Folds `col [Cg*kh*kw, Ho*Wo]` back, summing into `dx [Cg,H,W]` (one task per channel, so
/// every element is summed in a fixed order).
fn col2im<T: Float>(col: &[T], geo: &Geo, dx: &mut [T]) {
    let (h, w, ho, wo) = (geo.h, geo.w, geo.ho, geo.wo);
    let [sh, sw] = geo.a.stride;
    let [ph, pw] = geo.a.padding;
    let [dh, dw] = geo.a.dilation;
    let kk = geo.kh * geo.kw;
    dx.par_chunks_mut(h * w).enumerate().for_each(|(c, plane)| {
        plane.fill(T::ZERO);
        for i in 0..geo.kh {
            for j in 0..geo.kw {
                let row = &col[(c * kk + i * geo.kw + j) * ho * wo..][..ho * wo];
                for oh in 0..ho {
                    let ih = (oh * sh + i * dh) as isize - ph as isize;
                    if ih < 0 || ih >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[ih as usize * w..(ih as usize + 1) * w];
                    let src = &row[oh * wo..(oh + 1) * wo];
                    let off = (j * dw) as isize - pw as isize;
                    for (ow, &v) in src.iter().enumerate() {
                        let iw = (ow * sw) as isize + off;
                        if iw >= 0 && iw < w as isize {
                            dst[iw as usize] += v;
                        }
                    }
                }
            }
        }
    });
}

/// Output pixels per forward task: enough that the im2col tile of `ckk` rows stays in L2.
fn tile_cols(ckk: usize, hwo: usize, elem: usize) -> usize {
    let fit = (384 * 1024) / (ckk * elem).max(1);
    (fit / 16 * 16).clamp(64, 1024).min(hwo)
}

/// Unfolds output pixels `j0..j0+tw` of one group of one image into `col [ckk, tw]`.
fn im2col_tile<T: Float>(x: &[T], geo: &Geo, j0: usize, tw: usize, col: &mut [T]) {
    let (h, w, wo) = (geo.h, geo.w, geo.wo);
    let [sh, sw] = geo.a.stride;
    let [ph, pw] = geo.a.padding;
    let [dh, dw] = geo.a.dilation;
    for (r, row) in col[..geo.ckk() * tw].chunks_mut(tw).enumerate() {
        let j = r % geo.kw;
        let i = (r / geo.kw) % geo.kh;
        let c = r / (geo.kw * geo.kh);
        let plane = &x[c * h * w..(c + 1) * h * w];
        let off = (j * dw) as isize - pw as isize;
        let (mut jj, mut p) = (0, j0);
        while jj < tw {
            let (oh, ow0) = (p / wo, p % wo);
            let len = (wo - ow0).min(tw - jj);
            let dst = &mut row[jj..jj + len];
            let ih = (oh * sh + i * dh) as isize - ph as isize;
            if ih < 0 || ih >= h as isize {
                dst.fill(T::ZERO);
            } else {
                let src = &plane[ih as usize * w..(ih as usize + 1) * w];
                if sw == 1 {
                    // Valid ow: 0 <= ow + off < w.
                    let lo = ((-off).max(0) as usize).clamp(ow0, ow0 + len);
                    let hi = ((w as isize - off).max(0) as usize).clamp(lo, ow0 + len);
                    dst[..lo - ow0].fill(T::ZERO);
                    dst[lo - ow0..hi - ow0].copy_from_slice(
                        &src[(lo as isize + off) as usize..(hi as isize + off) as usize],
                    );
                    dst[hi - ow0..].fill(T::ZERO);
                } else {
                    for (k, d) in dst.iter_mut().enumerate() {
                        let iw = ((ow0 + k) * sw) as isize + off;
                        *d = if iw >= 0 && iw < w as isize {
                            src[iw as usize]
                        } else {
                            T::ZERO
                        };
                    }
                }
            }
            jj += len;
            p += len;
        }
    }
}

/// A raw output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: only used to write disjoint regions from different tasks (see `conv2d`).
unsafe impl<T: Send> Send for OutPtr<T> {}
unsafe impl<T: Send> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut T {
        self.0
    }
}

/// `y = conv2d(x, w) + bias`. One task per (image, group, tile of output pixels): the tile's
/// im2col stays in cache and a single-threaded GEMM writes its own columns of `y`, so tasks
/// never share an output element and the result does not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn conv2d<T: Float>(
    x: &[T],
    xs: &[usize],
    wt: &[T],
    ws: &[usize],
    bias: Option<&[T]>,
    a: &Conv2dAttrs,
    y: &mut [T],
    ys: &[usize],
) {
    let geo = Geo::new(xs, ws, ys, a);
    let (cg, cog, ckk, hwo, hw) = (geo.cg(), geo.cog(), geo.ckk(), geo.hw_out(), geo.h * geo.w);
    let tw = tile_cols(ckk, hwo, std::mem::size_of::<T>());
    let ntiles = hwo.div_ceil(tw);
    let tasks = geo.n * geo.g * ntiles;
    assert!(y.len() >= geo.n * geo.co * hwo, "conv2d: output too short");
    let out = OutPtr(y.as_mut_ptr());
    let pointwise = geo.is_pointwise();
    (0..tasks).into_par_iter().for_each_init(
        || {
            if pointwise {
                Vec::new()
            } else {
                vec![T::ZERO; ckk * tw]
            }
        },
        |col, task| {
            let (ng, t) = (task / ntiles, task % ntiles);
            let (n, g) = (ng / geo.g, ng % geo.g);
            let j0 = t * tw;
            let len = tw.min(hwo - j0);
            let xg = &x[(n * geo.c + g * cg) * hw..][..cg * hw];
            let wg = &wt[g * cog * ckk..][..cog * ckk];
            let base = (n * geo.co + g * cog) * hwo + j0;
            // SAFETY: rows g*cog.. of image n, columns j0..j0+len: disjoint across tasks, and
            // inside `y` (asserted above); `y` is not otherwise borrowed during the loop.
            unsafe {
                let dst = out.get().add(base);
                if pointwise {
                    gemm_tile(cog, len, ckk, wg, ckk, 1, &xg[j0..], hw, 1, dst, hwo, false);
                } else {
                    im2col_tile(xg, &geo, j0, len, col);
                    gemm_tile(cog, len, ckk, wg, ckk, 1, col, len, 1, dst, hwo, false);
                }
                if let Some(b) = bias {
                    for co in 0..cog {
                        let bv = b[g * cog + co];
                        let row = std::slice::from_raw_parts_mut(dst.add(co * hwo), len);
                        for v in row {
                            *v += bv;
                        }
                    }
                }
            }
        },
    );
}

/// `dx` from `dy [N,Co,Ho,Wo]` and `w`; `xs` is the input shape.
pub fn conv2d_grad_input<T: Float>(
    dy: &[T],
    ys: &[usize],
    wt: &[T],
    ws: &[usize],
    a: &Conv2dAttrs,
    dx: &mut [T],
    xs: &[usize],
) {
    let geo = Geo::new(xs, ws, ys, a);
    let (cg, cog, ckk, hwo, hw) = (geo.cg(), geo.cog(), geo.ckk(), geo.hw_out(), geo.h * geo.w);
    let (kh, kw) = (geo.kh, geo.kw);
    let [dh, dw] = a.dilation;
    let full = [dh * (kh - 1), dw * (kw - 1)];
    if a.stride == [1, 1] && a.padding[0] <= full[0] && a.padding[1] <= full[1] {
        // With stride 1 the input gradient is itself a convolution: of dy with the weight
        // transposed per group and flipped, padded by d(k-1) - p. That runs on the tiled
        // forward path instead of GEMM + col2im.
        let mut wf = vec![T::ZERO; wt.len()];
        for g in 0..geo.g {
            for co in 0..cog {
                for ci in 0..cg {
                    for i in 0..kh {
                        for j in 0..kw {
                            let src = (((g * cog + co) * cg + ci) * kh + i) * kw + j;
                            let dst = (((g * cg + ci) * cog + co) * kh + (kh - 1 - i)) * kw
                                + (kw - 1 - j);
                            wf[dst] = wt[src];
                        }
                    }
                }
            }
        }
        let attrs = Conv2dAttrs {
            stride: [1, 1],
            padding: [full[0] - a.padding[0], full[1] - a.padding[1]],
            dilation: a.dilation,
            groups: a.groups,
        };
        conv2d(dy, ys, &wf, &[geo.c, cog, kh, kw], None, &attrs, dx, xs);
        return;
    }
    let mut col = if geo.is_pointwise() {
        Vec::new()
    } else {
        vec![T::ZERO; ckk * hwo]
    };
    for n in 0..geo.n {
        for g in 0..geo.g {
            let dyg = &dy[(n * geo.co + g * cog) * hwo..][..cog * hwo];
            let wg = &wt[g * cog * ckk..][..cog * ckk];
            let dxg = &mut dx[(n * geo.c + g * cg) * hw..][..cg * hw];
            // col = w_gᵀ @ dy_g: w_g read transposed through its strides.
            if geo.is_pointwise() {
                gemm(ckk, hwo, cog, wg, 1, ckk, dyg, hwo, 1, dxg, false);
            } else {
                gemm(ckk, hwo, cog, wg, 1, ckk, dyg, hwo, 1, &mut col, false);
                col2im(&col, &geo, dxg);
            }
        }
    }
}

/// `dw` from `x` and `dy`; `ws` is the weight shape.
pub fn conv2d_grad_weight<T: Float>(
    x: &[T],
    xs: &[usize],
    dy: &[T],
    ys: &[usize],
    a: &Conv2dAttrs,
    dw: &mut [T],
    ws: &[usize],
) {
    let geo = Geo::new(xs, ws, ys, a);
    let (cg, cog, ckk, hwo, hw) = (geo.cg(), geo.cog(), geo.ckk(), geo.hw_out(), geo.h * geo.w);
    // The reduction over (image, output pixel) is cut into a partition fixed by the shape
    // alone; each part is summed by one task into its own partial weight gradient, and the
    // partials are added in part order, so the result does not depend on the thread count.
    let chunk = 2048usize.max(hwo.div_ceil(8));
    let nchunks = hwo.div_ceil(chunk);
    let tw = tile_cols(ckk, hwo, std::mem::size_of::<T>());
    let pointwise = geo.is_pointwise();
    let parts: Vec<Vec<T>> = (0..geo.n * nchunks)
        .into_par_iter()
        .map_init(
            || {
                if pointwise {
                    Vec::new()
                } else {
                    vec![T::ZERO; ckk * tw]
                }
            },
            |col, task| {
                let (n, c) = (task / nchunks, task % nchunks);
                let mut part = vec![T::ZERO; geo.co * ckk];
                for g in 0..geo.g {
                    let xg = &x[(n * geo.c + g * cg) * hw..][..cg * hw];
                    let dyg = &dy[(n * geo.co + g * cog) * hwo..][..cog * hwo];
                    let pg = &mut part[g * cog * ckk..][..cog * ckk];
                    let (mut j0, end) = (c * chunk, ((c + 1) * chunk).min(hwo));
                    let mut first = true;
                    while j0 < end {
                        let len = tw.min(end - j0);
                        // SAFETY: `pg` is this task's own cog×ckk buffer (row stride ckk).
                        unsafe {
                            if pointwise {
                                gemm_tile(
                                    cog,
                                    ckk,
                                    len,
                                    &dyg[j0..],
                                    hwo,
                                    1,
                                    &xg[j0..],
                                    1,
                                    hw,
                                    pg.as_mut_ptr(),
                                    ckk,
                                    !first,
                                );
                            } else {
                                im2col_tile(xg, &geo, j0, len, col);
                                gemm_tile(
                                    cog,
                                    ckk,
                                    len,
                                    &dyg[j0..],
                                    hwo,
                                    1,
                                    col,
                                    1,
                                    len,
                                    pg.as_mut_ptr(),
                                    ckk,
                                    !first,
                                );
                            }
                        }
                        first = false;
                        j0 += len;
                    }
                }
                part
            },
        )
        .collect();
    let total = geo.co * ckk;
    dw[..total]
        .par_chunks_mut(super::CHUNK)
        .enumerate()
        .for_each(|(b, out)| {
            let off = b * super::CHUNK;
            for (i, o) in out.iter_mut().enumerate() {
                let mut s = parts[0][off + i];
                for p in &parts[1..] {
                    s += p[off + i];
                }
                *o = s;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::conv_out_size;
    use crate::util::rng::Rng;

    /// Direct 7-loop convolution and its input and weight gradients, the definition.
    fn naive(
        x: &[f64],
        xs: &[usize],
        w: &[f64],
        ws: &[usize],
        a: &Conv2dAttrs,
        ys: &[usize],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; ys.iter().product()];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let (cg, cog) = (xs[1] / a.groups, ws[0] / a.groups);
        for n in 0..xs[0] {
            for co in 0..ws[0] {
                let g = co / cog;
                for oh in 0..ys[2] {
                    for ow in 0..ys[3] {
                        let yi = ((n * ws[0] + co) * ys[2] + oh) * ys[3] + ow;
                        for ci in 0..cg {
                            for i in 0..ws[2] {
                                for j in 0..ws[3] {
                                    let ih = (oh * a.stride[0] + i * a.dilation[0]) as isize
                                        - a.padding[0] as isize;
                                    let iw = (ow * a.stride[1] + j * a.dilation[1]) as isize
                                        - a.padding[1] as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= xs[2] as isize
                                        || iw >= xs[3] as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * xs[1] + g * cg + ci) * xs[2] + ih as usize)
                                        * xs[3]
                                        + iw as usize;
                                    let wi = ((co * cg + ci) * ws[2] + i) * ws[3] + j;
                                    y[yi] += x[xi] * w[wi];
                                    dx[xi] += dy[yi] * w[wi];
                                    dw[wi] += dy[yi] * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    #[test]
    fn tiled_forward_and_input_gradient_match_the_definition() {
        let mut rng = Rng::seed(11);
        let mut tiles_seen = 0;
        // Channel counts large enough that the forward splits output pixels into several
        // tiles (one of them partial).
        for (ci, co, k, s, p, d, g, hw) in [
            (64, 8, 3, 1, 1, 1, 1, 17),
            (32, 8, 3, 2, 1, 1, 2, 16),
            (64, 4, 1, 1, 0, 1, 1, 19),
            (48, 6, 3, 1, 2, 2, 3, 15),
            (4, 4, 3, 1, 1, 1, 1, 48),
        ] {
            let a = Conv2dAttrs {
                stride: [s, s],
                padding: [p, p],
                dilation: [d, d],
                groups: g,
            };
            let ho = conv_out_size(hw, k, s, p, d).unwrap();
            let (xs, ws, ys) = ([2, ci, hw, hw], [co, ci / g, k, k], [2, co, ho, ho]);
            let mut r = |n: usize| {
                (0..n)
                    .map(|_| rng.range_f64(-1.0, 1.0))
                    .collect::<Vec<f64>>()
            };
            let (x, w, dy) = (
                r(xs.iter().product()),
                r(ws.iter().product()),
                r(ys.iter().product()),
            );
            tiles_seen = tiles_seen.max((ho * ho).div_ceil(tile_cols(ws[1] * k * k, ho * ho, 8)));
            let (y_ref, dx_ref, dw_ref) = naive(&x, &xs, &w, &ws, &a, &ys, &dy);
            let mut y = vec![0.0; y_ref.len()];
            conv2d(&x, &xs, &w, &ws, None, &a, &mut y, &ys);
            let mut dx = vec![0.0; x.len()];
            conv2d_grad_input(&dy, &ys, &w, &ws, &a, &mut dx, &xs);
            let mut dw = vec![0.0; w.len()];
            conv2d_grad_weight(&x, &xs, &dy, &ys, &a, &mut dw, &ws);
            for (u, v) in y
                .iter()
                .zip(&y_ref)
                .chain(dx.iter().zip(&dx_ref))
                .chain(dw.iter().zip(&dw_ref))
            {
                assert!(
                    (u - v).abs() < 1e-12 * (1.0 + v.abs()),
                    "{u} vs {v} for {a:?}"
                );
            }
        }
        assert!(tiles_seen > 2, "no case used several tiles");
    }
}
