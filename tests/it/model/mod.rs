//! Integration tests of the `model` area: box ops against torchvision (stored oracle and fresh
//! cases), anchors and assignment against mmdetection's formulas, post-processing, weights.

mod anchors_assign;
mod config;
pub(crate) mod detector;
mod onnx;
mod plan;
mod proposals;
mod py;
mod rcnn;
mod rpn_targets;
mod torchref_ops;
mod weights;
