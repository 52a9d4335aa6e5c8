//! `MatmulOp`: the product of the last two axes of two rank-2 or two rank-3 operands with the
//! same batch (the builder allows no broadcasting), as the CPU's `matmul_t`: one cuBLAS GEMM
//! per batch item on views of the operands.

use super::{In, Out, arity, bad, drv, input, output};
use crate::backend::BackendError;
use crate::backend::cuda::backend::{CudaBackend, device_err};
use crate::ir::op::MatmulOp;

/// Checked geometry: `batch` products of `op(a) [m, k] @ op(b) [k, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MatmulGeo {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl MatmulGeo {
    /// Reads `a`, `b` and output shapes as the CPU does (`a` stored `[k, m]` when
    /// `trans_a`, `b` stored `[n, k]` when `trans_b`) and checks they agree.
    pub fn new(op: &MatmulOp, sa: &[usize], sb: &[usize], so: &[usize]) -> Result<Self, String> {
        let r = sa.len();
        if !(r == 2 || r == 3) || sb.len() != r || so.len() != r {
            return Err(format!(
                "expected two rank-2 or two rank-3 operands and a result of the same rank, got {sa:?} @ {sb:?} -> {so:?}"
            ));
        }
        let batch = if r == 3 { sa[0] } else { 1 };
        if r == 3 && (sb[0] != batch || so[0] != batch) {
            return Err(format!("batch sizes differ: {sa:?} @ {sb:?} -> {so:?}"));
        }
        let (m, k) = if op.trans_a {
            (sa[r - 1], sa[r - 2])
        } else {
            (sa[r - 2], sa[r - 1])
        };
        let (kb, n) = if op.trans_b {
            (sb[r - 1], sb[r - 2])
        } else {
            (sb[r - 2], sb[r - 1])
        };
        if kb != k {
            return Err(format!("inner dimensions {k} and {kb} differ"));
        }
        if so[r - 2..] != [m, n] {
            return Err(format!("result {so:?} is not [.., {m}, {n}]"));
        }
        Ok(MatmulGeo { batch, m, n, k })
    }
}

pub(super) fn matmul(
    be: &CudaBackend,
    op: &MatmulOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    const OP: &str = "matmul";
    arity(OP, ins, &[2])?;
    let g = MatmulGeo::new(op, ins[0].shape, ins[1].shape, out.shape).map_err(|m| bad(OP, m))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn op(trans_a: bool, trans_b: bool) -> MatmulOp {
        MatmulOp { trans_a, trans_b }
    }

    #[test]
    fn reads_transposed_operands_as_the_cpu_does() {
        let g = MatmulGeo::new(&op(false, false), &[3, 4], &[4, 5], &[3, 5]).unwrap();
        assert_eq!(
            g,
            MatmulGeo {
                batch: 1,
                m: 3,
                n: 5,
                k: 4
            }
        );
        // a stored [k, m], b stored [n, k]
        let g = MatmulGeo::new(&op(true, true), &[2, 4, 3], &[2, 5, 4], &[2, 3, 5]).unwrap();
        assert_eq!(
            g,
            MatmulGeo {
                batch: 2,
                m: 3,
                n: 5,
                k: 4
            }
        );
        let g = MatmulGeo::new(&op(true, false), &[7, 3], &[7, 2], &[3, 2]).unwrap();
        assert_eq!(
            g,
            MatmulGeo {
                batch: 1,
                m: 3,
                n: 2,
                k: 7
            }
        );
    }

    #[test]
    fn refuses_mismatched_shapes() {
        let o = op(false, false);
        assert!(
            MatmulGeo::new(&o, &[3, 4], &[5, 5], &[3, 5]).is_err(),
            "inner"
        );
        assert!(
            MatmulGeo::new(&o, &[2, 3, 4], &[4, 5], &[2, 3, 5]).is_err(),
            "rank"
        );
        assert!(
            MatmulGeo::new(&o, &[2, 3, 4], &[3, 4, 5], &[2, 3, 5]).is_err(),
            "batch"
        );
        assert!(
            MatmulGeo::new(&o, &[3, 4], &[4, 5], &[5, 3]).is_err(),
            "result"
        );
        assert!(MatmulGeo::new(&o, &[4], &[4], &[1]).is_err(), "rank 1");
    }
}
