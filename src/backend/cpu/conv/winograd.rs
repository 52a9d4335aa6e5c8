//! Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions in f32: the forward (and through it the
//! stride-1 input gradient, which is a forward convolution of `dy`) and the weight gradient.
//!
//! Each 2×2 output tile needs 16 products per (Co, Ci) pair instead of 36, so the GEMM work
//! drops 2.25× (Lavin & Gray 2016). With `B`, `G`, `A` the F(2, 3) matrices and `d` the 4×4
//! input patch of a tile:
//! - forward: `y_tile = Aᵀ [ (G w Gᵀ) ⊙ (Bᵀ d B) ] A`, summed over input channels — 16 GEMMs
//!   `M[ξ] = U[ξ] @ V[ξ]` (`[Co×Ci] @ [Ci×tiles]`), one per position ξ of the 4×4 transform;
//! - weight gradient (the adjoint of the forward): `dw = Gᵀ [ Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B) ] G`
//!   — 16 GEMMs `P[ξ] = D[ξ] @ V[ξ]ᵀ` (`[Co×tiles] @ [tiles×Ci]`), accumulated over tiles.
//!
//! The transforms use only ±1 and ½, so F(2, 3) keeps f32 errors of the size of the direct
//! sum's. Tiles are processed in chunks whose size is a function of the shape (bounded
//! scratch), and every phase splits its work by the shape alone: the weight gradient
//! accumulates the chunks in order, so results are bit-identical whatever the thread count.

use super::super::Float;
use super::super::gemm::gemm_tile;
use super::workspace::with_workspace;
use super::{Geo, OutPtr};
use rayon::prelude::*;

/// Most scratch elements of one chunk of tiles (the transformed input and the transformed
/// output or output gradient, 16 planes each): 16 MiB in f32, inside the L3 cache.
pub(super) const CHUNK_ELEMS: usize = 4 << 20;

/// Fewest channels (in and out) and output tiles for the Winograd path. Its transforms cost
/// per tile and channel, its GEMM savings per tile and channel pair, and transforming the
/// weights costs per channel pair whatever the image size. Measured (2 threads, ms, forward /
/// input gradient / weight gradient, Winograd vs im2col): 16 ch at 40² × 8 images 1.7 / 1.7 /
/// 1.9 vs 0.57 / 0.55 / 0.77; 64 ch at 20² × 8 even; 128 ch at 5² × 8 (72 tiles) 0.69 / 0.86 /
/// 0.71 vs 0.56 / 0.72 / 0.78; 128 ch at 32² × 2 2.6 / 2.7 / 2.6 vs 3.4 / 3.5 / 4.1; 256 ch at
/// 16² × 2 (128 tiles) 2.5 / 3.1 / 2.6 vs 3.2 / 3.9 / 3.3; 256 ch at 32² × 2 8.4 / 9.4 / 8.5
/// vs 12.1 / 13.0 / 12.9.
const MIN_CHANNELS: usize = 128;
const MIN_TILES: usize = 128;

/// Whether the Winograd path serves this convolution: f32, 3×3, stride 1, no dilation, one
/// group, padding at most 2, and enough channels and tiles that the GEMMs outweigh the
/// transforms.
pub(super) fn applies<T: Float>(geo: &Geo) -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && geo.kh == 3
        && geo.kw == 3
        && geo.a.stride == [1, 1]
        && geo.a.dilation == [1, 1]
        && geo.g == 1
        && geo.a.padding.iter().all(|&p| p <= 2)
        && geo.c >= MIN_CHANNELS
        && geo.co >= MIN_CHANNELS
        && geo.ho >= 2
        && geo.wo >= 2
        && geo.n * geo.ho.div_ceil(2) * geo.wo.div_ceil(2) >= MIN_TILES
}

/// Tiles of the output: per image `th × tw`, in all `n · th · tw`.
#[derive(Clone, Copy)]
struct Tiles {
    th: usize,
    tw: usize,
    total: usize,
    /// Tiles per chunk.
    chunk: usize,
}

