//! Proposal recall the way mmdetection's `proposal_fast` computes it (`eval_recalls`): per
//! image, ground truth and the top-N proposals are paired greedily (the pair with the highest
//! IoU first, both removed); recall at each IoU threshold is the share of all ground truth whose
//! pair reaches it; AR@N is the mean over thresholds. (mmdetection's `proposal` metric, the
//! class-agnostic COCOeval, is [`super::coco::CocoParams::proposal`].)

use super::EvalError;
use super::boxes::bbox_iou;
use super::coco::CocoGt;

/// Each image's ground-truth boxes `[x1, y1, x2, y2]`.
pub type ImageBoxes = Vec<Vec<[f64; 4]>>;
/// Each image's proposals `[x1, y1, x2, y2, score]`.
pub type ImageProposals = Vec<Vec<[f64; 5]>>;

/// `np.arange(0.5, 0.96, 0.05)`: mmdetection's default IoU thresholds.
pub fn default_iou_thrs() -> Vec<f64> {
    (0..10).map(|i| 0.5 + i as f64 * 0.05).collect()
}

/// Recall table `[proposal_num][iou_thr]` of `eval_recalls`.
///
/// `gts[i]` holds image i's boxes `[x1, y1, x2, y2]`; `proposals[i]` its proposals
/// `[x1, y1, x2, y2, score]`, sorted here by descending score (mmdetection reverses an
/// ascending sort, so among equal scores the later proposal comes first).
pub fn eval_recalls(
    gts: &[Vec<[f64; 4]>],
    proposals: &[Vec<[f64; 5]>],
    proposal_nums: &[usize],
    iou_thrs: &[f64],
) -> Result<Vec<Vec<f64>>, EvalError> {
    if gts.len() != proposals.len() {
        return Err(EvalError::Invalid {
            origin: "proposals".into(),
            problems: vec![format!(
                "{} images of proposals but {} of ground truth",
                proposals.len(),
                gts.len()
            )],
        });
    }
    let total: usize = gts.iter().map(Vec::len).sum();
    if total == 0 {
        return Err(EvalError::Invalid {
            origin: "ground truth".into(),
            problems: vec!["no ground-truth boxes: recall is undefined".into()],
        });
    }
    let max_num = proposal_nums.iter().copied().max().unwrap_or(0);
    // Best-matched IoU of every ground-truth box, per proposal count.
    let mut matched: Vec<Vec<f64>> = vec![Vec::with_capacity(total); proposal_nums.len()];
    for (g, props) in gts.iter().zip(proposals) {
        let mut order: Vec<usize> = (0..props.len()).collect();
        order.sort_by(|&a, &b| {
            props[a][4]
                .partial_cmp(&props[b][4])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        order.reverse();
        order.truncate(max_num);
        let p_n = order.len();
        let ious: Vec<f64> = g
            .iter()
            .flat_map(|gb| {
                order
                    .iter()
                    .map(move |&pi| bbox_iou(gb, &props[pi][..4], false))
            })
            .collect();
        for (k, &num) in proposal_nums.iter().enumerate() {
            let cols = num.min(p_n);
            if cols == 0 {
                matched[k].extend(std::iter::repeat_n(0.0, g.len()));
                continue;
            }
            let mut m: Vec<f64> = (0..g.len())
                .flat_map(|r| ious[r * p_n..r * p_n + cols].iter().copied())
                .collect();
            for _ in 0..g.len() {
                // For each row its first maximum; then the first row with the largest.
                let (mut best, mut best_row, mut best_col) = (f64::NEG_INFINITY, 0, 0);
                for r in 0..g.len() {
                    let row = &m[r * cols..(r + 1) * cols];
                    let (mut v, mut c) = (row[0], 0);
                    for (ci, &x) in row.iter().enumerate() {
                        if x > v {
                            (v, c) = (x, ci);
                        }
                    }
                    if v > best {
                        (best, best_row, best_col) = (v, r, c);
                    }
                }
                matched[k].push(best);
                m[best_row * cols..(best_row + 1) * cols].fill(-1.0);
                for r in 0..g.len() {
                    m[r * cols + best_col] = -1.0;
                }
            }
        }
    }
    Ok(matched
        .iter()
        .map(|ious| {
            iou_thrs
                .iter()
                .map(|&t| ious.iter().filter(|&&v| v >= t).count() as f64 / total as f64)
                .collect()
        })
        .collect())
}

/// Ground truth of `fast_eval_recall` for the images `img_ids`: each image's boxes that are
/// neither crowd nor `ignore`, as `[x1, y1, x1 + w, y1 + h]` rounded to f32 as mmdetection's
/// `np.float32` array holds them.
pub fn gt_boxes_for(gt: &CocoGt, img_ids: &[i64]) -> ImageBoxes {
    let index: std::collections::HashMap<i64, usize> =
        img_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut out = vec![Vec::new(); img_ids.len()];
    for a in gt.annotations.iter().filter(|a| !a.iscrowd && !a.ignore) {
        if let Some(&i) = index.get(&a.image_id) {
            let [x, y, w, h] = a.bbox;
            out[i].push([x, y, x + w, y + h].map(|v| v as f32 as f64));
        }
    }
    out
}

/// mmdetection's `proposal_fast` metrics: `AR@N` = mean over IoU thresholds of the recall
/// with the top N proposals.
pub fn proposal_fast_metrics(
    gts: &[Vec<[f64; 4]>],
    proposals: &[Vec<[f64; 5]>],
    proposal_nums: &[usize],
    iou_thrs: &[f64],
) -> Result<Vec<(String, f64)>, EvalError> {
    let table = eval_recalls(gts, proposals, proposal_nums, iou_thrs)?;
    Ok(proposal_nums
        .iter()
        .zip(&table)
        .map(|(n, row)| (format!("AR@{n}"), super::numpy::mean(row)))
        .collect())
}

/// [`proposal_fast_metrics`] at the default IoU thresholds of the COCO results file `dt`
/// against every image of the COCO instances file `gt` (what `mmrun eval proposal --fast`
/// prints).
pub fn proposal_fast_files(
    gt: &std::path::Path,
    dt: &std::path::Path,
    proposal_nums: &[usize],
) -> Result<Vec<(String, f64)>, EvalError> {
    let truth = CocoGt::from_json_path(gt)?;
    let dets = super::coco::load_detections_path(dt)?;
    let (gts, props) = per_image(&truth, &truth.images, &dets);
    proposal_fast_metrics(&gts, &props, proposal_nums, &default_iou_thrs())
}

/// The ground truth ([`gt_boxes_for`]) and the proposals `[x1, y1, x2, y2, score]` of each of
/// `img_ids`, from COCO-format results.
pub fn per_image(
    gt: &CocoGt,
    img_ids: &[i64],
    results: &[super::coco::Detection],
) -> (ImageBoxes, ImageProposals) {
    let index: std::collections::HashMap<i64, usize> =
        img_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut props = vec![Vec::new(); img_ids.len()];
    for r in results {
        if let Some(&i) = index.get(&r.image_id) {
            let [x, y, w, h] = r.bbox;
            props[i].push([x, y, x + w, y + h, r.score]);
        }
    }
    (gt_boxes_for(gt, img_ids), props)
}
