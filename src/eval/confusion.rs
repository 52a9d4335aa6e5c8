//! The detection confusion matrix of mmdetection 2.28.2's
//! `tools/analysis_tools/confusion_matrix.py`: `(classes + 1)²` counts with background last,
//! rows the ground truth, columns the predictions. Per image and per predicted class
//! (`analyze_per_img_dets`), every detection scoring at least `score_thr` adds one to
//! `[gt class, predicted class]` for each ground-truth box it overlaps with IoU ≥ `tp_iou_thr`
//! (several when it overlaps several), or to `[background, predicted class]` when it overlaps
//! none; a ground-truth box that no detection of its own class matched adds one to
//! `[gt class, background]`. The script's optional re-NMS (`--nms-iou-thr`, off by default) is
//! not offered.
//!
//! The IoU is mmdetection's numpy `bbox_overlaps` in float32 (boxes cast to float32 first), and
//! the thresholds are compared in float32 as numpy 2 compares a float32 scalar with a Python
//! float, so a detection on the threshold lands where the script puts it. This module owns the
//! counting and reading COCO files into it; drawing is `crate::viz::confusion`.

use super::EvalError;
use super::coco::{CocoGt, Detection};
use std::collections::HashMap;
use std::path::Path;

/// Thresholds of the matrix (the script's defaults: 0.3 and 0.5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfusionParams {
    /// Detections scoring below this are left out.
    pub score_thr: f64,
    /// A detection matches a ground-truth box at this IoU or more.
    pub tp_iou_thr: f64,
}

impl Default for ConfusionParams {
    fn default() -> Self {
        ConfusionParams {
            score_thr: 0.3,
            tp_iou_thr: 0.5,
        }
    }
}

/// One image's ground truth (`[x1, y1, x2, y2]`, 0-based class labels) and detections (per
/// class, rows `[x1, y1, x2, y2, score]`), in mmdetection's layout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageInput {
    pub gt_bboxes: Vec<[f64; 4]>,
    pub gt_labels: Vec<usize>,
    pub dets: Vec<Vec<[f64; 5]>>,
}

/// Why an image cannot be added to a matrix: its labels or detections do not fit the classes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// A ground-truth label beyond the matrix's classes.
    #[error("ground-truth label {label} is not one of the {classes} classes")]
    Label {
        /// The label (0-based).
        label: usize,
        /// The matrix's classes.
        classes: usize,
    },
    /// Detections for more classes than the matrix has.
    #[error("detections of {got} classes for a matrix of {classes}")]
    DetectionClasses {
        /// Classes the image's detections are given for.
        got: usize,
        /// The matrix's classes.
        classes: usize,
    },
    /// Ground-truth boxes and labels of different counts.
    #[error("{boxes} ground-truth boxes with {labels} labels")]
    LabelCount {
        /// Ground-truth boxes.
        boxes: usize,
        /// Ground-truth labels.
        labels: usize,
    },
}