impl Tiles {
    /// `chunk_elems`: the scratch budget per chunk ([`CHUNK_ELEMS`]; tests pass less).
    fn new(geo: &Geo, chunk_elems: usize) -> Self {
        let (th, tw) = (geo.ho.div_ceil(2), geo.wo.div_ceil(2));
        let total = geo.n * th * tw;
        let per_tile = 16 * (geo.c + geo.co);
        let chunk = (chunk_elems / per_tile).max(1).min(total);
        Tiles {
            th,
            tw,
            total,
            chunk,
        }
    }
    /// (image, tile row, tile column) of tile `t`.
    fn locate(&self, t: usize) -> (usize, usize, usize) {
        let per_image = self.th * self.tw;
        let (n, r) = (t / per_image, t % per_image);
        (n, r / self.tw, r % self.tw)
    }
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.total)
            .step_by(self.chunk)
            .map(|t0| (t0, self.chunk.min(self.total - t0)))
    }
}

/// Tiles transformed together: the block's values are computed into small arrays, then each
/// of the 16 planes is written as one contiguous run.
const BLOCK: usize = 16;

/// Writes the first `run` values of `src` to `dst`: a whole array as one fixed-size move, which
/// compiles to a few vector stores (a length known only at run time is a call to `memmove`,
/// which cost a tenth of the forward).
///
/// # Safety
/// `dst` must be valid for writes of `run <= N` elements.
#[inline(always)]
unsafe fn put_run<T: Copy, const N: usize>(src: &[T; N], dst: *mut T, run: usize) {
    // SAFETY: the caller's contract; `write_unaligned` needs no alignment.
    unsafe {
        if run == N {
            dst.cast::<[T; N]>().write_unaligned(*src);
        } else {
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, run);
        }
    }
}

/// Reads the first `run` values of `src` into `dst` ([`put_run`]'s counterpart).
#[inline(always)]
fn get_run<T: Copy, const N: usize>(src: &[T], dst: &mut [T; N], run: usize) {
    match <&[T; N]>::try_from(&src[..run]) {
        Ok(all) => *dst = *all,
        Err(_) => dst[..run].copy_from_slice(&src[..run]),
    }
}

/// Runs of the chunk's tiles that share one tile row: `(offset in chunk, image, tile row,
/// first tile column, run length)`, each cut into blocks of at most [`BLOCK`] tiles.
fn tile_blocks(
    tiles: &Tiles,
    (t0, len): (usize, usize),
) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> + '_ {
    let mut k = 0;
    std::iter::from_fn(move || {
        if k >= len {
            return None;
        }
        let (n, ty, tx) = tiles.locate(t0 + k);
        let run = (tiles.tw - tx).min(len - k).min(BLOCK);
        let r = (k, n, ty, tx, run);
        k += run;
        Some(r)
    })
}

/// Rows `2·ty - pad .. + 4` of a channel plane split into even and odd columns counted from
/// column `-pad`, zero outside the plane: `even[r·width + i]` is column `2i - pad` of row `r`,
/// `odd[..]` column `2i + 1 - pad`. A tile's patch is then two neighbouring entries of each,
/// and a block of tiles reads contiguous runs (`width` leaves room to read a whole block).
fn split_rows<T: Float>(plane: &[T], geo: &Geo, ty: usize, even: &mut [T], odd: &mut [T]) {
    let (h, w) = (geo.h as isize, geo.w as isize);
    let [ph, pw] = geo.a.padding;
    let width = even.len() / 4;
    for r in 0..4 {
        let (ev, od) = (
            &mut even[r * width..][..width],
            &mut odd[r * width..][..width],
        );
        let yy = (2 * ty + r) as isize - ph as isize;
        if yy < 0 || yy >= h {
            ev.fill(T::ZERO);
            od.fill(T::ZERO);
            continue;
        }
        let row = &plane[(yy * w) as usize..][..w as usize];
        let at = |c: isize| {
            if c >= 0 && c < w {
                row[c as usize]
            } else {
                T::ZERO
            }
        };
        for i in 0..width {
            let c = (2 * i) as isize - pw as isize;
            ev[i] = at(c);
            od[i] = at(c + 1);
        }
    }
}

