//! The six `NormOp`s (statistics, apply and its three gradients, the statistics' gradient) for
//! batch and group norm on the device, with the CPU backend's semantics
//! (`backend::cpu::norm`): statistics `[2, S]` are the mean and the biased variance (two
//! passes), `invstd = 1 / sqrt(var + eps)`. The kernels are `kernels/wgsl/norm.wgsl`.
//!
//! As the CUDA backend's (`backend::cuda::nn::norm`), every statistic's elements are `outer`
//! runs of `inner` contiguous elements ([`NormGeo`]), so one set of kernels serves both kinds.
//! The reductions (statistics, their gradient w.r.t. `Apply`, the affine gradient) run one
//! workgroup per statistic or channel; the rest are elementwise.

use super::context::{Bound, Grid, Kernel, Module};
use super::{In, Out, WgpuBackend, count, fbits, geometry_err, input, output, w};
use crate::backend::BackendError;
use crate::backend::geometry::NormGeo;
use crate::ir::DType;
use crate::ir::op::*;

const fn kernel(entry: &'static str, inputs: usize) -> Kernel {
    Kernel {
        module: Module::Norm,
        entry,
        inputs,
    }
}

const STATS: Kernel = kernel("norm_stats", 1);
const APPLY: Kernel = kernel("norm_apply", 4);
// x travels with the other inputs (unread) so that the op's input list maps onto bindings.
const APPLY_GRAD_X: Kernel = kernel("norm_apply_grad_x", 4);
const APPLY_GRAD_STATS: Kernel = kernel("norm_apply_grad_stats", 4);
const APPLY_GRAD_AFFINE: Kernel = kernel("norm_apply_grad_affine", 3);
const STATS_GRAD: Kernel = kernel("norm_stats_grad", 3);
const STATS_MERGE: Kernel = kernel("norm_stats_merge", 2);

/// Batch statistics `[2, nstat]` of two disjoint slabs of the images, `a` holding the share `wa`
/// of the elements and `b` the rest, merged into those of both (`out`).
pub(super) fn merge_stats(
    be: &WgpuBackend,
    a: Bound<'_>,
    b: Bound<'_>,
    out: Bound<'_>,
    nstat: usize,
    wa: f64,
) -> Result<(), BackendError> {
    let meta = [w(nstat), fbits(wa), fbits(1.0 - wa)];
    be.gpu()
        .dispatch(STATS_MERGE, &meta, &[a, b], out, Grid::Items(nstat))
}

pub(super) fn norm(
    be: &WgpuBackend,
    op: &NormOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let (name, eps, k) = match op {
        NormOp::Stats(_) => ("norm_stats", 0.0, STATS),
        NormOp::Apply { eps, .. } => ("norm_apply", *eps, APPLY),
        NormOp::ApplyGradX { eps, .. } => ("norm_apply_grad_x", *eps, APPLY_GRAD_X),
        NormOp::ApplyGradStats { eps, .. } => ("norm_apply_grad_stats", *eps, APPLY_GRAD_STATS),
        NormOp::ApplyGradAffine { eps, .. } => ("norm_apply_grad_affine", *eps, APPLY_GRAD_AFFINE),
        NormOp::StatsGrad(_) => ("norm_stats_grad", 0.0, STATS_GRAD),
    };
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    let g = NormGeo::of_op(op, &shapes, out.shape).map_err(|e| geometry_err(name, e))?;
    let total = count(name, ins[0].shape)?;
    let bufs: Vec<_> = ins
        .iter()
        .map(|t| input(t, name, DType::F32))
        .collect::<Result<_, _>>()?;
    let ob = output(&out, name, DType::F32)?;
    let grid = match op {
        NormOp::Stats(_) | NormOp::ApplyGradStats { .. } => Grid::Groups(g.nstat),
        NormOp::ApplyGradAffine { .. } => Grid::Groups(g.c),
        _ => Grid::Items(total),
    };
    let meta = [
        w(total),
        w(g.hw),
        w(g.c),
        w(g.inner),
        w(g.outer),
        w(g.ostride),
        w(g.nstat),
        fbits(eps),
        w(g.n),
    ];
    be.gpu().dispatch(k, &meta, &bufs, ob, grid)
}
