//! Per-image training targets with fixed shapes, computed in the data loader's worker threads.
//!
//! A [`TargetBuilder`] is built once from the head config; the loader calls
//! [`TargetBuilder::targets`] for each image with the batch's padded input shape (the shape
//! bucket) so every image of a bucket yields arrays of the same length: one entry per prior
//! (anchor or point) over all levels, in the head's output order (level, location, base anchor).

use super::anchor::{AnchorError, AnchorGenerator, point_grid};
use super::assign::fcos::{FcosTargetConfig, fcos_targets};
use super::assign::sampler::random_sample;
use super::assign::{AssignerConfig, ImageGt};
use super::boxes::DeltaXYWHBBoxCoder;
use super::config::RandomSamplerConfig;
use crate::util::rng::Rng;
use std::sync::Arc;

/// Where an image sits in the padded batch tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaddedShapes {
    /// `(height, width)` of the resized image before padding (`img_shape`).
    pub img_shape: (usize, usize),
    /// `(height, width)` after the image's own padding (`pad_shape`).
    pub pad_shape: (usize, usize),
    /// `(height, width)` of the padded batch input (the shape bucket).
    pub batch_shape: (usize, usize),
}

/// Fixed-shape targets of one image; `N` = number of priors over all levels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DenseTargets {
    /// `[N]` category, `num_classes` for background and ignored priors.
    pub labels: Vec<u32>,
    /// `[N]` 1 for positives and negatives, 0 for ignored/invalid priors (retina), or all 1
    /// (FCOS, which ignores nothing).
    pub label_weights: Vec<f32>,
    /// `[N × 4]` regression targets (encoded deltas, decoded boxes with `reg_decoded_bbox`, or
    /// FCOS distances); zero for non-positives.
    pub bbox_targets: Vec<[f32; 4]>,
    /// `[N]` 1 for positives, 0 elsewhere (the same weight applies to all four coordinates).
    pub bbox_weights: Vec<f32>,
    /// `[N]` FCOS centerness targets (empty for anchor heads).
    pub centerness: Vec<f32>,
    /// Number of positives in this image.
    pub num_pos: usize,
    /// Number of negatives that train (all of them without a sampler).
    pub num_neg: usize,
    /// A two-stage detector's: the image's ground truth, its `img_shape` and a seed for the
    /// second stage's sampler (empty otherwise).
    pub gt: ImageGt,
    pub img_shape: (usize, usize),
    pub seed: u64,
}

impl DenseTargets {
    /// Sigmoid-classification targets `[N × num_classes]`: one-hot rows, all zero for background.
    pub fn one_hot(&self, num_classes: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.labels.len() * num_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            if (l as usize) < num_classes {
                out[i * num_classes + l as usize] = 1.0;
            }
        }
        out
    }
}

/// Size of a feature map of stride `2^k` for an input side `n`: every stride-2 layer of
/// ResNet/FPN (3×3 pad 1, 7×7 pad 3, 1×1 pad 0, max-pool 3 pad 1) maps `n` to `ceil(n / 2)`.
pub fn featmap_side(n: usize, stride: f64) -> usize {
    let mut s = n;
    let mut k = stride;
    while k > 1.0 {
        s = s.div_ceil(2);
        k /= 2.0;
    }
    s
}

/// Anchor-head target settings (mmdetection `train_cfg` + head).
#[derive(Clone, Debug)]
pub struct AnchorTargetConfig {
    pub num_classes: usize,
    pub anchor_generator: AnchorGenerator,
    pub assigner: AssignerConfig,
    pub bbox_coder: DeltaXYWHBBoxCoder,
    /// `train_cfg.allowed_border`: `< 0` keeps every valid anchor, else anchors must lie within
    /// the image (`img_shape`) extended by this many pixels.
    pub allowed_border: f64,
    /// `train_cfg.pos_weight`: `<= 0` means 1.
    pub pos_weight: f64,
    /// Targets are gt boxes instead of encoded deltas (for IoU-type regression losses).
    pub reg_decoded_bbox: bool,
    /// Which assigned anchors train (`train_cfg.sampler`); `None`: all of them (mmdetection's
    /// `PseudoSampler`, as for focal-loss heads).
    pub sampler: Option<RandomSamplerConfig>,
    /// Every positive is class 0 whatever its ground-truth label (an RPN's objectness).
    pub class_agnostic: bool,
    /// A second stage's class count: each image's targets keep its ground truth (labels below
    /// this) for the second stage's targets.
    pub keep_gt: Option<usize>,
}