/// `Bᵀ d B` of a block of tiles of one tile row, from its split rows: `vt[ξ][j]` for tile
/// `tx0 + j`.
#[inline(always)]
fn input_block<T: Float>(even: &[T], odd: &[T], width: usize, tx0: usize) -> [[T; BLOCK]; 16] {
    let mut t = [[[T::ZERO; BLOCK]; 4]; 4];
    for (r, tr) in t.iter_mut().enumerate() {
        let ev = &even[r * width + tx0..][..BLOCK + 1];
        let od = &odd[r * width + tx0..][..BLOCK + 1];
        for j in 0..BLOCK {
            let (d0, d1, d2, d3) = (ev[j], od[j], ev[j + 1], od[j + 1]);
            tr[0][j] = d0 - d2;
            tr[1][j] = d1 + d2;
            tr[2][j] = d2 - d1;
            tr[3][j] = d1 - d3;
        }
    }
    let mut vt = [[T::ZERO; BLOCK]; 16];
    for c in 0..4 {
        for j in 0..BLOCK {
            vt[c][j] = t[0][c][j] - t[2][c][j];
            vt[4 + c][j] = t[1][c][j] + t[2][c][j];
            vt[8 + c][j] = t[2][c][j] - t[1][c][j];
            vt[12 + c][j] = t[1][c][j] - t[3][c][j];
        }
    }
    vt
}

/// How the transformed input `V = Bᵀ d B` of a chunk's tiles is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `V[ξ][ci][t - t0]`: the forward's GEMMs reduce over channels.
    ChannelMajor,
    /// `V[ξ][t - t0][ci]`: the weight gradient's GEMMs reduce over tiles, and the `gemm` crate
    /// packs an operand contiguous along the reduction one strided element at a time.
    TileMajor,
}

/// The transformed input of the chunk's tiles into `v` (16 × c × len), split over channels:
/// one per task when channel-major, blocks of [`BLOCK`] when tile-major, so that each tile's
/// channels are written as one contiguous run.
fn transform_inputs<T: Float>(
    x: &[T],
    geo: &Geo,
    tiles: &Tiles,
    chunk: (usize, usize),
    v: &mut [T],
    layout: Layout,
) {
    let plane_len = geo.h * geo.w;
    let (c, len, width) = (geo.c, chunk.1, tiles.tw + 1 + BLOCK);
    let per_task = if layout == Layout::TileMajor {
        BLOCK
    } else {
        1
    };
    let out = OutPtr(v.as_mut_ptr());
    (0..c.div_ceil(per_task)).into_par_iter().for_each(|cb| {
        let (c0, cr) = (cb * per_task, per_task.min(c - cb * per_task));
        let mut even = vec![T::ZERO; cr * 4 * width];
        let mut odd = vec![T::ZERO; cr * 4 * width];
        let mut cached = usize::MAX;
        // Tile-major: vals[e][j][cc] is plane e, tile k + j, channel c0 + cc (each block
        // overwrites what it writes out).
        let mut vals = [[[T::ZERO; BLOCK]; BLOCK]; 16];
        for (k, n, ty, tx0, run) in tile_blocks(tiles, chunk) {
            let row_key = n * tiles.th + ty;
            for cc in 0..cr {
                let (ev, od) = (
                    &mut even[cc * 4 * width..][..4 * width],
                    &mut odd[cc * 4 * width..][..4 * width],
                );
                if cached != row_key {
                    let plane = &x[(n * c + c0 + cc) * plane_len..][..plane_len];
                    split_rows(plane, geo, ty, ev, od);
                }
                let vt = input_block(ev, od, width, tx0);
                for (e, plane) in vt.iter().enumerate() {
                    match layout {
                        // SAFETY: elements (e, c0 + cc, k..k + run) of the 16 × c × len
                        // buffer; each task owns its channels.
                        Layout::ChannelMajor => unsafe {
                            put_run(plane, out.get().add((e * c + c0 + cc) * len + k), run)
                        },
                        Layout::TileMajor => {
                            for (j, &val) in plane.iter().enumerate() {
                                vals[e][j][cc] = val;
                            }
                        }
                    }
                }
            }
            cached = row_key;
            if layout == Layout::TileMajor {
                for (e, plane) in vals.iter().enumerate() {
                    for (j, channels) in plane[..run].iter().enumerate() {
                        // SAFETY: elements (e, k + j, c0..c0 + cr) of the 16 × len × c
                        // buffer; each task owns its block of channels.
                        unsafe { put_run(channels, out.get().add((e * len + k + j) * c + c0), cr) }
                    }
                }
            }
        }
    });
}

