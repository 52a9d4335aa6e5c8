//! The evaluators a recipe can name and the metric keys each logs: data the checker reads
//! (`save_best`, `monitor`) and the evaluators in `crate::eval` produce, declared once here.

/// The metric keys of mmdetection's `bbox` evaluation (numeric ones).
pub const BBOX_METRIC_NAMES: [&str; 6] = [
    "bbox_mAP",
    "bbox_mAP_50",
    "bbox_mAP_75",
    "bbox_mAP_s",
    "bbox_mAP_m",
    "bbox_mAP_l",
];

/// The metric keys of mmdetection's `proposal` evaluation with `proposal_nums=(100,300,1000)`.
pub const PROPOSAL_METRIC_NAMES: [&str; 6] = [
    "AR@100",
    "AR@300",
    "AR@1000",
    "AR_s@1000",
    "AR_m@1000",
    "AR_l@1000",
];

/// Metric keys of `proposal_fast` with the default `proposal_nums=(100,300,1000)`.
pub const PROPOSAL_FAST_METRIC_NAMES: [&str; 3] = ["AR@100", "AR@300", "AR@1000"];

/// Metric keys of the VOC evaluation with the default IoU threshold 0.5 (`crate::eval::voc::voc_metrics`).
pub const VOC_METRIC_NAMES: [&str; 2] = ["mAP", "AP50"];

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
        MetricKind::Bbox => &BBOX_METRIC_NAMES,
        MetricKind::Proposal => &PROPOSAL_METRIC_NAMES,
        MetricKind::ProposalFast => &PROPOSAL_FAST_METRIC_NAMES,
        MetricKind::Voc => &VOC_METRIC_NAMES,
    }
}

/// The eval hook's evaluator when the recipe names none: proposal recall for a proposal
/// network (mmdetection's RPN configs), COCO bbox mAP for any other detector type.
pub fn default_evaluator(detector: &str) -> &'static str {
    match detector {
        "rpn" => "proposal_recall",
        _ => "coco_bbox",
    }
}

/// Whether a detector type produces what an evaluator scores: a proposal network's boxes have
/// no classes, so only the proposal evaluators take them; a detector's detections suit all.
pub fn evaluator_fits(detector: &str, evaluator: &str) -> bool {
    detector != "rpn"
        || matches!(
            MetricKind::from_name(evaluator),
            Some(MetricKind::Proposal | MetricKind::ProposalFast)
        )
}
