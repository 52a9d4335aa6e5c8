//! The host work of a two-stage detector around its second stage, as mmdetection 2.28's
//! `StandardRoIHead` and `BBoxHead` do it: in training, each image's proposals matched to the
//! ground truth (ground truth added as proposals), sampled, and given class labels and
//! class-specific delta targets (`BBoxHead.get_targets`); the sampled RoIs padded to a fixed
//! count per image so the second stage's graph keeps static shapes (padding rows weigh 0);
//! at test, softmax scores and class-specific boxes through `multiclass_nms`; and the
//! classification accuracy mmdetection logs as `acc` ([`rcnn_accuracy`]).

use super::assign::sampler::random_sample;
use super::assign::{AssignerConfig, ImageGt};
use super::boxes::{BBox, DEFAULT_WH_RATIO_CLIP, DeltaXYWHBBoxCoder, batched_nms};
use super::config::{RandomSamplerConfig, RcnnTestConfig};
use super::postprocess::Detections;
use super::proposals::roi_levels;
use crate::util::rng::Rng;

/// What the second stage's targets are built from.
#[derive(Clone, Debug)]
pub struct RcnnTargetConfig {
    pub num_classes: usize,
    pub assigner: AssignerConfig,
    pub sampler: RandomSamplerConfig,
    pub coder: DeltaXYWHBBoxCoder,
    /// `train_cfg.rcnn.pos_weight` (`<= 0`: 1).
    pub pos_weight: f64,
    /// One box regressed for all classes instead of one per class.
    pub reg_class_agnostic: bool,
}

/// One image's sampled RoIs (positives first) and their targets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RcnnSamples {
    pub rois: Vec<BBox<f32>>,
    /// Class of each RoI; `num_classes` for background.
    pub labels: Vec<usize>,
    pub label_weights: Vec<f32>,
    /// Encoded deltas of the positives to their ground truth (zero for negatives).
    pub bbox_targets: Vec<[f32; 4]>,
    pub num_pos: usize,
}

/// mmdetection's assign + sample + `_get_target_single` for one image: with
/// `add_gt_as_proposals`, the ground-truth boxes go first among the candidates, each a
/// positive of itself (`AssignResult.add_gt_`).
pub fn rcnn_samples(
    proposals: &[BBox<f32>],
    gt: &ImageGt,
    cfg: &RcnnTargetConfig,
    rng: &mut Rng,
) -> RcnnSamples {
    let valid = vec![true; proposals.len()];
    let assigned = cfg
        .assigner
        .assign(proposals, &valid, &[proposals.len()], gt);
    let (mut candidates, mut gt_inds) = (Vec::new(), Vec::new());
    if cfg.sampler.add_gt_as_proposals {
        candidates.extend_from_slice(&gt.bboxes);
        gt_inds.extend((1..=gt.bboxes.len() as i64).collect::<Vec<_>>());
    }
    candidates.extend_from_slice(proposals);
    gt_inds.extend_from_slice(&assigned.gt_inds);
    let picked = random_sample(&gt_inds, &cfg.sampler, rng);
    let pos_w = if cfg.pos_weight <= 0.0 {
        1.0
    } else {
        cfg.pos_weight as f32
    };
    let mut s = RcnnSamples {
        num_pos: picked.pos.len(),
        ..Default::default()
    };
    for &i in &picked.pos {
        let g = gt_inds[i] as usize - 1;
        s.rois.push(candidates[i]);
        s.labels.push(gt.labels[g]);
        s.label_weights.push(pos_w);
        s.bbox_targets
            .push(cfg.coder.encode(&candidates[i], &gt.bboxes[g]));
    }
    for &i in &picked.neg {
        s.rois.push(candidates[i]);
        s.labels.push(cfg.num_classes);
        s.label_weights.push(1.0);
        s.bbox_targets.push([0.0; 4]);
    }
    s
}

/// The second stage's feeds for a batch: every image's RoIs padded to `per_image` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct RoiBatch {
    /// `[B·per_image, 5]` as `[image, x1, y1, x2, y2]`; padding rows are a unit box.
    pub rois: Vec<f32>,
    /// `[B·per_image, levels]`: 1 on the level each real RoI is pooled from.
    pub level_masks: Vec<f32>,
    /// Real rows per image.
    pub counts: Vec<usize>,
}

/// Lays out each image's RoIs for the second stage's graph (`finest_scale` picks their level,
/// mmdetection's `map_roi_levels`).
pub fn roi_batch(
    per_image_rois: &[&[BBox<f32>]],
    per_image: usize,
    levels: usize,
    finest_scale: f32,
) -> RoiBatch {
    let b = per_image_rois.len();
    let mut rois = Vec::with_capacity(b * per_image * 5);
    let mut level_masks = vec![0f32; b * per_image * levels];
    let mut counts = Vec::with_capacity(b);
    for (i, boxes) in per_image_rois.iter().enumerate() {
        let n = boxes.len().min(per_image);
        counts.push(n);
        let rows: Vec<[f32; 5]> = (0..per_image)
            .map(|k| match boxes.get(k).filter(|_| k < n) {
                Some(r) => [i as f32, r[0], r[1], r[2], r[3]],
                None => [i as f32, 0.0, 0.0, 1.0, 1.0],
            })
            .collect();
        for (k, l) in roi_levels(&rows[..n], finest_scale, levels)
            .into_iter()
            .enumerate()
        {
            level_masks[(i * per_image + k) * levels + l] = 1.0;
        }
        rois.extend(rows.iter().flatten());
    }
    RoiBatch {
        rois,
        level_masks,
        counts,
    }
}

