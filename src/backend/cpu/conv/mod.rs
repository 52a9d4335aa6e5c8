//! 2-D convolution via im2col/col2im and GEMM (PyTorch semantics: NCHW, weight
//! `[Co, Ci/groups, kh, kw]`, zero padding, dilation, groups). In f32, 3×3 stride-1
//! convolutions with enough channels and pixels take the Winograd path instead
//! ([`winograd`]: 2.25× fewer multiplications), forward and weight gradient, and the input
//! gradient through the forward.
//!
//! Work is cut into (image, group, band of output pixels) steps by the shape alone. A 1×1
//! stride-1 unpadded convolution reads the NCHW planes directly (no im2col); otherwise each band
//! is unfolded into a per-thread workspace (L2-sized tiles for the forward and input gradient,
//! long bands for the weight gradient, which accumulates over images and bands in order and,
//! where it pays, unfolds pixel-major rows from a channels-last copy instead
//! ([`WeightGradUnfold`]); a small weight's gradient is summed per chunk of images, chunks
//! fixed by the shape, then the chunks in order). Many steps run as parallel tasks with single-threaded GEMMs; few large
//! ones run one after another, each GEMM split across rayon's pool by the `gemm` crate (over
//! output blocks only, never the reduction). The reduction order of every output element is
//! the same either way, so results are bit-identical whatever the thread count.

mod unfold;
mod winograd;
mod workspace;

use super::Float;
use super::gemm::gemm_tile;
use crate::ir::op::Conv2dAttrs;
use rayon::prelude::*;
use std::ops::Range;
use unfold::{col2im_band, im2col_band, im2row_band, to_channels_last};
use workspace::with_workspace;

/// Most elements of one unfolded tile of the forward and input-gradient paths (384 KiB in f32):
/// the tile stays in L2 between im2col and the GEMM, and the GEMM's n stays small enough that
/// the `gemm` crate does not pack a whole wide band (which it does for parallel GEMMs).
const TILE_ELEMS: usize = 96 << 10;

/// Most elements of one unfolded band of the weight gradient (8 MiB in f32), where the pixels
/// are the reduction dimension and a long band means few accumulations into `dw`.
const BAND_ELEMS: usize = 1 << 21;

/// Weight gradients up to this many elements (co × ci/g × kh × kw) have GEMMs too narrow for
/// the `gemm` crate to split across threads, and are split over images instead.
const NARROW_WEIGHT_ELEMS: usize = 1 << 18;

/// Most image chunks of the weight gradient, and most elements of all their partial weights.
const MAX_IMAGE_CHUNKS: usize = 8;
const PARTIAL_ELEMS: usize = 1 << 21;

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
    /// Band width and count: equal bands of at most `elems / ckk` pixels (at least 64), a
    /// function of the shape only.
    fn bands(&self, elems: usize) -> (usize, usize) {
        let hwo = self.hw_out().max(1);
        let cap = (elems / self.ckk().max(1)).max(64);
        let nb = hwo.div_ceil(cap);
        let bw = hwo.div_ceil(nb).next_multiple_of(16).min(hwo);
        (bw, hwo.div_ceil(bw))
    }
}

/// Whether `steps` independent steps should run as parallel tasks (single-threaded GEMMs,
/// balanced by work stealing) rather than one after another with parallel GEMMs (which the
/// `gemm` crate splits statically, so one descheduled thread stalls the step). Either gives
/// the same bits.
/// `even_split`: also when the steps split evenly over the threads (one image each at batch 2
/// on 2 cores) — measured faster for the forward's GEMM-only steps, slower for the gradient
/// paths whose steps also fold (col2im) or accumulate.
fn as_tasks(steps: usize, even_split: bool) -> bool {
    let threads = rayon::current_num_threads();
    threads > 1
        && (steps >= 2 * threads
            || (even_split && steps >= threads && steps.is_multiple_of(threads)))
}

/// A raw output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: only used to write disjoint regions from different tasks (see the callers).
unsafe impl<T: Send> Send for OutPtr<T> {}
unsafe impl<T: Send> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut T {
        self.0
    }
}

