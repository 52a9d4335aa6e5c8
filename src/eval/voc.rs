//! VOC-style mAP as mmdetection's `eval_map`: per class, detections of all images sorted by
//! score; a detection is a true positive when its best-overlapping ground truth (IoU ≥
//! threshold) is not yet covered, ignored when that box is "difficult" (an ignore box) or
//! outside the scale range; AP by the area under the precision envelope or by 11 points
//! (VOC2007). The mean is over classes that have ground truth.
//!
//! Arithmetic is f64 throughout (mmdetection keeps tp/fp/precision/AP in float32), and ties in
//! score keep input order (numpy's default sort does not promise an order).

use super::EvalError;
use super::boxes::{area, bbox_iou};

/// One image's detections: per class, rows `[x1, y1, x2, y2, score]`.
pub type ImageDetections = Vec<Vec<[f64; 5]>>;

/// Ground truth of one image: boxes `[x1, y1, x2, y2]` with 0-based class labels, and the
/// ignored ("difficult") boxes with theirs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VocAnnotation {
    pub bboxes: Vec<[f64; 4]>,
    pub labels: Vec<usize>,
    pub bboxes_ignore: Vec<[f64; 4]>,
    pub labels_ignore: Vec<usize>,
}

/// How AP is read off the precision/recall curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApMode {
    /// Area under the non-increasing precision envelope (VOC2010+).
    Area,
    /// Mean of the best precision at recall ≥ 0, 0.1, …, 1 (VOC2007, mmdetection's `voc07`).
    ElevenPoints,
}

/// Parameters of [`eval_map`].
#[derive(Debug, Clone, PartialEq)]
pub struct VocParams {
    pub iou_thr: f64,
    /// `(min, max)` box sides; a box counts in a range when `min² ≤ area < max²`.
    pub scale_ranges: Option<Vec<(f64, f64)>>,
    pub mode: ApMode,
    /// Boxes span `x2 - x1 + 1` pixels (mmdetection's VOC setting).
    pub legacy_coordinates: bool,
}

impl Default for VocParams {
    fn default() -> Self {
        VocParams {
            iou_thr: 0.5,
            scale_ranges: None,
            mode: ApMode::Area,
            legacy_coordinates: false,
        }
    }
}

/// Per-class result; vectors have one entry per scale range (one when there are none).
#[derive(Debug, Clone, PartialEq)]
pub struct VocClassResult {
    pub num_gts: Vec<usize>,
    pub num_dets: usize,
    pub recall: Vec<Vec<f64>>,
    pub precision: Vec<Vec<f64>>,
    pub ap: Vec<f64>,
}

/// Result of [`eval_map`]: mean AP per scale range and the per-class table.
#[derive(Debug, Clone, PartialEq)]
pub struct VocReport {
    pub mean_ap: Vec<f64>,
    pub classes: Vec<VocClassResult>,
}

