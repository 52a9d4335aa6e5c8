//! im2col and col2im over a band of output pixels: the unfolded matrix `col [Cg*kh*kw, len]`
//! holds, for output pixels `j0..j0+len` (row-major over `Ho×Wo`), the input values each
//! kernel tap reads (zero where the tap falls in the padding).
//!
//! The weight gradient reads the band the other way round, pixels as the reduction, and the
//! GEMM packs a `[ckk, len]` band element by element there. It unfolds instead from a
//! channels-last copy of the input into rows `[len, kh*kw*Cg]` ([`im2row_band`]): one
//! contiguous copy per pixel and kernel row, and an operand the GEMM packs row by row.

use super::super::Float;
use super::Geo;
use rayon::prelude::*;

/// The runs of consecutive output pixels of band `j0..j0+len` that share one output row:
/// `(oh, ow0, offset in the band, run length)`.
fn runs(wo: usize, j0: usize, len: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut jj = 0;
    std::iter::from_fn(move || {
        if jj >= len {
            return None;
        }
        let p = j0 + jj;
        let (oh, ow0) = (p / wo, p % wo);
        let run = (wo - ow0).min(len - jj);
        let r = (oh, ow0, jj, run);
        jj += run;
        Some(r)
    })
}

/// The output columns `lo..hi` within `ow0..ow0 + len` whose tap `ow * sw + off` falls inside
/// a row of `w` pixels (`lo == hi` when none does).
fn valid_columns(w: usize, sw: usize, off: isize, ow0: usize, len: usize) -> (usize, usize) {
    let (w, sw) = (w as isize, sw as isize);
    // ow*sw + off >= 0  ⇔  ow >= ceil(-off / sw);  ow*sw + off < w  ⇔  ow < ceil((w - off) / sw).
    let ceil_div = |a: isize| if a <= 0 { 0 } else { (a + sw - 1) / sw };
    let lo = (ceil_div(-off) as usize).clamp(ow0, ow0 + len);
    let hi = (ceil_div(w - off) as usize).clamp(lo, ow0 + len);
    (lo, hi)
}

/// Fills row `r` (channel, tap i, tap j) of the band's unfolded matrix.
fn unfold_row<T: Float>(x: &[T], geo: &Geo, r: usize, j0: usize, row: &mut [T]) {
    let (h, w) = (geo.h, geo.w);
    let [sh, sw] = geo.a.stride;
    let [ph, pw] = geo.a.padding;
    let [dh, dw] = geo.a.dilation;
    let j = r % geo.kw;
    let i = (r / geo.kw) % geo.kh;
    let c = r / (geo.kw * geo.kh);
    let plane = &x[c * h * w..(c + 1) * h * w];
    let off = (j * dw) as isize - pw as isize;
    for (oh, ow0, jj, len) in runs(geo.wo, j0, row.len()) {
        let dst = &mut row[jj..jj + len];
        let ih = (oh * sh + i * dh) as isize - ph as isize;
        if ih < 0 || ih >= h as isize {
            dst.fill(T::ZERO);
            continue;
        }
        let src = &plane[ih as usize * w..(ih as usize + 1) * w];
        // Output columns lo..hi read inside the row (0 <= ow*sw + off < w); the rest is padding.
        let (lo, hi) = valid_columns(w, sw, off, ow0, len);
        dst[..lo - ow0].fill(T::ZERO);
        let first = (lo * sw) as isize + off;
        if hi > lo && sw == 1 {
            dst[lo - ow0..hi - ow0].copy_from_slice(&src[first as usize..][..hi - lo]);
        } else if hi > lo {
            let taps = src[first as usize..].iter().step_by(sw);
            dst[lo - ow0..hi - ow0]
                .iter_mut()
                .zip(taps)
                .for_each(|(d, &v)| *d = v);
        }
        dst[hi - ow0..].fill(T::ZERO);
    }
}

/// Unfolds output pixels `j0..j0+len` of one group of one image (`x [Cg,H,W]`) into
/// `col [ckk, len]`, every element written; with `parallel`, rows are split across rayon.
pub(super) fn im2col_band<T: Float>(
    x: &[T],
    geo: &Geo,
    j0: usize,
    len: usize,
    col: &mut [T],
    parallel: bool,
) {
    let col = &mut col[..geo.ckk() * len];
    if parallel {
        col.par_chunks_mut(len)
            .enumerate()
            .for_each(|(r, row)| unfold_row(x, geo, r, j0, row));
    } else {
        for (r, row) in col.chunks_mut(len).enumerate() {
            unfold_row(x, geo, r, j0, row);
        }
    }
}

