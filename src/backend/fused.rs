//! The meaning of a fused elementwise chain ([`crate::ir::Op::Fused`]): its ops run one by
//! one on the backend, each into a buffer of its own. [`crate::backend::Backend::fused`] runs
//! this unless a backend compiles chains (the CPU backend's `fused`), and a compiled chain is
//! tested against it.

use super::{Backend, BackendError, TensorMut, TensorRef};
use crate::ir::{FusedElementwise, FusedOp, FusedStep, numel};

/// `f` over `ins` into `out`, one op at a time.
pub fn fused_op_by_op<B: Backend + ?Sized>(
    b: &B,
    f: &FusedElementwise,
    ins: &[TensorRef<'_, B::Buffer>],
    out: TensorMut<'_, B::Buffer>,
) -> Result<(), BackendError> {
    check_fused(b.name(), f, ins, &out)?;
    let (shape, dtype) = (out.shape, out.dtype);
    let (last, first) = f.steps.split_last().expect("checked: a chain has a step");
    let mut values: Vec<B::Buffer> = Vec::with_capacity(first.len());
    for step in first {
        let mut buf = b.alloc(dtype, numel(shape))?;
        let into = TensorMut {
            buf: &mut buf,
            shape,
            dtype,
        };
        run_step(b, step, &args(step, ins, &values), into)?;
        values.push(buf);
    }
    run_step(b, last, &args(last, ins, &values), out)
}

/// Refuses a malformed chain, or inputs that are not one per chain input of the output's
/// shape and dtype.
pub fn check_fused<Buf>(
    backend: &'static str,
    f: &FusedElementwise,
    ins: &[TensorRef<'_, Buf>],
    out: &TensorMut<'_, Buf>,
) -> Result<(), BackendError> {
    let message = if !f.is_well_formed() {
        "a step reads a value not computed before it".to_string()
    } else if ins.len() != f.inputs {
        format!("{} inputs for a chain of {}", ins.len(), f.inputs)
    } else if let Some(t) = (ins.iter()).find(|t| t.shape != out.shape || t.dtype != out.dtype) {
        format!(
            "an input of {}{:?} for an output of {}{:?}",
            t.dtype, t.shape, out.dtype, out.shape
        )
    } else {
        return Ok(());
    };
    Err(BackendError::Invalid {
        backend,
        op: "fused",
        message,
    })
}

/// The tensors `step` reads: chain inputs, or earlier steps' values (all of one shape).
fn args<'a, Buf>(
    step: &FusedStep,
    ins: &[TensorRef<'a, Buf>],
    values: &'a [Buf],
) -> Vec<TensorRef<'a, Buf>> {
    let like = &ins[0];
    (step.args.iter())
        .map(|&a| match ins.get(a) {
            Some(t) => TensorRef {
                buf: t.buf,
                shape: t.shape,
                dtype: t.dtype,
            },
            None => TensorRef {
                buf: &values[a - ins.len()],
                shape: like.shape,
                dtype: like.dtype,
            },
        })
        .collect()
}

fn run_step<B: Backend + ?Sized>(
    b: &B,
    step: &FusedStep,
    ins: &[TensorRef<'_, B::Buffer>],
    out: TensorMut<'_, B::Buffer>,
) -> Result<(), BackendError> {
    match &step.op {
        FusedOp::Unary(u) => b.unary(u, ins, out),
        FusedOp::Binary(op) => b.binary(*op, ins, out),
    }
}
