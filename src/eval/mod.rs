//! Evaluation of detection results: the COCO bbox metric (bit-compatible with pycocotools),
//! proposal recall (mmdetection's `proposal` and `proposal_fast`) and VOC-style mAP
//! (mmdetection's `eval_map`).
//!
//! This module owns metric computation only: it reads ground truth and results (COCO JSON or
//! in-memory values), never trains, and never prints. The CLI (`mmrun eval`) and the runner's
//! evaluation hooks call into it.

mod boxes;
pub mod coco;
pub mod confusion;
mod error;
pub mod json;
pub mod numpy;
pub mod recall;
pub mod voc;

pub use error::EvalError;

pub use crate::registry::metrics::{MetricKind, metric_names};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_cover_every_kind() {
        for (name, first) in [
            ("bbox", "bbox_mAP"),
            ("proposal", "AR@100"),
            ("proposal_fast", "AR@100"),
            ("mAP", "mAP"),
            ("coco_bbox", "bbox_mAP"),
            ("proposal_recall", "AR@100"),
            ("voc_map", "mAP"),
        ] {
            let kind = MetricKind::from_name(name).unwrap();
            assert_eq!(metric_names(kind)[0], first);
        }
        assert_eq!(MetricKind::from_name("segm"), None);
    }
}
