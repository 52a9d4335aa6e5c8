//! The six `NormOp`s (statistics, apply and its three gradients, the statistics' gradient) for
//! batch and group norm on the device, with the CPU backend's semantics
//! (`backend::cpu::norm`): statistics `[2, S]` are the mean and the biased variance (two
//! passes), `invstd = 1 / sqrt(var + eps)`. The kernels are `kernels/wgsl/norm.wgsl`.
//!
//! As the CUDA backend's (`backend::cuda::nn::norm`), every statistic's elements are `outer`
//! runs of `inner` contiguous elements ([`NormGeo`]), so one set of kernels serves both kinds.
//! The reductions (statistics, their gradient w.r.t. `Apply`, the affine gradient) run one
//! workgroup per statistic or channel; the rest are elementwise.

use super::context::{Grid, Kernel, Module};
use super::{In, Out, WgpuBackend, count, fbits, input, output, shape_err, w};
use crate::backend::BackendError;
use crate::ir::op::*;
use crate::ir::{DType, numel};

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

/// How `x [N, C, *]` splits into statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NormGeo {
    n: usize,
    c: usize,
    /// Elements per (image, channel) plane.
    hw: usize,
    /// Number of statistics `S`.
    nstat: usize,
    /// Contiguous elements per run of a statistic.
    inner: usize,
    /// Runs per statistic.
    outer: usize,
    /// Distance between the starts of consecutive runs.
    ostride: usize,
}

impl NormGeo {
    fn new(xs: &[usize], kind: NormKind) -> Result<Self, String> {
        if xs.len() < 2 {
            return Err(format!("input {xs:?} must be at least [N, C]"));
        }
        let (n, c, hw) = (xs[0], xs[1], xs[2..].iter().product::<usize>());
        Ok(match kind {
            NormKind::Batch => NormGeo {
                n,
                c,
                hw,
                nstat: c,
                inner: hw,
                outer: n,
                ostride: c * hw,
            },
            NormKind::Group(g) => {
                if g == 0 || c % g != 0 {
                    return Err(format!("{c} channels do not split into {g} groups"));
                }
                NormGeo {
                    n,
                    c,
                    hw,
                    nstat: n * g,
                    inner: (c / g) * hw,
                    outer: 1,
                    ostride: 0,
                }
            }
        })
    }
}

pub(super) fn norm(
    be: &WgpuBackend,
    op: &NormOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let (name, kind, eps, k) = match op {
        NormOp::Stats(k) => ("norm_stats", *k, 0.0, STATS),
        NormOp::Apply { kind, eps } => ("norm_apply", *kind, *eps, APPLY),
        NormOp::ApplyGradX { kind, eps } => ("norm_apply_grad_x", *kind, *eps, APPLY_GRAD_X),
        NormOp::ApplyGradStats { kind, eps } => {
            ("norm_apply_grad_stats", *kind, *eps, APPLY_GRAD_STATS)
        }
        NormOp::ApplyGradAffine { kind, eps } => {
            ("norm_apply_grad_affine", *kind, *eps, APPLY_GRAD_AFFINE)
        }
        NormOp::StatsGrad(k) => ("norm_stats_grad", *k, 0.0, STATS_GRAD),
    };
    if ins.len() != k.inputs {
        return Err(shape_err(
            name,
            format!("expects {} inputs, got {}", k.inputs, ins.len()),
        ));
    }
    let xs = ins[0].shape;
    let total = count(name, xs)?;
    let g = NormGeo::new(xs, kind).map_err(|m| shape_err(name, m))?;
    let stats_shape = [2, g.nstat];
    // Inputs after x, by role: the shape each must have.
    let roles: &[(&str, &[usize])] = match op {
        NormOp::Stats(_) => &[],
        NormOp::Apply { .. } => &[("stats", &stats_shape), ("gamma", &[g.c]), ("beta", &[g.c])],
        NormOp::ApplyGradX { .. } | NormOp::ApplyGradStats { .. } => {
            &[("stats", &stats_shape), ("gamma", &[g.c]), ("dy", xs)]
        }
        NormOp::ApplyGradAffine { .. } => &[("stats", &stats_shape), ("dy", xs)],
        NormOp::StatsGrad(_) => &[("stats", &stats_shape), ("dstats", &stats_shape)],
    };
    for ((what, want), t) in roles.iter().zip(&ins[1..]) {
        if t.shape.len() != want.len() || numel(t.shape) != numel(want) {
            return Err(shape_err(
                name,
                format!("{what} is {:?}, expected {want:?}", t.shape),
            ));
        }
    }
    let want_out: Vec<usize> = match op {
        NormOp::Stats(_) | NormOp::ApplyGradStats { .. } => stats_shape.to_vec(),
        NormOp::ApplyGradAffine { .. } => vec![2, g.c],
        _ => xs.to_vec(),
    };
    if out.shape != want_out.as_slice() {
        return Err(shape_err(
            name,
            format!("output is {:?}, expected {want_out:?}", out.shape),
        ));
    }
    let bufs: Vec<&wgpu::Buffer> = ins
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::norm::NormGeometry;

    /// The kernels' element order for statistic `s` (`stat_elem` in norm.wgsl).
    fn elements(g: &NormGeo, s: usize) -> Vec<usize> {
        (0..g.inner * g.outer)
            .map(|j| s * g.inner + (j / g.inner) * g.ostride + j % g.inner)
            .collect()
    }

    #[test]
    fn runs_cover_the_cpu_statistics_exactly() {
        for (xs, kind) in [
            (vec![3, 5, 7, 2], NormKind::Batch),
            (vec![2, 64, 5, 3], NormKind::Group(32)),
            (vec![4, 3], NormKind::Batch),
            (vec![1, 4, 9], NormKind::Group(1)),
        ] {
            let g = NormGeo::new(&xs, kind).unwrap();
            let cpu = NormGeometry::new(&xs, kind);
            assert_eq!(g.nstat, cpu.stats_len());
            for s in 0..g.nstat {
                let want: Vec<usize> = cpu
                    .planes(s)
                    .into_iter()
                    .flat_map(|p| p * g.hw..(p + 1) * g.hw)
                    .collect();
                let got = elements(&g, s);
                assert_eq!(got, want, "{xs:?} {kind:?} statistic {s}");
                for i in got {
                    // `stat_of` and `chan_of` in norm.wgsl.
                    assert_eq!((i / g.inner) % g.nstat, s);
                    assert_eq!((i / g.hw) % g.c, (i / cpu.hw) % cpu.c);
                }
            }
        }
    }

    #[test]
    fn bad_groups_are_refused() {
        assert!(NormGeo::new(&[2, 6, 4, 4], NormKind::Group(4)).is_err());
        assert!(NormGeo::new(&[2, 6, 4, 4], NormKind::Group(0)).is_err());
        assert!(NormGeo::new(&[6], NormKind::Batch).is_err());
    }
}
