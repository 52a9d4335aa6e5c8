//! Typed model config, deserialized from the checked recipe's `model` section (see
//! `docs/ARCHITECTURE.md`: components are objects with `"type"` and every parameter, names as
//! in mmdetection and in `registry::model`).

mod roi;

pub use roi::{
    BBoxHeadConfig, RcnnTestConfig, RcnnTrainConfig, RoiAlignConfig, RoiExtractorConfig,
    RoiHeadConfig, RoiLayerConfig, Shared2FcConfig, SingleRoiExtractorConfig,
    StandardRoiHeadConfig, TwoStageTestConfig, TwoStageTrainConfig,
};

use super::anchor::AnchorGeneratorConfig;
pub use super::assign::AssignerConfig;
use super::boxes::{DeltaXYWHBBoxCoder, DistancePointBBoxCoder};
use super::postprocess::{NmsConfig, TestConfig};
use super::proposals::ProposalConfig;
pub use crate::graph::Reduction;
use serde::{Deserialize, Serialize};

/// `model = retinanet { .. }`, `fcos { .. }` or `rpn { .. }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DetectorConfig {
    Retinanet(DetectorParts),
    Fcos(DetectorParts),
    /// A region proposal network on its own (mmdetection's `RPN`): proposals, no classes.
    Rpn(RpnParts),
    /// Two stages: an RPN, then RoI features classified and refined (mmdetection's
    /// `FasterRCNN`).
    FasterRcnn(Box<FasterRcnnParts>),
}

impl DetectorConfig {
    /// The recipe's name of the detector type.
    pub fn type_name(&self) -> &'static str {
        match self {
            DetectorConfig::Retinanet(_) => "retinanet",
            DetectorConfig::Fcos(_) => "fcos",
            DetectorConfig::Rpn(_) => "rpn",
            DetectorConfig::FasterRcnn(_) => "faster_rcnn",
        }
    }

    pub fn backbone(&self) -> &BackboneConfig {
        match self {
            DetectorConfig::Retinanet(p) | DetectorConfig::Fcos(p) => &p.backbone,
            DetectorConfig::Rpn(p) => &p.backbone,
            DetectorConfig::FasterRcnn(p) => &p.backbone,
        }
    }

    pub fn neck(&self) -> &NeckConfig {
        match self {
            DetectorConfig::Retinanet(p) | DetectorConfig::Fcos(p) => &p.neck,
            DetectorConfig::Rpn(p) => &p.neck,
            DetectorConfig::FasterRcnn(p) => &p.neck,
        }
    }

    /// The dense head (`bbox_head`, or the `rpn_head` of an RPN or a two-stage detector).
    pub fn head(&self) -> &HeadConfig {
        match self {
            DetectorConfig::Retinanet(p) | DetectorConfig::Fcos(p) => &p.bbox_head,
            DetectorConfig::Rpn(p) => &p.rpn_head,
            DetectorConfig::FasterRcnn(p) => &p.rpn_head,
        }
    }

    /// Whether the detector outputs class-agnostic proposals rather than detections.
    pub fn is_proposal_net(&self) -> bool {
        matches!(self, DetectorConfig::Rpn(_))
    }
}

/// mmdetection's `RPN`: backbone, neck, `rpn_head`, and the `rpn` stages of `train_cfg` and
/// `test_cfg` (nested as mmdetection nests them, so Faster R-CNN's stages sit beside them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpnParts {
    pub backbone: BackboneConfig,
    pub neck: NeckConfig,
    pub rpn_head: HeadConfig,
    pub train_cfg: RpnTrainConfig,
    pub test_cfg: RpnTestConfig,
}

/// mmdetection's `FasterRCNN`: backbone, neck, `rpn_head`, `roi_head`, and the stages of
/// `train_cfg` and `test_cfg`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FasterRcnnParts {
    pub backbone: BackboneConfig,
    pub neck: NeckConfig,
    pub rpn_head: HeadConfig,
    pub roi_head: RoiHeadConfig,
    pub train_cfg: TwoStageTrainConfig,
    pub test_cfg: TwoStageTestConfig,
}

/// `train_cfg = { rpn = { .. } }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpnTrainConfig {
    pub rpn: SampledTrainConfig,
}

/// A head's training-time assignment with a sampler (mmdetection's `train_cfg.rpn`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampledTrainConfig {
    pub assigner: AssignerConfig,
    pub sampler: BoxSamplerConfig,
    pub allowed_border: i64,
    pub pos_weight: f64,
    pub debug: bool,
}

/// `test_cfg = { rpn = { .. } }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpnTestConfig {
    pub rpn: ProposalTestConfig,
}

/// How proposals are made at test time (mmdetection's `test_cfg.rpn`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalTestConfig {
    pub nms_pre: usize,
    pub max_per_img: usize,
    pub nms: NmsConfig,
    pub min_bbox_size: f64,
}

