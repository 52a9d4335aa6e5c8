//! Ops on tensors larger than one kernel binding holds (`Gpu::max_binding_bytes`: 128 MiB on
//! DX12 and on lavapipe, so a ResNet stem's output at 2 × 800 × 1344), run a slab at a time.
//!
//! An op splits when each slab of its output depends only on the same slab of some of its
//! inputs ([`Part::Rows`]) and on the whole of the others ([`Part::Whole`]): elementwise ops
//! over flat windows; broadcasting binaries, sums, layout copies and losses along their first
//! axis that is not 1; convolutions, pooling and frozen batch norm per image. Where the output
//! is a sum over the images ([`Output::Sum`]: a weight gradient, a bias gradient, batch norm's
//! affine and statistics gradients) the slabs' results are added; batch statistics of the slabs
//! are merged (Chan's pairwise update), and their gradient is scaled by the slab's share of the
//! images before the op divides by the slab's count. Slabs are views of the
//! tensors' own buffers where their offset meets the adapter's alignment, and copies through
//! scratch buffers where it does not; the kernels are the same either way, so a slab's
//! elements are the bits the unsplit op gives (sums differ in their order only).
//!
//! What does not split this way — RoIAlign, group norm (its statistics interleave the images),
//! a single image larger than a binding, a whole operand larger than a binding — is refused
//! with the sizes.

use super::context::Gpu;
use super::{In, Out, WgpuBackend, WgpuBuffer, norm, shape_err, tensor};
use crate::backend::{BackendError, TensorMut, TensorRef};
use crate::ir::op::*;
use crate::ir::{DType, numel};