/// `y = conv2d(x, w) + bias`. Each (image, group, band) step writes its own columns of `y`.
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
    let (bw, nb) = geo.bands(TILE_ELEMS);
    let steps = geo.n * geo.g * nb;
    assert!(y.len() >= geo.n * geo.co * hwo, "conv2d: output too short");
    assert!(x.len() >= geo.n * geo.c * hw, "conv2d: input too short");
    if hwo == 0 {
        return;
    }
    if winograd::applies::<T>(&geo) {
        winograd::conv2d(x, wt, bias, &geo, y, winograd::CHUNK_ELEMS);
        return;
    }
    let out = OutPtr(y.as_mut_ptr());
    let pointwise = geo.is_pointwise();
    let step = |s: usize, col: &mut [T], par: bool| {
        let (ng, b) = (s / nb, s % nb);
        let (n, g) = (ng / geo.g, ng % geo.g);
        let j0 = b * bw;
        let len = bw.min(hwo - j0);
        let xg = &x[(n * geo.c + g * cg) * hw..][..cg * hw];
        let wg = &wt[g * cog * ckk..][..cog * ckk];
        // SAFETY: rows g*cog.. of image n, columns j0..j0+len: disjoint across steps and
        // inside `y` (asserted above); `y` is not otherwise borrowed meanwhile.
        unsafe {
            let dst = out.get().add((n * geo.co + g * cog) * hwo + j0);
            if pointwise {
                gemm_tile(
                    cog,
                    len,
                    ckk,
                    wg,
                    ckk,
                    1,
                    &xg[j0..],
                    hw,
                    1,
                    dst,
                    hwo,
                    false,
                    par,
                );
            } else {
                im2col_band(xg, &geo, j0, len, col, par);
                gemm_tile(cog, len, ckk, wg, ckk, 1, col, len, 1, dst, hwo, false, par);
            }
        }
    };
    let ws_len = if pointwise { 0 } else { ckk * bw };
    if as_tasks(steps, true) {
        (0..steps)
            .into_par_iter()
            .for_each(|s| with_workspace(ws_len, |col| step(s, col, false)));
    } else {
        with_workspace(ws_len, |col| (0..steps).for_each(|s| step(s, col, true)));
    }
    if let Some(b) = bias {
        y[..geo.n * geo.co * hwo]
            .par_chunks_mut(hwo)
            .enumerate()
            .for_each(|(r, row)| {
                let bv = b[r % geo.co];
                row.iter_mut().for_each(|v| *v += bv);
            });
    }
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
        // transposed per group and flipped, padded by d(k-1) - p. That runs on the forward
        // path (direct GEMM for 1×1) instead of GEMM + col2im.
        let mut wf = vec![T::ZERO; wt.len()];
        let kk = kh * kw;
        // One (group, input channel) row of `wf` per task, written in order; its reads are
        // short runs at a fixed stride, which the next row's reads continue in cache.
        wf.par_chunks_mut(cog * kk)
            .enumerate()
            .for_each(|(gci, row)| {
                let (g, ci) = (gci / cg, gci % cg);
                for (co, taps) in row.chunks_exact_mut(kk).enumerate() {
                    let src = &wt[((g * cog + co) * cg + ci) * kk..][..kk];
                    taps.iter_mut()
                        .zip(src.iter().rev())
                        .for_each(|(d, &v)| *d = v);
                }
            });
        let attrs = Conv2dAttrs {
            stride: [1, 1],
            padding: [full[0] - a.padding[0], full[1] - a.padding[1]],
            dilation: a.dilation,
            groups: a.groups,
        };
        conv2d(dy, ys, &wf, &[geo.c, cog, kh, kw], None, &attrs, dx, xs);
        return;
    }
    // col = w_gᵀ @ dy_g per band (w_g read transposed through its strides), folded into dx
    // band after band in a fixed order.
    let (bw, nb) = geo.bands(TILE_ELEMS);
    let dx = &mut dx[..geo.n * geo.c * hw];
    dx.par_chunks_mut(super::CHUNK)
        .for_each(|c| c.fill(T::ZERO));
    if hwo == 0 {
        return;
    }
    let per_image = |ng: usize, dxg: &mut [T], col: &mut [T], par: bool| {
        let (n, g) = (ng / geo.g, ng % geo.g);
        let dyg = &dy[(n * geo.co + g * cog) * hwo..][..cog * hwo];
        let wg = &wt[g * cog * ckk..][..cog * ckk];
        for b in 0..nb {
            let j0 = b * bw;
            let len = bw.min(hwo - j0);
            // SAFETY: `col` is this step's own buffer of ckk*bw >= ckk*len elements.
            unsafe {
                gemm_tile(
                    ckk,
                    len,
                    cog,
                    wg,
                    1,
                    ckk,
                    &dyg[j0..],
                    hwo,
                    1,
                    col.as_mut_ptr(),
                    len,
                    false,
                    par,
                );
            }
            col2im_band(col, &geo, j0, len, dxg, par);
        }
    };
    let ws_len = ckk * bw;
    if as_tasks(geo.n * geo.g, false) {
        dx.par_chunks_mut(cg * hw)
            .enumerate()
            .for_each(|(ng, dxg)| with_workspace(ws_len, |col| per_image(ng, dxg, col, false)));
    } else {
        with_workspace(ws_len, |col| {
            for (ng, dxg) in dx.chunks_mut(cg * hw).enumerate() {
                per_image(ng, dxg, col, true);
            }
        });
    }
}