impl ProposalTestConfig {
    pub fn proposals(&self) -> ProposalConfig {
        ProposalConfig {
            nms_pre: self.nms_pre,
            min_bbox_size: self.min_bbox_size,
            iou_threshold: self.nms.iou_threshold,
            max_per_img: self.max_per_img,
        }
    }
}

/// Samplers of assigned priors by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BoxSamplerConfig {
    Random(RandomSamplerConfig),
}

/// mmdetection's `RandomSampler`: at most `num · pos_fraction` positives drawn at random, the
/// rest of `num` from the negatives (at most `neg_pos_ub` per positive when `>= 0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSamplerConfig {
    pub num: usize,
    pub pos_fraction: f64,
    pub neg_pos_ub: f64,
    pub add_gt_as_proposals: bool,
}

/// Backbone, neck, head and the train/test settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorParts {
    pub backbone: BackboneConfig,
    pub neck: NeckConfig,
    pub bbox_head: HeadConfig,
    pub train_cfg: TrainConfig,
    pub test_cfg: TestConfig,
}

/// `train_cfg`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub assigner: AssignerConfig,
    pub allowed_border: i64,
    pub pos_weight: f64,
    pub debug: bool,
}

/// Backbones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackboneConfig {
    Resnet(ResNetConfig),
}

/// mmdetection's `ResNet` parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    pub depth: usize,
    pub in_channels: usize,
    pub base_channels: usize,
    pub num_stages: usize,
    pub out_indices: Vec<usize>,
    pub strides: Vec<usize>,
    pub style: ResNetStyle,
    pub frozen_stages: i64,
    pub norm_cfg: Option<NormConfig>,
    pub norm_eval: bool,
    pub zero_init_residual: bool,
    pub init_cfg: Option<InitConfig>,
}

/// Where the stride-2 conv of a bottleneck sits: `pytorch` on the 3×3, `caffe` on the first 1×1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResNetStyle {
    #[default]
    Pytorch,
    Caffe,
}

/// Normalisation layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NormConfig {
    BatchNorm {
        requires_grad: bool,
        eps: f64,
        momentum: f64,
    },
    GroupNorm {
        num_groups: usize,
        requires_grad: bool,
        eps: f64,
    },
    /// Batch norm whose batch statistics span every rank of a data-parallel run (mmdetection's
    /// `SyncBN`); plain batch norm in one process, as PyTorch's `SyncBatchNorm`.
    SyncBatchNorm {
        requires_grad: bool,
        eps: f64,
        momentum: f64,
    },
}

/// `init_cfg = pretrained("file")` (also `runtime.load_from = pretrained { … }`); loaded by
/// the rule `crate::model::weights::sources` makes of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InitConfig {
    Pretrained {
        checkpoint: String,
        prefix: Option<String>,
        strict: bool,
        skip: Vec<String>,
    },
}

/// Necks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NeckConfig {
    Fpn(FpnConfig),
}

/// Source of FPN's extra levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraConvs {
    /// Max-pool (stride 2, kernel 1) of the last output.
    #[default]
    None,
    OnInput,
    OnLateral,
    OnOutput,
}

/// mmdetection's `FPN` parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpnConfig {
    pub in_channels: Vec<usize>,
    pub out_channels: usize,
    pub num_outs: usize,
    pub start_level: usize,
    pub end_level: i64,
    pub add_extra_convs: ExtraConvs,
    pub relu_before_extra_convs: bool,
    pub norm_cfg: Option<NormConfig>,
}

/// Dense heads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HeadConfig {
    RetinaHead(RetinaHeadConfig),
    FcosHead(FcosHeadConfig),
    RpnHead(RpnHeadConfig),
}

/// mmdetection's `RPNHead` parameters (one 3×3 conv, then 1×1 objectness and deltas).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpnHeadConfig {
    pub num_classes: usize,
    pub in_channels: usize,
    pub feat_channels: usize,
    pub anchor_generator: AnchorGeneratorSpec,
    pub bbox_coder: BoxCoderConfig,
    pub loss_cls: LossConfig,
    pub loss_bbox: LossConfig,
}

impl RpnHeadConfig {
    /// The anchor generator config.
    pub fn anchors(&self) -> &AnchorGeneratorConfig {
        let AnchorGeneratorSpec::AnchorGenerator(a) = &self.anchor_generator;
        a
    }
}

/// `anchor_generator = anchor_generator { .. }` (the one anchor generator type).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnchorGeneratorSpec {
    AnchorGenerator(AnchorGeneratorConfig),
}

/// Box coders by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BoxCoderConfig {
    DeltaXywh(DeltaXYWHBBoxCoder),
    DistancePoint(DistancePointBBoxCoder),
}

/// Losses by `type` (mmdetection names and parameters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LossConfig {
    FocalLoss {
        use_sigmoid: bool,
        gamma: f64,
        alpha: f64,
        reduction: Reduction,
        loss_weight: f64,
    },
    CrossEntropyLoss {
        use_sigmoid: bool,
        reduction: Reduction,
        loss_weight: f64,
    },
    L1Loss {
        reduction: Reduction,
        loss_weight: f64,
    },
    SmoothL1Loss {
        beta: f64,
        reduction: Reduction,
        loss_weight: f64,
    },
    GiouLoss {
        eps: f64,
        reduction: Reduction,
        loss_weight: f64,
    },
    IouLoss {
        mode: IouLossMode,
        eps: f64,
        reduction: Reduction,
        loss_weight: f64,
    },
}

