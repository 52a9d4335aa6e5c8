//! The six `NormOp`s for batch and group norm through `kernels/norm.ptx`, with the CPU's
//! semantics (`crate::backend::cpu::norm`): statistics `[2, S]` are the mean and the biased
//! variance (two passes), `invstd = 1 / sqrt(var + eps)`.
//!
//! Every statistic's elements are `outer` runs of `inner` contiguous elements, run `k` at
//! `s · inner + k · ostride` ([`NormGeo`]); element `i` belongs to statistic
//! `(i / inner) % S` and channel `(i / hw) % C`. So one set of kernels serves both kinds.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::{In, Out, arity, bad, drv, input, output, u32_of};
use crate::backend::BackendError;
use crate::backend::cuda::backend::{CudaBackend, device_err};
use crate::backend::cuda::device::{BLOCK, CudaDevice};
use crate::backend::cuda::kernels::Module;
use crate::backend::cuda::launch::{self, Arg};
use crate::ir::numel;
use crate::ir::op::{NormKind, NormOp};

/// How `x [N, C, *]` splits into statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NormGeo {
    pub n: usize,
    pub c: usize,
    /// Elements per (image, channel) plane.
    pub hw: usize,
    /// Number of statistics `S`.
    pub nstat: usize,
    /// Contiguous elements per run of a statistic.
    pub inner: usize,
    /// Runs per statistic.
    pub outer: usize,
    /// Distance between the starts of consecutive runs.
    pub ostride: usize,
}

impl NormGeo {
    pub fn new(xs: &[usize], kind: NormKind) -> Result<Self, String> {
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

    fn total(&self) -> usize {
        self.n * self.c * self.hw
    }

    /// Elements per statistic.
    fn count(&self) -> usize {
        self.inner * self.outer
    }
}

pub(super) fn norm(
    be: &CudaBackend,
    op: &NormOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let (name, kind, n_in) = match op {
        NormOp::Stats(k) => ("norm_stats", *k, 1),
        NormOp::Apply { kind, .. } => ("norm_apply", *kind, 4),
        NormOp::ApplyGradX { kind, .. } => ("norm_apply_grad_x", *kind, 4),
        NormOp::ApplyGradStats { kind, .. } => ("norm_apply_grad_stats", *kind, 4),
        NormOp::ApplyGradAffine { kind, .. } => ("norm_apply_grad_affine", *kind, 3),
        NormOp::StatsGrad(k) => ("norm_stats_grad", *k, 3),
    };
    arity(name, ins, &[n_in])?;
    let xs = ins[0].shape;
    let g = NormGeo::new(xs, kind).map_err(|m| bad(name, m))?;
    let total = u32_of(name, g.total())?;
    let stats_shape = [2, g.nstat];
    // Inputs after x, by role: what shape each must have.
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
        if numel(t.shape) != numel(want) || t.shape.len() != want.len() {
            return Err(bad(
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
        return Err(bad(
            name,
            format!("output is {:?}, expected {want_out:?}", out.shape),
        ));
    }
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
    use crate::backend::cpu::norm::NormGeometry;

    /// The runs of statistic `s`, expanded to element indices in kernel order.
    fn elements(g: &NormGeo, s: usize) -> Vec<usize> {
        (0..g.count())
            .map(|i| s * g.inner + (i / g.inner) * g.ostride + i % g.inner)
            .collect()
    }

    #[test]
    fn runs_cover_the_cpu_statistics_exactly() {
        for (xs, kind) in [
            (vec![3, 5, 7, 2], NormKind::Batch),
            (vec![2, 64, 5, 3], NormKind::Group(32)),
            (vec![2, 6, 1, 1], NormKind::Group(3)),
            (vec![4, 3], NormKind::Batch),
            (vec![1, 4, 9], NormKind::Group(1)),
        ] {
            let g = NormGeo::new(&xs, kind).unwrap();
            let cpu = NormGeometry::new(&xs, kind);
            assert_eq!(g.nstat, cpu.stats_len());
            assert_eq!(g.count(), cpu.count());
            let mut seen = vec![0; g.total()];
            for s in 0..g.nstat {
                let want: Vec<usize> = cpu
                    .planes(s)
                    .into_iter()
                    .flat_map(|p| p * g.hw..(p + 1) * g.hw)
                    .collect();
                let got = elements(&g, s);
                assert_eq!(got, want, "{xs:?} {kind:?} statistic {s}");
                for i in got {
                    seen[i] += 1;
                    // The elementwise kernels' statistic and channel of element i.
                    assert_eq!((i / g.inner) % g.nstat, s);
                    assert_eq!((i / g.hw) % g.c, (i / cpu.hw) % cpu.c);
                    assert_eq!(cpu.stat_of(i / cpu.hw), s);
                }
            }
            assert!(seen.iter().all(|&k| k == 1), "{xs:?}: every element once");
        }
    }

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

    #[test]
    fn bad_groups_are_refused() {
        assert!(NormGeo::new(&[2, 6, 4, 4], NormKind::Group(4)).is_err());
        assert!(NormGeo::new(&[2, 6, 4, 4], NormKind::Group(0)).is_err());
        assert!(NormGeo::new(&[6], NormKind::Batch).is_err());
    }
}
