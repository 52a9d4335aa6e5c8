//! The unreduced loss family on the device: `LossOp::Forward` writes the per-element
//! (focal, BCE, L1, smooth L1), per-row (cross-entropy) or per-box (IoU/GIoU/DIoU/CIoU) loss;
//! `LossOp::Grad { wrt }` gets the loss inputs plus `dy` (the forward output's shape) and
//! writes the gradient w.r.t. input `wrt`. Reduction, weights and `avg_factor` are ordinary
//! graph ops around these, so nothing here reduces.
//!
//! Owns the shape/dtype checks and the launches of the graph-IR loss entries in
//! `kernels/loss_*.ptx` (`*_elem_*`, `ce_row_*`, `iou_box_*`; ABI in `kernels/README.md`).
//! Semantics are the CPU reference's (`backend::cpu::loss`, dispatched by `loss_t`):
//! the gradient of focal / BCE / cross-entropy exists w.r.t. the logits (`wrt = 0`) only;
//! L1, smooth L1 and the IoU losses also differentiate the target (`wrt = 1`).

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::backend::{CudaBackend, CudaBuffer, device_err, f32_in, f32_out, i32_in, unsupported};
use super::device::CudaDevice;
use super::error::{CudaError, DriverContext};
use super::kernels::Module;
use super::launch::{self, Arg};
use crate::backend::{BackendError, TensorMut, TensorRef};
use crate::ir::op::*;
use crate::ir::{DType, numel};

type In<'a> = TensorRef<'a, CudaBuffer>;
type Out<'a> = TensorMut<'a, CudaBuffer>;

/// Largest element (or row, or box) count a launch takes: the kernels index with `u32` and
/// advance by the grid stride, which must not wrap past 2^32.
const MAX_ITEMS: usize = i32::MAX as usize;

/// A contract violation of the op (shapes, input count, `wrt`) as a backend error naming it.
fn bad(op: &'static str, message: String) -> BackendError {
    device_err(CudaError::shape(op, message))
}

pub(super) fn loss(
    be: &CudaBackend,
    op: &LossOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let (kind, wrt) = match op {
        LossOp::Forward(k) => (k, None),
        LossOp::Grad { kind, wrt } => (kind, Some(*wrt)),
    };
    let name = kind.name();
    if out.dtype != DType::F32 {
        return Err(unsupported(name, out.dtype));
    }
    let want = if wrt.is_some() { 3 } else { 2 };
    if ins.len() != want {
        return Err(bad(
            name,
            format!("expected {want} inputs, got {}", ins.len()),
        ));
    }
    match kind {
        LossKind::CrossEntropy {
            ignore_index,
            label_smoothing,
        } => cross_entropy(be, ins, &mut out, wrt, *ignore_index, *label_smoothing),
        LossKind::Iou { kind: k, eps } => iou(be, ins, &mut out, wrt, *k, *eps),
        LossKind::SigmoidFocal { alpha, gamma } => {
            let s = [*gamma as f32, *alpha as f32];
            elementwise(be, name, ins, &mut out, wrt, Elem::Focal, &s)
        }
        LossKind::BceWithLogits => elementwise(be, name, ins, &mut out, wrt, Elem::Bce, &[]),
        // L1 is smooth L1 with beta = 0 (|d| < 0 never holds): the same entries.
        LossKind::L1 => elementwise(be, name, ins, &mut out, wrt, Elem::SmoothL1, &[0.0]),
        LossKind::SmoothL1 { beta } => elementwise(
            be,
            name,
            ins,
            &mut out,
            wrt,
            Elem::SmoothL1,
            &[*beta as f32],
        ),
    }
}

/// The streaming elementwise losses and their entries.
#[derive(Clone, Copy, PartialEq)]
enum Elem {
    Focal,
    Bce,
    SmoothL1,
}

impl Elem {
    fn module(self) -> Module {
        match self {
            Elem::Focal => Module::LossFocal,
            Elem::Bce => Module::LossBce,
            Elem::SmoothL1 => Module::LossL1,
        }
    }

    fn stems(self) -> (&'static str, &'static str) {
        match self {
            Elem::Focal => ("focal_elem_fwd", "focal_elem_bwd"),
            Elem::Bce => ("bce_elem_fwd", "bce_elem_bwd"),
            Elem::SmoothL1 => ("smooth_l1_elem_fwd", "smooth_l1_elem_bwd"),
        }
    }

    /// Whether the target is differentiable (the CPU reference's `wrt = 1`).
    fn grad_wrt_target(self) -> bool {
        self == Elem::SmoothL1
    }
}

