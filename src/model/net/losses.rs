//! The heads' training losses on the graph, as mmdetection computes them: levels flattened to
//! `[B·N, K]` in target order, sigmoid focal loss (or an RPN's binary cross-entropy) with
//! `label_weights` and `avg_factor`,
//! L1 / smooth-L1 on encoded deltas or GIoU on boxes decoded in the graph, and FCOS's
//! centerness-weighted GIoU and centerness BCE.

use crate::graph::{GraphBuilder, GraphError, NodeId};
use crate::ir::op::IouKind;
use crate::model::config::{
    FcosHeadConfig, IouLossMode, LossConfig, RetinaHeadConfig, RpnHeadConfig,
};
use crate::model::target::AnchorTargetConfig;

/// `[B, A·K, h, w]` per level → `[B·N, K]` in (image, level, location, anchor) order.
fn flatten_levels(
    b: &mut GraphBuilder,
    xs: &[NodeId],
    k: usize,
    batch: usize,
) -> Result<NodeId, GraphError> {
    let mut per = Vec::with_capacity(xs.len());
    for &x in xs {
        let s = b.shape(x).to_vec();
        let y = b.permute(x, &[0, 2, 3, 1])?;
        per.push(b.reshape(y, &[batch, s[2] * s[3] * s[1] / k, k])?);
    }
    let y = if per.len() == 1 {
        per[0]
    } else {
        b.concat(&per, 1)?
    };
    let n = b.shape(y)[1];
    b.reshape(y, &[batch * n, k])
}

/// Column `k` of `[M, 4]` as `[M, 1]`.
fn col(b: &mut GraphBuilder, x: NodeId, k: usize) -> Result<NodeId, GraphError> {
    b.slice(x, 1, k, k + 1)
}

fn focal(
    b: &mut GraphBuilder,
    loss: &LossConfig,
    cls: NodeId,
    m: usize,
    c: usize,
) -> Result<NodeId, GraphError> {
    let LossConfig::FocalLoss {
        gamma,
        alpha,
        loss_weight,
        reduction: red,
        ..
    } = *loss
    else {
        return Err(GraphError::Invalid("loss_cls must be focal_loss".into()));
    };
    let t = b.input("labels_onehot", &[m, c], b.float_dtype())?;
    let w = b.input("label_weights", &[m, 1], b.float_dtype())?;
    let avg = b.input("avg_factor", &[], b.float_dtype())?;
    let lc = b.sigmoid_focal_loss(cls, t, alpha, gamma)?;
    let lc = b.weight_reduce_loss(lc, Some(w), red, Some(avg))?;
    b.scale(lc, loss_weight)
}

pub(super) fn retina_losses(
    b: &mut GraphBuilder,
    h: &RetinaHeadConfig,
    t: &AnchorTargetConfig,
    outs: &[(NodeId, NodeId)],
    batch: usize,
    num_priors: usize,
) -> Result<NodeId, GraphError> {
    let c = h.num_classes;
    let m = batch * num_priors;
    let (cls, reg) = flatten_outputs(b, outs, c, batch)?;
    let loss_cls = focal(b, &h.loss_cls, cls, m, c)?;
    // Declared by `focal`.
    let avg = b.graph().inputs["avg_factor"];
    let loss_bbox = anchor_bbox_loss(b, &h.loss_bbox, t, reg, m, avg)?;
    finish(b, &[("loss_cls", loss_cls), ("loss_bbox", loss_bbox)])
}

