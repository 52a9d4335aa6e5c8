//! The structural checks the CPU backend makes before it indexes memory: input counts, axes,
//! slice bounds and the output shape each op implies. The graph builder validates every node
//! it makes, so a training run never fails here; these checks turn a malformed op handed to
//! the backend directly (a library user, a test, a bug in a graph pass) into a
//! [`BackendError::Invalid`] instead of an out-of-bounds panic or a silently wrong result —
//! the same contract the CUDA backend keeps.

use super::super::{BackendError, TensorMut, TensorRef};
use crate::ir::HostData;
use crate::ir::op::{LayoutOp, LossOp, MatmulOp, ReduceOp};

type In<'a> = TensorRef<'a, HostData>;
type Out<'a> = TensorMut<'a, HostData>;

fn invalid(op: &'static str, message: String) -> BackendError {
    BackendError::Invalid {
        backend: "cpu",
        op,
        message,
    }
}

fn want_inputs(op: &'static str, ins: &[In<'_>], n: usize) -> Result<(), BackendError> {
    if ins.len() == n {
        return Ok(());
    }
    Err(invalid(
        op,
        format!("expected {n} inputs, got {}", ins.len()),
    ))
}

fn want_shape(
    op: &'static str,
    what: &str,
    got: &[usize],
    want: &[usize],
) -> Result<(), BackendError> {
    if got == want {
        return Ok(());
    }
    Err(invalid(
        op,
        format!("{what} has shape {got:?}, expected {want:?}"),
    ))
}

fn want_axis(op: &'static str, axis: usize, rank: usize) -> Result<(), BackendError> {
    if axis < rank {
        return Ok(());
    }
    Err(invalid(
        op,
        format!("axis {axis} is out of range for rank {rank}"),
    ))
}