/// `det_results[image][class]` holds `[x1, y1, x2, y2, score]` rows (mmdetection's layout).
pub fn eval_map(
    det_results: &[ImageDetections],
    annotations: &[VocAnnotation],
    p: &VocParams,
) -> Result<VocReport, EvalError> {
    validate(det_results, annotations)?;
    let num_classes = det_results.first().map_or(0, |d| d.len());
    let ranges: Vec<Option<(f64, f64)>> = match &p.scale_ranges {
        Some(r) => r.iter().map(|&(a, b)| Some((a * a, b * b))).collect(),
        None => vec![None],
    };
    let in_range = |rng: Option<(f64, f64)>, a: f64| rng.is_none_or(|(lo, hi)| a >= lo && a < hi);
    let mut classes = Vec::with_capacity(num_classes);
    for cls in 0..num_classes {
        let s_n = ranges.len();
        let mut num_gts = vec![0usize; s_n];
        // (score, tp per scale, fp per scale) of every detection of the class.
        let mut scored: Vec<(f64, Vec<bool>, Vec<bool>)> = Vec::new();
        for (img, ann) in det_results.iter().zip(annotations) {
            let gts: Vec<&[f64; 4]> = select(&ann.bboxes, &ann.labels, cls);
            let ign: Vec<&[f64; 4]> = select(&ann.bboxes_ignore, &ann.labels_ignore, cls);
            for g in &gts {
                let a = area(&g[..], p.legacy_coordinates);
                for (s, &rng) in ranges.iter().enumerate() {
                    num_gts[s] += in_range(rng, a) as usize;
                }
            }
            let all_gts: Vec<(&[f64; 4], bool)> = gts
                .iter()
                .map(|g| (*g, false))
                .chain(ign.iter().map(|g| (*g, true)))
                .collect();
            let dets = &img[cls];
            let mut order: Vec<usize> = (0..dets.len()).collect();
            order.sort_by(|&a, &b| {
                dets[b][4]
                    .partial_cmp(&dets[a][4])
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let mut tp = vec![vec![false; dets.len()]; s_n];
            let mut fp = vec![vec![false; dets.len()]; s_n];
            // Best ground truth of each detection (first on ties, as numpy's argmax).
            let best: Vec<(f64, usize)> = dets
                .iter()
                .map(|d| {
                    let mut b = (f64::NEG_INFINITY, 0);
                    for (gi, (g, _)) in all_gts.iter().enumerate() {
                        let v = bbox_iou(&d[..4], &g[..], p.legacy_coordinates);
                        if v > b.0 {
                            b = (v, gi);
                        }
                    }
                    b
                })
                .collect();
            for (s, &rng) in ranges.iter().enumerate() {
                let mut covered = vec![false; all_gts.len()];
                for &i in &order {
                    let det_area = area(&dets[i][..4], p.legacy_coordinates);
                    if all_gts.is_empty() {
                        fp[s][i] = in_range(rng, det_area);
                        continue;
                    }
                    let (v, g) = best[i];
                    if v >= p.iou_thr {
                        let (gbox, ignored) = all_gts[g];
                        let outside = !in_range(rng, area(&gbox[..], p.legacy_coordinates));
                        if !(ignored || outside) {
                            if covered[g] {
                                fp[s][i] = true;
                            } else {
                                covered[g] = true;
                                tp[s][i] = true;
                            }
                        }
                    } else {
                        fp[s][i] = in_range(rng, det_area);
                    }
                }
            }
            for i in 0..dets.len() {
                scored.push((
                    dets[i][4],
                    (0..s_n).map(|s| tp[s][i]).collect(),
                    (0..s_n).map(|s| fp[s][i]).collect(),
                ));
            }
        }
        scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let eps = f32::EPSILON as f64;
        let mut result = VocClassResult {
            num_gts: num_gts.clone(),
            num_dets: scored.len(),
            recall: Vec::new(),
            precision: Vec::new(),
            ap: Vec::new(),
        };
        for s in 0..s_n {
            let (mut tp, mut fp) = (0.0f64, 0.0f64);
            let mut rec = Vec::with_capacity(scored.len());
            let mut prec = Vec::with_capacity(scored.len());
            for (_, t, f) in &scored {
                tp += t[s] as u8 as f64;
                fp += f[s] as u8 as f64;
                rec.push(tp / (num_gts[s] as f64).max(eps));
                prec.push(tp / (tp + fp).max(eps));
            }
            result.ap.push(average_precision(&rec, &prec, p.mode));
            result.recall.push(rec);
            result.precision.push(prec);
        }
        classes.push(result);
    }
    let mean_ap = (0..ranges.len())
        .map(|s| {
            let aps: Vec<f64> = classes
                .iter()
                .filter(|c| c.num_gts[s] > 0)
                .map(|c| c.ap[s])
                .collect();
            if aps.is_empty() {
                0.0
            } else {
                super::numpy::mean(&aps)
            }
        })
        .collect();
    Ok(VocReport { mean_ap, classes })
}

fn select<'a>(boxes: &'a [[f64; 4]], labels: &[usize], cls: usize) -> Vec<&'a [f64; 4]> {
    boxes
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l == cls)
        .map(|(b, _)| b)
        .collect()
}

/// mmdetection's `average_precision` for one curve.
pub fn average_precision(recall: &[f64], precision: &[f64], mode: ApMode) -> f64 {
    match mode {
        ApMode::Area => {
            let mut mrec = Vec::with_capacity(recall.len() + 2);
            mrec.push(0.0);
            mrec.extend_from_slice(recall);
            mrec.push(1.0);
            let mut mpre = Vec::with_capacity(precision.len() + 2);
            mpre.push(0.0);
            mpre.extend_from_slice(precision);
            mpre.push(0.0);
            for i in (1..mpre.len()).rev() {
                mpre[i - 1] = mpre[i - 1].max(mpre[i]);
            }
            let terms: Vec<f64> = (0..mrec.len() - 1)
                .filter(|&i| mrec[i + 1] != mrec[i])
                .map(|i| (mrec[i + 1] - mrec[i]) * mpre[i + 1])
                .collect();
            super::numpy::sum(&terms)
        }
        ApMode::ElevenPoints => {
            let mut ap = 0.0;
            // np.arange(0, 1 + 1e-3, 0.1)
            for k in 0..11 {
                let thr = k as f64 * 0.1;
                let best = recall
                    .iter()
                    .zip(precision)
                    .filter(|(r, _)| **r >= thr)
                    .map(|(_, p)| *p)
                    .fold(f64::NEG_INFINITY, f64::max);
                if best.is_finite() {
                    ap += best;
                }
            }
            ap / 11.0
        }
    }
}

/// mmdetection's VOC `evaluate(metric='mAP', iou_thrs=[…])`: `APxx` per threshold (rounded
/// to 3 decimals) and `mAP`, their unrounded mean.
pub fn voc_metrics(
    det_results: &[ImageDetections],
    annotations: &[VocAnnotation],
    iou_thrs: &[f64],
    mode: ApMode,
) -> Result<Vec<(String, f64)>, EvalError> {
    if iou_thrs.is_empty() {
        return Err(EvalError::Params("iou_thrs is empty".into()));
    }
    let mut out = vec![("mAP".to_string(), 0.0)];
    let mut sum = 0.0;
    for &t in iou_thrs {
        let p = VocParams {
            iou_thr: t,
            mode,
            legacy_coordinates: true,
            ..VocParams::default()
        };
        let m = eval_map(det_results, annotations, &p)?.mean_ap[0];
        sum += m;
        let rounded: f64 = format!("{m:.3}").parse().unwrap_or(m);
        out.push((format!("AP{:02}", (t * 100.0) as i64), rounded));
    }
    out[0].1 = sum / iou_thrs.len() as f64;
    Ok(out)
}

