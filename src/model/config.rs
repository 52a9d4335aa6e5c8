//! Typed model config, deserialized from the checked recipe's `model` section (see
//! `docs/ARCHITECTURE.md`: components are objects with `"type"` and every parameter, names as
//! in mmdetection and in `registry::model`).

use super::anchor::AnchorGeneratorConfig;
use super::assign::AssignerConfig;
use super::boxes::{DeltaXYWHBBoxCoder, DistancePointBBoxCoder};
use super::postprocess::TestConfig;
pub use crate::graph::Reduction;
use serde::{Deserialize, Serialize};

/// `model = retinanet { .. }` or `model = fcos { .. }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DetectorConfig {
    Retinanet(DetectorParts),
    Fcos(DetectorParts),
}

impl DetectorConfig {
    /// The parts, whatever the detector type.
    pub fn parts(&self) -> &DetectorParts {
        match self {
            DetectorConfig::Retinanet(p) | DetectorConfig::Fcos(p) => p,
        }
    }
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
