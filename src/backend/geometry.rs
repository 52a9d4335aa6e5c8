//! Operand geometry of the device backends' matrix products, convolutions and norms, read from the
//! op and its shapes as the CPU backend reads them and checked before any launch (host logic,
//! unit-tested without a device).
// The device backends use these, each a part; a build without both still compiles (and tests) them.
#![cfg_attr(not(all(feature = "cuda", feature = "wgpu")), allow(dead_code))]

use super::shape_error::ShapeError;
use crate::ir::numel;
use crate::ir::op::{
    Conv2dAttrs, LossKind, LossOp, MatmulOp, NormKind, NormOp, RoiAlignAttrs, conv_out_size,
};

/// Checked geometry: `batch` products of `op(a) [m, k] @ op(b) [k, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatmulGeo {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl MatmulGeo {
    /// Reads `a`, `b` and output shapes as the CPU does (`a` stored `[k, m]` when
    /// `trans_a`, `b` stored `[n, k]` when `trans_b`) and checks they agree.
    pub fn new(
        op: &MatmulOp,
        sa: &[usize],
        sb: &[usize],
        so: &[usize],
    ) -> Result<Self, ShapeError> {
        let r = sa.len();
        if !(r == 2 || r == 3) || sb.len() != r || so.len() != r {
            return Err(ShapeError::MatmulRank {
                a: sa.to_vec(),
                b: sb.to_vec(),
                out: so.to_vec(),
            });
        }
        let batch = if r == 3 { sa[0] } else { 1 };
        if r == 3 && (sb[0] != batch || so[0] != batch) {
            return Err(ShapeError::MatmulBatch {
                a: sa.to_vec(),
                b: sb.to_vec(),
                out: so.to_vec(),
            });
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
            return Err(ShapeError::MatmulInner { k, kb });
        }
        if so[r - 2..] != [m, n] {
            return Err(ShapeError::MatmulResult {
                out: so.to_vec(),
                m,
                n,
            });
        }
        Ok(MatmulGeo { batch, m, n, k })
    }
}

/// Checked convolution geometry: input `[n, c, h, w]`, weight `[co, c / groups, kh, kw]`,
/// output `[n, co, oh, ow]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeo {
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub y: [usize; 4],
}

impl ConvGeo {
    /// The geometry of `x` convolved with `w`, checking channels and groups.
    pub fn new(a: &Conv2dAttrs, x: &[usize], w: &[usize]) -> Result<Self, ShapeError> {
        let x = nchw("input", x)?;
        let w = nchw("weight", w)?;
        let g = a.groups;
        if g == 0 || x[1] % g != 0 || w[0] % g != 0 {
            return Err(ShapeError::ConvGroups {
                groups: g,
                in_channels: x[1],
                out_channels: w[0],
            });
        }
        if w[1] * g != x[1] {
            return Err(ShapeError::ConvChannels { w, x, groups: g });
        }
        if a.stride.contains(&0) || a.dilation.contains(&0) {
            return Err(ShapeError::ConvStride {
                stride: a.stride,
                dilation: a.dilation,
            });
        }
        let size = |i: usize| {
            conv_out_size(x[2 + i], w[2 + i], a.stride[i], a.padding[i], a.dilation[i]).ok_or(
                ShapeError::ConvWindow {
                    window: [w[2], w[3]],
                    x,
                },
            )
        };
        Ok(ConvGeo {
            x,
            w,
            y: [x[0], w[0], size(0)?, size(1)?],
        })
    }

    /// The geometry whose input is `x` and whose output must be `y` (the gradients' check).
    pub fn with_output(
        a: &Conv2dAttrs,
        x: &[usize],
        w: &[usize],
        y: &[usize],
    ) -> Result<Self, ShapeError> {
        let g = Self::new(a, x, w)?;
        if y != g.y {
            return Err(ShapeError::ConvOutput {
                dy: y.to_vec(),
                x: g.x,
                w: g.w,
                y: g.y,
            });
        }
        Ok(g)
    }
}

