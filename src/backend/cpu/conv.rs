//! 2-D convolution via im2col/col2im and GEMM (PyTorch semantics: NCHW, weight
//! `[Co, Ci/groups, kh, kw]`, zero padding, dilation, groups). A 1×1 stride-1 unpadded
//! convolution skips im2col. The weight gradient sums images in a fixed order.

use super::Float;
use super::gemm::gemm;
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

/// Unfolds one group of one image `x [Cg,H,W]` into `col [Cg*kh*kw, Ho*Wo]`.
fn im2col<T: Float>(x: &[T], geo: &Geo, col: &mut [T]) {
    let (h, w, ho, wo) = (geo.h, geo.w, geo.ho, geo.wo);
    let [sh, sw] = geo.a.stride;
    let [ph, pw] = geo.a.padding;
    let [dh, dw] = geo.a.dilation;
    col.par_chunks_mut(ho * wo).enumerate().for_each(|(r, row)| {
        let j = r % geo.kw;
        let i = (r / geo.kw) % geo.kh;
        let c = r / (geo.kw * geo.kh);
        let plane = &x[c * h * w..(c + 1) * h * w];
        for oh in 0..ho {
            let ih = (oh * sh + i * dh) as isize - ph as isize;
            let dst = &mut row[oh * wo..(oh + 1) * wo];
            if ih < 0 || ih >= h as isize {
                dst.fill(T::ZERO);
                continue;
            }
            let src = &plane[ih as usize * w..(ih as usize + 1) * w];
            let off = (j * dw) as isize - pw as isize;
            if sw == 1 && off >= 0 && off as usize + wo <= w {
                dst.copy_from_slice(&src[off as usize..off as usize + wo]);
                continue;
            }
            for (ow, d) in dst.iter_mut().enumerate() {
                let iw = (ow * sw) as isize + off;
                *d = if iw >= 0 && iw < w as isize { src[iw as usize] } else { T::ZERO };
            }
        }
    });
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

/// `y = conv2d(x, w) + bias`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d<T: Float>(x: &[T], xs: &[usize], wt: &[T], ws: &[usize], bias: Option<&[T]>, a: &Conv2dAttrs, y: &mut [T], ys: &[usize]) {
    let geo = Geo::new(xs, ws, ys, a);
    let (cg, cog, ckk, hwo, hw) = (geo.cg(), geo.cog(), geo.ckk(), geo.hw_out(), geo.h * geo.w);
    let mut col = if geo.is_pointwise() { Vec::new() } else { vec![T::ZERO; ckk * hwo] };
    for n in 0..geo.n {
        for g in 0..geo.g {
            let xg = &x[(n * geo.c + g * cg) * hw..][..cg * hw];
            let src: &[T] = if geo.is_pointwise() {
                xg
            } else {
                im2col(xg, &geo, &mut col);
                &col
            };
            let yg = &mut y[(n * geo.co + g * cog) * hwo..][..cog * hwo];
            let wg = &wt[g * cog * ckk..][..cog * ckk];
            gemm(cog, hwo, ckk, wg, ckk, 1, src, hwo, 1, yg, false);
        }
    }
    if let Some(b) = bias {
        y[..geo.n * geo.co * hwo].par_chunks_mut(hwo).enumerate().for_each(|(p, plane)| {
            let bv = b[p % geo.co];
            for v in plane {
                *v += bv;
            }
        });
    }
}

/// `dx` from `dy [N,Co,Ho,Wo]` and `w`; `xs` is the input shape.
pub fn conv2d_grad_input<T: Float>(dy: &[T], ys: &[usize], wt: &[T], ws: &[usize], a: &Conv2dAttrs, dx: &mut [T], xs: &[usize]) {
    let geo = Geo::new(xs, ws, ys, a);
    let (cg, cog, ckk, hwo, hw) = (geo.cg(), geo.cog(), geo.ckk(), geo.hw_out(), geo.h * geo.w);
    let mut col = if geo.is_pointwise() { Vec::new() } else { vec![T::ZERO; ckk * hwo] };
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
pub fn conv2d_grad_weight<T: Float>(x: &[T], xs: &[usize], dy: &[T], ys: &[usize], a: &Conv2dAttrs, dw: &mut [T], ws: &[usize]) {
    let geo = Geo::new(xs, ws, ys, a);
    let (cg, cog, ckk, hwo, hw) = (geo.cg(), geo.cog(), geo.ckk(), geo.hw_out(), geo.h * geo.w);
    let mut col = if geo.is_pointwise() { Vec::new() } else { vec![T::ZERO; ckk * hwo] };
    for n in 0..geo.n {
        for g in 0..geo.g {
            let xg = &x[(n * geo.c + g * cg) * hw..][..cg * hw];
            let src: &[T] = if geo.is_pointwise() {
                xg
            } else {
                im2col(xg, &geo, &mut col);
                &col
            };
            let dyg = &dy[(n * geo.co + g * cog) * hwo..][..cog * hwo];
            let dwg = &mut dw[g * cog * ckk..][..cog * ckk];
            // dw_g (+)= dy_g @ colᵀ, images summed in order.
            gemm(cog, ckk, hwo, dyg, hwo, 1, src, 1, hwo, dwg, n > 0);
        }
    }
}