/// Adds the taps of channel `c` from `col [ckk, len]` (band `j0..j0+len`) into its plane.
fn fold_channel<T: Float>(col: &[T], geo: &Geo, c: usize, j0: usize, len: usize, plane: &mut [T]) {
    let (h, w) = (geo.h, geo.w);
    let [sh, sw] = geo.a.stride;
    let [ph, pw] = geo.a.padding;
    let [dh, dw] = geo.a.dilation;
    let kk = geo.kh * geo.kw;
    for i in 0..geo.kh {
        for j in 0..geo.kw {
            let row = &col[(c * kk + i * geo.kw + j) * len..][..len];
            let off = (j * dw) as isize - pw as isize;
            for (oh, ow0, jj, run) in runs(geo.wo, j0, len) {
                let ih = (oh * sh + i * dh) as isize - ph as isize;
                if ih < 0 || ih >= h as isize {
                    continue;
                }
                let dst = &mut plane[ih as usize * w..(ih as usize + 1) * w];
                let (lo, hi) = valid_columns(w, sw, off, ow0, run);
                if hi > lo {
                    let first = ((lo * sw) as isize + off) as usize;
                    let taps = dst[first..].iter_mut().step_by(sw);
                    taps.zip(&row[jj + lo - ow0..jj + hi - ow0])
                        .for_each(|(d, &v)| *d += v);
                }
            }
        }
    }
}

/// Folds `col [ckk, len]` of band `j0..j0+len` back, adding into `dx [Cg,H,W]`. Each channel
/// is one task that adds its taps in a fixed order, so the sums do not depend on threads.
pub(super) fn col2im_band<T: Float>(
    col: &[T],
    geo: &Geo,
    j0: usize,
    len: usize,
    dx: &mut [T],
    parallel: bool,
) {
    let hw = geo.h * geo.w;
    let dx = &mut dx[..geo.cg() * hw];
    if parallel {
        dx.par_chunks_mut(hw)
            .enumerate()
            .for_each(|(c, plane)| fold_channel(col, geo, c, j0, len, plane));
    } else {
        for (c, plane) in dx.chunks_mut(hw).enumerate() {
            fold_channel(col, geo, c, j0, len, plane);
        }
    }
}

/// `xt [H*W, Cg]` ← `x [Cg, H, W]`: one image's group with its channels last, transposed in
/// square blocks so that both sides stay in cache.
pub(super) fn to_channels_last<T: Float>(
    x: &[T],
    cg: usize,
    hw: usize,
    xt: &mut [T],
    parallel: bool,
) {
    const B: usize = 16;
    let x = &x[..cg * hw];
    let block = |(b, xt): (usize, &mut [T])| {
        let p0 = b * B;
        for c0 in (0..cg).step_by(B) {
            for c in c0..(c0 + B).min(cg) {
                let src = &x[c * hw + p0..][..xt.len() / cg];
                for (k, &v) in src.iter().enumerate() {
                    xt[k * cg + c] = v;
                }
            }
        }
    };
    let xt = &mut xt[..cg * hw];
    if parallel {
        xt.par_chunks_mut(B * cg).enumerate().for_each(block);
    } else {
        xt.chunks_mut(B * cg).enumerate().for_each(block);
    }
}

/// Unfolds output pixels `j0..j0+len` from the channels-last input `xt [H*W, Cg]` into rows
/// `row [len, kh*kw*Cg]`, columns ordered (tap i, tap j, channel), every element written.
/// Undilated taps along a kernel row read consecutive pixels, so each (pixel, kernel row) is
/// one copy of up to `kw*Cg` values.
pub(super) fn im2row_band<T: Float>(
    xt: &[T],
    geo: &Geo,
    j0: usize,
    len: usize,
    rows: &mut [T],
    parallel: bool,
) {
    let row_len = geo.ckk();
    let rows = &mut rows[..len * row_len];
    if parallel {
        rows.par_chunks_exact_mut(row_len)
            .enumerate()
            .for_each(|(jj, dst)| unfold_pixel(xt, geo, j0 + jj, dst));
    } else {
        for (jj, dst) in rows.chunks_exact_mut(row_len).enumerate() {
            unfold_pixel(xt, geo, j0 + jj, dst);
        }
    }
}

