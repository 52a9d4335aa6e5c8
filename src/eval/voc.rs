//! VOC-style mAP as mmdetection's `eval_map`.

/// Metric keys of the VOC evaluation.
pub const VOC_METRIC_NAMES: [&str; 1] = ["mAP"];
