//! `MatmulOp` (geometry: [`MatmulGeo`]) as the CPU's `matmul_t`: one cuBLAS GEMM per batch
//! item on views of the operands.

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
    let (la, lb, ly) = (g.m * g.k, g.k * g.n, g.m * g.n);
    if g.batch == 0 || ly == 0 {
        return Ok(());
    }
    for i in 0..g.batch {
        let mut yv = y.slice_mut(i * ly..(i + 1) * ly);
        if g.k == 0 {
            // An empty inner dimension sums nothing (cuBLAS refuses k = 0).
            be.device().stream().memset_zeros(&mut yv).map_err(drv)?;
            continue;
        }
        let av = a.slice(i * la..(i + 1) * la);
        let bv = b.slice(i * lb..(i + 1) * lb);
        be.blas()
            .sgemm(
                (g.m, g.n, g.k),
                &av,
                op.trans_a,
                &bv,
                op.trans_b,
                &mut yv,
                1.0,
                0.0,
            )
            .map_err(device_err)?;
    }
    Ok(())
}
