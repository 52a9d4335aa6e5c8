//! Matmul (cuBLAS), convolution (im2col + cuBLAS), pooling and normalisation on the device.
//! Owner: the nn-ops helper. Every function returns `Unsupported` until implemented.

use super::{CudaBackend, CudaBuffer, unsupported};
use crate::backend::{BackendError, TensorMut, TensorRef};
use crate::graph::op::*;

type In<'a> = TensorRef<'a, CudaBuffer>;
type Out<'a> = TensorMut<'a, CudaBuffer>;

pub(super) fn matmul(
    _be: &CudaBackend,
    _op: &MatmulOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("matmul", out.dtype))
}

pub(super) fn conv(
    _be: &CudaBackend,
    _op: &ConvOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("conv2d", out.dtype))
}

pub(super) fn pool(
    _be: &CudaBackend,
    _op: &PoolOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("pool", out.dtype))
}

pub(super) fn norm(
    _be: &CudaBackend,
    _op: &NormOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("norm", out.dtype))
}