/// `U[ξ][co][ci] = G w Gᵀ` into `u` (16 × co × ci), split over output channels.
fn transform_weights<T: Float>(wt: &[T], co: usize, ci: usize, u: &mut [T]) {
    let half = T::from_f64(0.5);
    let out = OutPtr(u.as_mut_ptr());
    (0..co).into_par_iter().for_each(|o| {
        for i0 in (0..ci).step_by(BLOCK) {
            let run = BLOCK.min(ci - i0);
            let mut g = [[T::ZERO; BLOCK]; 9];
            for j in 0..run {
                let src = &wt[9 * (o * ci + i0 + j)..][..9];
                for (k, gk) in g.iter_mut().enumerate() {
                    gk[j] = src[k];
                }
            }
            // G g: rows 0..4 of 3 columns each.
            let mut t = [[T::ZERO; BLOCK]; 12];
            for c in 0..3 {
                for j in 0..BLOCK {
                    let (g0, g1, g2) = (g[c][j], g[3 + c][j], g[6 + c][j]);
                    t[c][j] = g0;
                    t[3 + c][j] = (g0 + g1 + g2) * half;
                    t[6 + c][j] = (g0 - g1 + g2) * half;
                    t[9 + c][j] = g2;
                }
            }
            let mut ut = [[T::ZERO; BLOCK]; 16];
            for r in 0..4 {
                for j in 0..BLOCK {
                    let (g0, g1, g2) = (t[3 * r][j], t[3 * r + 1][j], t[3 * r + 2][j]);
                    ut[4 * r][j] = g0;
                    ut[4 * r + 1][j] = (g0 + g1 + g2) * half;
                    ut[4 * r + 2][j] = (g0 - g1 + g2) * half;
                    ut[4 * r + 3][j] = g2;
                }
            }
            for (e, vals) in ut.iter().enumerate() {
                // SAFETY: elements (e, o, i0..i0+run) of the 16 × co × ci buffer; each task
                // owns its output channel `o`.
                unsafe {
                    put_run(vals, out.get().add((e * co + o) * ci + i0), run);
                }
            }
        }
    });
}

/// `Aᵀ m A` of a block of transformed tiles `mt[ξ][j]`, plus `bias`: the two output rows
/// of the block, interleaved (`rows[r][2j + c]` is output (r, c) of tile j).
#[inline(always)]
fn output_block<T: Float>(mt: &[[T; BLOCK]; 16], bias: T) -> [[T; 2 * BLOCK]; 2] {
    let mut s = [[T::ZERO; BLOCK]; 8];
    for c in 0..4 {
        for j in 0..BLOCK {
            s[c][j] = mt[c][j] + mt[4 + c][j] + mt[8 + c][j];
            s[4 + c][j] = mt[4 + c][j] - mt[8 + c][j] - mt[12 + c][j];
        }
    }
    let mut rows = [[T::ZERO; 2 * BLOCK]; 2];
    for (r, row) in rows.iter_mut().enumerate() {
        for j in 0..BLOCK {
            row[2 * j] = s[4 * r][j] + s[4 * r + 1][j] + s[4 * r + 2][j] + bias;
            row[2 * j + 1] = s[4 * r + 1][j] - s[4 * r + 2][j] - s[4 * r + 3][j] + bias;
        }
    }
    rows
}

