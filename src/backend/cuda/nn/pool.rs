//! `PoolOp` through `kernels/pool.ptx` and `kernels/roi_align.ptx`: max pooling (the forward writes an argmax plane index
//! into an i32 scratch buffer; the gradient, whose IR inputs are `(x, dy)`, recomputes it
//! with the forward and then gathers `dy`), and nearest resizing with its gradient.
//!
//! The pool kernels take one kernel size, stride and padding for both axes: non-square
//! attributes are refused. The resize kernels map `dst → floor(dst · scale)` with an f32
//! `scale`; the CPU reference (and the IR's definition) is the exact `floor(dst · in / out)`,
//! so the host picks the smallest f32 at or above `in / out` and checks, for every output
//! row and column, that the kernel's f32 arithmetic gives exactly the integer map.
//!
//! RoIAlign's gradient is a scatter with atomic adds (as torchvision's): its output is
//! zeroed first, and its last bits vary run to run.

use crate::backend::geometry::roi_bins;
use cudarc::driver::CudaSlice;

use super::{In, Out, arity, bad, drv, input, nchw, output, u32_of};
use crate::backend::BackendError;
use crate::backend::cuda::backend::{CudaBackend, device_err, geometry_err};
use crate::backend::cuda::device::CudaDevice;
use crate::backend::cuda::error::CudaError;
use crate::backend::cuda::kernels::Module;
use crate::backend::cuda::launch::{self, Arg};
use crate::ir::op::{PoolOp, RoiAlignAttrs};

pub(super) fn pool(
    be: &CudaBackend,
    op: &PoolOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let dev = be.device();
    match op {
        PoolOp::MaxPool2d {
            kernel,
            stride,
            padding,
        } => {
            const OP: &str = "max_pool2d";
            arity(OP, ins, &[1])?;
            let (k, s, p) = square(OP, *kernel, *stride, *padding)?;
            let xs = nchw(OP, "input", ins[0].shape)?;
            let ys = nchw(OP, "output", out.shape)?;
            expect_pooled(OP, "output", xs, ys, k, s, p)?;
            let x = input(&ins[0], OP)?;
            let y = output(&mut out, OP)?;
            let mut idx = scratch::<i32>(dev, numel4(ys))?;
            max_pool2d_fwd(dev, x, xs, k, s, p, y, &mut idx).map_err(device_err)?;
        }
        PoolOp::MaxPool2dGrad {
            kernel,
            stride,
            padding,
        } => {
            const OP: &str = "max_pool2d_grad";
            arity(OP, ins, &[2])?;
            let (k, s, p) = square(OP, *kernel, *stride, *padding)?;
            let xs = nchw(OP, "input", ins[0].shape)?;
            let ys = nchw(OP, "dy", ins[1].shape)?;
            if out.shape != xs {
                return Err(bad(
                    OP,
                    format!("output {:?} is not the input's shape {xs:?}", out.shape),
                ));
            }
            expect_pooled(OP, "dy", xs, ys, k, s, p)?;
            let (x, dy) = (input(&ins[0], OP)?, input(&ins[1], OP)?);
            let dx = output(&mut out, OP)?;
            // Recompute the forward's argmax (the IR keeps x, not the indices).
            let mut y = scratch::<f32>(dev, numel4(ys))?;
            let mut idx = scratch::<i32>(dev, numel4(ys))?;
            max_pool2d_fwd(dev, x, xs, k, s, p, &mut y, &mut idx).map_err(device_err)?;
            max_pool2d_bwd(dev, dy, &idx, xs, k, s, p, dx).map_err(device_err)?;
        }
        PoolOp::UpsampleNearest => {
            const OP: &str = "upsample_nearest";
            arity(OP, ins, &[1])?;
            let small = nchw(OP, "input", ins[0].shape)?;
            let big = nchw(OP, "output", out.shape)?;
            let x = input(&ins[0], OP)?;
            let y = output(&mut out, OP)?;
            resize(dev, OP, "upsample_nearest2d_fwd", x, y, small, big)?;
        }
        PoolOp::UpsampleNearestGrad => {
            const OP: &str = "upsample_nearest_grad";
            arity(OP, ins, &[1])?;
            let big = nchw(OP, "dy", ins[0].shape)?;
            let small = nchw(OP, "output", out.shape)?;
            let dy = input(&ins[0], OP)?;
            let dx = output(&mut out, OP)?;
            resize(dev, OP, "upsample_nearest2d_bwd", dy, dx, small, big)?;
        }
        PoolOp::RoiAlign(a) => {
            const OP: &str = "roi_align";
            arity(OP, ins, &[2])?;
            let xs = nchw(OP, "input", ins[0].shape)?;
            let [k, ..] = roi_bins(ins[1].shape, out.shape, "output", xs[1], a)
                .map_err(|e| geometry_err(OP, e))?;
            let (x, rois) = (input(&ins[0], OP)?, input(&ins[1], OP)?);
            let y = output(&mut out, OP)?;
            roi_align(dev, "roi_align_fwd", x, rois, y, xs, k, a)?;
        }
        PoolOp::RoiAlignGrad(a) => {
            const OP: &str = "roi_align_grad";
            arity(OP, ins, &[2])?;
            let xs = nchw(OP, "output", out.shape)?;
            let [k, ..] = roi_bins(ins[0].shape, ins[1].shape, "dy", xs[1], a)
                .map_err(|e| geometry_err(OP, e))?;
            let (rois, dy) = (input(&ins[0], OP)?, input(&ins[1], OP)?);
            let dx = output(&mut out, OP)?;
            dev.stream().memset_zeros(dx).map_err(drv)?;
            roi_align(dev, "roi_align_bwd", dy, rois, dx, xs, k, a)?;
        }
    }
    Ok(())
}