/// `dw` from `x` and `dy`; `ws` is the weight shape. Per group, accumulations over (image,
/// band) in that order: `dw_g += dy_band @ col_bandᵀ`. When the weight is small (a short, wide
/// GEMM that the `gemm` crate cannot split: a few output blocks, a long reduction), the images
/// are cut into chunks fixed by the shape, each chunk accumulates its own partial `dw` as a
/// task, and the partials are added in chunk order.
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
    let (bw, nb) = geo.bands(BAND_ELEMS);
    let unfold = WeightGradUnfold::of(&geo);
    let per = geo.co * ckk;
    let dw = &mut dw[..per];
    if hwo == 0 || geo.n == 0 {
        dw.fill(T::ZERO);
        return;
    }
    if winograd::applies::<T>(&geo) {
        winograd::conv2d_grad_weight(x, dy, &geo, dw, winograd::CHUNK_ELEMS);
        return;
    }
    // Group `g`'s weight gradient over `images`, written (not added) into `dwg` (with its
    // columns in the unfold's order: `to_weight_layout` puts the rows' order back).
    let accumulate = |g: usize, images: Range<usize>, dwg: &mut [T], ws: &mut [T], par: bool| {
        let first_image = images.start;
        let (xt, band) = ws.split_at_mut(unfold.transposed_input(&geo));
        for n in images {
            let xg = &x[(n * geo.c + g * cg) * hw..][..cg * hw];
            let dyg = &dy[(n * geo.co + g * cog) * hwo..][..cog * hwo];
            if unfold == WeightGradUnfold::Rows {
                to_channels_last(xg, cg, hw, xt, par);
            }
            for b in 0..nb {
                let j0 = b * bw;
                let len = bw.min(hwo - j0);
                let first = n == first_image && b == 0;
                // The pixels × taps operand: its data, row stride and column stride.
                let (src, src_rs, src_cs) = match unfold {
                    WeightGradUnfold::Direct => (&xg[j0..], 1, hw),
                    WeightGradUnfold::Columns => {
                        im2col_band(xg, &geo, j0, len, band, par);
                        (&band[..], 1, len)
                    }
                    WeightGradUnfold::Rows => {
                        im2row_band(xt, &geo, j0, len, band, par);
                        (&band[..], ckk, 1)
                    }
                };
                // SAFETY: `dwg` is this group's own cog×ckk block (row stride ckk).
                unsafe {
                    gemm_tile(
                        cog,
                        ckk,
                        len,
                        &dyg[j0..],
                        hwo,
                        1,
                        src,
                        src_rs,
                        src_cs,
                        dwg.as_mut_ptr(),
                        ckk,
                        !first,
                        par,
                    );
                }
            }
        }
    };
    let ws_len = match unfold {
        WeightGradUnfold::Direct => 0,
        WeightGradUnfold::Columns => ckk * bw,
        WeightGradUnfold::Rows => cg * hw + ckk * bw,
    };
    let chunks = image_chunks(&geo);
    if chunks > 1 {
        let mut partial = vec![T::ZERO; chunks * per];
        partial.par_chunks_mut(per).enumerate().for_each(|(k, p)| {
            let images = k * geo.n / chunks..(k + 1) * geo.n / chunks;
            with_workspace(ws_len, |col| {
                for (g, pg) in p.chunks_mut(cog * ckk).enumerate() {
                    accumulate(g, images.clone(), pg, col, false);
                }
            })
        });
        let (first, rest) = partial.split_at(per);
        dw.copy_from_slice(first);
        for p in rest.chunks(per) {
            dw.iter_mut().zip(p).for_each(|(d, v)| *d += *v);
        }
    } else if as_tasks(geo.g, false) {
        dw.par_chunks_mut(cog * ckk)
            .enumerate()
            .for_each(|(g, dwg)| {
                with_workspace(ws_len, |col| accumulate(g, 0..geo.n, dwg, col, false))
            });
    } else {
        with_workspace(ws_len, |col| {
            for (g, dwg) in dw.chunks_mut(cog * ckk).enumerate() {
                accumulate(g, 0..geo.n, dwg, col, true);
            }
        });
    }
    if unfold == WeightGradUnfold::Rows {
        to_weight_layout(dw, &geo);
    }
}

