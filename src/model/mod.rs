//! Detector parts: box ops, box coders, NMS, anchors, assigners and per-image training targets,
//! inference post-processing, and weight loading (safetensors and a restricted `.pth` reader).
//!
//! Everything in `boxes`, `anchor`, `assign`, `target` and `postprocess` is plain Rust on
//! `f32`/`f64` slices: it runs in the data stage and after the eval graph, on the CPU, so the
//! step graph keeps static shapes. Semantics follow mmdetection 2.x (names and parameters
//! unchanged) and torchvision where the two meet (IoU, GIoU, NMS). This module does not read
//! datasets; the data loader is handed a target closure built here.

pub mod anchor;
pub mod assign;
pub mod boxes;
pub mod config;
pub mod net;
pub mod onnx;
pub mod postprocess;
pub mod proposals;
pub mod rcnn;
pub mod target;
pub mod weights;

pub use boxes::{BBox, Real};