/// The matrix: `counts[gt][pred]`, `classes.len() + 1` square, background last.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionMatrix {
    /// Class names, without the background.
    pub classes: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An all-zero matrix over `classes`.
    pub fn new(classes: Vec<String>) -> ConfusionMatrix {
        let n = classes.len() + 1;
        ConfusionMatrix {
            classes,
            counts: vec![vec![0; n]; n],
        }
    }

    /// The axis labels: the class names, then `background`.
    pub fn labels(&self) -> Vec<String> {
        let mut l = self.classes.clone();
        l.push("background".into());
        l
    }

    /// Each row as percentages of its sum (`plot_confusion_matrix`'s normalisation, in
    /// float32 as it computes it); a row without counts is NaN.
    pub fn row_percentages(&self) -> Vec<Vec<f64>> {
        (self.counts.iter())
            .map(|row| {
                let sum = row.iter().sum::<u64>() as f64;
                row.iter()
                    .map(|&c| (c as f32 / sum as f32 * 100.0) as f64)
                    .collect()
            })
            .collect()
    }

    /// Adds one image, as `analyze_per_img_dets` does. A label outside the classes is an
    /// error naming it.
    pub fn add_image(
        &mut self,
        img: &ImageInput,
        params: &ConfusionParams,
    ) -> Result<(), ImageError> {
        let n = self.classes.len();
        if let Some(&label) = img.gt_labels.iter().find(|&&l| l >= n) {
            return Err(ImageError::Label { label, classes: n });
        }
        if img.dets.len() > n {
            return Err(ImageError::DetectionClasses {
                got: img.dets.len(),
                classes: n,
            });
        }
        if img.gt_labels.len() != img.gt_bboxes.len() {
            return Err(ImageError::LabelCount {
                boxes: img.gt_bboxes.len(),
                labels: img.gt_labels.len(),
            });
        }
        let bg = n;
        let score_thr = params.score_thr as f32;
        let iou_thr = params.tp_iou_thr as f32;
        let gts: Vec<[f32; 4]> = img.gt_bboxes.iter().map(|b| b.map(|v| v as f32)).collect();
        let mut true_positives = vec![0u64; gts.len()];
        for (det_label, dets) in img.dets.iter().enumerate() {
            for d in dets {
                if (d[4] as f32) < score_thr {
                    continue;
                }
                let b = [d[0] as f32, d[1] as f32, d[2] as f32, d[3] as f32];
                let mut det_match = 0;
                for (j, (g, &gt_label)) in gts.iter().zip(&img.gt_labels).enumerate() {
                    if iou_f32(&b, g) >= iou_thr {
                        det_match += 1;
                        if gt_label == det_label {
                            true_positives[j] += 1;
                        }
                        self.counts[gt_label][det_label] += 1;
                    }
                }
                if det_match == 0 {
                    self.counts[bg][det_label] += 1;
                }
            }
        }
        for (&tp, &gt_label) in true_positives.iter().zip(&img.gt_labels) {
            if tp == 0 {
                self.counts[gt_label][bg] += 1;
            }
        }
        Ok(())
    }
}

/// mmdetection's numpy `bbox_overlaps(mode='iou')` for one pair, in its float32 arithmetic:
/// areas and overlap in float32, the union clamped to 1e-6 (as float32).
pub fn iou_f32(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let overlap = w * h;
    let union = (area_a + area_b - overlap).max(1e-6);
    overlap / union
}

/// The matrix of a COCO results list against COCO ground truth: images and classes in the
/// ground truth's order. Ground truth is read as mmdetection's `CocoDataset.get_ann_info`
/// reads it: boxes marked `ignore` or crowd, with `area <= 0` or a side under 1 pixel, or
/// (when `sizes` has the image) outside the image are left out. A detection naming an image or
/// category the ground truth lacks is an error naming it.
pub fn from_coco(
    gt: &CocoGt,
    sizes: &HashMap<i64, (f64, f64)>,
    dets: &[Detection],
    params: &ConfusionParams,
    dt_origin: &str,
) -> Result<ConfusionMatrix, EvalError> {
    let slots = super::coco::GtSlots::of(gt);
    let (image_index, class_index) = (&slots.image, &slots.class);
    let n = gt.categories.len();
    let mut images = vec![
        ImageInput {
            dets: vec![Vec::new(); n],
            ..Default::default()
        };
        gt.images.len()
    ];
    for a in gt.annotations.iter().filter(|a| !a.ignore && !a.iscrowd) {
        let [x, y, w, h] = a.bbox;
        let outside = sizes.get(&a.image_id).is_some_and(|&(iw, ih)| {
            let inter_w = ((x + w).min(iw) - x.max(0.0)).max(0.0);
            let inter_h = ((y + h).min(ih) - y.max(0.0)).max(0.0);
            inter_w * inter_h == 0.0
        });
        if outside || a.area <= 0.0 || w < 1.0 || h < 1.0 {
            continue;
        }
        if let (Some(&i), Some(&k)) = (
            image_index.get(&a.image_id),
            class_index.get(&a.category_id),
        ) {
            images[i].gt_bboxes.push([x, y, x + w, y + h]);
            images[i].gt_labels.push(k);
        }
    }
    for (d, (i, k)) in dets.iter().zip(slots.of_detections(dets, dt_origin)?) {
        let [x, y, w, h] = d.bbox;
        images[i].dets[k].push([x, y, x + w, y + h, d.score]);
    }
    let names = gt.categories.iter().map(|c| c.name.clone()).collect();
    let mut matrix = ConfusionMatrix::new(names);
    for img in &images {
        matrix
            .add_image(img, params)
            .map_err(|e| EvalError::Params(e.to_string()))?;
    }
    Ok(matrix)
}

