//! Host-side shape logic of the device backends' tensor ops (CUDA's PTX and wgpu's WGSL run
//! the same plans): what each kernel launch reads and writes, decided without touching a
//! device, so it is unit-tested in CI.
//!
//! Every strided op (permute, slice, slice_pad, concat, broadcast_to, broadcasting binaries,
//! the reduction's gather) is one [`Strided`] index space: a linear index `i` over `dims`
//! mapped to two element offsets through two stride sets. [`Strided::collapse`] drops size-1
//! dims and merges adjacent dims that are contiguous in both operands, so the kernel's
//! per-element u32 div/rem chain is as short as possible (rank 1 for plain copies and
//! same-shape binaries); [`KernelIndex`] is the kernel ABI (rank ≤ 6, innermost first) and
//! [`KernelIndex::offsets`] the exact decode the kernels perform.

// Only the device backends use these; a build without them still compiles (and tests) the logic.
#![cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]

use super::shape_error::{BroadcastError, ShapeError};
use crate::ir::op::LayoutOp;

/// Largest rank the kernels decode (after collapsing).
pub(crate) const MAX_RANK: usize = 6;
/// Largest element count of any tensor a kernel touches: u32 offsets, and a grid-stride index
/// (at most 65535 × 256 < 2^24 past the end) that never wraps.
pub(crate) const MAX_ELEMS: usize = (1 << 32) - (1 << 24) - 1;

/// Row-major strides of a contiguous tensor.
pub(crate) fn contiguous(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// A linear index over `dims` (outermost first, row-major order) and the two offsets it
/// maps to: `a = Σ idx_k · a_k`, `b = Σ idx_k · b_k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Strided {
    pub dims: Vec<usize>,
    pub a: Vec<usize>,
    pub b: Vec<usize>,
}

impl Strided {
    /// Number of indices.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The same mapping with size-1 dims dropped and adjacent dims merged where both stride
    /// sets are contiguous across them (`s_outer == s_inner · d_inner`).
    pub fn collapse(&self) -> Strided {
        let mut out = Strided {
            dims: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
        };
        for ((&d, &sa), &sb) in self.dims.iter().zip(&self.a).zip(&self.b) {
            if d == 1 {
                continue;
            }
            // Merge the previous (outer) kept dim into this one when contiguous in both.
            if let Some(last) = out.dims.len().checked_sub(1)
                && out.a[last] == sa * d
                && out.b[last] == sb * d
            {
                out.dims[last] *= d;
                out.a[last] = sa;
                out.b[last] = sb;
                continue;
            }
            out.dims.push(d);
            out.a.push(sa);
            out.b.push(sb);
        }
        out
    }

    /// The kernel parameters of the collapsed mapping; errors when it needs more than
    /// [`MAX_RANK`] dims or an offset does not fit u32.
    pub fn kernel(&self, op: &'static str) -> Result<KernelIndex, ShapeError> {
        let c = self.collapse();
        if c.dims.len() > MAX_RANK {
            return Err(ShapeError::Rank {
                op,
                dims: self.dims.clone(),
                rank: c.dims.len(),
                max_rank: MAX_RANK,
            });
        }
        let n = c.numel();
        for s in [&c.a, &c.b] {
            let max: usize = if n == 0 {
                0
            } else {
                c.dims.iter().zip(s).map(|(d, s)| (d - 1) * s).sum()
            };
            if n > MAX_ELEMS || max > MAX_ELEMS {
                return Err(ShapeError::TooLarge {
                    op,
                    n,
                    max,
                    limit: MAX_ELEMS,
                });
            }
        }
        let mut k = KernelIndex {
            n: n as u32,
            rank: c.dims.len().max(1) as u32,
            dims: [1; MAX_RANK],
            a: [0; MAX_RANK],
            b: [0; MAX_RANK],
        };
        // Innermost first.
        for (j, i) in (0..c.dims.len()).rev().enumerate() {
            k.dims[j] = c.dims[i] as u32;
            k.a[j] = c.a[i] as u32;
            k.b[j] = c.b[i] as u32;
        }
        Ok(k)
    }
}