fn validate(
    det_results: &[ImageDetections],
    annotations: &[VocAnnotation],
) -> Result<(), EvalError> {
    let mut problems = Vec::new();
    if det_results.len() != annotations.len() {
        problems.push(format!(
            "{} images of detections but {} annotations",
            det_results.len(),
            annotations.len()
        ));
    }
    let num_classes = det_results.first().map_or(0, |d| d.len());
    for (i, img) in det_results.iter().enumerate() {
        if img.len() != num_classes {
            problems.push(format!(
                "image {i}: {} classes, expected {num_classes}",
                img.len()
            ));
        }
        for (c, dets) in img.iter().enumerate() {
            for (j, d) in dets.iter().enumerate() {
                if d.iter().any(|v| !v.is_finite()) {
                    problems.push(format!(
                        "image {i} class {c} detection {j}: non-finite value"
                    ));
                } else if d[2] < d[0] || d[3] < d[1] {
                    problems.push(format!("image {i} class {c} detection {j}: negative size"));
                }
            }
        }
    }
    for (i, a) in annotations.iter().enumerate() {
        if a.bboxes.len() != a.labels.len() || a.bboxes_ignore.len() != a.labels_ignore.len() {
            problems.push(format!("annotation {i}: boxes and labels differ in count"));
        }
        if let Some(l) = a
            .labels
            .iter()
            .chain(&a.labels_ignore)
            .find(|&&l| l >= num_classes)
        {
            problems.push(format!(
                "annotation {i}: label {l} ≥ number of classes {num_classes}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EvalError::Invalid {
            origin: "VOC input".into(),
            problems,
        })
    }
}

/// [`voc_metrics`] of the COCO results file `dt` against the COCO instances file `gt` (what
/// `mmrun eval voc` prints), through [`from_coco`].
pub fn from_coco_files(
    gt: &std::path::Path,
    dt: &std::path::Path,
    iou_thrs: &[f64],
    mode: ApMode,
) -> Result<Vec<(String, f64)>, EvalError> {
    let truth = super::coco::CocoGt::from_json_path(gt)?;
    let dets = super::coco::load_detections_path(dt)?;
    let (gt_origin, dt_origin) = (gt.display().to_string(), dt.display().to_string());
    let (results, annotations) = from_coco(&truth, &dets, &gt_origin, &dt_origin)?;
    voc_metrics(&results, &annotations, iou_thrs, mode)
}

/// The VOC evaluator's inputs from COCO files (what `mmrun eval voc` reads): images in the
/// ground truth's order, classes in its category order, `[x, y, w, h]` turned into corners,
/// crowd boxes as ignored ("difficult") ones. A detection naming an image or category that the
/// ground truth does not have is an error naming it; errors name `gt_origin` / `dt_origin`.
pub fn from_coco(
    gt: &super::coco::CocoGt,
    dets: &[super::coco::Detection],
    gt_origin: &str,
    dt_origin: &str,
) -> Result<(Vec<ImageDetections>, Vec<VocAnnotation>), EvalError> {
    let slots = super::coco::GtSlots::of(gt);
    let (image_index, class_index) = (&slots.image, &slots.class);
    let corners = |b: &[f64; 4]| [b[0], b[1], b[0] + b[2], b[1] + b[3]];
    let mut annotations = vec![VocAnnotation::default(); gt.images.len()];
    let mut problems = Vec::new();
    for a in &gt.annotations {
        match (image_index.get(&a.image_id), class_index.get(&a.category_id)) {
            (Some(&i), Some(&k)) => {
                let ann = &mut annotations[i];
                if a.iscrowd {
                    ann.bboxes_ignore.push(corners(&a.bbox));
                    ann.labels_ignore.push(k);
                } else {
                    ann.bboxes.push(corners(&a.bbox));
                    ann.labels.push(k);
                }
            }
            _ => problems.push(format!(
                "ground-truth annotation {} names image {} / category {} that the file does not list",
                a.id, a.image_id, a.category_id
            )),
        }
    }
    if !problems.is_empty() {
        return Err(EvalError::Invalid {
            origin: gt_origin.into(),
            problems,
        });
    }
    let mut results = vec![vec![Vec::new(); gt.categories.len()]; gt.images.len()];
    for (d, (i, k)) in dets.iter().zip(slots.of_detections(dets, dt_origin)?) {
        let [x1, y1, x2, y2] = corners(&d.bbox);
        results[i][k].push([x1, y1, x2, y2, d.score]);
    }
    Ok((results, annotations))
}
