//! The six `NormOp`s for batch and group norm through `kernels/norm.ptx`, with the CPU's
//! semantics (`crate::backend::cpu::norm`): statistics `[2, S]` are the mean and the biased
//! variance (two passes), `invstd = 1 / sqrt(var + eps)`.
//!
//! Every statistic's elements are `outer` runs of `inner` contiguous elements, run `k` at
//! `s · inner + k · ostride` ([`NormGeo`]); element `i` belongs to statistic
//! `(i / inner) % S` and channel `(i / hw) % C`. So one set of kernels serves both kinds.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::{In, Out, drv, input, output, u32_of};
use crate::backend::BackendError;
use crate::backend::cuda::backend::{CudaBackend, device_err, geometry_err};
use crate::backend::cuda::device::{BLOCK, CudaDevice};
use crate::backend::cuda::kernels::Module;
use crate::backend::cuda::launch::{self, Arg};
use crate::backend::geometry::NormGeo;
use crate::ir::numel;
use crate::ir::op::NormOp;

pub(super) fn norm(
    be: &CudaBackend,
    op: &NormOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let name = crate::ir::op::Op::Norm(op.clone()).name();
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    let g = NormGeo::of_op(op, &shapes, out.shape).map_err(|e| geometry_err(name, e))?;
    let total = u32_of(name, g.total())?;
    let want_out = g.output_shape(op, ins[0].shape);
    let bufs: Vec<&CudaSlice<f32>> = ins
        .iter()
        .map(|t| input(t, name))
        .collect::<Result<_, _>>()?;
    let y = output(&mut out, name)?;
    if numel(&want_out) == 0 {
        return Ok(());
    }
    let dev = be.device();
    if g.total() == 0 && matches!(op, NormOp::ApplyGradAffine { .. }) {
        // Sums over no element (the kernel's per-plane statistic lookup needs hw > 0).
        let mut yv = y.slice_mut(..2 * g.c);
        return dev.stream().memset_zeros(&mut yv).map_err(drv);
    }
    let u = |v: usize| Arg::U32(v as u32);
    let (hw, c, inner, outer, ostride, nstat) = (g.hw, g.c, g.inner, g.outer, g.ostride, g.nstat);
    let eps = |e: f64| Arg::F32(e as f32);
    // SAFETY (every launch below): each buffer holds its tensor (`input` / `output`), the
    // shapes were checked against the geometry above, and every index the kernels form is
    // below `total` < 2^32; launch geometry as kernels/README.md (256 threads; one block per
    // statistic or channel for the reductions, grid-stride for the elementwise entries).
    unsafe {
        match op {
            NormOp::Stats(_) => launch::generic(
                dev,
                Module::Norm,
                "norm_stats",
                per_block(nstat),
                &mut [
                    Arg::In(bufs[0]),
                    Arg::Out(y),
                    u(inner),
                    u(outer),
                    u(ostride),
                ],
            ),
            NormOp::Apply { eps: e, .. } => launch::generic(
                dev,
                Module::Norm,
                "norm_apply_fwd",
                elementwise(dev, total),
                &mut [
                    Arg::In(bufs[0]),
                    Arg::In(bufs[1]),
                    Arg::In(bufs[2]),
                    Arg::In(bufs[3]),
                    Arg::Out(y),
                    Arg::U32(total),
                    u(hw),
                    u(c),
                    u(inner),
                    u(nstat),
                    eps(*e),
                ],
            ),
            NormOp::ApplyGradX { eps: e, .. } => launch::generic(
                dev,
                Module::Norm,
                "norm_apply_grad_x",
                elementwise(dev, total),
                &mut [
                    Arg::In(bufs[1]),
                    Arg::In(bufs[2]),
                    Arg::In(bufs[3]),
                    Arg::Out(y),
                    Arg::U32(total),
                    u(hw),
                    u(c),
                    u(inner),
                    u(nstat),
                    eps(*e),
                ],
            ),
            NormOp::ApplyGradStats { eps: e, .. } => launch::generic(
                dev,
                Module::Norm,
                "norm_apply_grad_stats",
                per_block(nstat),
                &mut [
                    Arg::In(bufs[0]),
                    Arg::In(bufs[1]),
                    Arg::In(bufs[2]),
                    Arg::In(bufs[3]),
                    Arg::Out(y),
                    u(inner),
                    u(outer),
                    u(ostride),
                    u(hw),
                    u(c),
                    eps(*e),
                ],
            ),
            NormOp::ApplyGradAffine { eps: e, .. } => launch::generic(
                dev,
                Module::Norm,
                "norm_apply_grad_affine",
                per_block(c),
                &mut [
                    Arg::In(bufs[0]),
                    Arg::In(bufs[1]),
                    Arg::In(bufs[2]),
                    Arg::Out(y),
                    u(g.n),
                    u(hw),
                    u(inner),
                    u(nstat),
                    eps(*e),
                ],
            ),
            NormOp::StatsGrad(_) => launch::generic(
                dev,
                Module::Norm,
                "norm_stats_grad",
                elementwise(dev, total),
                &mut [
                    Arg::In(bufs[0]),
                    Arg::In(bufs[1]),
                    Arg::In(bufs[2]),
                    Arg::Out(y),
                    Arg::U32(total),
                    u(inner),
                    u(nstat),
                    Arg::F32((1.0 / g.count() as f64) as f32),
                ],
            ),
        }
    }
    .map_err(device_err)
}

/// One 256-thread block per statistic (or channel).
fn per_block(blocks: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn elementwise(dev: &CudaDevice, total: u32) -> LaunchConfig {
    dev.grid_for(total as usize, 65535)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launched_entries_are_in_the_abi_table_with_the_argument_counts_passed() {
        // (stem, pointer args, scalar args) as `norm` pushes them.
        for (stem, ptrs, scalars) in [
            ("norm_stats", 2, 3),
            ("norm_apply_fwd", 5, 6),
            ("norm_apply_grad_x", 4, 6),
            ("norm_apply_grad_stats", 5, 6),
            ("norm_apply_grad_affine", 4, 5),
            ("norm_stats_grad", 4, 4),
        ] {
            let e = crate::backend::cuda::kernels::entry(stem);
            assert_eq!(e.module, Module::Norm, "{stem}");
            let p = e
                .params
                .iter()
                .filter(|p| **p == crate::backend::cuda::kernels::Param::Ptr)
                .count();
            assert_eq!((p, e.params.len() - p), (ptrs, scalars), "{stem}");
        }
    }
}