/// The index-space parameters of `strided_copy_fwd_f32` / `broadcast_binary_fwd_f32`:
/// `rank` in 1..=6, `dims`/`a`/`b` innermost first (unused slots: dim 1, stride 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KernelIndex {
    pub n: u32,
    pub rank: u32,
    pub dims: [u32; MAX_RANK],
    pub a: [u32; MAX_RANK],
    pub b: [u32; MAX_RANK],
}

impl KernelIndex {
    /// The offsets of index `i`, decoded exactly as the PTX does: div/rem from the innermost
    /// dim outwards; the outermost used dim (`rank - 1`) takes the remaining quotient whole.
    /// (The unit tests' model of the PTX: the device never runs this.)
    #[cfg(test)]
    pub fn offsets(&self, i: u32) -> (u32, u32) {
        let (mut rem, mut oa, mut ob) = (i, 0u32, 0u32);
        for (k, ((&d, &sa), &sb)) in self.dims.iter().zip(&self.a).zip(&self.b).enumerate() {
            if k + 1 == self.rank as usize || k + 1 == MAX_RANK {
                oa = oa.wrapping_add(rem.wrapping_mul(sa));
                ob = ob.wrapping_add(rem.wrapping_mul(sb));
                break;
            }
            let q = rem / d;
            let r = rem - q * d;
            oa = oa.wrapping_add(r.wrapping_mul(sa));
            ob = ob.wrapping_add(r.wrapping_mul(sb));
            rem = q;
        }
        (oa, ob)
    }
}

/// The strides of `shape` read as if broadcast to `out` (right-aligned, 0 on broadcast axes),
/// or why it does not broadcast.
pub(crate) fn broadcast_strides(
    shape: &[usize],
    out: &[usize],
) -> Result<Vec<usize>, BroadcastError> {
    if shape.len() > out.len() {
        return Err(BroadcastError::MoreAxes {
            shape: shape.to_vec(),
            out: out.to_vec(),
        });
    }
    let st = contiguous(shape);
    let lead = out.len() - shape.len();
    let mut s = vec![0; out.len()];
    for (i, (&d, &o)) in shape.iter().zip(&out[lead..]).enumerate() {
        if d == o {
            s[lead + i] = st[i];
        } else if d != 1 {
            return Err(BroadcastError::Mismatch {
                shape: shape.to_vec(),
                out: out.to_vec(),
            });
        }
    }
    Ok(s)
}

/// The binary op's index space: over the output (contiguous, so the output offset is the
/// linear index itself), `a` and `b` the inputs' broadcast strides.
pub(crate) fn plan_binary(sa: &[usize], sb: &[usize], so: &[usize]) -> Result<Strided, ShapeError> {
    Ok(Strided {
        dims: so.to_vec(),
        a: broadcast_strides(sa, so)?,
        b: broadcast_strides(sb, so)?,
    })
}

/// One strided copy: `dst[dst_base + b(i)] = ins[input][src_base + a(i)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CopyPlan {
    pub input: usize,
    pub src_base: usize,
    pub dst_base: usize,
    pub map: Strided,
}

/// What a layout op does on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LayoutPlan {
    /// A plain device-to-device copy of `n` elements of input 0.
    Memcpy { n: usize },
    /// Optionally zero the output, then run the copies in order.
    Copies { zero: bool, copies: Vec<CopyPlan> },
}

fn need_inputs(op: &'static str, ins: &[&[usize]], n: usize) -> Result<(), ShapeError> {
    if ins.len() < n {
        return Err(ShapeError::TooFewInputs {
            op,
            want: n,
            got: ins.len(),
        });
    }
    Ok(())
}