/// The op being split, as far as its split rule needs to know it.
#[derive(Clone, Copy)]
pub(super) enum OpKind<'a> {
    Fill,
    Unary,
    Binary,
    Reduce(&'a ReduceOp),
    Layout(&'a LayoutOp),
    Matmul,
    Conv(&'a ConvOp),
    Pool(&'a PoolOp),
    Norm(&'a NormOp),
    Loss,
}

/// How one input takes part in a slab.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Part {
    /// Bound whole in every slab.
    Whole,
    /// Bound whole, times the slab's share of the split axis (a gradient w.r.t. a statistic
    /// over every image, which the op divides by the slab's count).
    WholeScaled,
    /// Cut along the split axis, this many elements per index of it.
    Rows(usize),
}

/// How the output is made of the slabs' results.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Output {
    /// Each slab writes its own rows, this many elements per index of the split axis.
    Rows(usize),
    /// Each slab gives the whole output; the output is their sum.
    Sum,
    /// Each slab gives batch statistics `[2, S]` of its images; the output is those of all.
    Merged,
}

/// An op's split: the axis cut (the leading axes before it are 1) among `rank` axes, its
/// length, each tensor's part, and the output's axis that is cut (a sum can drop axes). `flat`
/// views every tensor as one axis of its elements.
#[derive(Debug)]
struct Plan {
    axis: usize,
    rank: usize,
    len: usize,
    flat: bool,
    ins: Vec<Part>,
    out: Output,
    out_axis: usize,
}

impl Plan {
    /// A cut of the output's `axis` (of `len`) with its own rows, the inputs' parts given.
    fn rows(out: &[usize], axis: usize, ins: Vec<Part>, out_rows: usize) -> Plan {
        Plan {
            axis,
            rank: out.len(),
            len: out[axis],
            flat: false,
            ins,
            out: Output::Rows(out_rows),
            out_axis: axis,
        }
    }
}

/// Elements per window of an elementwise op over a buffer: the most one binding holds, in
/// whole alignment units (so that every window's offset is aligned).
pub(super) fn flat_slab(gpu: &Gpu) -> usize {
    let unit = (gpu.binding_alignment() / 4) as usize;
    let most = (gpu.max_binding_bytes() / 4) as usize;
    (most / unit * unit).max(unit)
}

/// Runs `f` on `ins` and `out` as they are when every tensor fits a binding (or the op does not
/// split: the dispatch then refuses it with the sizes), else once per slab.
pub(super) fn run(
    be: &WgpuBackend,
    name: &'static str,
    kind: OpKind<'_>,
    ins: &[In<'_>],
    out: Out<'_>,
    f: impl Fn(&WgpuBackend, &[In<'_>], Out<'_>) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let max = be.gpu().max_binding_bytes();
    let fits = |shape: &[usize]| (numel(shape) as u64).saturating_mul(4) <= max;
    if ins.iter().all(|t| fits(t.shape)) && fits(out.shape) {
        return f(be, ins, out);
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    let Some(plan) = plan(kind, &shapes, out.shape) else {
        return f(be, ins, out);
    };
    // What every slab binds whole must fit a binding itself.
    let whole_ins = plan
        .ins
        .iter()
        .zip(&shapes)
        .filter(|(p, _)| **p == Part::Whole);
    let whole_out = (plan.out == Output::Sum).then_some(out.shape);
    if let Some(s) = whole_ins
        .map(|(_, s)| *s)
        .chain(whole_out)
        .find(|s| !fits(s))
    {
        return Err(shape_err(
            name,
            format!(
                "{s:?} ({} bytes) is bound whole by each slab of this op and exceeds what the \
                 adapter binds ({max} bytes)",
                4 * numel(s)
            ),
        ));
    }
    let per_slab = slab_rows(be.gpu(), &plan, max).ok_or_else(|| {
        shape_err(
            name,
            format!(
                "one index of axis {} is larger than the adapter binds ({max} bytes); \
                 the op cannot be split further",
                plan.axis
            ),
        )
    })?;
    let mut start = 0;
    while start < plan.len {
        let end = (start + per_slab).min(plan.len);
        slab(be, &plan, ins, &out, start..end, &f)?;
        start = end;
    }
    Ok(())
}

/// Indices of the split axis per slab: as many as every cut tensor fits, in whole alignment
/// units for a flat split; `None` when one index alone is too large.
fn slab_rows(gpu: &Gpu, plan: &Plan, max: u64) -> Option<usize> {
    if plan.flat {
        return Some(flat_slab(gpu));
    }
    let out = match plan.out {
        Output::Rows(r) => Some(r),
        Output::Sum | Output::Merged => None,
    };
    let most = (max / 4) as usize;
    plan.ins
        .iter()
        .filter_map(|p| match p {
            Part::Rows(r) => Some(*r),
            Part::Whole | Part::WholeScaled => None,
        })
        .chain(out)
        .filter(|&r| r > 0)
        .map(|r| most / r)
        .min()
        .filter(|&n| n > 0)
}

/// One slab: views (or aligned copies) of the cut inputs, the op, and its result in place.
fn slab(
    be: &WgpuBackend,
    plan: &Plan,
    ins: &[In<'_>],
    out: &Out<'_>,
    rows: std::ops::Range<usize>,
    f: &impl Fn(&WgpuBackend, &[In<'_>], Out<'_>) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let n = rows.end - rows.start;
    let mut bufs = Vec::with_capacity(ins.len());
    let mut shapes = Vec::with_capacity(ins.len());
    for (t, part) in ins.iter().zip(&plan.ins) {
        match *part {
            Part::Whole => {
                bufs.push(None);
                shapes.push(t.shape.to_vec());
            }
            Part::WholeScaled => {
                let share = n as f64 / plan.len as f64;
                bufs.push(Some(scaled(be, t, share)?));
                shapes.push(t.shape.to_vec());
            }
            Part::Rows(r) => {
                bufs.push(Some(cut(be, t.buf, rows.start * r, n * r, true)?));
                // Inputs of lower rank are right-aligned against the plan's axes; a cut along
                // axis 0 is every cut input's axis 0.
                let axis = if plan.axis == 0 {
                    0
                } else {
                    plan.axis + t.shape.len() - plan.rank
                };
                shapes.push(cut_shape(plan, t.shape, axis, n));
            }
        }
    }
    let slab_ins: Vec<In<'_>> = ins
        .iter()
        .zip(bufs.iter().zip(&shapes))
        .map(|(t, (b, s))| TensorRef {
            buf: b.as_ref().map_or(t.buf, |b| &b.view),
            shape: s,
            dtype: t.dtype,
        })
        .collect();
    match plan.out {
        Output::Rows(r) => {
            let shape = cut_shape(plan, out.shape, plan.out_axis, n);
            let mut y = cut(be, out.buf, rows.start * r, n * r, false)?;
            f(be, &slab_ins, tensor_mut(&mut y.view, &shape, out.dtype))?;
            y.write_back(be, out.buf, rows.start * r, n * r)
        }
        Output::Sum | Output::Merged => {
            let total = numel(out.shape);
            let mut whole = view(out.buf, 0, total);
            let mut part = if rows.start == 0 {
                // The first slab writes the output; the others are added to it.
                return f(be, &slab_ins, tensor_mut(&mut whole, out.shape, out.dtype));
            } else {
                scratch(be, out.buf, total)?
            };
            f(be, &slab_ins, tensor_mut(&mut part, out.shape, out.dtype))?;
            let mut both = scratch(be, out.buf, total)?;
            if plan.out == Output::Merged {
                let (so_far, all) = (rows.start as f64, rows.end as f64);
                let (a, b) = (whole.bound(total), part.bound(total));
                norm::merge_stats(be, a, b, both.bound(total), total / 2, so_far / all)?;
            } else {
                let shape = [total];
                let operand = |buf| TensorRef {
                    buf,
                    shape: &shape,
                    dtype: out.dtype,
                };
                let sum = tensor_mut(&mut both, &shape, out.dtype);
                tensor::binary(be, BinaryOp::Add, &[operand(&whole), operand(&part)], sum)?;
            }
            be.gpu()
                .copy(both.bound(total), whole.bound(total), 4 * total as u64)
        }
    }
}

fn tensor_mut<'a>(buf: &'a mut WgpuBuffer, shape: &'a [usize], dtype: DType) -> Out<'a> {
    TensorMut { buf, shape, dtype }
}

/// `t` times `share`, in a buffer of its own.
fn scaled(be: &WgpuBackend, t: &In<'_>, share: f64) -> Result<Cut, BackendError> {
    let n = numel(t.shape);
    let mut copy = scratch(be, t.buf, n)?;
    let out = tensor_mut(&mut copy, t.shape, t.dtype);
    tensor::unary(be, &UnaryOp::Scale(share), std::slice::from_ref(t), out)?;
    Ok(Cut {
        view: copy,
        copied: true,
    })
}

/// A tensor's shape in a slab of `n` indices of the split axis, which is its axis `axis`
/// (the flat window when the plan is flat).
fn cut_shape(plan: &Plan, shape: &[usize], axis: usize, n: usize) -> Vec<usize> {
    if plan.flat {
        return vec![n];
    }
    let mut s = shape.to_vec();
    s[axis] = n;
    s
}

/// A slab of a buffer: a view where its offset is aligned, else an aligned scratch copy
/// (`copy_in` for an input; an output's scratch is written back by [`Cut::write_back`]).
struct Cut {
    view: WgpuBuffer,
    copied: bool,
}

impl Cut {
    fn write_back(
        &self,
        be: &WgpuBackend,
        to: &WgpuBuffer,
        start: usize,
        n: usize,
    ) -> Result<(), BackendError> {
        if !self.copied {
            return Ok(());
        }
        be.gpu()
            .copy(self.view.bound(n), to.window(start, n), 4 * n as u64)
    }
}

fn cut(
    be: &WgpuBackend,
    buf: &WgpuBuffer,
    start: usize,
    n: usize,
    copy_in: bool,
) -> Result<Cut, BackendError> {
    let offset = 4 * (buf.offset + start) as u64;
    if offset.is_multiple_of(be.gpu().binding_alignment()) {
        return Ok(Cut {
            view: view(buf, start, n),
            copied: false,
        });
    }
    let copy = scratch(be, buf, n)?;
    if copy_in {
        be.gpu()
            .copy(buf.window(start, n), copy.bound(n), 4 * n as u64)?;
    }
    Ok(Cut {
        view: copy,
        copied: true,
    })
}

/// Elements `start..start + n` of `buf`, as a buffer of its own.
fn view(buf: &WgpuBuffer, start: usize, n: usize) -> WgpuBuffer {
    WgpuBuffer {
        buf: buf.buf.clone(),
        offset: buf.offset + start,
        dtype: buf.dtype,
        len: n,
    }
}

/// A fresh buffer of `n` elements of `like`'s type.
fn scratch(be: &WgpuBackend, like: &WgpuBuffer, n: usize) -> Result<WgpuBuffer, BackendError> {
    Ok(WgpuBuffer {
        buf: be.gpu().buffer(4 * n as u64, "split")?,
        offset: 0,
        dtype: like.dtype,
        len: n,
    })
}

/// The op's split, or `None` when it has none.
fn plan(kind: OpKind<'_>, ins: &[&[usize]], out: &[usize]) -> Option<Plan> {
    let same_size = ins.iter().all(|s| numel(s) == numel(out));
    let all_rows = |ins: &[&[usize]]| first_axis(ins, out, &vec![true; ins.len()]);
    match kind {
        OpKind::Fill | OpKind::Unary => same_size.then(|| flat(ins.len(), numel(out))),
        OpKind::Binary => {
            if ins.iter().all(|s| *s == out) {
                Some(flat(ins.len(), numel(out)))
            } else {
                broadcast(ins, out)
            }
        }
        OpKind::Reduce(ReduceOp::Sum { axes, .. }) => {
            // Cut along axis 0: summed over, the slabs' sums add up; kept, it is the
            // output's axis 0 too (axes before it cannot be dropped).
            let x = ins.first()?;
            let mut p = batch(ins, x, &[true])?;
            p.out = if axes.contains(&0) {
                Output::Sum
            } else if out.first() == x.first() {
                Output::Rows(numel(out) / x[0])
            } else {
                return None;
            };
            Some(p)
        }
        OpKind::Layout(op) => match op {
            // Axis 0 stays axis 0; a later axis that is first to be longer than 1 may not.
            LayoutOp::Permute { perm } if perm.first() == Some(&0) => {
                all_rows(ins).filter(|p| p.axis == 0)
            }
            // Every axis before the one sliced or joined is the same in and out.
            LayoutOp::Slice { axis, .. }
            | LayoutOp::SlicePad { axis, .. }
            | LayoutOp::Concat { axis } => all_rows(ins).filter(|p| p.axis < *axis),
            LayoutOp::BroadcastTo => broadcast(ins, out),
            // Reshapes are copies, which bind nothing.
            _ => None,
        },
        // Batched over axis 0 (both operands have it), or one matrix: no split.
        OpKind::Matmul => (out.len() == 3)
            .then(|| batch(ins, out, &[true, true]))
            .flatten(),
        OpKind::Conv(op) => match op {
            ConvOp::Conv2d(_) => batch(ins, out, &[true, false, false]),
            ConvOp::Conv2dGradInput(_) => batch(ins, out, &[true, false]),
            ConvOp::Conv2dGradWeight(_) => summed(ins, &[true, true]),
        },
        OpKind::Pool(op) => match op {
            PoolOp::MaxPool2d { .. }
            | PoolOp::MaxPool2dGrad { .. }
            | PoolOp::UpsampleNearest
            | PoolOp::UpsampleNearestGrad => all_rows(ins).filter(|p| p.axis == 0),
            PoolOp::RoiAlign(_) | PoolOp::RoiAlignGrad(_) => None,
        },
        OpKind::Norm(op) => match op {
            NormOp::Apply {
                kind: NormKind::Batch,
                ..
            } => batch(ins, out, &[true, false, false, false]),
            NormOp::ApplyGradX {
                kind: NormKind::Batch,
                ..
            } => batch(ins, out, &[true, false, false, true]),
            NormOp::ApplyGradStats {
                kind: NormKind::Batch,
                ..
            } => summed(ins, &[true, false, false, true]),
            NormOp::ApplyGradAffine {
                kind: NormKind::Batch,
                ..
            } => summed(ins, &[true, false, true]),
            NormOp::Stats(NormKind::Batch) => summed(ins, &[true]).map(|p| Plan {
                out: Output::Merged,
                ..p
            }),
            NormOp::StatsGrad(NormKind::Batch) => {
                let mut p = batch(ins, out, &[true, false, false])?;
                *p.ins.get_mut(2)? = Part::WholeScaled;
                Some(p)
            }
            // Group statistics interleave the images (`[2, N·G]`).
            _ => None,
        },
        OpKind::Loss => rows_of_items(ins, out),
    }
}

/// The loss family: every tensor's axis 0 is the items (anchors, boxes), whatever its rank.
fn rows_of_items(ins: &[&[usize]], out: &[usize]) -> Option<Plan> {
    let len = *out.first()?;
    let rows = |s: &[usize]| (s.first() == Some(&len)).then(|| s[1..].iter().product());
    let parts = ins
        .iter()
        .map(|s| rows(s).map(Part::Rows))
        .collect::<Option<Vec<_>>>()?;
    if len == 0 {
        return None;
    }
    Some(Plan::rows(out, 0, parts, rows(out)?))
}

/// Every tensor as a flat run of elements.
fn flat(inputs: usize, len: usize) -> Plan {
    Plan {
        axis: 0,
        rank: 1,
        len,
        flat: true,
        ins: vec![Part::Rows(1); inputs],
        out: Output::Rows(1),
        out_axis: 0,
    }
}

/// Cuts along the output's first axis that is not 1; the inputs marked in `cut` must have
/// the same axes up to it, the others are whole. `None` if every axis is 1.
fn first_axis(ins: &[&[usize]], out: &[usize], cut: &[bool]) -> Option<Plan> {
    let axis = out.iter().position(|&d| d != 1)?;
    let len = out[axis];
    if len == 0 || cut.len() != ins.len() {
        return None;
    }
    let rows_of = |s: &[usize]| -> Option<usize> {
        (s.len() == out.len() && s[..axis].iter().all(|&d| d == 1) && s[axis] == len)
            .then(|| s[axis + 1..].iter().product())
    };
    let mut parts = Vec::with_capacity(ins.len());
    for (s, &c) in ins.iter().zip(cut) {
        parts.push(if c {
            Part::Rows(rows_of(s)?)
        } else {
            Part::Whole
        });
    }
    Some(Plan::rows(out, axis, parts, rows_of(out)?))
}

/// Per image: the marked inputs and the output cut along axis 0.
fn batch(ins: &[&[usize]], out: &[usize], cut: &[bool]) -> Option<Plan> {
    let cut = &cut[..ins.len().min(cut.len())];
    first_axis(ins, out, cut).filter(|p| p.axis == 0)
}

/// Per image, the output the sum of the images' results: the marked inputs cut along axis 0.
fn summed(ins: &[&[usize]], cut: &[bool]) -> Option<Plan> {
    let x = ins.first()?;
    let mut p = batch(ins, x, cut)?;
    p.out = Output::Sum;
    Some(p)
}

/// A broadcasting op: inputs that have the output's split axis cut with it, inputs that
/// broadcast along it (size 1, or too few axes to reach it) whole.
fn broadcast(ins: &[&[usize]], out: &[usize]) -> Option<Plan> {
    let axis = out.iter().position(|&d| d != 1)?;
    let len = out[axis];
    let mut parts = Vec::with_capacity(ins.len());
    for s in ins {
        // Right-aligned: the input's axis facing the output's split axis, if it has one.
        let skip = out.len().checked_sub(s.len())?;
        let part = match axis.checked_sub(skip) {
            Some(a) if s[a] == len => Part::Rows(s[a + 1..].iter().product()),
            Some(a) if s[a] == 1 => Part::Whole,
            Some(_) => return None,
            None => Part::Whole,
        };
        parts.push(part);
    }
    Some(Plan::rows(
        out,
        axis,
        parts,
        out[axis + 1..].iter().product(),
    ))
}
