//! The checks a dense head's config passes before its targets are built (channels and levels
//! against the neck, coder, losses, anchors), the `train_cfg` flags mmrun cannot honour, and an
//! RPN's target settings.

use crate::model::anchor::AnchorGenerator;
use crate::model::config::{
    BoxCoderConfig, BoxSamplerConfig, DetectorConfig, FpnConfig, LossConfig, ModelConfigError,
    Reduction, RpnHeadConfig, SampledTrainConfig,
};
use crate::model::target::{AnchorTargetConfig, TargetBuilder};
use std::sync::Arc;

/// An RPN's targets: the head's anchors, `train_cfg.rpn`'s assigner and random sampler, every
/// positive class 0 (objectness). `keep_gt`: the class count of a second stage, for which each
/// image's targets keep its ground truth.
pub(super) fn rpn_targets(
    train: &SampledTrainConfig,
    h: &RpnHeadConfig,
    neck: &FpnConfig,
    keep_gt: Option<usize>,
) -> Result<TargetBuilder, ModelConfigError> {
    let anchor_gen = AnchorGenerator::new(h.anchors())
        .map_err(|e| ModelConfigError::at("rpn_head.anchor_generator", e.to_string()))?;
    check_head_common(
        "rpn_head",
        h.in_channels,
        neck.out_channels,
        anchor_gen.num_levels(),
        neck.num_outs,
    )?;
    check_same_anchor_count(&anchor_gen, "rpn_head")?;
    let coder = delta_coder(&h.bbox_coder, "rpn_head", "rpn_head")?;
    if h.num_classes != 1 {
        return Err(ModelConfigError::at(
            "rpn_head.num_classes",
            format!(
                "{} but an RPN scores objectness: 1 (mmdetection's RPNHead fixes it)",
                h.num_classes
            ),
        ));
    }
    if !matches!(
        h.loss_cls,
        LossConfig::CrossEntropyLoss {
            use_sigmoid: true,
            reduction: Reduction::Mean,
            ..
        }
    ) {
        return Err(ModelConfigError::at(
            "rpn_head.loss_cls",
            "needs cross_entropy_loss with use_sigmoid = true and reduction = mean",
        ));
    }
    if !matches!(
        h.loss_bbox,
        LossConfig::L1Loss {
            reduction: Reduction::Mean,
            ..
        } | LossConfig::SmoothL1Loss {
            reduction: Reduction::Mean,
            ..
        }
    ) {
        return Err(ModelConfigError::at(
            "rpn_head.loss_bbox",
            "needs l1_loss or smooth_l1_loss with reduction = mean",
        ));
    }
    let BoxSamplerConfig::Random(sampler) = &train.sampler;
    if sampler.add_gt_as_proposals {
        return Err(ModelConfigError::at(
            "train_cfg.rpn.sampler.add_gt_as_proposals",
            "an RPN samples its anchors: ground truth cannot be added as proposals here",
        ));
    }
    if sampler.num == 0 || !(0.0..=1.0).contains(&sampler.pos_fraction) {
        return Err(ModelConfigError::at(
            "train_cfg.rpn.sampler",
            "needs num >= 1 and pos_fraction in [0, 1]",
        ));
    }
    Ok(TargetBuilder::Anchor(Arc::new(AnchorTargetConfig {
        num_classes: 1,
        anchor_generator: anchor_gen,
        assigner: train.assigner.clone(),
        bbox_coder: coder,
        allowed_border: train.allowed_border as f64,
        pos_weight: train.pos_weight,
        reg_decoded_bbox: false,
        sampler: Some(sampler.clone()),
        class_agnostic: true,
        keep_gt,
    })))
}

/// The delta coder an anchor head needs.
pub(super) fn delta_coder(
    coder: &BoxCoderConfig,
    head: &str,
    head_type: &str,
) -> Result<crate::model::boxes::DeltaXYWHBBoxCoder, ModelConfigError> {
    match coder {
        BoxCoderConfig::DeltaXywh(c) => Ok(c.clone()),
        _ => Err(ModelConfigError::at(
            format!("{head}.bbox_coder"),
            format!("{head_type} needs delta_xywh"),
        )),
    }
}

pub(super) fn check_same_anchor_count(
    a: &AnchorGenerator,
    head: &str,
) -> Result<(), ModelConfigError> {
    if a.num_base_anchors().windows(2).any(|w| w[0] != w[1]) {
        return Err(ModelConfigError::at(
            format!("{head}.anchor_generator"),
            "every level needs the same number of anchors",
        ));
    }
    Ok(())
}

pub(super) fn check_head_common(
    head: &str,
    in_ch: usize,
    neck_out: usize,
    levels: usize,
    num_outs: usize,
) -> Result<(), ModelConfigError> {
    if in_ch != neck_out {
        return Err(ModelConfigError::at(
            format!("{head}.in_channels"),
            format!("{in_ch} but the neck's out_channels is {neck_out}"),
        ));
    }
    if levels != num_outs {
        return Err(ModelConfigError::at(
            head,
            format!("{levels} head levels (strides) for the neck's {num_outs} outputs"),
        ));
    }
    Ok(())
}

pub(super) fn check_cls_loss(l: &LossConfig) -> Result<(), ModelConfigError> {
    match l {
        LossConfig::FocalLoss {
            use_sigmoid: true,
            reduction: Reduction::Mean,
            ..
        } => Ok(()),
        _ => Err(ModelConfigError::at(
            "bbox_head.loss_cls",
            "needs focal_loss with use_sigmoid = true and reduction = mean",
        )),
    }
}

pub(super) fn check_bbox_loss(l: &LossConfig, path: &str) -> Result<(), ModelConfigError> {
    match l {
        LossConfig::L1Loss {
            reduction: Reduction::Mean,
            ..
        }
        | LossConfig::SmoothL1Loss {
            reduction: Reduction::Mean,
            ..
        }
        | LossConfig::GiouLoss {
            reduction: Reduction::Mean,
            ..
        } => Ok(()),
        _ => Err(ModelConfigError::at(
            path,
            "needs l1_loss, smooth_l1_loss or giou_loss with reduction = mean",
        )),
    }
}

/// `train_cfg`'s `debug` (mmdetection keeps copies of the input images for inspection when it
/// is set) has no counterpart here: `true` is refused rather than ignored.
pub(super) fn check_no_debug(cfg: &DetectorConfig) -> Result<(), ModelConfigError> {
    let flags: Vec<(&str, bool)> = match cfg {
        DetectorConfig::Retinanet(p) | DetectorConfig::Fcos(p) => {
            vec![("train_cfg.debug", p.train_cfg.debug)]
        }
        DetectorConfig::Rpn(p) => vec![("train_cfg.rpn.debug", p.train_cfg.rpn.debug)],
        DetectorConfig::FasterRcnn(p) => vec![
            ("train_cfg.rpn.debug", p.train_cfg.rpn.debug),
            ("train_cfg.rcnn.debug", p.train_cfg.rcnn.debug),
        ],
    };
    match flags.into_iter().find(|&(_, on)| on) {
        Some((path, _)) => Err(ModelConfigError::at(
            path,
            "mmdetection's debug mode (input images kept for inspection) has no counterpart in mmrun: set false",
        )),
        None => Ok(()),
    }
}