/// An RPN's losses (mmdetection's `RPNHead.loss`), named `loss_rpn_cls` and `loss_rpn_bbox`:
/// binary cross-entropy of the objectness and the box loss on the sampled anchors, both
/// averaged by the sampled count.
pub(super) fn rpn_loss_terms(
    b: &mut GraphBuilder,
    h: &RpnHeadConfig,
    t: &AnchorTargetConfig,
    outs: &[(NodeId, NodeId)],
    batch: usize,
    num_priors: usize,
) -> Result<[(&'static str, NodeId); 2], GraphError> {
    let m = batch * num_priors;
    let (cls, reg) = flatten_outputs(b, outs, h.num_classes, batch)?;
    let LossConfig::CrossEntropyLoss {
        use_sigmoid: true,
        reduction,
        loss_weight,
    } = h.loss_cls
    else {
        return Err(GraphError::Invalid(
            "rpn_head.loss_cls must be cross_entropy_loss with use_sigmoid = true".into(),
        ));
    };
    let f = b.float_dtype();
    let target = b.input("labels_onehot", &[m, h.num_classes], f)?;
    let w = b.input("label_weights", &[m, 1], f)?;
    let avg = b.input("avg_factor", &[], f)?;
    let l = b.bce_with_logits(cls, target)?;
    let l = b.weight_reduce_loss(l, Some(w), reduction, Some(avg))?;
    let loss_cls = b.scale(l, loss_weight)?;
    let loss_bbox = anchor_bbox_loss(b, &h.loss_bbox, t, reg, m, avg)?;
    Ok([("loss_rpn_cls", loss_cls), ("loss_rpn_bbox", loss_bbox)])
}

/// Per-level `(cls, reg)` outputs flattened to `[B·N, classes]` and `[B·N, 4]`.
fn flatten_outputs(
    b: &mut GraphBuilder,
    outs: &[(NodeId, NodeId)],
    classes: usize,
    batch: usize,
) -> Result<(NodeId, NodeId), GraphError> {
    let cls_l: Vec<NodeId> = outs.iter().map(|o| o.0).collect();
    let reg_l: Vec<NodeId> = outs.iter().map(|o| o.1).collect();
    Ok((
        flatten_levels(b, &cls_l, classes, batch)?,
        flatten_levels(b, &reg_l, 4, batch)?,
    ))
}

/// The named loss terms as outputs, and their sum as `loss`.
pub(super) fn finish(b: &mut GraphBuilder, terms: &[(&str, NodeId)]) -> Result<NodeId, GraphError> {
    let mut total = terms[0].1;
    for &(_, x) in &terms[1..] {
        total = b.add(total, x)?;
    }
    for &(name, x) in terms {
        b.output(name, x)?;
    }
    b.output("loss", total)?;
    Ok(total)
}

/// An anchor head's box loss on `[M, 4]` deltas with the `bbox_targets`/`bbox_weights` feeds,
/// averaged by `avg`: L1 or smooth L1 on encoded deltas, GIoU on boxes decoded in the graph.
fn anchor_bbox_loss(
    b: &mut GraphBuilder,
    loss: &LossConfig,
    t: &AnchorTargetConfig,
    reg: NodeId,
    m: usize,
    avg: NodeId,
) -> Result<NodeId, GraphError> {
    let f = b.float_dtype();
    let bt = b.input("bbox_targets", &[m, 4], f)?;
    let bw = b.input("bbox_weights", &[m, 4], f)?;
    match *loss {
        LossConfig::L1Loss {
            loss_weight,
            reduction: r,
        } => {
            let l = b.l1_loss(reg, bt)?;
            let l = b.weight_reduce_loss(l, Some(bw), r, Some(avg))?;
            b.scale(l, loss_weight)
        }
        LossConfig::SmoothL1Loss {
            beta,
            loss_weight,
            reduction: r,
        } => {
            let l = b.smooth_l1_loss(reg, bt, beta)?;
            let l = b.weight_reduce_loss(l, Some(bw), r, Some(avg))?;
            b.scale(l, loss_weight)
        }
        LossConfig::GiouLoss {
            eps,
            loss_weight,
            reduction: r,
        } => {
            let anchors = b.input("anchors", &[m, 4], f)?;
            let pred = delta_to_boxes(b, &t.bbox_coder, anchors, reg)?;
            let l = b.iou_loss(pred, bt, IouKind::GIoU, eps)?;
            // mmdetection averages a [M, 4] weight over the coordinates for IoU losses.
            let w = b.mean(bw, &[1], false)?;
            let l = b.weight_reduce_loss(l, Some(w), r, Some(avg))?;
            b.scale(l, loss_weight)
        }
        _ => Err(GraphError::Invalid("unsupported loss_bbox".into())),
    }
}

/// mmdetection's `delta2bbox` without clipping, on `[M, 4]` anchors and deltas.
fn delta_to_boxes(
    b: &mut GraphBuilder,
    coder: &crate::model::boxes::DeltaXYWHBBoxCoder,
    anchors: NodeId,
    deltas: NodeId,
) -> Result<NodeId, GraphError> {
    let mut d = Vec::with_capacity(4);
    for k in 0..4 {
        let x = col(b, deltas, k)?;
        let x = b.scale(x, coder.target_stds[k])?;
        d.push(b.add_scalar(x, coder.target_means[k])?);
    }
    let max_ratio = crate::model::boxes::DEFAULT_WH_RATIO_CLIP.ln().abs();
    let a: Vec<NodeId> = (0..4)
        .map(|k| col(b, anchors, k))
        .collect::<Result<_, _>>()?;
    let sum_x = b.add(a[0], a[2])?;
    let px = b.scale(sum_x, 0.5)?;
    let sum_y = b.add(a[1], a[3])?;
    let py = b.scale(sum_y, 0.5)?;
    let pw = b.sub(a[2], a[0])?;
    let ph = b.sub(a[3], a[1])?;
    let dxw = b.mul(pw, d[0])?;
    let gx = b.add(px, dxw)?;
    let dyh = b.mul(ph, d[1])?;
    let gy = b.add(py, dyh)?;
    let dw = b.clamp(d[2], -max_ratio, max_ratio)?;
    let dh = b.clamp(d[3], -max_ratio, max_ratio)?;
    let ew = b.exp(dw)?;
    let gw = b.mul(pw, ew)?;
    let eh = b.exp(dh)?;
    let gh = b.mul(ph, eh)?;
    let hw = b.scale(gw, 0.5)?;
    let hh = b.scale(gh, 0.5)?;
    let x1 = b.sub(gx, hw)?;
    let y1 = b.sub(gy, hh)?;
    let x2 = b.add(gx, hw)?;
    let y2 = b.add(gy, hh)?;
    b.concat(&[x1, y1, x2, y2], 1)
}

/// mmdetection's `distance2bbox` on `[M, 2]` points and `[M, 4]` distances.
fn distance_to_boxes(
    b: &mut GraphBuilder,
    points: NodeId,
    dist: NodeId,
) -> Result<NodeId, GraphError> {
    let px = col(b, points, 0)?;
    let py = col(b, points, 1)?;
    let d: Vec<NodeId> = (0..4).map(|k| col(b, dist, k)).collect::<Result<_, _>>()?;
    let x1 = b.sub(px, d[0])?;
    let y1 = b.sub(py, d[1])?;
    let x2 = b.add(px, d[2])?;
    let y2 = b.add(py, d[3])?;
    b.concat(&[x1, y1, x2, y2], 1)
}

pub(super) fn fcos_losses(
    b: &mut GraphBuilder,
    h: &FcosHeadConfig,
    outs: &[super::fcos_head::FcosLevel],
    batch: usize,
    num_priors: usize,
) -> Result<NodeId, GraphError> {
    let c = h.num_classes;
    let m = batch * num_priors;
    let f = b.float_dtype();
    let cls_l: Vec<NodeId> = outs.iter().map(|o| o.cls).collect();
    let reg_l: Vec<NodeId> = outs.iter().map(|o| o.reg).collect();
    let ctr_l: Vec<NodeId> = outs.iter().map(|o| o.centerness).collect();
    let cls = flatten_levels(b, &cls_l, c, batch)?;
    let reg = flatten_levels(b, &reg_l, 4, batch)?;
    let ctr = flatten_levels(b, &ctr_l, 1, batch)?;
    let loss_cls = focal(b, &h.loss_cls, cls, m, c)?;
    let avg = b.graph().inputs["avg_factor"];
    let bt = b.input("bbox_targets", &[m, 4], f)?;
    let points = b.input("points", &[m, 2], f)?;
    let ctr_t = b.input("centerness_targets", &[m, 1], f)?;
    let bbox_avg = b.input("bbox_avg_factor", &[], f)?;
    let bw = b.input("bbox_weights", &[m, 4], f)?;
    let pred = distance_to_boxes(b, points, reg)?;
    let tgt = distance_to_boxes(b, points, bt)?;
    let (l, loss_weight, r) = match h.loss_bbox {
        LossConfig::GiouLoss {
            eps,
            loss_weight,
            reduction,
        } => (
            b.iou_loss(pred, tgt, IouKind::GIoU, eps)?,
            loss_weight,
            reduction,
        ),
        LossConfig::IouLoss {
            mode,
            eps,
            loss_weight,
            reduction,
        } => (
            iou_loss_mmdet(b, pred, tgt, mode, eps)?,
            loss_weight,
            reduction,
        ),
        _ => {
            return Err(GraphError::Invalid(
                "model.bbox_head.loss_bbox: fcos_head needs giou_loss or iou_loss".into(),
            ));
        }
    };
    // Weight: the centerness target of each positive (0 elsewhere), averaged by its sum.
    let w = b.reshape(ctr_t, &[m])?;
    let l = b.weight_reduce_loss(l, Some(w), r, Some(bbox_avg))?;
    let loss_bbox = b.scale(l, loss_weight)?;
    let LossConfig::CrossEntropyLoss {
        loss_weight: cw,
        reduction: cr,
        ..
    } = h.loss_centerness
    else {
        return Err(GraphError::Invalid(
            "fcos loss_centerness must be cross_entropy_loss".into(),
        ));
    };
    let lc = b.bce_with_logits(ctr, ctr_t)?;
    let pos = col(b, bw, 0)?;
    let lc = b.weight_reduce_loss(lc, Some(pos), cr, Some(avg))?;
    let loss_ctr = b.scale(lc, cw)?;
    finish(
        b,
        &[
            ("loss_cls", loss_cls),
            ("loss_bbox", loss_bbox),
            ("loss_centerness", loss_ctr),
        ],
    )
}

/// mmdetection's `IoULoss`: `ious = bbox_overlaps(pred, target, is_aligned).clamp(min=eps)`,
/// then `1 - ious` (linear), `1 - ious²` (square) or `-ln(ious)` (log, the default). The
/// overlaps use `bbox_overlaps`' own eps (1e-6), as mmdetection does.
fn iou_loss_mmdet(
    b: &mut GraphBuilder,
    pred: NodeId,
    target: NodeId,
    mode: IouLossMode,
    eps: f64,
) -> Result<NodeId, GraphError> {
    let one_minus_iou = b.iou_loss(pred, target, IouKind::IoU, 1e-6)?;
    let iou = b.scale(one_minus_iou, -1.0)?;
    let iou = b.add_scalar(iou, 1.0)?;
    let iou = b.clamp(iou, eps, f64::INFINITY)?;
    match mode {
        IouLossMode::Linear => {
            let neg = b.scale(iou, -1.0)?;
            b.add_scalar(neg, 1.0)
        }
        IouLossMode::Square => {
            let sq = b.mul(iou, iou)?;
            let neg = b.scale(sq, -1.0)?;
            b.add_scalar(neg, 1.0)
        }
        IouLossMode::Log => {
            let ln = b.log(iou)?;
            b.scale(ln, -1.0)
        }
    }
}