/// The matrix of the COCO results file `dt` against the COCO instances file `gt` (what `mmrun
/// eval confusion` counts): [`from_coco`] over both files, with the images' sizes from `gt`.
pub fn from_coco_files(
    gt: &Path,
    dt: &Path,
    params: &ConfusionParams,
) -> Result<ConfusionMatrix, EvalError> {
    let truth = CocoGt::from_json_path(gt)?;
    let sizes = image_sizes(gt)?;
    let dets = super::coco::load_detections_path(dt)?;
    from_coco(&truth, &sizes, &dets, params, &dt.display().to_string())
}

/// Each image's `(width, height)` from a COCO instances file (images without both are left
/// out: their boxes are not clipped).
pub fn image_sizes(path: &Path) -> Result<HashMap<i64, (f64, f64)>, EvalError> {
    #[derive(serde::Deserialize)]
    struct Image {
        id: i64,
        width: Option<f64>,
        height: Option<f64>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        images: Vec<Image>,
    }
    let bytes =
        crate::util::read::regular_file(path, crate::util::read::UNLIMITED).map_err(|source| {
            EvalError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let f: File = serde_json::from_slice(&bytes).map_err(|e| EvalError::Json {
        origin: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok((f.images.into_iter())
        .filter_map(|i| Some((i.id, (i.width?, i.height?))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(img: &ImageInput, classes: usize) -> Vec<Vec<u64>> {
        let mut m = ConfusionMatrix::new((0..classes).map(|c| c.to_string()).collect());
        m.add_image(img, &ConfusionParams::default()).unwrap();
        m.counts
    }

    #[test]
    fn hits_confusions_misses_and_background_by_hand() {
        let img = ImageInput {
            gt_bboxes: vec![[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]],
            gt_labels: vec![0, 1],
            dets: vec![
                // Class 0: a hit on box 0, one below the score threshold, one on nothing.
                vec![
                    [0.0, 0.0, 10.0, 9.0, 0.9],
                    [0.0, 0.0, 10.0, 10.0, 0.2],
                    [50.0, 50.0, 60.0, 60.0, 0.5],
                ],
                // Class 1: a confusion on box 0 only, so box 1 is missed.
                vec![[1.0, 0.0, 10.0, 10.0, 0.3]],
            ],
        };
        assert_eq!(
            matrix(&img, 2),
            vec![vec![1, 1, 0], vec![0, 0, 1], vec![1, 0, 0]]
        );
    }

    #[test]
    fn rows_normalise_to_percent_and_empty_rows_are_nan() {
        let m = ConfusionMatrix {
            classes: vec!["a".into()],
            counts: vec![vec![1, 3], vec![0, 0]],
        };
        let p = m.row_percentages();
        assert_eq!(p[0], vec![25.0, 75.0]);
        assert!(p[1][0].is_nan());
        assert_eq!(m.labels(), vec!["a", "background"]);
    }

    #[test]
    fn a_label_outside_the_classes_is_an_error() {
        let img = ImageInput {
            gt_bboxes: vec![[0.0, 0.0, 1.0, 1.0]],
            gt_labels: vec![3],
            dets: vec![],
        };
        let mut m = ConfusionMatrix::new(vec!["a".into()]);
        let e = m.add_image(&img, &ConfusionParams::default()).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::Label {
                    label: 3,
                    classes: 1
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("label 3"), "{e}");
    }
}
