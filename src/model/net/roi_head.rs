//! mmdetection's `StandardRoIHead` box branch on the graph: `SingleRoIExtractor` (RoIAlign
//! per level; each RoI's level chosen on the host, so every level is pooled and masked, which
//! keeps shapes static and sends gradients only to the chosen level) and `Shared2FCBBoxHead`
//! (two fully connected layers with ReLU, then `fc_cls` over `num_classes + 1` and `fc_reg`),
//! with its losses: softmax cross-entropy and L1 on the positives' deltas of their class.

use super::layers::Layers;
use crate::graph::{GraphError, Init, NodeId};
use crate::ir::DType;
use crate::ir::op::RoiAlignAttrs;
use crate::model::config::{
    BBoxHeadConfig, LossConfig, RoiExtractorConfig, RoiLayerConfig, StandardRoiHeadConfig,
};

/// The second stage's feed names.
pub const ROIS: &str = "rois";
pub const ROI_LEVEL_MASKS: &str = "roi_level_masks";
pub const RCNN_LABELS: &str = "rcnn_labels";
pub const RCNN_LABEL_WEIGHTS: &str = "rcnn_label_weights";
pub const RCNN_CLS_AVG: &str = "rcnn_cls_avg_factor";
pub const RCNN_BBOX_TARGETS: &str = "rcnn_bbox_targets";
pub const RCNN_BBOX_WEIGHTS: &str = "rcnn_bbox_weights";
pub const RCNN_BBOX_AVG: &str = "rcnn_bbox_avg_factor";
/// The second stage's outputs in an eval graph.
pub const RCNN_CLS: &str = "rcnn_cls_score";
pub const RCNN_REG: &str = "rcnn_bbox_pred";

/// Levels the extractor pools from (its `featmap_strides`).
pub fn extractor_levels(cfg: &StandardRoiHeadConfig) -> usize {
    let RoiExtractorConfig::SingleRoiExtractor(e) = &cfg.bbox_roi_extractor;
    e.featmap_strides.len()
}

/// `(cls [R, C+1], reg [R, 4C or 4])` of `r` RoIs over the first levels of `feats`, the RoIs
/// and their level masks declared as feeds.
pub fn build_roi_head(
    l: &mut Layers<'_>,
    cfg: &StandardRoiHeadConfig,
    feats: &[NodeId],
    r: usize,
) -> Result<(NodeId, NodeId), GraphError> {
    let RoiExtractorConfig::SingleRoiExtractor(e) = &cfg.bbox_roi_extractor;
    let RoiLayerConfig::RoiAlign(ra) = &e.roi_layer;
    let BBoxHeadConfig::Shared2fcBboxHead(h) = &cfg.bbox_head;
    let levels = e.featmap_strides.len();
    if feats.len() < levels {
        return Err(GraphError::Invalid(format!(
            "roi_head: {levels} featmap_strides but the neck gives {} levels",
            feats.len()
        )));
    }
    let f = l.b.float_dtype();
    let rois = l.b.input(ROIS, &[r, 5], f)?;
    let masks = l.b.input(ROI_LEVEL_MASKS, &[r, levels], f)?;
    l.b.push_scope("roi_head");
    let mut pooled = None;
    for (i, (&x, &stride)) in feats.iter().zip(&e.featmap_strides).enumerate() {
        let attrs = RoiAlignAttrs {
            output: [ra.output_size; 2],
            spatial_scale: 1.0 / stride as f64,
            sampling_ratio: ra.sampling_ratio,
            aligned: ra.aligned,
        };
        let y = l.b.roi_align(x, rois, attrs)?;
        let m = l.b.slice(masks, 1, i, i + 1)?;
        let m = l.b.reshape(m, &[r, 1, 1, 1])?;
        let y = l.b.mul(y, m)?;
        pooled = Some(match pooled {
            None => y,
            Some(p) => l.b.add(p, y)?,
        });
    }
    let pooled = pooled.expect("at least one level");
    let c = l.b.shape(pooled)[1];
    if c != e.out_channels || c != h.in_channels || ra.output_size != h.roi_feat_size {
        return Err(GraphError::Invalid(format!(
            "roi_head: pooled features are {c}×{s}×{s} but the extractor's out_channels is {} and the bbox head takes {}×{t}×{t}",
            e.out_channels,
            h.in_channels,
            s = ra.output_size,
            t = h.roi_feat_size
        )));
    }
    let x =
        l.b.reshape(pooled, &[r, c * ra.output_size * ra.output_size])?;
    let p = "roi_head.bbox_head";
    let xavier = Init::XavierUniform { gain: 1.0 };
    let x = linear(
        l,
        &format!("{p}.shared_fcs.0"),
        x,
        h.fc_out_channels,
        xavier.clone(),
    )?;
    let x = l.b.relu(x)?;
    let x = linear(
        l,
        &format!("{p}.shared_fcs.1"),
        x,
        h.fc_out_channels,
        xavier,
    )?;
    let x = l.b.relu(x)?;
    let normal = |std| Init::Normal { mean: 0.0, std };
    let cls = linear(
        l,
        &format!("{p}.fc_cls"),
        x,
        h.num_classes + 1,
        normal(0.01),
    )?;
    let reg_out = if h.reg_class_agnostic {
        4
    } else {
        4 * h.num_classes
    };
    let reg = linear(l, &format!("{p}.fc_reg"), x, reg_out, normal(0.001))?;
    l.b.pop_scope();
    Ok((cls, reg))
}

