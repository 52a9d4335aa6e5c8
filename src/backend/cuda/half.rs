//! Half-precision storage, f32 arithmetic — the CPU backend's mixed-precision semantics
//! (`backend::cpu::widen`) on the GPU. f16 and bf16 tensors are stored as their 16-bit
//! patterns; an op that reads or writes one runs its f32 kernels on widened copies and rounds
//! its result once (`kernels/half.ptx`: round to nearest even, as the `half` crate does).

use cudarc::driver::CudaSlice;

use super::backend::{CudaBackend, CudaBuffer, device_err, unsupported};
use super::error::CudaError;
use super::kernels::Module;
use super::launch::{self, Arg};
use crate::backend::{Backend, BackendError, TensorMut, TensorRef};
use crate::ir::op::UnaryOp;
use crate::ir::{DType, numel};

type In<'a> = TensorRef<'a, CudaBuffer>;
type Out<'a> = TensorMut<'a, CudaBuffer>;

pub(super) use crate::backend::widen::is_half;

/// Whether an op reads or writes a half-precision tensor.
pub(super) fn involves_half(ins: &[In<'_>], out: &Out<'_>) -> bool {
    is_half(out.dtype) || ins.iter().any(|t| is_half(t.dtype))
}

/// The kernels' word for a half type.
fn kind(d: DType) -> u32 {
    u32::from(d == DType::BF16)
}

/// A half buffer's 16-bit patterns and its type.
fn halves(b: &CudaBuffer) -> Option<(&CudaSlice<u16>, DType)> {
    match b {
        CudaBuffer::F16(s) => Some((s, DType::F16)),
        CudaBuffer::BF16(s) => Some((s, DType::BF16)),
        _ => None,
    }
}

/// `to[..n]` = `x[..n]` converted between f32 and a half type (exact one way, rounded to
/// nearest even the other).
pub(super) fn cast(
    be: &CudaBackend,
    x: &CudaBuffer,
    to: &mut CudaBuffer,
    n: usize,
) -> Result<(), BackendError> {
    const OP: &str = "cast";
    if x.len() < n || to.len() < n {
        return Err(device_err(CudaError::shape(
            OP,
            "a buffer is shorter than its tensor",
        )));
    }
    let n32 = u32::try_from(n).map_err(|_| {
        device_err(CudaError::shape(
            OP,
            format!("{n} elements exceed 2^32 - 1"),
        ))
    })?;
    let dev = be.device();
    let cfg = dev.grid_for(n, 65535);
    let to_dtype = to.dtype();
    // SAFETY: both buffers hold n elements (checked) of the types the entries take.
    unsafe {
        match (x, to) {
            (CudaBuffer::F32(x), CudaBuffer::F16(y) | CudaBuffer::BF16(y)) => launch::generic(
                dev,
                Module::Half,
                "half_narrow_fwd",
                cfg,
                &mut [
                    Arg::In(x),
                    Arg::OutU16(y),
                    Arg::U32(n32),
                    Arg::U32(kind(to_dtype)),
                ],
            ),
            (x, CudaBuffer::F32(y)) => match halves(x) {
                Some((x, dtype)) => launch::generic(
                    dev,
                    Module::Half,
                    "half_widen_fwd",
                    cfg,
                    &mut [
                        Arg::InU16(x),
                        Arg::Out(y),
                        Arg::U32(n32),
                        Arg::U32(kind(dtype)),
                    ],
                ),
                None => return Err(unsupported(OP, x.dtype())),
            },
            _ => return Err(unsupported(OP, to_dtype)),
        }
    }
    .map_err(device_err)
}

/// Runs `f` with every half input widened to f32 and an f32 output, then rounds the output
/// into `out` when it is half (`backend::widen`).
pub(super) fn widened(
    be: &CudaBackend,
    ins: &[In<'_>],
    out: Out<'_>,
    f: impl FnOnce(&CudaBackend, &[In<'_>], Out<'_>) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let conversions = crate::backend::widen::Conversions {
        widen: |t: &In<'_>| {
            let n = numel(t.shape);
            let mut buf = be.alloc(DType::F32, n)?;
            cast(be, t.buf, &mut buf, n)?;
            Ok(buf)
        },
        scratch: |n| be.alloc(DType::F32, n),
        narrow: |wide: &CudaBuffer, half: &mut CudaBuffer, n| cast(be, wide, half, n),
    };
    crate::backend::widen::widened(ins, out, conversions, |ins, out| f(be, ins, out))
}

/// A unary op over half tensors: a cast between f32 and a half type is one conversion; a cast
/// between equal types a copy; anything else runs in f32 on widened copies.
pub(super) fn unary(
    be: &CudaBackend,
    op: &UnaryOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let [x] = ins else {
        return Err(device_err(CudaError::shape(
            "unary",
            format!("expected 1 input, got {}", ins.len()),
        )));
    };
    if x.shape != out.shape {
        return Err(device_err(CudaError::shape(
            "unary",
            format!("input {:?} and output {:?} differ", x.shape, out.shape),
        )));
    }
    let n = numel(out.shape);
    match op {
        UnaryOp::Cast(to) if *to != out.dtype => Err(unsupported("cast", *to)),
        UnaryOp::Cast(to) if x.dtype == *to => copy(be, x.buf, out.buf, n),
        UnaryOp::Cast(to) if x.dtype == DType::F32 || *to == DType::F32 => {
            cast(be, x.buf, out.buf, n)
        }
        UnaryOp::Cast(to) => {
            let wide = UnaryOp::Cast(if is_half(*to) { DType::F32 } else { *to });
            widened(be, ins, out, |be, ins, out| be.unary(&wide, ins, out))
        }
        _ => widened(be, ins, out, |be, ins, out| be.unary(op, ins, out)),
    }
}

/// `to[..n] = x[..n]` between buffers of one half type.
fn copy(
    be: &CudaBackend,
    x: &CudaBuffer,
    to: &mut CudaBuffer,
    n: usize,
) -> Result<(), BackendError> {
    let (src, dst) = match (x, to) {
        (CudaBuffer::F16(a), CudaBuffer::F16(b)) | (CudaBuffer::BF16(a), CudaBuffer::BF16(b)) => {
            (a, b)
        }
        (x, _) => return Err(unsupported("cast", x.dtype())),
    };
    if src.len() < n || dst.len() < n {
        return Err(device_err(CudaError::shape(
            "cast",
            "a buffer is shorter than its tensor",
        )));
    }
    if n == 0 {
        return Ok(());
    }
    be.device()
        .stream()
        .memcpy_dtod(&src.slice(..n), &mut dst.slice_mut(..n))
        .map_err(super::backend::drv)
}