/// A unary op (`ins = [x]`, or `[x, dy]` for its gradient): everything has `x`'s shape.
pub(super) fn unary(ins: &[In<'_>], out: &Out<'_>) -> Result<(), BackendError> {
    const OP: &str = "unary";
    if !(1..=2).contains(&ins.len()) {
        return Err(invalid(
            OP,
            format!("expected 1 or 2 inputs, got {}", ins.len()),
        ));
    }
    for t in &ins[1..] {
        want_shape(OP, "the gradient input", t.shape, ins[0].shape)?;
    }
    want_shape(OP, "the output", out.shape, ins[0].shape)
}

/// Whether `s` broadcasts to `to` (numpy rules: axes aligned on the right, each equal or 1).
fn broadcasts(s: &[usize], to: &[usize]) -> bool {
    s.len() <= to.len()
        && s.iter()
            .zip(&to[to.len() - s.len()..])
            .all(|(&a, &b)| a == b || a == 1)
}

/// `a` and `b` each broadcast to the output's shape.
pub(super) fn binary(ins: &[In<'_>], out: &Out<'_>) -> Result<(), BackendError> {
    const OP: &str = "binary";
    want_inputs(OP, ins, 2)?;
    for t in ins {
        if !broadcasts(t.shape, out.shape) {
            let (s, so) = (t.shape, out.shape);
            return Err(invalid(OP, format!("{s:?} does not broadcast to {so:?}")));
        }
    }
    Ok(())
}

/// A sum over distinct in-range axes, to the shape it implies.
pub(super) fn reduce(op: &ReduceOp, ins: &[In<'_>], out: &Out<'_>) -> Result<(), BackendError> {
    const OP: &str = "sum";
    let ReduceOp::Sum { axes, keepdim } = op;
    want_inputs(OP, ins, 1)?;
    let sx = ins[0].shape;
    for (i, &a) in axes.iter().enumerate() {
        want_axis(OP, a, sx.len())?;
        if axes[..i].contains(&a) {
            return Err(invalid(OP, format!("axis {a} is listed twice")));
        }
    }
    let want: Vec<usize> = (0..sx.len())
        .filter_map(|i| match (axes.contains(&i), keepdim) {
            (false, _) => Some(sx[i]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    want_shape(OP, "the output", out.shape, &want)
}

/// Each layout op's inputs against its attributes and the output shape.
pub(super) fn layout(op: &LayoutOp, ins: &[In<'_>], out: &Out<'_>) -> Result<(), BackendError> {
    const OP: &str = "layout";
    if let LayoutOp::Concat { axis } = op {
        let Some(first) = ins.first() else {
            return Err(invalid(OP, "concat of no inputs".into()));
        };
        want_axis(OP, *axis, first.shape.len())?;
        let mut want = first.shape.to_vec();
        want[*axis] = 0;
        for t in ins {
            let mut s = t.shape.to_vec();
            if s.len() == want.len() {
                want[*axis] += s[*axis];
                s[*axis] = want[*axis];
            }
            want_shape(OP, "a concat input", &s, &want)?;
        }
        return want_shape(OP, "the output", out.shape, &want);
    }
    want_inputs(OP, ins, 1)?;
    let sx = ins[0].shape;
    let so = out.shape;
    let want = match op {
        LayoutOp::Reshape => {
            if sx.iter().product::<usize>() != so.iter().product::<usize>() {
                return Err(invalid(OP, format!("cannot reshape {sx:?} to {so:?}")));
            }
            so.to_vec()
        }
        LayoutOp::Permute { perm } => {
            let mut seen = vec![false; sx.len()];
            for &p in perm {
                if p >= sx.len() || std::mem::replace(&mut seen[p], true) {
                    return Err(invalid(
                        OP,
                        format!("{perm:?} is not a permutation of {sx:?}"),
                    ));
                }
            }
            if perm.len() != sx.len() {
                return Err(invalid(
                    OP,
                    format!("{perm:?} is not a permutation of {sx:?}"),
                ));
            }
            perm.iter().map(|&p| sx[p]).collect()
        }
        LayoutOp::Slice { axis, start, end } => {
            want_axis(OP, *axis, sx.len())?;
            if start > end || *end > sx[*axis] {
                let d = sx[*axis];
                return Err(invalid(
                    OP,
                    format!("slice {start}..{end} of an axis of {d}"),
                ));
            }
            let mut s = sx.to_vec();
            s[*axis] = end - start;
            s
        }
        LayoutOp::SlicePad { axis, start } => {
            want_axis(OP, *axis, sx.len())?;
            let mut s = sx.to_vec();
            if let Some(&d) = so.get(*axis) {
                if start + sx[*axis] > d {
                    return Err(invalid(
                        OP,
                        format!("{sx:?} placed at {start} exceeds {so:?}"),
                    ));
                }
                s[*axis] = d;
            }
            s
        }
        LayoutOp::BroadcastTo => {
            if !broadcasts(sx, so) {
                return Err(invalid(OP, format!("{sx:?} does not broadcast to {so:?}")));
            }
            so.to_vec()
        }
        LayoutOp::Concat { .. } => unreachable!("handled above"),
    };
    want_shape(OP, "the output", so, &want)
}

/// A loss or its gradient: `geometry::loss_shape`'s checks, which every backend shares.
pub(super) fn loss(op: &LossOp, ins: &[In<'_>], out: &Out<'_>) -> Result<(), BackendError> {
    let name = match op {
        LossOp::Forward(k) | LossOp::Grad { kind: k, .. } => k.name(),
    };
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    crate::backend::geometry::loss_shape(op, &shapes, out.shape)
        .map(drop)
        .map_err(|e| invalid(name, e.to_string()))
}

/// A matrix product: `geometry::MatmulGeo`'s checks, which every backend shares.
pub(super) fn matmul(op: &MatmulOp, ins: &[In<'_>], out: &Out<'_>) -> Result<(), BackendError> {
    want_inputs("matmul", ins, 2)?;
    crate::backend::geometry::MatmulGeo::new(op, ins[0].shape, ins[1].shape, out.shape)
        .map(drop)
        .map_err(|e| invalid("matmul", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::CpuBackend;
    use crate::backend::{Backend, BackendError, TensorMut, TensorRef};
    use crate::ir::op::{BinaryOp, LayoutOp, LossKind, LossOp};
    use crate::ir::{DType, HostData, numel};

    /// Runs `f` on f32 zeros of `shapes` into an output of `out`; the error's message.
    fn refused(
        shapes: &[&[usize]],
        out: &[usize],
        f: impl FnOnce(&[TensorRef<'_, HostData>], TensorMut<'_, HostData>) -> Result<(), BackendError>,
    ) -> String {
        let bufs: Vec<HostData> = shapes
            .iter()
            .map(|s| HostData::zeros(DType::F32, numel(s)))
            .collect();
        let ins: Vec<_> = bufs
            .iter()
            .zip(shapes)
            .map(|(buf, shape)| TensorRef {
                buf,
                shape,
                dtype: DType::F32,
            })
            .collect();
        let mut o = HostData::zeros(DType::F32, numel(out));
        let out = TensorMut {
            buf: &mut o,
            shape: out,
            dtype: DType::F32,
        };
        match f(&ins, out) {
            Err(e @ BackendError::Invalid { .. }) => e.to_string(),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_ops_are_refused_with_what_is_wrong() {
        let be = CpuBackend;
        let e = refused(&[&[2, 3], &[4]], &[2, 3], |i, o| {
            be.binary(BinaryOp::Add, i, o)
        });
        assert!(e.contains("[4] does not broadcast to [2, 3]"), "{e}");
        let e = refused(&[&[2, 3]], &[7], |i, o| be.layout(&LayoutOp::Reshape, i, o));
        assert!(e.contains("cannot reshape"), "{e}");
        let concat = LayoutOp::Concat { axis: 1 };
        let e = refused(&[&[2, 3], &[3, 3]], &[2, 6], |i, o| {
            be.layout(&concat, i, o)
        });
        assert!(e.contains("concat input"), "{e}");
        let pad = LayoutOp::SlicePad { axis: 0, start: 2 };
        let e = refused(&[&[2, 3]], &[3, 3], |i, o| be.layout(&pad, i, o));
        assert!(e.contains("exceeds"), "{e}");
        let bce = LossOp::Grad {
            kind: LossKind::BceWithLogits,
            wrt: 1,
        };
        let e = refused(&[&[2, 3], &[2, 3], &[2, 3]], &[2, 3], |i, o| {
            be.loss(&bce, i, o)
        });
        assert!(e.contains("no gradient with respect to input 1"), "{e}");
        let l1 = LossOp::Forward(LossKind::L1);
        let e = refused(&[&[2, 3], &[3, 2]], &[2, 3], |i, o| be.loss(&l1, i, o));
        assert!(e.contains("the target has shape [3, 2]"), "{e}");
    }
}
