//! Unary, binary (numpy broadcasting), reduction and layout ops on the device.
//! Owner: the tensor-ops helper. Every function returns `Unsupported` until implemented.

use super::{CudaBackend, CudaBuffer, unsupported};
use crate::backend::{BackendError, TensorMut, TensorRef};
use crate::graph::op::*;

type In<'a> = TensorRef<'a, CudaBuffer>;
type Out<'a> = TensorMut<'a, CudaBuffer>;

pub(super) fn fill(_be: &CudaBackend, out: Out<'_>, _value: f64) -> Result<(), BackendError> {
    Err(unsupported("fill", out.dtype))
}

pub(super) fn unary(
    _be: &CudaBackend,
    _op: &UnaryOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("unary", out.dtype))
}

pub(super) fn binary(
    _be: &CudaBackend,
    _op: BinaryOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("binary", out.dtype))
}

pub(super) fn reduce(
    _be: &CudaBackend,
    _op: &ReduceOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("sum", out.dtype))
}

pub(super) fn layout(
    _be: &CudaBackend,
    _op: &LayoutOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("layout", out.dtype))
}
