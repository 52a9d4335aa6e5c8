//! `MatmulOp` (geometry: [`MatmulGeo`]) as the CPU's `matmul_t`: one strided-batched cuBLAS
//! GEMM over the batch items.

use super::{In, Out, arity, drv, input, output};
use crate::backend::BackendError;
use crate::backend::cuda::backend::{CudaBackend, device_err, geometry_err};
use crate::backend::geometry::MatmulGeo;
use crate::ir::op::MatmulOp;

pub(super) fn matmul(
    be: &CudaBackend,
    op: &MatmulOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    const OP: &str = "matmul";
    arity(OP, ins, &[2])?;
    let g = MatmulGeo::new(op, ins[0].shape, ins[1].shape, out.shape)
        .map_err(|e| geometry_err(OP, e))?;
    let (a, b) = (input(&ins[0], OP)?, input(&ins[1], OP)?);
    let y = output(&mut out, OP)?;
    let ly = g.m * g.n;
    if g.batch == 0 || ly == 0 {
        return Ok(());
    }
    if g.k == 0 {
        // An empty inner dimension sums nothing (cuBLAS refuses k = 0).
        let mut yv = y.slice_mut(..g.batch * ly);
        return be.device().stream().memset_zeros(&mut yv).map_err(drv);
    }
    // One strided-batched GEMM over the batch (the items are contiguous in each operand).
    be.blas()
        .sgemm_batched(
            (g.m, g.n, g.k),
            g.batch,
            a,
            op.trans_a,
            b,
            op.trans_b,
            y,
            1.0,
            0.0,
        )
        .map_err(device_err)?;
    Ok(())
}