/// Launches a RoIAlign kernel: `src` is the feature map (forward) or `dy` (backward), `dst`
/// the bins or the zeroed input gradient.
#[allow(clippy::too_many_arguments)]
fn roi_align(
    dev: &CudaDevice,
    stem: &'static str,
    src: &CudaSlice<f32>,
    rois: &CudaSlice<f32>,
    dst: &mut CudaSlice<f32>,
    xs: [usize; 4],
    k: usize,
    a: &RoiAlignAttrs,
) -> Result<(), BackendError> {
    const OP: &str = "roi_align";
    let bins = k * xs[1] * a.output[0] * a.output[1];
    if bins == 0 {
        return Ok(());
    }
    for v in [bins, numel4(xs), a.sampling_ratio] {
        u32_of(OP, v)?;
    }
    let u = |v: usize| Arg::U32(v as u32);
    // SAFETY: every buffer holds its tensor (checked by `input` / `output`), the shapes agree
    // (checked above), every size fits u32; one block of 256 per the ABI, grid-stride.
    unsafe {
        launch::generic(
            dev,
            Module::RoiAlign,
            stem,
            dev.grid_for(bins, 65535),
            &mut [
                Arg::In(src),
                Arg::In(rois),
                Arg::Out(dst),
                u(xs[0]),
                u(xs[1]),
                u(xs[2]),
                u(xs[3]),
                u(k),
                u(a.output[0]),
                u(a.output[1]),
                u(a.sampling_ratio),
                u(usize::from(a.aligned)),
                Arg::F32(a.spatial_scale as f32),
            ],
        )
    }
    .map_err(device_err)
}

/// torch's pooled size (floor mode, dilation 1).
fn pooled_len(
    op: &'static str,
    len: usize,
    k: usize,
    s: usize,
    p: usize,
) -> Result<usize, CudaError> {
    if k == 0 || s == 0 || 2 * p > k {
        return Err(CudaError::shape(
            op,
            "kernel and stride must be > 0 and pad <= kernel / 2",
        ));
    }
    (len + 2 * p)
        .checked_sub(k)
        .map(|v| v / s + 1)
        .ok_or_else(|| {
            CudaError::shape(
                op,
                format!("input {len} + padding is smaller than kernel {k}"),
            )
        })
}

/// The element count of `shape` as the kernels' `u32`, and a buffer check against it.
fn count(op: &'static str, what: &str, shape: [usize; 4], len: usize) -> Result<u32, CudaError> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            CudaError::shape(op, format!("{what} {shape:?} exceeds 2^32 - 1 elements"))
        })?;
    if len < n as usize {
        return Err(CudaError::shape(
            op,
            format!("{what} holds {len} elements, {n} needed"),
        ));
    }
    Ok(n)
}

/// `maxpool2d_fwd_f32`: max pooling (square kernel `k`, stride `s`, padding `p`; torch
/// semantics) of `x[n, c, h, w]` into `y` and the argmax plane index `idx`.
#[allow(clippy::too_many_arguments)]
fn max_pool2d_fwd(
    dev: &CudaDevice,
    x: &CudaSlice<f32>,
    shape: [usize; 4],
    k: usize,
    s: usize,
    p: usize,
    y: &mut CudaSlice<f32>,
    idx: &mut CudaSlice<i32>,
) -> Result<(), CudaError> {
    const OP: &str = "maxpool2d_fwd";
    let [n, c, h, w] = shape;
    let (oh, ow) = (pooled_len(OP, h, k, s, p)?, pooled_len(OP, w, k, s, p)?);
    count(OP, "x", shape, x.len())?;
    let nout = count(OP, "y", [n, c, oh, ow], y.len())?;
    count(OP, "idx", [n, c, oh, ow], idx.len())?;
    let u = |v: usize| Arg::U32(v as u32);
    // SAFETY: the buffers hold the shapes' element counts (checked), which fit u32.
    unsafe {
        launch::generic(
            dev,
            Module::Pool,
            OP,
            dev.grid_for(nout as usize, 65535),
            &mut [
                Arg::In(x),
                Arg::Out(y),
                Arg::OutI32(idx),
                u(n * c),
                u(h),
                u(w),
                u(oh),
                u(ow),
                u(k),
                u(s),
                u(p),
            ],
        )
    }
}

