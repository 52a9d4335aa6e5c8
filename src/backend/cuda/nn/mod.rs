//! Matmul (cuBLAS), convolution (cuDNN or im2col + cuBLAS), pooling and normalisation on the device,
//! with the CPU backend's semantics and input orders (see `crate::backend::cpu` and the op
//! docs in [`crate::ir::op`]). One file per family:
//! - `matmul.rs`: `MatmulOp`, rank 2 or batched rank 3, one cuBLAS GEMM per batch item;
//! - `conv.rs`: `ConvOp` through cuDNN, or [`crate::backend::cuda::im2col`] (groups = 1 only);
//! - `pool.rs`: max pooling (square windows) and nearest resizing through `kernels/pool.ptx`;
//! - `norm.rs`: the six `NormOp`s for batch and group norm through `kernels/norm.ptx`.
//!
//! Shapes are validated on the host before any launch: a graph the device cannot run gives
//! a [`BackendError`] naming the op and the reason, never a panic or an out-of-bounds kernel.

mod conv;
mod matmul;
mod norm;
mod pool;

use cudarc::driver::CudaSlice;

use super::backend::{CudaBackend, CudaBuffer, NAME, drv, f32_in, f32_out};
use crate::backend::{BackendError, TensorMut, TensorRef};
use crate::ir::numel;
use crate::ir::op::*;

type In<'a> = TensorRef<'a, CudaBuffer>;
type Out<'a> = TensorMut<'a, CudaBuffer>;

pub(super) fn matmul(
    be: &CudaBackend,
    op: &MatmulOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    matmul::matmul(be, op, ins, out)
}

pub(super) fn conv(
    be: &CudaBackend,
    op: &ConvOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    conv::conv(be, op, ins, out)
}

/// Whether a convolution over half tensors runs on them directly (cuDNN) rather than widened.
pub(super) fn conv_runs_half_directly(be: &CudaBackend, ins: &[In<'_>], out: &Out<'_>) -> bool {
    conv::runs_half_directly(be, ins, out)
}

pub(super) fn pool(
    be: &CudaBackend,
    op: &PoolOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    pool::pool(be, op, ins, out)
}

pub(super) fn norm(
    be: &CudaBackend,
    op: &NormOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    norm::norm(be, op, ins, out)
}

/// A graph the device cannot run as given (shape mismatch, unsupported attribute).
fn bad(op: &'static str, message: impl std::fmt::Display) -> BackendError {
    BackendError::Device {
        backend: NAME,
        message: format!("{op}: {message}"),
    }
}

/// Checks the number of inputs against the op's documented list.
fn arity(op: &'static str, ins: &[In<'_>], allowed: &[usize]) -> Result<(), BackendError> {
    if allowed.contains(&ins.len()) {
        Ok(())
    } else {
        Err(bad(
            op,
            format!("expected {allowed:?} inputs, got {}", ins.len()),
        ))
    }
}

/// An f32 input whose buffer holds its whole tensor (so slicing it cannot panic).
fn input<'a>(t: &In<'a>, op: &'static str) -> Result<&'a CudaSlice<f32>, BackendError> {
    let s = f32_in(t, op)?;
    let n = numel(t.shape);
    if s.len() < n {
        return Err(bad(
            op,
            format!("input buffer holds {} elements, its tensor {n}", s.len()),
        ));
    }
    Ok(s)
}

/// The f32 output buffer, checked to hold the whole tensor.
fn output<'a>(
    t: &'a mut Out<'_>,
    op: &'static str,
) -> Result<&'a mut CudaSlice<f32>, BackendError> {
    let n = numel(t.shape);
    let s = f32_out(t, op)?;
    if s.len() < n {
        return Err(bad(
            op,
            format!("output buffer holds {} elements, its tensor {n}", s.len()),
        ));
    }
    Ok(s)
}

/// A 4-D shape (NCHW), or an error naming what it is.
fn nchw(op: &'static str, what: &str, s: &[usize]) -> Result<[usize; 4], BackendError> {
    <[usize; 4]>::try_from(s).map_err(|_| bad(op, format!("{what} must be 4-D (NCHW), got {s:?}")))
}

/// A size the kernels take as `u32`.
fn u32_of(op: &'static str, v: usize) -> Result<u32, BackendError> {
    u32::try_from(v).map_err(|_| bad(op, format!("{v} elements exceed the kernels' 2^32 limit")))
}
