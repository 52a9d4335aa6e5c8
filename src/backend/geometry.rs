//! Operand geometry of the device backends' matrix products and convolutions, read from the
//! op and its shapes as the CPU backend reads them and checked before any launch (host logic,
//! unit-tested without a device).
// Only the device backends use these; a build without them still compiles (and tests) them.
#![cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]

use crate::ir::op::{Conv2dAttrs, MatmulOp, conv_out_size};

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
    pub fn new(a: &Conv2dAttrs, x: &[usize], w: &[usize]) -> Result<Self, String> {
        let x = nchw("input", x)?;
        let w = nchw("weight", w)?;
        let g = a.groups;
        if g == 0 || x[1] % g != 0 || w[0] % g != 0 {
            return Err(format!(
                "groups = {g} must divide the input's {} and the weight's {} channels",
                x[1], w[0]
            ));
        }
        if w[1] * g != x[1] {
            return Err(format!(
                "the weight {w:?} takes {} channels per group, the input {x:?} has {} in {g} group(s)",
                w[1], x[1]
            ));
        }
        if a.stride.contains(&0) || a.dilation.contains(&0) {
            return Err(format!(
                "stride {:?} and dilation {:?} must be positive",
                a.stride, a.dilation
            ));
        }
        let size = |i: usize| {
            conv_out_size(x[2 + i], w[2 + i], a.stride[i], a.padding[i], a.dilation[i]).ok_or_else(
                || {
                    format!(
                        "a {:?} window does not fit the padded input {x:?}",
                        [w[2], w[3]]
                    )
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
    ) -> Result<Self, String> {
        let g = Self::new(a, x, w)?;
        if y != g.y {
            return Err(format!(
                "dy is {y:?}, the convolution of {x:?} by {w:?} gives {:?}",
                g.y
            ));
        }
        Ok(g)
    }
}

/// A 4-D shape (NCHW), or an error naming what it is.
fn nchw(what: &str, s: &[usize]) -> Result<[usize; 4], String> {
    <[usize; 4]>::try_from(s).map_err(|_| format!("{what} must be 4-D (NCHW), got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
