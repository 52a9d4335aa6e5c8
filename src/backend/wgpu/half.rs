//! Half-precision storage, f32 arithmetic — the CPU backend's mixed-precision semantics
//! (`backend::cpu::widen`) on the device. f16 and bf16 tensors are stored two to a u32 word
//! (`kernels/wgsl/half.wgsl`); an op that reads or writes one runs its f32 kernels on widened
//! copies and rounds its result once. The conversions are integer operations on the bits, the
//! `half` crate's, so every adapter gives the CPU's bits — with or without `SHADER_F16`.

use super::context::{Grid, Kernel, Module};
use super::{In, Out, WgpuBackend, WgpuBuffer, count, shape_err, unsupported, w};
use crate::backend::BackendError;
use crate::ir::DType;

const fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: Module::Half,
        entry,
        inputs: 1,
    }
}

const NARROW: Kernel = kernel("f32_to_half");
const WIDEN: Kernel = kernel("half_to_f32");

pub(super) use crate::backend::widen::is_half;

/// Whether an op reads or writes a half-precision tensor.
pub(super) fn involves_half(ins: &[In<'_>], out: &Out<'_>) -> bool {
    is_half(out.dtype) || ins.iter().any(|t| is_half(t.dtype))
}

/// The kernels' word for a half type.
fn kind(d: DType) -> u32 {
    u32::from(d == DType::BF16)
}

/// Elements per window of a conversion: whole words of halves and aligned offsets on both
/// sides (a window of f32 is twice the bytes of its halves).
fn window(be: &WgpuBackend) -> usize {
    let unit = ((be.gpu().binding_alignment() / 2) as usize).max(2);
    let most = (be.gpu().max_binding_bytes() / 4) as usize;
    (most / unit * unit).max(unit)
}

/// `to` = `x` converted between f32 and a half type (exact one way, rounded to nearest even the
/// other), a window at a time.
pub(super) fn cast(
    be: &WgpuBackend,
    x: &WgpuBuffer,
    to: &WgpuBuffer,
    n: usize,
) -> Result<(), BackendError> {
    let (k, half) = match (x.dtype, to.dtype) {
        (DType::F32, h) if is_half(h) => (NARROW, h),
        (h, DType::F32) if is_half(h) => (WIDEN, h),
        (_, d) => return Err(unsupported("cast", d)),
    };
    if x.len < n || to.len < n {
        return Err(shape_err("cast", "a buffer is shorter than its tensor"));
    }
    let step = window(be);
    for start in (0..n).step_by(step) {
        let m = step.min(n - start);
        let grid = if k.entry == NARROW.entry {
            Grid::Items(m.div_ceil(2))
        } else {
            Grid::Items(m)
        };
        be.gpu().dispatch(
            k,
            &[w(m), kind(half)],
            &[x.window(start, m)],
            to.window(start, m),
            grid,
        )?;
    }
    Ok(())
}

/// A fresh f32 buffer of `n` elements.
fn f32_scratch(be: &WgpuBackend, n: usize) -> Result<WgpuBuffer, BackendError> {
    Ok(WgpuBuffer {
        buf: be.gpu().buffer(4 * n.max(1) as u64, "half")?,
        offset: 0,
        dtype: DType::F32,
        len: n,
    })
}

/// Runs `f` with every half input widened to f32 and an f32 output, then rounds the output
/// into `out` when it is half (`backend::widen`).
pub(super) fn widened(
    be: &WgpuBackend,
    ins: &[In<'_>],
    out: Out<'_>,
    f: impl FnOnce(&WgpuBackend, &[In<'_>], Out<'_>) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let conversions = crate::backend::widen::Conversions {
        widen: |t: &In<'_>| {
            let n = count("cast", t.shape)?;
            let buf = f32_scratch(be, n)?;
            cast(be, t.buf, &buf, n)?;
            Ok(buf)
        },
        scratch: |n| f32_scratch(be, n),
        narrow: |wide: &WgpuBuffer, half: &mut WgpuBuffer, n| cast(be, wide, half, n),
    };
    crate::backend::widen::widened(ins, out, conversions, |ins, out| f(be, ins, out))
}

/// The op a widened cast runs: to f32 in place of a half type.
pub(super) fn widened_cast(to: DType) -> DType {
    if is_half(to) { DType::F32 } else { to }
}