/// How the weight gradient unfolds the input: its GEMM reduces over pixels, so the
/// `[ckk, len]` band of im2col is an operand the `gemm` crate packs one strided element at a
/// time; rows `[len, ckk]` unfolded from a channels-last copy pack row by row. The rows cost
/// a transposed copy of each input plane and a reordering of `dw` at the end, so they pay when
/// the unfold reads every input pixel many times and there are many pixels per output
/// channel (measured, one thread: ResNet-18's 7×7/2 stem and 64-channel 3×3s 1.5–2.5×
/// faster; its 1×1/2 downsamples and 256–512-channel 3×3s at 8²–16² slower).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WeightGradUnfold {
    /// A 1×1 stride-1 convolution: the input planes are the operand.
    Direct,
    /// im2col bands `[ckk, len]`.
    Columns,
    /// Channels-last rows `[len, ckk]`.
    Rows,
}

impl WeightGradUnfold {
    fn of(geo: &Geo) -> Self {
        let (hw, hwo) = (geo.h * geo.w, geo.hw_out());
        if geo.is_pointwise() {
            Self::Direct
        } else if geo.kh * geo.kw * hwo >= 2 * hw && geo.n * hwo >= 8 * geo.co {
            Self::Rows
        } else {
            Self::Columns
        }
    }

    /// Elements of the channels-last copy of one input plane group (0 unless `Rows`).
    fn transposed_input(self, geo: &Geo) -> usize {
        match self {
            Self::Rows => geo.cg() * geo.h * geo.w,
            _ => 0,
        }
    }
}

/// Reorders each output channel's row of a weight gradient from the unfolded rows' column
/// order (tap i, tap j, channel) to the weight's (channel, tap i, tap j).
fn to_weight_layout<T: Float>(dw: &mut [T], geo: &Geo) {
    let (cg, kk) = (geo.cg(), geo.kh * geo.kw);
    if kk == 1 {
        return;
    }
    dw.par_chunks_mut(cg * kk).for_each(|row| {
        with_workspace(cg * kk, |tmp: &mut [T]| {
            tmp.copy_from_slice(row);
            for (t, taps) in tmp.chunks_exact(cg).enumerate() {
                for (c, &v) in taps.iter().enumerate() {
                    row[c * kk + t] = v;
                }
            }
        })
    });
}

/// Image chunks of the weight gradient (1: no split), from the shape alone so that the sum
/// order does not depend on the thread count: up to `MAX_IMAGE_CHUNKS` when the partial
/// weights stay within `PARTIAL_ELEMS` and a chunk's GEMMs are too narrow to split.
fn image_chunks(geo: &Geo) -> usize {
    let per = geo.co * geo.ckk();
    let chunks = geo.n.min(MAX_IMAGE_CHUNKS);
    if chunks >= 2 && per <= NARROW_WEIGHT_ELEMS && chunks * per <= PARTIAL_ELEMS {
        chunks
    } else {
        1
    }
}

#[cfg(test)]
mod tests;
