//! Typed model config, deserialized from the checked recipe's `model` section (see
//! `docs/ARCHITECTURE.md`: components are objects with `"type"` and every parameter, names as
//! in mmdetection and in `registry::model`).

use super::anchor::AnchorGeneratorConfig;
use super::assign::AssignerConfig;
use super::boxes::{DeltaXYWHBBoxCoder, DistancePointBBoxCoder};
use super::postprocess::TestConfig;
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
    #[serde(default = "minus_one_i")]
    pub allowed_border: i64,
    #[serde(default = "minus_one")]
    pub pos_weight: f64,
    #[serde(default)]
    pub debug: bool,
}

fn minus_one() -> f64 {
    -1.0
}
fn minus_one_i() -> i64 {
    -1
}
fn yes() -> bool {
    true
}
fn bn_eps() -> f64 {
    1e-5
}
fn bn_momentum() -> f64 {
    0.1
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
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "sixty_four")]
    pub base_channels: usize,
    #[serde(default = "four")]
    pub num_stages: usize,
    #[serde(default = "default_out_indices")]
    pub out_indices: Vec<usize>,
    #[serde(default = "default_strides")]
    pub strides: Vec<usize>,
    #[serde(default)]
    pub style: ResNetStyle,
    #[serde(default = "minus_one_i")]
    pub frozen_stages: i64,
    #[serde(default = "default_bn")]
    pub norm_cfg: Option<NormConfig>,
    #[serde(default = "yes")]
    pub norm_eval: bool,
    #[serde(default = "yes")]
    pub zero_init_residual: bool,
    #[serde(default)]
    pub init_cfg: Option<InitConfig>,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn sixty_four() -> usize {
    64
}
fn default_out_indices() -> Vec<usize> {
    vec![0, 1, 2, 3]
}
fn default_strides() -> Vec<usize> {
    vec![1, 2, 2, 2]
}
fn default_bn() -> Option<NormConfig> {
    Some(NormConfig::BatchNorm {
        requires_grad: true,
        eps: bn_eps(),
        momentum: bn_momentum(),
    })
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
        #[serde(default = "yes")]
        requires_grad: bool,
        #[serde(default = "bn_eps")]
        eps: f64,
        #[serde(default = "bn_momentum")]
        momentum: f64,
    },
    GroupNorm {
        #[serde(default = "thirty_two")]
        num_groups: usize,
        #[serde(default = "yes")]
        requires_grad: bool,
        #[serde(default = "bn_eps")]
        eps: f64,
    },
}

fn thirty_two() -> usize {
    32
}

/// `init_cfg = pretrained("file")` (also `runtime.load_from = pretrained { … }`); loaded by
/// the rule `crate::model::weights::sources` makes of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InitConfig {
    Pretrained {
        checkpoint: String,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default = "yes")]
        strict: bool,
        #[serde(default)]
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
    #[serde(default)]
    pub start_level: usize,
    #[serde(default = "minus_one_i")]
    pub end_level: i64,
    #[serde(default)]
    pub add_extra_convs: ExtraConvs,
    #[serde(default)]
    pub relu_before_extra_convs: bool,
    #[serde(default)]
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
        #[serde(default = "yes")]
        use_sigmoid: bool,
        #[serde(default = "two")]
        gamma: f64,
        #[serde(default = "quarter")]
        alpha: f64,
        #[serde(default)]
        reduction: Reduction,
        #[serde(default = "one")]
        loss_weight: f64,
    },
    CrossEntropyLoss {
        #[serde(default)]
        use_sigmoid: bool,
        #[serde(default)]
        reduction: Reduction,
        #[serde(default = "one")]
        loss_weight: f64,
    },
    L1Loss {
        #[serde(default)]
        reduction: Reduction,
        #[serde(default = "one")]
        loss_weight: f64,
    },
    SmoothL1Loss {
        #[serde(default = "one")]
        beta: f64,
        #[serde(default)]
        reduction: Reduction,
        #[serde(default = "one")]
        loss_weight: f64,
    },
    GiouLoss {
        #[serde(default = "eps6")]
        eps: f64,
        #[serde(default)]
        reduction: Reduction,
        #[serde(default = "one")]
        loss_weight: f64,
    },
    IouLoss {
        #[serde(default)]
        mode: IouLossMode,
        #[serde(default = "eps6")]
        eps: f64,
        #[serde(default)]
        reduction: Reduction,
        #[serde(default = "one")]
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

/// mmdetection's loss reduction names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    #[default]
    Mean,
    Sum,
    None,
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

fn one() -> f64 {
    1.0
}
fn two() -> f64 {
    2.0
}
fn quarter() -> f64 {
    0.25
}
fn eps6() -> f64 {
    1e-6
}
fn c256() -> usize {
    256
}

/// mmdetection's `RetinaHead` parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetinaHeadConfig {
    pub num_classes: usize,
    #[serde(default = "c256")]
    pub in_channels: usize,
    #[serde(default = "four")]
    pub stacked_convs: usize,
    #[serde(default = "c256")]
    pub feat_channels: usize,
    pub anchor_generator: AnchorGeneratorSpec,
    pub bbox_coder: BoxCoderConfig,
    pub loss_cls: LossConfig,
    pub loss_bbox: LossConfig,
    #[serde(default)]
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
    #[serde(default = "c256")]
    pub in_channels: usize,
    #[serde(default = "four")]
    pub stacked_convs: usize,
    #[serde(default = "c256")]
    pub feat_channels: usize,
    #[serde(default = "fcos_strides")]
    pub strides: Vec<usize>,
    /// `null` means mmdetection's `((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))`.
    #[serde(default)]
    pub regress_ranges: Option<Vec<Vec<i64>>>,
    #[serde(default)]
    pub center_sampling: bool,
    #[serde(default = "one_and_half")]
    pub center_sample_radius: f64,
    #[serde(default)]
    pub norm_on_bbox: bool,
    #[serde(default)]
    pub centerness_on_reg: bool,
    pub bbox_coder: BoxCoderConfig,
    pub loss_cls: LossConfig,
    pub loss_bbox: LossConfig,
    pub loss_centerness: LossConfig,
    #[serde(default)]
    pub norm_cfg: Option<NormConfig>,
}

fn fcos_strides() -> Vec<usize> {
    vec![4, 8, 16, 32, 64]
}
fn one_and_half() -> f64 {
    1.5
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
pub struct ConfigError {
    /// Config path below `model` (e.g. `neck.in_channels`), for a diagnostic on the recipe.
    pub path: String,
    pub msg: String,
}

impl DetectorConfig {
    /// Deserialize the `model` section of a checked recipe's config tree.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, ConfigError> {
        serde_json::from_value(v.clone()).map_err(|e| ConfigError {
            path: String::new(),
            msg: e.to_string(),
        })
    }
}
