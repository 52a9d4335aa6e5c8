//! Evaluation of detection results: the COCO bbox metric (bit-compatible with pycocotools),
//! proposal recall (mmdetection's `proposal` and `proposal_fast`) and VOC-style mAP
//! (mmdetection's `eval_map`).
//!
//! This module owns metric computation only: it reads ground truth and results (COCO JSON or
//! in-memory values), never trains, and never prints. The CLI (`mmrun eval`) and the runner's
//! evaluation hooks call into it.

mod boxes;
pub mod coco;
mod error;
pub mod numpy;
pub mod recall;
pub mod voc;

pub use error::EvalError;

/// The evaluators a recipe can name (mmdetection's `metric` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// COCO bbox mAP (`metric='bbox'`).
    Bbox,
    /// Proposal average recall through COCOeval with `useCats = 0` (`metric='proposal'`).
    Proposal,
    /// mmdetection's own greedy recall over proposals (`metric='proposal_fast'`).
    ProposalFast,
    /// VOC-style mAP (`eval_map`).
    Voc,
}

impl MetricKind {
    /// Parse an evaluator name: mmdetection's metric (`bbox`, `proposal`, `proposal_fast`,
    /// `mAP`) or the recipe's eval hook `metric` (`coco_bbox`, `proposal_recall`, `voc_map`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "bbox" | "coco" | "coco_bbox" => Some(Self::Bbox),
            "proposal" | "proposal_recall" => Some(Self::Proposal),
            "proposal_fast" => Some(Self::ProposalFast),
            "mAP" | "voc" | "voc_map" => Some(Self::Voc),
            _ => None,
        }
    }
}

/// The numeric metric keys an evaluator logs with its default settings (what a hook's
/// `save_best` or `monitor` may name). `bbox_mAP_copypaste` is a string and not listed.
pub fn metric_names(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Bbox => &coco::BBOX_METRIC_NAMES,
        MetricKind::Proposal => &coco::PROPOSAL_METRIC_NAMES,
        MetricKind::ProposalFast => &recall::PROPOSAL_FAST_METRIC_NAMES,
        MetricKind::Voc => &voc::VOC_METRIC_NAMES,
    }
}

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
