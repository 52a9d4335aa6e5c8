//! The detector networks on the compute graph: ResNet backbone, FPN neck, RetinaNet, FCOS and
//! RPN heads, their losses, and whole-detector train/eval graphs.
//!
//! Parameter names are mmdetection's module paths (`backbone.layer1.0.conv1.weight`,
//! `neck.fpn_convs.0.conv.weight`, `bbox_head.retina_cls.weight` …), so torchvision and
//! mmdetection checkpoints map onto them by prefix only.

mod detector;
mod fcos_head;
mod fpn;
mod head_checks;
mod layers;
mod losses;
pub mod probe;
mod resnet;
mod retina_head;
mod roi_head;
mod rpn_head;
mod two_stage;

pub use detector::{
    BuiltGraph, Detector, FeedError, GraphMode, HeadOutputs, LOSS_SCALE, LossNormalisers,
};
pub use fpn::build_fpn;
pub use layers::Layers;
pub use resnet::build_resnet;
pub use two_stage::{SampledLabels, feat_name};