/// Builds the targets of one image; cheap to clone and share across loader threads.
#[derive(Clone, Debug)]
pub enum TargetBuilder {
    Anchor(Arc<AnchorTargetConfig>),
    Point(Arc<FcosTargetConfig>),
}

impl TargetBuilder {
    /// Feature-map sizes of every level for a batch shape.
    pub fn featmap_sizes(&self, batch_shape: (usize, usize)) -> Vec<(usize, usize)> {
        let strides: Vec<(f64, f64)> = match self {
            TargetBuilder::Anchor(c) => c.anchor_generator.strides().to_vec(),
            TargetBuilder::Point(c) => c.strides.iter().map(|&s| (s, s)).collect(),
        };
        strides
            .iter()
            .map(|&(sw, sh)| {
                (
                    featmap_side(batch_shape.0, sh),
                    featmap_side(batch_shape.1, sw),
                )
            })
            .collect()
    }

    /// Targets of one image; `rng` draws the sampler's choice (a stream of the image's own).
    pub fn targets(
        &self,
        gt: &ImageGt,
        meta: &PaddedShapes,
        rng: &mut Rng,
    ) -> Result<DenseTargets, AnchorError> {
        let sizes = self.featmap_sizes(meta.batch_shape);
        match self {
            TargetBuilder::Anchor(c) => anchor_targets(c, &sizes, gt, meta, rng),
            TargetBuilder::Point(c) => {
                let strides: Vec<(f64, f64)> = c.strides.iter().map(|&s| (s, s)).collect();
                let pts = point_grid(&strides, &sizes, 0.5);
                let counts: Vec<usize> = pts.iter().map(Vec::len).collect();
                let flat: Vec<[f32; 2]> = pts.into_iter().flatten().collect();
                let t = fcos_targets(c, &flat, &counts, gt);
                let pos: Vec<f32> = t
                    .labels
                    .iter()
                    .map(|&l| (l < c.num_classes) as u8 as f32)
                    .collect();
                Ok(DenseTargets {
                    labels: t.labels.iter().map(|&l| l as u32).collect(),
                    label_weights: vec![1.0; flat.len()],
                    bbox_targets: t.bbox_targets,
                    bbox_weights: pos,
                    centerness: t.centerness,
                    num_pos: t.num_pos,
                    num_neg: flat.len() - t.num_pos,
                    ..Default::default()
                })
            }
        }
    }

    /// Number of classes the targets are built for.
    pub fn num_classes(&self) -> usize {
        match self {
            TargetBuilder::Anchor(c) => c.num_classes,
            TargetBuilder::Point(c) => c.num_classes,
        }
    }

    /// The bound ground-truth labels must stay below (`None`: labels are not read).
    pub fn label_limit(&self) -> Option<usize> {
        match self {
            TargetBuilder::Anchor(c) if c.class_agnostic => c.keep_gt,
            _ => Some(self.num_classes()),
        }
    }
}