/// One row of [`im2row_band`]: the taps of output pixel `p`.
fn unfold_pixel<T: Float>(xt: &[T], geo: &Geo, p: usize, dst: &mut [T]) {
    let (h, w, cg, kw) = (geo.h as isize, geo.w as isize, geo.cg(), geo.kw);
    let [sh, sw] = geo.a.stride;
    let [ph, pw] = geo.a.padding;
    let [dh, dw] = geo.a.dilation;
    {
        let (oh, ow) = (p / geo.wo, p % geo.wo);
        let iw0 = (ow * sw) as isize - pw as isize;
        for (i, taps) in dst.chunks_exact_mut(kw * cg).enumerate() {
            let ih = (oh * sh + i * dh) as isize - ph as isize;
            if ih < 0 || ih >= h {
                taps.fill(T::ZERO);
                continue;
            }
            let line = &xt[ih as usize * geo.w * cg..][..geo.w * cg];
            if dw == 1 && iw0 >= 0 && iw0 + kw as isize <= w {
                taps.copy_from_slice(&line[iw0 as usize * cg..][..kw * cg]);
                continue;
            }
            for (j, tap) in taps.chunks_exact_mut(cg).enumerate() {
                let iw = iw0 + (j * dw) as isize;
                if iw < 0 || iw >= w {
                    tap.fill(T::ZERO);
                } else {
                    tap.copy_from_slice(&line[iw as usize * cg..][..cg]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::op::{Conv2dAttrs, conv_out_size};

    /// Every band `j0..j0+len` of strided, dilated, over-padded unfolds, and their folds,
    /// against the definition: bands that start or end a tap's reach inside the padding, a
    /// stride past the kernel's reach, and different settings along the height and the width;
    /// the channels-last rows of the same bands hold the same taps.
    #[test]
    fn every_band_unfolds_and_folds_as_defined() {
        let (c, h, w) = (2, 5, 11);
        let x: Vec<f64> = (0..c * h * w).map(|i| i as f64 + 1.0).collect();
        let mut xt = vec![f64::NAN; c * h * w];
        to_channels_last(&x, c, h * w, &mut xt, true);
        for (ci, p) in (0..c).flat_map(|ci| (0..h * w).map(move |p| (ci, p))) {
            assert_eq!(xt[p * c + ci], x[ci * h * w + p], "channels last");
        }
        // (kernel, stride, padding, dilation), each [along h, along w].
        let cases = [
            (3, [1, 1], [0, 0], [1, 1]),
            (3, [1, 1], [2, 2], [1, 1]),
            (3, [1, 1], [3, 3], [2, 2]),
            (3, [2, 2], [1, 1], [1, 1]),
            (3, [2, 2], [3, 3], [2, 2]),
            (3, [3, 4], [4, 1], [1, 1]),
            (1, [2, 2], [0, 0], [1, 1]),
            (3, [1, 2], [2, 0], [1, 2]),
            (3, [2, 1], [0, 3], [2, 1]),
        ];
        for (k, s, p, d) in cases {
            let a = Conv2dAttrs {
                stride: s,
                padding: p,
                dilation: d,
                groups: 1,
            };
            let ho = conv_out_size(h, k, s[0], p[0], d[0]).unwrap();
            let wo = conv_out_size(w, k, s[1], p[1], d[1]).unwrap();
            let geo = Geo::new(&[1, c, h, w], &[1, c, k, k], &[1, 1, ho, wo], &a);
            let tap = |r: usize, px: usize| {
                let (ci, i, j) = (r / (k * k), (r / k) % k, r % k);
                let ih = ((px / wo) * s[0] + i * d[0]) as isize - p[0] as isize;
                let iw = ((px % wo) * s[1] + j * d[1]) as isize - p[1] as isize;
                let inside = (0..h as isize).contains(&ih) && (0..w as isize).contains(&iw);
                inside.then(|| (ci * h + ih as usize) * w + iw as usize)
            };
            let ckk = c * k * k;
            let what = format!("k{k} s{s:?} p{p:?} d{d:?}");
            for j0 in 0..ho * wo {
                for len in 1..=ho * wo - j0 {
                    let mut col = vec![f64::NAN; ckk * len];
                    im2col_band(&x, &geo, j0, len, &mut col, false);
                    let mut folded = vec![0.0; c * h * w];
                    col2im_band(&col, &geo, j0, len, &mut folded, false);
                    let mut want_fold = vec![0.0; c * h * w];
                    for r in 0..ckk {
                        for jj in 0..len {
                            let want = tap(r, j0 + jj).map_or(0.0, |xi| x[xi]);
                            assert_eq!(col[r * len + jj], want, "{what} band {j0}+{len}");
                            if let Some(xi) = tap(r, j0 + jj) {
                                want_fold[xi] += want;
                            }
                        }
                    }
                    assert_eq!(folded, want_fold, "fold {what} band {j0}+{len}");
                    // The same band as channels-last rows, columns (tap i, tap j, channel).
                    let mut rows = vec![f64::NAN; ckk * len];
                    im2row_band(&xt, &geo, j0, len, &mut rows, len % 2 == 0);
                    for jj in 0..len {
                        for t in 0..k * k {
                            for ci in 0..c {
                                let want = col[(ci * k * k + t) * len + jj];
                                let got = rows[(jj * k * k + t) * c + ci];
                                assert_eq!(got, want, "rows {what} band {j0}+{len}");
                            }
                        }
                    }
                }
            }
        }
    }
}