/// `nn.Linear`: `x · wᵀ + b`, the weight `[out, in]` initialised by `init`, the bias 0.
fn linear(
    l: &mut Layers<'_>,
    name: &str,
    x: NodeId,
    out: usize,
    init: Init,
) -> Result<NodeId, GraphError> {
    let inp = l.b.shape(x)[1];
    let w = l.param(&format!("{name}.weight"), &[out, inp], init, false)?;
    let b = l.param(&format!("{name}.bias"), &[out], Init::Constant(0.0), false)?;
    let y = l.b.matmul_t(x, w, false, true)?;
    l.b.add(y, b)
}

/// The box head's losses (`BBoxHead.loss`): cross-entropy over the sampled RoIs, averaged by
/// the count with a positive label weight; L1 on the deltas of each positive's class (its
/// columns picked by the weights), averaged by the number of sampled RoIs.
pub fn rcnn_losses(
    l: &mut Layers<'_>,
    cfg: &StandardRoiHeadConfig,
    cls: NodeId,
    reg: NodeId,
) -> Result<(NodeId, NodeId), GraphError> {
    let BBoxHeadConfig::Shared2fcBboxHead(h) = &cfg.bbox_head;
    let b = &mut *l.b;
    let f = b.float_dtype();
    let (r, k) = (b.shape(reg)[0], b.shape(reg)[1]);
    let labels = b.input(RCNN_LABELS, &[r], DType::I32)?;
    let lw = b.input(RCNN_LABEL_WEIGHTS, &[r], f)?;
    let cls_avg = b.input(RCNN_CLS_AVG, &[], f)?;
    let LossConfig::CrossEntropyLoss {
        use_sigmoid: false,
        reduction,
        loss_weight,
    } = h.loss_cls
    else {
        return Err(GraphError::Invalid(
            "roi_head.bbox_head.loss_cls must be cross_entropy_loss (softmax)".into(),
        ));
    };
    let lc = b.cross_entropy(cls, labels, -100, 0.0)?;
    let lc = b.weight_reduce_loss(lc, Some(lw), reduction, Some(cls_avg))?;
    let loss_cls = b.scale(lc, loss_weight)?;
    let bt = b.input(RCNN_BBOX_TARGETS, &[r, k], f)?;
    let bw = b.input(RCNN_BBOX_WEIGHTS, &[r, k], f)?;
    let bbox_avg = b.input(RCNN_BBOX_AVG, &[], f)?;
    let (lb, reduction, loss_weight) = match h.loss_bbox {
        LossConfig::L1Loss {
            reduction,
            loss_weight,
        } => (b.l1_loss(reg, bt)?, reduction, loss_weight),
        LossConfig::SmoothL1Loss {
            beta,
            reduction,
            loss_weight,
        } => (b.smooth_l1_loss(reg, bt, beta)?, reduction, loss_weight),
        _ => {
            return Err(GraphError::Invalid(
                "roi_head.bbox_head.loss_bbox must be l1_loss or smooth_l1_loss".into(),
            ));
        }
    };
    let lb = b.weight_reduce_loss(lb, Some(bw), reduction, Some(bbox_avg))?;
    let loss_bbox = b.scale(lb, loss_weight)?;
    Ok((loss_cls, loss_bbox))
}