/// `maxpool2d_bwd_f32`: `dx[n, c, h, w]` from `dy` and the forward's `idx`.
#[allow(clippy::too_many_arguments)]
fn max_pool2d_bwd(
    dev: &CudaDevice,
    dy: &CudaSlice<f32>,
    idx: &CudaSlice<i32>,
    shape: [usize; 4],
    k: usize,
    s: usize,
    p: usize,
    dx: &mut CudaSlice<f32>,
) -> Result<(), CudaError> {
    const OP: &str = "maxpool2d_bwd";
    let [n, c, h, w] = shape;
    let (oh, ow) = (pooled_len(OP, h, k, s, p)?, pooled_len(OP, w, k, s, p)?);
    count(OP, "dy", [n, c, oh, ow], dy.len())?;
    count(OP, "idx", [n, c, oh, ow], idx.len())?;
    let nin = count(OP, "dx", shape, dx.len())?;
    let u = |v: usize| Arg::U32(v as u32);
    // SAFETY: as max_pool2d_fwd.
    unsafe {
        launch::generic(
            dev,
            Module::Pool,
            OP,
            dev.grid_for(nin as usize, 65535),
            &mut [
                Arg::In(dy),
                Arg::InI32(idx),
                Arg::Out(dx),
                u(n * c),
                u(h),
                u(w),
                u(oh),
                u(ow),
                u(k),
                u(s),
                u(p),
            ],
        )
    }
}

fn numel4(s: [usize; 4]) -> usize {
    s.iter().product()
}

/// An uninitialised scratch buffer (fully written by the kernel that fills it).
fn scratch<T: cudarc::driver::DeviceRepr>(
    dev: &CudaDevice,
    len: usize,
) -> Result<CudaSlice<T>, BackendError> {
    // SAFETY: the pooling forward writes every element before the backward reads it.
    unsafe { dev.stream().alloc::<T>(len.max(1)) }.map_err(drv)
}

/// One kernel size, stride and padding for both axes (what `pool.ptx` takes).
fn square(
    op: &'static str,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
) -> Result<(usize, usize, usize), BackendError> {
    if k[0] != k[1] || s[0] != s[1] || p[0] != p[1] {
        return Err(bad(
            op,
            format!(
                "kernel {k:?}, stride {s:?}, padding {p:?}: the cuda pool kernels take equal values for both axes"
            ),
        ));
    }
    Ok((k[0], s[0], p[0]))
}

/// `pooled` must be the max pool of `xs` (same N, C; torch's floor-mode size).
fn expect_pooled(
    op: &'static str,
    what: &str,
    xs: [usize; 4],
    pooled: [usize; 4],
    k: usize,
    s: usize,
    p: usize,
) -> Result<(), BackendError> {
    let oh = pooled_len(op, xs[2], k, s, p).map_err(device_err)?;
    let ow = pooled_len(op, xs[3], k, s, p).map_err(device_err)?;
    let want = [xs[0], xs[1], oh, ow];
    if pooled != want {
        return Err(bad(
            op,
            format!("{what} is {pooled:?}, pooling {xs:?} gives {want:?}"),
        ));
    }
    Ok(())
}

/// The smallest f32 at or above `input / output` (exact rational comparison).
pub(super) fn nearest_scale(input: usize, output: usize) -> f32 {
    let s = (input as f64 / output as f64) as f32;
    // s = mant · 2^exp exactly; s < input / output  ⇔  mant · output · 2^exp < input.
    let below = |s: f32| {
        let bits = s.to_bits();
        let (e, f) = ((bits >> 23) & 0xff, bits & 0x7f_ffff);
        let (mant, exp) = if e == 0 {
            (f as u128, -149i32)
        } else {
            ((f | 0x80_0000) as u128, e as i32 - 150)
        };
        let lhs = mant * output as u128;
        if exp >= 0 {
            (lhs << exp) < input as u128
        } else {
            lhs < (input as u128) << (-exp)
        }
    };
    if below(s) {
        f32::from_bits(s.to_bits() + 1)
    } else {
        s
    }
}

/// The source index the kernel computes for output `dst` (`cvt.rn.f32.u32`, `mul.f32`,
/// `cvt.rmi.u32.f32`, `min` with `input - 1`).
pub(super) fn kernel_src(dst: usize, scale: f32, input: usize) -> usize {
    (((dst as f32) * scale).floor() as usize).min(input - 1)
}