/// `A g Aᵀ` of a block of output-gradient tiles given as their two rows, interleaved like
/// [`output_block`]'s result.
#[inline(always)]
fn grad_block<T: Float>(rows: &[[T; 2 * BLOCK]; 2]) -> [[T; BLOCK]; 16] {
    // t[r][c]: row r of A g for tile column c.
    let mut t = [[[T::ZERO; BLOCK]; 2]; 4];
    for c in 0..2 {
        for j in 0..BLOCK {
            let (g0, g1) = (rows[0][2 * j + c], rows[1][2 * j + c]);
            t[0][c][j] = g0;
            t[1][c][j] = g0 + g1;
            t[2][c][j] = g0 - g1;
            t[3][c][j] = -g1;
        }
    }
    let mut dt = [[T::ZERO; BLOCK]; 16];
    for (r, tr) in t.iter().enumerate() {
        for j in 0..BLOCK {
            let (g0, g1) = (tr[0][j], tr[1][j]);
            dt[4 * r][j] = g0;
            dt[4 * r + 1][j] = g0 + g1;
            dt[4 * r + 2][j] = g0 - g1;
            dt[4 * r + 3][j] = -g1;
        }
    }
    dt
}

/// `Gᵀ p G` of a block of transformed sums `pt[ξ][j]`: the 3×3 gradients `w[k][j]`.
#[inline(always)]
fn weight_grad_block<T: Float>(pt: &[[T; BLOCK]; 16]) -> [[T; BLOCK]; 9] {
    let half = T::from_f64(0.5);
    let mut t = [[T::ZERO; BLOCK]; 12];
    for c in 0..4 {
        for j in 0..BLOCK {
            let (p0, p1, p2, p3) = (pt[c][j], pt[4 + c][j], pt[8 + c][j], pt[12 + c][j]);
            t[c][j] = p0 + (p1 + p2) * half;
            t[4 + c][j] = (p1 - p2) * half;
            t[8 + c][j] = (p1 + p2) * half + p3;
        }
    }
    let mut w = [[T::ZERO; BLOCK]; 9];
    for r in 0..3 {
        for j in 0..BLOCK {
            let (p0, p1, p2, p3) = (
                t[4 * r][j],
                t[4 * r + 1][j],
                t[4 * r + 2][j],
                t[4 * r + 3][j],
            );
            w[3 * r][j] = p0 + (p1 + p2) * half;
            w[3 * r + 1][j] = (p1 - p2) * half;
            w[3 * r + 2][j] = (p1 + p2) * half + p3;
        }
    }
    w
}

/// `y = conv2d(x, w) + bias` (see [`applies`]); `chunk_elems` bounds the scratch.
pub(super) fn conv2d<T: Float>(
    x: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    geo: &Geo,
    y: &mut [T],
    chunk_elems: usize,
) {
    let (ci, co) = (geo.c, geo.co);
    let tiles = Tiles::new(geo, chunk_elems);
    let hwo = geo.ho * geo.wo;
    let y_out = OutPtr(y.as_mut_ptr());
    let scratch_len = 16 * co * ci + 16 * (ci + co) * tiles.chunk;
    with_workspace(scratch_len, |scratch: &mut [T]| {
        let (u, rest) = scratch.split_at_mut(16 * co * ci);
        let (v, m) = rest.split_at_mut(16 * ci * tiles.chunk);
        transform_weights(wt, co, ci, u);
        let u = &*u;
        for chunk in tiles.chunks() {
            let len = chunk.1;
            transform_inputs(x, geo, &tiles, chunk, v, Layout::ChannelMajor);
            let m_out = OutPtr(m.as_mut_ptr());
            let v = &*v;
            (0..16).into_par_iter().for_each(|e| {
                // SAFETY: plane `e` of M (co × len, row stride len), one task per plane.
                unsafe {
                    gemm_tile(
                        co,
                        len,
                        ci,
                        &u[e * co * ci..],
                        ci,
                        1,
                        &v[e * ci * len..],
                        len,
                        1,
                        m_out.get().add(e * co * len),
                        len,
                        false,
                        false,
                    )
                }
            });
            let m = &*m;
            (0..co).into_par_iter().for_each(|o| {
                let b = bias.map_or(T::ZERO, |b| b[o]);
                for (k, n, ty, tx0, run) in tile_blocks(&tiles, chunk) {
                    let mut mt = [[T::ZERO; BLOCK]; 16];
                    for (e, slot) in mt.iter_mut().enumerate() {
                        get_run(&m[(e * co + o) * len + k..], slot, run);
                    }
                    let rows = output_block(&mt, b);
                    let ox = 2 * tx0;
                    let cols = (2 * run).min(geo.wo - ox);
                    for (r, row) in rows.iter().enumerate() {
                        let oy = 2 * ty + r;
                        if oy < geo.ho {
                            // SAFETY: channel `o` of image `n` belongs to this task only; the
                            // run lies inside the output row (the caller checked `y`'s length).
                            unsafe {
                                let dst = y_out.get().add((n * co + o) * hwo + oy * geo.wo + ox);
                                put_run(row, dst, cols);
                            }
                        }
                    }
                }
            });
        }
    });
}