fn anchor_targets(
    c: &AnchorTargetConfig,
    sizes: &[(usize, usize)],
    gt: &ImageGt,
    meta: &PaddedShapes,
    rng: &mut Rng,
) -> Result<DenseTargets, AnchorError> {
    let anchors = c.anchor_generator.grid_anchors(sizes)?;
    let valid = c.anchor_generator.valid_flags(sizes, meta.pad_shape)?;
    let counts: Vec<usize> = anchors.iter().map(Vec::len).collect();
    let anchors: Vec<[f32; 4]> = anchors.into_iter().flatten().collect();
    let mut inside: Vec<bool> = valid.into_iter().flatten().collect();
    if c.allowed_border >= 0.0 {
        let ab = c.allowed_border as f32;
        let (h, w) = (meta.img_shape.0 as f32, meta.img_shape.1 as f32);
        for (f, a) in inside.iter_mut().zip(&anchors) {
            *f = *f && a[0] >= -ab && a[1] >= -ab && a[2] < w + ab && a[3] < h + ab;
        }
    }
    let mut r = c.assigner.assign(&anchors, &inside, &counts, gt);
    if let Some(s) = &c.sampler {
        // Anchors the sampler leaves out neither train nor count: mark them ignored.
        let picked = random_sample(&r.gt_inds, s, rng);
        let mut kept = vec![-1i64; r.gt_inds.len()];
        for &i in picked.pos.iter().chain(&picked.neg) {
            kept[i] = r.gt_inds[i];
        }
        r.gt_inds = kept;
    }
    let n = anchors.len();
    let mut t = DenseTargets {
        labels: vec![c.num_classes as u32; n],
        label_weights: vec![0.0; n],
        bbox_targets: vec![[0.0; 4]; n],
        bbox_weights: vec![0.0; n],
        ..Default::default()
    };
    if c.keep_gt.is_some() {
        t.gt = gt.clone();
        t.img_shape = meta.img_shape;
        t.seed = rng.next_u64();
    }
    let pos_w = if c.pos_weight <= 0.0 {
        1.0
    } else {
        c.pos_weight as f32
    };
    for (i, &g) in r.gt_inds.iter().enumerate() {
        if g > 0 {
            let gi = g as usize - 1;
            let gb = &gt.bboxes[gi];
            t.bbox_targets[i] = if c.reg_decoded_bbox {
                *gb
            } else {
                c.bbox_coder.encode(&anchors[i], gb)
            };
            t.bbox_weights[i] = 1.0;
            t.labels[i] = if c.class_agnostic {
                0
            } else {
                gt.labels[gi] as u32
            };
            t.label_weights[i] = pos_w;
            t.num_pos += 1;
        } else if g == 0 {
            t.label_weights[i] = 1.0;
            t.num_neg += 1;
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::anchor::{AnchorGeneratorConfig, Stride};
    use crate::model::assign::{MaxIouAssigner, NegIouThr};

    #[test]
    fn featmap_side_halves_with_ceil() {
        assert_eq!(featmap_side(800, 8.0), 100);
        assert_eq!(featmap_side(1344, 128.0), 11);
        assert_eq!(featmap_side(1333, 1.0), 1333);
    }

    /// One level, one 8×8 square anchor per 8-pixel cell on a 16×16 input.
    #[test]
    fn anchor_targets_follow_the_assignment() {
        let anchor_generator = AnchorGenerator::new(&AnchorGeneratorConfig {
            strides: vec![Stride::Square(8.0)],
            ratios: vec![1.0],
            scales: Some(vec![1.0]),
            base_sizes: None,
            scale_major: true,
            octave_base_scale: None,
            scales_per_octave: None,
            center_offset: 0.5,
        })
        .unwrap();
        let assigner = AssignerConfig::MaxIou(MaxIouAssigner {
            pos_iou_thr: 0.5,
            neg_iou_thr: NegIouThr::Below(0.3),
            min_pos_iou: 0.0,
            gt_max_assign_all: true,
            ignore_iof_thr: -1.0,
            ignore_wrt_candidates: true,
            match_low_quality: false,
            gpu_assign_thr: -1.0,
        });
        let tb = TargetBuilder::Anchor(Arc::new(AnchorTargetConfig {
            num_classes: 4,
            anchor_generator,
            assigner,
            bbox_coder: DeltaXYWHBBoxCoder::default(),
            allowed_border: -1.0,
            pos_weight: -1.0,
            reg_decoded_bbox: false,
            sampler: None,
            class_agnostic: false,
            keep_gt: None,
        }));
        // Anchors: [0,0,8,8], [8,0,16,8], [0,8,8,16], [8,8,16,16].
        let gt = ImageGt {
            bboxes: vec![[1.0, 0.0, 9.0, 8.0]],
            labels: vec![2],
            bboxes_ignore: vec![],
        };
        // The image's own padded shape covers only the top row of cells.
        let meta = PaddedShapes {
            img_shape: (8, 16),
            pad_shape: (8, 16),
            batch_shape: (16, 16),
        };
        let t = tb.targets(&gt, &meta, &mut Rng::seed(0)).unwrap();
        assert_eq!(t.labels, vec![2, 4, 4, 4]);
        assert_eq!(t.num_pos, 1);
        // Anchor 1 has IoU 1/15 (negative); the bottom row is outside pad_shape (ignored).
        assert_eq!(t.label_weights, vec![1.0, 1.0, 0.0, 0.0]);
        assert_eq!(t.bbox_weights, vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(t.bbox_targets[0], [1.0 / 8.0, 0.0, 0.0, 0.0]);
        assert_eq!(t.one_hot(4)[..4], [0.0, 0.0, 1.0, 0.0]);
    }
}