/// `(a, b) → same shape` losses; `scalars` are the entry's trailing f32 parameters of the
/// forward (the backward of smooth L1 appends the sign of the differentiated input).
fn elementwise(
    be: &CudaBackend,
    name: &'static str,
    ins: &[In<'_>],
    out: &mut Out<'_>,
    wrt: Option<usize>,
    elem: Elem,
    scalars: &[f32],
) -> Result<(), BackendError> {
    let (a, b) = (&ins[0], &ins[1]);
    if a.shape != b.shape {
        return Err(bad(
            name,
            format!("input shapes differ: {:?} vs {:?}", a.shape, b.shape),
        ));
    }
    let n = numel(a.shape);
    check_out(name, out, n, a.shape)?;
    check_items(name, n)?;
    let xa = f32_n(a, n, name)?;
    let xb = f32_n(b, n, name)?;
    let dev = be.device();
    let cfg = dev.grid_for(n, u32::MAX);
    let (fwd, bwd) = elem.stems();
    let mut s: Vec<f32> = scalars.to_vec();
    let (stem, dy) = match wrt {
        None => (fwd, None),
        Some(w) => {
            let ok = w == 0 || (w == 1 && elem.grad_wrt_target());
            if !ok {
                return Err(bad(
                    name,
                    format!("no gradient w.r.t. input {w} (the CPU reference has none)"),
                ));
            }
            let dy = &ins[2];
            check_dy(name, dy, n)?;
            if elem == Elem::SmoothL1 {
                s.push(if w == 1 { -1.0 } else { 1.0 });
            }
            (bwd, Some(f32_in(dy, name)?))
        }
    };
    if n == 0 {
        return Ok(());
    }
    let o = f32_out(out, name)?;
    let mut args: Vec<Arg<'_, '_>> = vec![Arg::In(xa), Arg::In(xb)];
    if let Some(dy) = dy {
        args.push(Arg::In(dy));
    }
    args.push(Arg::Out(o));
    args.push(Arg::U32(n as u32));
    args.extend(s.iter().map(|v| Arg::F32(*v)));
    // SAFETY: a, b, dy hold n f32 (shapes checked, buffers hold at least numel), the output
    // holds n (check_out); n < 2^31; the grid is grid-stride with 256-thread blocks.
    unsafe { launch::generic(dev, elem.module(), stem, cfg, &mut args) }.map_err(device_err)
}

/// Softmax cross-entropy: `(logits [N, K], labels i32 [N]) → [N]`, gradient `[N, K]`.
fn cross_entropy(
    be: &CudaBackend,
    ins: &[In<'_>],
    out: &mut Out<'_>,
    wrt: Option<usize>,
    ignore_index: i64,
    smoothing: f64,
) -> Result<(), BackendError> {
    const OP: &str = "cross_entropy";
    let (x, lab) = (&ins[0], &ins[1]);
    let &[n_rows, n_cls] = x.shape else {
        return Err(bad(OP, format!("logits must be [N, K], got {:?}", x.shape)));
    };
    if lab.shape != [n_rows] {
        return Err(bad(
            OP,
            format!("labels must be [{n_rows}], got {:?}", lab.shape),
        ));
    }
    let total = n_rows * n_cls;
    check_items(OP, total)?;
    let logits = f32_n(x, total, OP)?;
    let labels = i32_in(lab, OP)?;
    if labels.len() < n_rows {
        return Err(bad(OP, "labels buffer is shorter than its shape".into()));
    }
    // Labels are i32: an ignore_index outside i32 matches none of them, and neither does -1
    // among the labels the kernel counts (negative labels are ignored anyway).
    let ignore = i32::try_from(ignore_index).unwrap_or(-1);
    let dev = be.device();
    match wrt {
        None => {
            check_out(OP, out, n_rows, &[n_rows])?;
            let o = f32_out(out, OP)?;
            if n_rows == 0 {
                return Ok(());
            }
            if n_cls == 0 {
                // Every label is out of range: loss 0 (the CPU reference's rule).
                let mut v = o.slice_mut(..n_rows);
                return dev
                    .stream()
                    .memset_zeros(&mut v)
                    .ctx("cuMemsetD8")
                    .map_err(device_err);
            }
            // SAFETY: shapes checked above; one warp per row, 256-thread blocks.
            unsafe {
                launch_ce(
                    dev,
                    "ce_row_fwd",
                    (logits, labels, None, o),
                    (n_rows as u32, n_cls as u32),
                    ignore,
                    smoothing as f32,
                )
            }
        }
        Some(w) => {
            if w != 0 {
                return Err(bad(
                    OP,
                    format!("no gradient w.r.t. input {w} (the labels are integers)"),
                ));
            }
            let dy = &ins[2];
            check_dy(OP, dy, n_rows)?;
            let dyb = f32_in(dy, OP)?;
            check_out(OP, out, total, x.shape)?;
            let o = f32_out(out, OP)?;
            if total == 0 {
                return Ok(());
            }
            // SAFETY: as above; dy holds n_rows, the output n_rows * n_cls.
            unsafe {
                launch_ce(
                    dev,
                    "ce_row_bwd",
                    (logits, labels, Some(dyb), o),
                    (n_rows as u32, n_cls as u32),
                    ignore,
                    smoothing as f32,
                )
            }
        }
    }
    .map_err(device_err)
}

/// `ce_row_fwd_f32` / `ce_row_bwd_f32` (the only loss entries with an `s32` parameter).
///
/// # Safety
/// `logits` holds `n_rows * n_cls < 2^31` f32, `labels` `n_rows` i32, `dy` (backward)
/// `n_rows` f32, `out` `n_rows` (forward) or `n_rows * n_cls` (backward) f32; `n_rows > 0`.
#[allow(clippy::type_complexity)]
unsafe fn launch_ce(
    dev: &CudaDevice,
    stem: &'static str,
    (logits, labels, dy, out): (
        &CudaSlice<f32>,
        &CudaSlice<i32>,
        Option<&CudaSlice<f32>>,
        &mut CudaSlice<f32>,
    ),
    (n_rows, n_cls): (u32, u32),
    ignore_index: i32,
    smoothing: f32,
) -> Result<(), CudaError> {
    // One warp (32 threads) per row, 8 rows per 256-thread block.
    let cfg: LaunchConfig = dev.grid_for(n_rows as usize * 32, u32::MAX);
    let f = dev.function(Module::LossCe, stem)?;
    let mut b = dev.stream().launch_builder(&f);
    b.arg(logits).arg(labels);
    if let Some(dy) = dy {
        b.arg(dy);
    }
    b.arg(out)
        .arg(&n_rows)
        .arg(&n_cls)
        .arg(&ignore_index)
        .arg(&smoothing);
    // SAFETY: the caller upholds the contract above; parameter order matches the PTX.
    unsafe { b.launch(cfg) }.ctx(stem)?;
    Ok(())
}

/// GIoU / DIoU / CIoU: `(pred [N, 4], target [N, 4]) → [N]`, gradient `[N, 4]`.
fn iou(
    be: &CudaBackend,
    ins: &[In<'_>],
    out: &mut Out<'_>,
    wrt: Option<usize>,
    kind: IouKind,
    eps: f64,
) -> Result<(), BackendError> {
    const OP: &str = "iou_loss";
    let (p, t) = (&ins[0], &ins[1]);
    let &[n, 4] = p.shape else {
        return Err(bad(OP, format!("pred must be [N, 4], got {:?}", p.shape)));
    };
    if t.shape != p.shape {
        return Err(bad(
            OP,
            format!("target must be [{n}, 4], got {:?}", t.shape),
        ));
    }
    check_items(OP, n * 4)?;
    let pred = f32_n(p, n * 4, OP)?;
    let target = f32_n(t, n * 4, OP)?;
    let code = match kind {
        IouKind::IoU => 3u32,
        IouKind::GIoU => 0,
        IouKind::DIoU => 1,
        IouKind::CIoU => 2,
    };
    let dev = be.device();
    let cfg = dev.grid_for(n, u32::MAX);
    let mut args: Vec<Arg<'_, '_>> = vec![Arg::In(pred), Arg::In(target)];
    let stem = match wrt {
        None => {
            check_out(OP, out, n, &[n])?;
            "iou_box_fwd"
        }
        Some(w) => {
            if w > 1 {
                return Err(bad(OP, format!("no input {w} to differentiate")));
            }
            let dy = &ins[2];
            check_dy(OP, dy, n)?;
            args.push(Arg::In(f32_in(dy, OP)?));
            check_out(OP, out, n * 4, p.shape)?;
            "iou_box_bwd"
        }
    };
    if n == 0 {
        return Ok(());
    }
    args.push(Arg::Out(f32_out(out, OP)?));
    args.push(Arg::U32(n as u32));
    args.push(Arg::U32(code));
    if let Some(w) = wrt {
        args.push(Arg::U32(w as u32));
    }
    args.push(Arg::F32(eps as f32));
    // SAFETY: pred/target hold 4n f32, dy n, the output n (forward) or 4n (backward);
    // n < 2^31; one thread per box, grid-stride, 256-thread blocks.
    unsafe { launch::generic(dev, Module::LossGiou, stem, cfg, &mut args) }.map_err(device_err)
}

/// The output holds `n` elements (and is f32).
fn check_out(
    op: &'static str,
    out: &Out<'_>,
    n: usize,
    want: &[usize],
) -> Result<(), BackendError> {
    if numel(out.shape) != n || out.buf.len() < n {
        return Err(bad(
            op,
            format!("output must be {want:?}, got {:?}", out.shape),
        ));
    }
    Ok(())
}

/// An f32 input whose buffer holds its `n` elements.
fn f32_n<'a>(t: &In<'a>, n: usize, op: &'static str) -> Result<&'a CudaSlice<f32>, BackendError> {
    let s = f32_in(t, op)?;
    if s.len() < n {
        return Err(bad(
            op,
            format!("input buffer shorter than its shape {:?}", t.shape),
        ));
    }
    Ok(s)
}

/// `dy` has the forward output's `n` elements.
fn check_dy(op: &'static str, dy: &In<'_>, n: usize) -> Result<(), BackendError> {
    if numel(dy.shape) != n || dy.buf.len() < n {
        return Err(bad(
            op,
            format!(
                "dy must have {n} elements (the loss's shape), got {:?}",
                dy.shape
            ),
        ));
    }
    Ok(())
}

fn check_items(op: &'static str, n: usize) -> Result<(), BackendError> {
    if n > MAX_ITEMS {
        return Err(bad(
            op,
            format!("{n} elements exceed the kernels' limit of {MAX_ITEMS}"),
        ));
    }
    Ok(())
}