/// mmdetection's `BBoxHead.get_bboxes` with `rescale` for one image's `n` RoIs: softmax over
/// `num_classes + 1` logits, each class's deltas decoded from its RoI (clipped to `img_shape`),
/// divided by `scale_factor`, then `multiclass_nms` (background dropped, scores above
/// `score_thr`, NMS per class, the `max_per_img` best).
#[allow(clippy::too_many_arguments)]
pub fn rcnn_detections(
    rois: &[BBox<f32>],
    cls_score: &[f32],
    bbox_pred: &[f32],
    num_classes: usize,
    coder: &DeltaXYWHBBoxCoder,
    cfg: &RcnnTestConfig,
    img_shape: (usize, usize),
    scale_factor: [f32; 4],
) -> Detections {
    let n = rois.len();
    let k = num_classes + 1;
    let per_class = bbox_pred.len() / n.max(1) == 4 * num_classes;
    let shape = Some((img_shape.0 as f32, img_shape.1 as f32));
    let (mut boxes, mut scores, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (i, roi) in rois.iter().enumerate() {
        let row = &cls_score[i * k..(i + 1) * k];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        for (c, &e) in exp.iter().take(num_classes).enumerate() {
            let score = e / sum;
            if score <= cfg.score_thr as f32 {
                continue;
            }
            let at = if per_class {
                i * 4 * num_classes + 4 * c
            } else {
                i * 4
            };
            let delta: [f32; 4] = std::array::from_fn(|j| bbox_pred[at + j]);
            let b = coder.decode(roi, &delta, shape, DEFAULT_WH_RATIO_CLIP);
            boxes.push(std::array::from_fn(|j| b[j] / scale_factor[j]));
            scores.push(score);
            labels.push(c);
        }
    }
    let keep = batched_nms(&boxes, &scores, &labels, cfg.nms.iou_threshold as f32);
    let keep = &keep[..keep.len().min(cfg.max_per_img)];
    Detections {
        bboxes: keep.iter().map(|&i| boxes[i]).collect(),
        scores: keep.iter().map(|&i| scores[i]).collect(),
        labels: keep.iter().map(|&i| labels[i]).collect(),
    }
}

/// `BBoxHead.loss`'s `acc`: mmdetection's `accuracy(cls_score, labels)` (top-1, percent) over
/// the sampled RoIs — the rows of `cls_score [R, K + 1]` whose label weight is positive (the
/// others pad the batch). The prediction is the first highest score, as `torch.topk` on a row
/// without ties; no sampled RoI gives 0, as `accuracy` on an empty batch.
pub fn rcnn_accuracy(cls_score: &[f32], classes: usize, labels: &[i32], weights: &[f32]) -> f64 {
    let (mut correct, mut total) = (0usize, 0usize);
    for ((row, &label), &w) in cls_score.chunks_exact(classes).zip(labels).zip(weights) {
        if w <= 0.0 {
            continue;
        }
        let pred = (0..classes).fold(0, |best, c| if row[c] > row[best] { c } else { best });
        total += 1;
        correct += usize::from(i32::try_from(pred).is_ok_and(|p| p == label));
    }
    if total == 0 {
        return 0.0;
    }
    100.0 * correct as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rows_have_no_level() {
        let a: Vec<BBox<f32>> = vec![[0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 20.0, 20.0]];
        let b = roi_batch(&[&a, &a[..1]], 3, 4, 56.0);
        assert_eq!(b.counts, vec![2, 1]);
        assert_eq!(b.rois.len(), 6 * 5);
        // sqrt(100·100) / 56 → level 0 (log2 1.79 floored); row 2 and rows 4, 5 are padding.
        let sums: Vec<f32> = b.level_masks.chunks(4).map(|r| r.iter().sum()).collect();
        assert_eq!(sums, vec![1.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(&b.rois[15..20], &[1.0, 0.0, 0.0, 100.0, 100.0]);
        assert_eq!(&b.rois[25..30], &[1.0, 0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn accuracy_counts_the_sampled_rows_top_1_in_percent() {
        // 4 rows of 3 classes; the last pads the batch (weight 0) and would be wrong.
        let scores = [
            0.1, 0.9, 0.0, // pred 1, label 1: right
            2.0, 1.0, 2.0, // tie: the first maximum, 0; label 2: wrong
            -1.0, -3.0, 0.5, // pred 2, label 2: right
            9.0, 0.0, 0.0, // padding
        ];
        let labels = [1, 2, 2, 1];
        let weights = [1.0, 1.0, 1.0, 0.0];
        let acc = rcnn_accuracy(&scores, 3, &labels, &weights);
        assert!((acc - 200.0 / 3.0).abs() < 1e-12, "{acc}");
        assert_eq!(rcnn_accuracy(&scores, 3, &labels, &[0.0; 4]), 0.0);
    }
}
