//! The second stage of a two-stage detector, typed as mmdetection 2.28 configures Faster
//! R-CNN (`configs/_base_/models/faster_rcnn_r50_fpn.py`): the RoI head with its extractor
//! and box head, and the `rpn_proposal` / `rcnn` stages of `train_cfg` and `test_cfg`.

use super::{
    AssignerConfig, BoxCoderConfig, BoxSamplerConfig, LossConfig, ProposalTestConfig,
    SampledTrainConfig,
};
use crate::model::postprocess::NmsConfig;
use serde::{Deserialize, Serialize};

/// `roi_head = standard_roi_head { .. }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoiHeadConfig {
    StandardRoiHead(StandardRoiHeadConfig),
}

/// mmdetection's `StandardRoIHead` (boxes only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardRoiHeadConfig {
    pub bbox_roi_extractor: RoiExtractorConfig,
    pub bbox_head: BBoxHeadConfig,
}

/// `bbox_roi_extractor = single_roi_extractor { .. }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoiExtractorConfig {
    SingleRoiExtractor(SingleRoiExtractorConfig),
}

/// mmdetection's `SingleRoIExtractor`: each RoI pooled from one level, chosen by its scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleRoiExtractorConfig {
    pub roi_layer: RoiLayerConfig,
    pub out_channels: usize,
    pub featmap_strides: Vec<usize>,
    pub finest_scale: f64,
}

/// `roi_layer = roi_align { .. }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoiLayerConfig {
    RoiAlign(RoiAlignConfig),
}

/// mmcv's `RoIAlign` settings (average pooling).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoiAlignConfig {
    pub output_size: usize,
    pub sampling_ratio: usize,
    pub aligned: bool,
}

/// `bbox_head = shared2fc_bbox_head { .. }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BBoxHeadConfig {
    Shared2fcBboxHead(Shared2FcConfig),
}

/// mmdetection's `Shared2FCBBoxHead`: two shared fully connected layers, then a softmax
/// classifier over `num_classes + 1` and class-specific (or agnostic) deltas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shared2FcConfig {
    pub in_channels: usize,
    pub fc_out_channels: usize,
    pub roi_feat_size: usize,
    pub num_classes: usize,
    pub bbox_coder: BoxCoderConfig,
    pub reg_class_agnostic: bool,
    pub loss_cls: LossConfig,
    pub loss_bbox: LossConfig,
}

/// Faster R-CNN's `train_cfg`: the RPN's targets, its proposals for the second stage, and
/// the second stage's sampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoStageTrainConfig {
    pub rpn: SampledTrainConfig,
    pub rpn_proposal: ProposalTestConfig,
    pub rcnn: RcnnTrainConfig,
}

/// `train_cfg.rcnn`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcnnTrainConfig {
    pub assigner: AssignerConfig,
    pub sampler: BoxSamplerConfig,
    pub pos_weight: f64,
    pub debug: bool,
}

/// Faster R-CNN's `test_cfg`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoStageTestConfig {
    pub rpn: ProposalTestConfig,
    pub rcnn: RcnnTestConfig,
}

/// `test_cfg.rcnn`: mmdetection's `multiclass_nms` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcnnTestConfig {
    pub score_thr: f64,
    pub nms: NmsConfig,
    pub max_per_img: usize,
}