/// `dw` of the convolution from `x` and `dy` (see [`applies`]); `chunk_elems` bounds the
/// scratch.
pub(super) fn conv2d_grad_weight<T: Float>(
    x: &[T],
    dy: &[T],
    geo: &Geo,
    dw: &mut [T],
    chunk_elems: usize,
) {
    let (ci, co) = (geo.c, geo.co);
    let tiles = Tiles::new(geo, chunk_elems);
    let hwo = geo.ho * geo.wo;
    let scratch_len = 16 * co * ci + 16 * (ci + co) * tiles.chunk;
    with_workspace(scratch_len, |scratch: &mut [T]| {
        let (p, rest) = scratch.split_at_mut(16 * co * ci);
        let (v, d) = rest.split_at_mut(16 * ci * tiles.chunk);
        for (i, chunk) in tiles.chunks().enumerate() {
            let len = chunk.1;
            transform_inputs(x, geo, &tiles, chunk, v, Layout::TileMajor);
            let d_out = OutPtr(d.as_mut_ptr());
            (0..co).into_par_iter().for_each(|o| {
                for (k, n, ty, tx0, run) in tile_blocks(&tiles, chunk) {
                    let ox = 2 * tx0;
                    let cols = (2 * run).min(geo.wo - ox);
                    let mut rows = [[T::ZERO; 2 * BLOCK]; 2];
                    for (r, row) in rows.iter_mut().enumerate() {
                        let oy = 2 * ty + r;
                        if oy < geo.ho {
                            get_run(&dy[(n * co + o) * hwo + oy * geo.wo + ox..], row, cols);
                        }
                    }
                    let dt = grad_block(&rows);
                    for (e, vals) in dt.iter().enumerate() {
                        // SAFETY: elements (e, o, k..k+run) of the 16 × co × len buffer;
                        // each task owns its channel `o`.
                        unsafe {
                            put_run(vals, d_out.get().add((e * co + o) * len + k), run);
                        }
                    }
                }
            });
            let (v, d) = (&*v, &*d);
            let p_out = OutPtr(p.as_mut_ptr());
            (0..16).into_par_iter().for_each(|e| {
                // SAFETY: plane `e` of P (co × ci), one task per plane; chunks run in order.
                unsafe {
                    gemm_tile(
                        co,
                        ci,
                        len,
                        &d[e * co * len..],
                        len,
                        1,
                        &v[e * ci * len..],
                        ci,
                        1,
                        p_out.get().add(e * co * ci),
                        ci,
                        i > 0,
                        false,
                    )
                }
            });
        }
        let p = &*p;
        dw[..co * ci * 9]
            .par_chunks_mut(9 * ci)
            .enumerate()
            .for_each(|(o, out)| {
                for i0 in (0..ci).step_by(BLOCK) {
                    let run = BLOCK.min(ci - i0);
                    let mut pt = [[T::ZERO; BLOCK]; 16];
                    for (e, slot) in pt.iter_mut().enumerate() {
                        get_run(&p[(e * co + o) * ci + i0..], slot, run);
                    }
                    let w = weight_grad_block(&pt);
                    for (j, w9) in out[9 * i0..][..9 * run].chunks_exact_mut(9).enumerate() {
                        for (k, slot) in w9.iter_mut().enumerate() {
                            *slot = w[k][j];
                        }
                    }
                }
            });
    });
}
