//! The unreduced loss family on the device: `LossOp::Forward` writes the per-element
//! (focal, BCE, L1, smooth L1), per-row (cross-entropy) or per-box (IoU/GIoU/DIoU/CIoU) loss;
//! `LossOp::Grad { wrt }` gets the loss inputs plus `dy` (the forward output's shape) and
//! writes the gradient w.r.t. input `wrt`. Reduction, weights and `avg_factor` are ordinary
//! graph ops around these, so nothing here reduces.
//!
//! Owns the shape/dtype checks and the dispatches of `kernels/wgsl/loss.wgsl` (the float
//! losses) and `kernels/wgsl/loss_ce.wgsl` (cross-entropy, whose labels are i32). Semantics
//! and refusals are the CPU reference's (`backend::cpu::{loss, check::loss}`): the gradient
//! of focal / BCE / cross-entropy exists w.r.t. the logits (`wrt = 0`) only; L1, smooth L1
//! and the IoU losses also differentiate the target (`wrt = 1`).

use super::context::{Grid, Kernel, Module};
use super::{In, Out, WgpuBackend, count, fbits, geometry_err, input, output, unsupported, w};
use crate::backend::BackendError;
use crate::backend::geometry::loss_shape;
use crate::ir::DType;
use crate::ir::op::*;

const fn kernel(module: Module, entry: &'static str, inputs: usize) -> Kernel {
    Kernel {
        module,
        entry,
        inputs,
    }
}

const FOCAL_FWD: Kernel = kernel(Module::Loss, "focal_fwd", 2);
const FOCAL_BWD: Kernel = kernel(Module::Loss, "focal_bwd", 3);
const BCE_FWD: Kernel = kernel(Module::Loss, "bce_fwd", 2);
const BCE_BWD: Kernel = kernel(Module::Loss, "bce_bwd", 3);
const SMOOTH_L1_FWD: Kernel = kernel(Module::Loss, "smooth_l1_fwd", 2);
const SMOOTH_L1_BWD: Kernel = kernel(Module::Loss, "smooth_l1_bwd", 3);
const IOU_FWD: Kernel = kernel(Module::Loss, "iou_fwd", 2);
const IOU_BWD: Kernel = kernel(Module::Loss, "iou_bwd", 3);
const CE_FWD: Kernel = kernel(Module::LossCe, "ce_fwd", 2);
const CE_BWD: Kernel = kernel(Module::LossCe, "ce_bwd", 3);

pub(super) fn loss(
    be: &WgpuBackend,
    op: &LossOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let (kind, wrt) = match op {
        LossOp::Forward(k) => (k, None),
        LossOp::Grad { kind, wrt } => (kind, Some(*wrt)),
    };
    let name = kind.name();
    if out.dtype != DType::F32 {
        return Err(unsupported(name, out.dtype));
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    let loss_shape = loss_shape(op, &shapes, out.shape).map_err(|e| geometry_err(name, e))?;
    let (x, t) = (&ins[0], &ins[1]);
    let dy = match wrt {
        Some(_) => Some(input(&ins[2], name, DType::F32)?),
        None => None,
    };
    let xb = input(x, name, DType::F32)?;
    let label_dtype = match kind {
        LossKind::CrossEntropy { .. } => DType::I32,
        _ => DType::F32,
    };
    let tb = input(t, name, label_dtype)?;
    let ob = output(&out, name, DType::F32)?;
    // Items of the dispatch: elements, rows or boxes (bounded by `count` through `input`).
    let items = count(name, &loss_shape)?;
    let (k, params, grid): (Kernel, Vec<u32>, Grid) = match kind {
        LossKind::SigmoidFocal { alpha, gamma } => {
            // α < 0 turns the weighting off: weights (1, 1), so the kernel needs no branch.
            let (w1, w0) = if *alpha < 0.0 {
                (1.0, 1.0)
            } else {
                (*alpha, 1.0 - alpha)
            };
            let k = if wrt.is_some() { FOCAL_BWD } else { FOCAL_FWD };
            let params = vec![w(items), fbits(*gamma), fbits(w1), fbits(w0)];
            (k, params, Grid::Items(items))
        }
        LossKind::BceWithLogits => {
            let k = if wrt.is_some() { BCE_BWD } else { BCE_FWD };
            (k, vec![w(items)], Grid::Items(items))
        }
        // L1 is smooth L1 with β = 0 (|d| < 0 never holds): the same kernels.
        LossKind::L1 | LossKind::SmoothL1 { .. } => {
            let beta = match kind {
                LossKind::SmoothL1 { beta } => *beta,
                _ => 0.0,
            };
            match wrt {
                None => (
                    SMOOTH_L1_FWD,
                    vec![w(items), fbits(beta)],
                    Grid::Items(items),
                ),
                Some(wrt) => {
                    let sign = if wrt == 1 { -1.0 } else { 1.0 };
                    let params = vec![w(items), fbits(beta), fbits(sign)];
                    (SMOOTH_L1_BWD, params, Grid::Items(items))
                }
            }
        }
        LossKind::Iou { kind: ik, eps } => {
            let code = match ik {
                IouKind::IoU => 0u32,
                IouKind::GIoU => 1,
                IouKind::DIoU => 2,
                IouKind::CIoU => 3,
            };
            let mut params = vec![w(items), code, fbits(*eps)];
            let k = match wrt {
                None => IOU_FWD,
                Some(wrt) => {
                    params.push(w(wrt));
                    IOU_BWD
                }
            };
            (k, params, Grid::Items(items))
        }
        LossKind::CrossEntropy {
            ignore_index,
            label_smoothing,
        } => {
            // Labels are i32: an ignore_index outside i32 matches none of them, and neither
            // does -1 among the labels that count (negative labels are ignored anyway).
            let ignore = i32::try_from(*ignore_index).unwrap_or(-1);
            let n_cls = x.shape[1];
            if wrt.is_some() && n_cls == 0 {
                // An empty gradient: nothing to write (the kernel would stride zero columns).
                return Ok(());
            }
            let k = if wrt.is_some() { CE_BWD } else { CE_FWD };
            let params = vec![w(items), w(n_cls), ignore as u32, fbits(*label_smoothing)];
            // One workgroup per row (the row's reductions are the workgroup's).
            (k, params, Grid::Groups(items))
        }
    };
    let bufs: Vec<_> = [Some(xb), Some(tb), dy].into_iter().flatten().collect();
    be.gpu().dispatch(k, &params, &bufs, ob, grid)
}