/// How `x [N, C, *]` splits into statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NormGeo {
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
    pub fn new(xs: &[usize], kind: NormKind) -> Result<Self, ShapeError> {
        if xs.len() < 2 {
            return Err(ShapeError::NormRank { shape: xs.to_vec() });
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
                    return Err(ShapeError::NormGroups {
                        channels: c,
                        groups: g,
                    });
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

    pub fn total(&self) -> usize {
        self.n * self.c * self.hw
    }

    /// Elements per statistic.
    pub fn count(&self) -> usize {
        self.inner * self.outer
    }
    /// The geometry of a norm op's `x` (its first input), after checking the input count, each
    /// other input's shape by its role and the output's shape (the shapes the CPU accepts).
    pub fn of_op(op: &NormOp, ins: &[&[usize]], out: &[usize]) -> Result<Self, ShapeError> {
        let (kind, n_in) = match op {
            NormOp::Stats(k) => (*k, 1),
            NormOp::Apply { kind, .. } | NormOp::ApplyGradX { kind, .. } => (*kind, 4),
            NormOp::ApplyGradStats { kind, .. } => (*kind, 4),
            NormOp::ApplyGradAffine { kind, .. } => (*kind, 3),
            NormOp::StatsGrad(k) => (*k, 3),
        };
        if ins.len() != n_in {
            return Err(ShapeError::NormInputs {
                want: n_in,
                got: ins.len(),
            });
        }
        let xs = ins[0];
        let g = Self::new(xs, kind)?;
        let stats_shape = [2, g.nstat];
        // Inputs after x, by role: what shape each must have.
        let roles: &[(&'static str, &[usize])] = match op {
            NormOp::Stats(_) => &[],
            NormOp::Apply { .. } => &[("stats", &stats_shape), ("gamma", &[g.c]), ("beta", &[g.c])],
            NormOp::ApplyGradX { .. } | NormOp::ApplyGradStats { .. } => {
                &[("stats", &stats_shape), ("gamma", &[g.c]), ("dy", xs)]
            }
            NormOp::ApplyGradAffine { .. } => &[("stats", &stats_shape), ("dy", xs)],
            NormOp::StatsGrad(_) => &[("stats", &stats_shape), ("dstats", &stats_shape)],
        };
        for ((what, want), t) in roles.iter().zip(&ins[1..]) {
            if numel(t) != numel(want) || t.len() != want.len() {
                return Err(ShapeError::Operand {
                    what,
                    got: t.to_vec(),
                    want: want.to_vec(),
                });
            }
        }
        let want_out = g.output_shape(op, xs);
        if out != want_out.as_slice() {
            return Err(ShapeError::Operand {
                what: "output",
                got: out.to_vec(),
                want: want_out,
            });
        }
        Ok(g)
    }

    /// The shape `op` writes for input `xs`.
    pub fn output_shape(&self, op: &NormOp, xs: &[usize]) -> Vec<usize> {
        match op {
            NormOp::Stats(_) | NormOp::ApplyGradStats { .. } => vec![2, self.nstat],
            NormOp::ApplyGradAffine { .. } => vec![2, self.c],
            _ => xs.to_vec(),
        }
    }
}

/// The shape a loss op's forward writes (and its gradient's `dy` has), after checking a loss
/// (`[input, target]`) or its gradient (`[input, target, dy]`) with respect to an input it
/// defines one for: shapes as the op documents, the output shaped as the forward's output or as
/// the input differentiated. Every backend checks its loss ops with this.
pub(crate) fn loss_shape(
    op: &LossOp,
    ins: &[&[usize]],
    out: &[usize],
) -> Result<Vec<usize>, ShapeError> {
    let (kind, wrt) = match op {
        LossOp::Forward(k) => (k, None),
        LossOp::Grad { kind, wrt } => (kind, Some(*wrt)),
    };
    let n_in = if wrt.is_some() { 3 } else { 2 };
    if ins.len() != n_in {
        return Err(ShapeError::LossInputs {
            want: n_in,
            got: ins.len(),
        });
    }
    let (x, t) = (ins[0], ins[1]);
    let want_shape = |what: &'static str, got: &[usize], want: &[usize]| {
        if got == want {
            Ok(())
        } else {
            Err(ShapeError::LossOperand {
                what,
                got: got.to_vec(),
                want: want.to_vec(),
            })
        }
    };
    let loss_shape = match kind {
        LossKind::CrossEntropy { .. } => {
            let &[n, _] = x else {
                return Err(ShapeError::Logits { shape: x.to_vec() });
            };
            want_shape("the labels", t, &[n])?;
            vec![n]
        }
        LossKind::Iou { .. } => {
            let &[n, 4] = x else {
                return Err(ShapeError::Boxes { shape: x.to_vec() });
            };
            want_shape("the target boxes", t, x)?;
            vec![n]
        }
        _ => {
            want_shape("the target", t, x)?;
            x.to_vec()
        }
    };
    let Some(wrt) = wrt else {
        want_shape("the output", out, &loss_shape)?;
        return Ok(loss_shape);
    };
    // Targets that are labels or indicator values have no gradient.
    let differentiable_target = matches!(
        kind,
        LossKind::L1 | LossKind::SmoothL1 { .. } | LossKind::Iou { .. }
    );
    if wrt > 1 || (wrt == 1 && !differentiable_target) {
        return Err(ShapeError::NoGradient { wrt });
    }
    want_shape("the output gradient", ins[2], &loss_shape)?;
    want_shape("the output", out, ins[wrt])?;
    Ok(loss_shape)
}

/// RoIAlign's geometry: the box count of `rois [K, 5]` and the bins `[K, C, ph, pw]` that
/// `bins` (the output, or the gradient's `dy`, named `what`) must be for `c` channels.
pub(crate) fn roi_bins(
    rois: &[usize],
    bins: &[usize],
    what: &'static str,
    c: usize,
    a: &RoiAlignAttrs,
) -> Result<[usize; 4], ShapeError> {
    let &[k, 5] = rois else {
        return Err(ShapeError::Rois {
            shape: rois.to_vec(),
        });
    };
    let want = [k, c, a.output[0], a.output[1]];
    if bins != want {
        return Err(ShapeError::Operand {
            what,
            got: bins.to_vec(),
            want: want.to_vec(),
        });
    }
    Ok(want)
}

/// A 4-D shape (NCHW), or an error naming what it is.
fn nchw(what: &'static str, s: &[usize]) -> Result<[usize; 4], ShapeError> {
    <[usize; 4]>::try_from(s).map_err(|_| ShapeError::NotNchw {
        what,
        shape: s.to_vec(),
    })
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
    fn bad_groups_are_refused() {
        assert!(NormGeo::new(&[2, 6, 4, 4], NormKind::Group(4)).is_err());
        assert!(NormGeo::new(&[2, 6, 4, 4], NormKind::Group(0)).is_err());
        assert!(NormGeo::new(&[6], NormKind::Batch).is_err());
    }

    #[test]
    fn conv_geometry_checks_groups_and_windows() {
        let a = Conv2dAttrs {
            stride: [2, 2],
            padding: [1, 1],
            groups: 2,
            ..Conv2dAttrs::default()
        };
        let g = ConvGeo::new(&a, &[1, 4, 9, 8], &[6, 2, 3, 3]).unwrap();
        assert_eq!(g.y, [1, 6, 5, 4]);
        assert!(
            ConvGeo::new(&a, &[1, 4, 9, 8], &[6, 4, 3, 3]).is_err(),
            "channels"
        );
        assert!(
            ConvGeo::new(&a, &[1, 4, 1, 1], &[6, 2, 5, 5]).is_err(),
            "window"
        );
        assert!(ConvGeo::with_output(&a, &[1, 4, 9, 8], &[6, 2, 3, 3], &[1, 6, 5, 5]).is_err());
    }

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
