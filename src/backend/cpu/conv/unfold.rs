//! im2col and col2im over a band of output pixels: the unfolded matrix `col [Cg*kh*kw, len]`
//! holds, for output pixels `j0..j0+len` (row-major over `Ho×Wo`), the input values each
//! kernel tap reads (zero where the tap falls in the padding).

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
        if sw == 1 {
            // Valid ow: 0 <= ow + off < w.
            let lo = ((-off).max(0) as usize).clamp(ow0, ow0 + len);
            let hi = ((w as isize - off).max(0) as usize).clamp(lo, ow0 + len);
            dst[..lo - ow0].fill(T::ZERO);
            dst[lo - ow0..hi - ow0]
                .copy_from_slice(&src[(lo as isize + off) as usize..(hi as isize + off) as usize]);
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
                for (k, &v) in row[jj..jj + run].iter().enumerate() {
                    let iw = ((ow0 + k) * sw) as isize + off;
                    if iw >= 0 && iw < w as isize {
                        dst[iw as usize] += v;
                    }
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