/// `scale` for the resize kernels along one axis, checked to reproduce the IR's exact map
/// `floor(dst · input / output)` for every `dst`.
pub(super) fn exact_scale(
    op: &'static str,
    input: usize,
    output: usize,
) -> Result<f32, BackendError> {
    if input == 0 || output == 0 {
        return Err(bad(op, "empty spatial size"));
    }
    let scale = nearest_scale(input, output);
    if let Some(dst) =
        (0..output).find(|&d| kernel_src(d, scale, input) != (d * input / output).min(input - 1))
    {
        return Err(bad(
            op,
            format!(
                "resizing {input} to {output} cannot be computed exactly with an f32 scale (row {dst})"
            ),
        ));
    }
    Ok(scale)
}

/// Nearest resize between `small` (the forward's input) and `big` (its output): `stem` is the
/// forward (`src = x`, `dst = y`) or the gradient (`src = dy`, `dst = dx`).
fn resize(
    dev: &CudaDevice,
    op: &'static str,
    stem: &'static str,
    src: &CudaSlice<f32>,
    dst: &mut CudaSlice<f32>,
    small: [usize; 4],
    big: [usize; 4],
) -> Result<(), BackendError> {
    if small[..2] != big[..2] {
        return Err(bad(
            op,
            format!("{small:?} and {big:?} differ in batch or channels"),
        ));
    }
    let dst_len = if stem.ends_with("_bwd") {
        numel4(small)
    } else {
        numel4(big)
    };
    if dst_len == 0 {
        return Ok(());
    }
    let [n, c, h, w] = small;
    let (oh, ow) = (big[2], big[3]);
    let (sh, sw) = (exact_scale(op, h, oh)?, exact_scale(op, w, ow)?);
    u32_of(op, numel4(small).max(numel4(big)))?;
    let u = |v: usize| Arg::U32(v as u32);
    // SAFETY: src and dst hold their tensors (checked by `input` / `output`), every size fits
    // u32 (checked above); the kernel writes every dst element; one block of 256 per the ABI.
    unsafe {
        launch::generic(
            dev,
            Module::Pool,
            stem,
            dev.grid_for(dst_len, 65535),
            &mut [
                Arg::In(src),
                Arg::Out(dst),
                u(n * c),
                u(h),
                u(w),
                u(oh),
                u(ow),
                Arg::F32(sh),
                Arg::F32(sw),
            ],
        )
        .map_err(device_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_f32_scale_reproduces_the_exact_nearest_map() {
        // FPN's odd sizes, integer ratios, downsampling, and ratios whose nearest f32 lies
        // below in/out (where a plain `in as f32 / out as f32` would be off by one).
        let mut pairs = vec![(84, 167), (13, 25), (25, 50), (7, 10), (14, 20), (100, 150)];
        pairs.extend([
            (3, 9),
            (50, 25),
            (167, 84),
            (1, 5),
            (5, 1),
            (200, 336),
            (42, 84),
        ]);
        for i in 1..=64 {
            for o in 1..=200 {
                pairs.push((i, o));
            }
        }
        for (i, o) in pairs {
            let s = exact_scale("t", i, o).unwrap_or_else(|e| panic!("{i}->{o}: {e}"));
            assert!(
                s as f64 * o as f64 >= i as f64 - 1e-9,
                "{i}->{o}: {s} below"
            );
            for d in 0..o {
                assert_eq!(kernel_src(d, s, i), d * i / o, "{i}->{o} at {d}");
            }
        }
    }

    #[test]
    fn the_naive_f32_ratio_is_off_by_one_where_the_exact_scale_is_not() {
        // 2 → 82: 2/82 rounds down in f32, so floor(41 · s) = 0 where the map gives 1.
        let naive = 2f32 / 82f32;
        assert_eq!(kernel_src(41, naive, 2), 0);
        assert_eq!(kernel_src(41, nearest_scale(2, 82), 2), 1);
    }

    #[test]
    fn pool_attributes_must_be_square() {
        assert_eq!(square("t", [3, 3], [2, 2], [1, 1]).unwrap(), (3, 2, 1));
        let e = square("max_pool2d", [3, 2], [2, 2], [1, 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("both axes"), "{e}");
        assert!(square("t", [3, 3], [2, 1], [1, 1]).is_err());
        assert!(square("t", [3, 3], [2, 2], [1, 0]).is_err());
    }

    #[test]
    fn pooled_shapes_are_checked() {
        assert!(
            expect_pooled("t", "output", [2, 64, 400, 667], [2, 64, 200, 334], 3, 2, 1).is_ok()
        );
        let e = expect_pooled("t", "dy", [2, 64, 400, 667], [2, 64, 200, 333], 3, 2, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gives [2, 64, 200, 334]"), "{e}");
    }
}