impl LossConfig {
    /// The loss's `loss_weight`.
    pub fn loss_weight(&self) -> f64 {
        match self {
            LossConfig::FocalLoss { loss_weight, .. }
            | LossConfig::CrossEntropyLoss { loss_weight, .. }
            | LossConfig::L1Loss { loss_weight, .. }
            | LossConfig::SmoothL1Loss { loss_weight, .. }
            | LossConfig::GiouLoss { loss_weight, .. }
            | LossConfig::IouLoss { loss_weight, .. } => *loss_weight,
        }
    }

    /// Whether the loss compares decoded boxes (IoU family) rather than encoded targets.
    pub fn on_decoded_boxes(&self) -> bool {
        matches!(
            self,
            LossConfig::GiouLoss { .. } | LossConfig::IouLoss { .. }
        )
    }
}

/// `IoULoss.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IouLossMode {
    Linear,
    Square,
    #[default]
    Log,
}

/// mmdetection's `RetinaHead` parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetinaHeadConfig {
    pub num_classes: usize,
    pub in_channels: usize,
    pub stacked_convs: usize,
    pub feat_channels: usize,
    pub anchor_generator: AnchorGeneratorSpec,
    pub bbox_coder: BoxCoderConfig,
    pub loss_cls: LossConfig,
    pub loss_bbox: LossConfig,
    pub norm_cfg: Option<NormConfig>,
}

impl RetinaHeadConfig {
    /// The anchor generator config.
    pub fn anchors(&self) -> &AnchorGeneratorConfig {
        let AnchorGeneratorSpec::AnchorGenerator(a) = &self.anchor_generator;
        a
    }
}

/// mmdetection's `FCOSHead` parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcosHeadConfig {
    pub num_classes: usize,
    pub in_channels: usize,
    pub stacked_convs: usize,
    pub feat_channels: usize,
    pub strides: Vec<usize>,
    /// `null` means mmdetection's `((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))`.
    pub regress_ranges: Option<Vec<Vec<i64>>>,
    pub center_sampling: bool,
    pub center_sample_radius: f64,
    pub norm_on_bbox: bool,
    pub centerness_on_reg: bool,
    pub bbox_coder: BoxCoderConfig,
    pub loss_cls: LossConfig,
    pub loss_bbox: LossConfig,
    pub loss_centerness: LossConfig,
    pub norm_cfg: Option<NormConfig>,
}

impl FcosHeadConfig {
    /// Regress ranges with mmdetection's default; `INF` (1e8) stays a finite large number.
    pub fn regress_ranges(&self) -> Vec<[f64; 2]> {
        match &self.regress_ranges {
            Some(r) => r
                .iter()
                .map(|p| {
                    [
                        p.first().copied().unwrap_or(-1) as f64,
                        p.get(1).copied().unwrap_or(100_000_000) as f64,
                    ]
                })
                .collect(),
            None => vec![
                [-1.0, 64.0],
                [64.0, 128.0],
                [128.0, 256.0],
                [256.0, 512.0],
                [512.0, 1e8],
            ],
        }
    }
}

/// Why a model config could not be used.
#[derive(Debug, thiserror::Error)]
#[error("model.{path}: {msg}")]
pub struct ModelConfigError {
    /// Config path below `model` (e.g. `neck.in_channels`), for a diagnostic on the recipe.
    pub path: String,
    pub msg: String,
    /// Other settings (below `model`) the rule involves, labelled too where the recipe wrote
    /// them.
    pub also: Vec<String>,
}

impl ModelConfigError {
    /// A setting `path` (below `model`) refused for `msg`.
    pub fn at(path: impl Into<String>, msg: impl Into<String>) -> Self {
        ModelConfigError {
            path: path.into(),
            msg: msg.into(),
            also: Vec::new(),
        }
    }

    /// The same error, also naming the setting `path` the rule involves.
    pub fn also(mut self, path: impl Into<String>) -> Self {
        self.also.push(path.into());
        self
    }

    /// The same error for a part's setting, seen from `model`: `depth` under `backbone` is
    /// `backbone.depth`.
    pub fn under(self, part: &str) -> Self {
        let below = |p: &str| match p {
            "" => part.to_string(),
            p => format!("{part}.{p}"),
        };
        ModelConfigError {
            path: below(&self.path),
            also: self.also.iter().map(|p| below(p)).collect(),
            msg: self.msg,
        }
    }
}

impl DetectorConfig {
    /// Deserialize the `model` section of a checked recipe's config tree.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, ModelConfigError> {
        serde_json::from_value(v.clone()).map_err(|e| ModelConfigError::at("", e.to_string()))
    }
}