fn check_axis(op: &'static str, axis: usize, shape: &[usize]) -> Result<(), ShapeError> {
    if axis >= shape.len() {
        return Err(ShapeError::Axis {
            op,
            axis,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// `shape` equals `other` on every axis but `axis` (same rank).
fn same_but(
    op: &'static str,
    shape: &[usize],
    other: &[usize],
    axis: usize,
) -> Result<(), ShapeError> {
    let ok = shape.len() == other.len()
        && shape
            .iter()
            .zip(other)
            .enumerate()
            .all(|(i, (a, b))| i == axis || a == b);
    if !ok {
        return Err(ShapeError::NotSameBut {
            op,
            shape: shape.to_vec(),
            other: other.to_vec(),
            axis,
        });
    }
    Ok(())
}

/// The launches of a layout op (shapes validated; the output shape is the node's).
pub(crate) fn plan_layout(
    op: &LayoutOp,
    ins: &[&[usize]],
    out: &[usize],
) -> Result<LayoutPlan, ShapeError> {
    let name = op_name(op);
    need_inputs(name, ins, 1)?;
    let sx = ins[0];
    let n_out: usize = out.iter().product();
    let one = |src_base: usize, dst_base: usize, map: Strided| {
        Ok(LayoutPlan::Copies {
            zero: false,
            copies: vec![CopyPlan {
                input: 0,
                src_base,
                dst_base,
                map,
            }],
        })
    };
    match op {
        LayoutOp::Reshape => {
            let n_in: usize = sx.iter().product();
            if n_in != n_out {
                return Err(ShapeError::Reshape {
                    from: sx.to_vec(),
                    n_from: n_in,
                    to: out.to_vec(),
                    n_to: n_out,
                });
            }
            Ok(LayoutPlan::Memcpy { n: n_out })
        }
        LayoutOp::Permute { perm } => {
            let mut seen = vec![false; sx.len()];
            let valid = perm.len() == sx.len()
                && perm
                    .iter()
                    .all(|&p| p < sx.len() && !std::mem::replace(&mut seen[p], true));
            if !valid {
                return Err(ShapeError::NotPermutation {
                    perm: perm.clone(),
                    shape: sx.to_vec(),
                });
            }
            let so: Vec<usize> = perm.iter().map(|&p| sx[p]).collect();
            if so != out {
                return Err(ShapeError::Permuted {
                    shape: sx.to_vec(),
                    perm: perm.clone(),
                    permuted: so,
                    out: out.to_vec(),
                });
            }
            let st = contiguous(sx);
            one(
                0,
                0,
                Strided {
                    dims: so.clone(),
                    a: perm.iter().map(|&p| st[p]).collect(),
                    b: contiguous(&so),
                },
            )
        }
        LayoutOp::Slice { axis, start, end } => {
            check_axis(name, *axis, sx)?;
            if start > end || *end > sx[*axis] {
                return Err(ShapeError::SliceRange {
                    start: *start,
                    end: *end,
                    axis: *axis,
                    shape: sx.to_vec(),
                });
            }
            let mut so = sx.to_vec();
            so[*axis] = end - start;
            if so != out {
                return Err(ShapeError::SliceResult {
                    result: so,
                    out: out.to_vec(),
                });
            }
            let st = contiguous(sx);
            one(
                start * st[*axis],
                0,
                Strided {
                    dims: so.clone(),
                    a: st,
                    b: contiguous(&so),
                },
            )
        }
        LayoutOp::SlicePad { axis, start } => {
            check_axis(name, *axis, out)?;
            same_but(name, sx, out, *axis)?;
            if start + sx[*axis] > out[*axis] {
                return Err(ShapeError::PadOverflow {
                    shape: sx.to_vec(),
                    start: *start,
                    axis: *axis,
                    out: out.to_vec(),
                });
            }
            let st = contiguous(out);
            Ok(LayoutPlan::Copies {
                zero: true,
                copies: vec![CopyPlan {
                    input: 0,
                    src_base: 0,
                    dst_base: start * st[*axis],
                    map: Strided {
                        dims: sx.to_vec(),
                        a: contiguous(sx),
                        b: st,
                    },
                }],
            })
        }
        LayoutOp::Concat { axis } => {
            check_axis(name, *axis, out)?;
            let st = contiguous(out);
            let mut off = 0;
            let mut copies = Vec::with_capacity(ins.len());
            for (i, s) in ins.iter().enumerate() {
                same_but(name, s, out, *axis)?;
                copies.push(CopyPlan {
                    input: i,
                    src_base: 0,
                    dst_base: off * st[*axis],
                    map: Strided {
                        dims: s.to_vec(),
                        a: contiguous(s),
                        b: st.clone(),
                    },
                });
                off += s[*axis];
            }
            if off != out[*axis] {
                return Err(ShapeError::ConcatSum {
                    sum: off,
                    axis: *axis,
                    out: out[*axis],
                });
            }
            Ok(LayoutPlan::Copies {
                zero: false,
                copies,
            })
        }
        LayoutOp::BroadcastTo => one(
            0,
            0,
            Strided {
                dims: out.to_vec(),
                a: broadcast_strides(sx, out).map_err(ShapeError::BroadcastTo)?,
                b: contiguous(out),
            },
        ),
    }
}

/// The dump name of a layout op (for errors).
pub(crate) fn op_name(op: &LayoutOp) -> &'static str {
    crate::ir::op::Op::Layout(op.clone()).name()
}

/// A sum over axes: gather the input with the reduced axes innermost (skipped when they
/// already are, in memory order), then sum rows of `len` elements into `rows` outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReducePlan {
    /// Copy into a contiguous `[rows, len]` scratch (`a`: input strides, `b`: scratch).
    pub gather: Option<Strided>,
    pub rows: usize,
    pub len: usize,
}

/// Validates `axes` (sorted, unique, in range) and the output size, and plans the sum.
pub(crate) fn plan_reduce(
    sx: &[usize],
    axes: &[usize],
    out_numel: usize,
) -> Result<ReducePlan, ShapeError> {
    if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= sx.len()) {
        return Err(ShapeError::SumAxes {
            axes: axes.to_vec(),
            shape: sx.to_vec(),
        });
    }
    let kept: Vec<usize> = (0..sx.len()).filter(|i| !axes.contains(i)).collect();
    let rows: usize = kept.iter().map(|&i| sx[i]).product();
    let len: usize = axes.iter().map(|&i| sx[i]).product();
    if rows != out_numel {
        return Err(ShapeError::SumOutput {
            axes: axes.to_vec(),
            shape: sx.to_vec(),
            rows,
            out: out_numel,
        });
    }
    let order: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let st = contiguous(sx);
    let dims: Vec<usize> = order.iter().map(|&i| sx[i]).collect();
    let map = Strided {
        a: order.iter().map(|&i| st[i]).collect(),
        b: contiguous(&dims),
        dims,
    };
    let c = map.collapse();
    let identity = c.dims.len() <= 1 && c.a.iter().chain(&c.b).all(|&s| s == 1);
    Ok(ReducePlan {
        gather: (!identity).then_some(map),
        rows,
        len,
    })
}

/// How `rowsum_reduce_f32` (and wgpu's `row_sum`) split rows: `(nchunks, chunk)` with `nchunks · chunk >= len`.
/// Few long rows are cut into chunks of ≥ 4096 elements so that about `target_blocks`
/// blocks share the work; the chunk sums are then summed by a second pass.
pub(crate) fn row_chunks(rows: usize, len: usize, target_blocks: usize) -> (usize, usize) {
    const MIN_CHUNK: usize = 4096;
    if rows == 0 || len <= MIN_CHUNK || rows >= target_blocks {
        return (1, len.max(1));
    }
    let want = target_blocks.div_ceil(rows);
    let most = len.div_ceil(MIN_CHUNK);
    let nchunks = want.clamp(1, most);
    let chunk = len.div_ceil(nchunks);
    (len.div_ceil(chunk), chunk)
}

#[cfg(test)]
#[path = "strided_tests.rs"]
mod tests;
