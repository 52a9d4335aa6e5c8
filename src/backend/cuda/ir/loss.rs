//! The unreduced loss family on the device: forward (elementwise / per-row / per-box loss)
//! and the gradient w.r.t. one input given `dy`.
//! Owner: the loss helper. Returns `Unsupported` until implemented.

use super::{CudaBackend, CudaBuffer, unsupported};
use crate::backend::{BackendError, TensorMut, TensorRef};
use crate::graph::op::*;

type In<'a> = TensorRef<'a, CudaBuffer>;
type Out<'a> = TensorMut<'a, CudaBuffer>;

pub(super) fn loss(
    _be: &CudaBackend,
    _op: &LossOp,
    _ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    Err(unsupported("loss", out.dtype))
}
