//! COCO bbox evaluation, reproducing pycocotools' `COCOeval` (2.0.11) value for value: the 12
//! summary stats and the full precision / recall / scores arrays.
//!
//! - `data`: ground truth and detections (COCO JSON), validation.
//! - `params`: `COCOeval.params` (IoU and recall thresholds, maxDets, area ranges, useCats).
//! - `matching`: per (image, category) IoU and greedy matching (`evaluateImg`), in parallel.
//! - `accumulate`: precision/recall curves per (category, area, maxDets) (`accumulate`).
//! - `report`: `summarize`, mmdetection's metric keys, the per-class table.

mod accumulate;
mod data;
mod matching;
mod params;
mod report;

pub use crate::registry::metrics::{BBOX_METRIC_NAMES, PROPOSAL_METRIC_NAMES};
pub use data::{
    Category, CocoGt, Detection, GtAnnotation, GtSlots, load_detections_bytes, load_detections_path,
};
pub use params::CocoParams;
pub use report::CocoReport;

use super::EvalError;

/// Evaluate `dets` against `gt` as `COCOeval(gt, gt.loadRes(dets), 'bbox')` followed by
/// `evaluate()`, `accumulate()` and `summarize()`.
///
/// Every detection must name an image and a category of the ground truth, have a finite score
/// and a finite box with non-negative size. Detections outside `params.img_ids` /
/// `params.cat_ids` are left out, as pycocotools does.
pub fn evaluate(
    gt: &CocoGt,
    dets: &[Detection],
    params: &CocoParams,
) -> Result<CocoReport, EvalError> {
    data::validate_detections(gt, dets)?;
    let p = params.resolved(gt)?;
    let cells = matching::evaluate_cells(gt, dets, &p);
    let acc = accumulate::accumulate(&cells, &p);
    Ok(report::CocoReport::new(p, acc, gt))
}
