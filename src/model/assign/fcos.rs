//! FCOS point targets (mmdetection 2.x `FCOSHead._get_target_single`): a point is positive for
//! the smallest-area ground truth that contains it (or, with center sampling, whose centre
//! region of radius `center_sample_radius · stride`, cut to the box, contains it) and whose
//! largest regression distance lies in the level's regress range (both ends inclusive).

use super::ImageGt;

/// What FCOS target computation needs from the head config.
#[derive(Clone, Debug, PartialEq)]
pub struct FcosTargetConfig {
    pub num_classes: usize,
    /// Stride of each level (square strides).
    pub strides: Vec<f64>,
    /// `[lo, hi]` of each level; `hi` may be `f64::INFINITY` (mmdetection's `INF = 1e8`).
    pub regress_ranges: Vec<[f64; 2]>,
    pub center_sampling: bool,
    pub center_sample_radius: f64,
    /// Divide distance targets by the level's stride.
    pub norm_on_bbox: bool,
}

/// Per-point FCOS targets of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct FcosTargets {
    /// Category of each point, `num_classes` for background.
    pub labels: Vec<usize>,
    /// `(left, top, right, bottom)` distances (divided by the stride with `norm_on_bbox`);
    /// meaningful only for positives.
    pub bbox_targets: Vec<[f32; 4]>,
    /// `sqrt(min(l,r)/max(l,r) · min(t,b)/max(t,b))` for positives, 0 elsewhere.
    pub centerness: Vec<f32>,
    pub num_pos: usize,
}

/// FCOS targets for `points` grouped by level (`num_level_points[l]` points on level `l`).
pub fn fcos_targets(
    cfg: &FcosTargetConfig,
    points: &[[f32; 2]],
    num_level_points: &[usize],
    gt: &ImageGt,
) -> FcosTargets {
    let n = points.len();
    let mut labels = vec![cfg.num_classes; n];
    let mut bbox_targets = vec![[0f32; 4]; n];
    let mut centerness = vec![0f32; n];
    let mut num_pos = 0;
    // Level of each point.
    let mut level = Vec::with_capacity(n);
    for (l, &cnt) in num_level_points.iter().enumerate() {
        level.extend(std::iter::repeat_n(l, cnt));
    }
    let areas: Vec<f32> = gt
        .bboxes
        .iter()
        .map(|b| (b[2] - b[0]) * (b[3] - b[1]))
        .collect();
    for (p, &[x, y]) in points.iter().enumerate() {
        let l = level[p];
        let [lo, hi] = cfg.regress_ranges[l];
        let mut best: Option<(f32, usize)> = None;
        for (gi, b) in gt.bboxes.iter().enumerate() {
            let t = [x - b[0], y - b[1], b[2] - x, b[3] - y];
            let inside = if cfg.center_sampling {
                let r = (cfg.strides[l] * cfg.center_sample_radius) as f32;
                let cx = (b[0] + b[2]) / 2.0;
                let cy = (b[1] + b[3]) / 2.0;
                let (xmin, ymin, xmax, ymax) = (cx - r, cy - r, cx + r, cy + r);
                let c0 = if xmin > b[0] { xmin } else { b[0] };
                let c1 = if ymin > b[1] { ymin } else { b[1] };
                let c2 = if xmax > b[2] { b[2] } else { xmax };
                let c3 = if ymax > b[3] { b[3] } else { ymax };
                [x - c0, y - c1, c2 - x, c3 - y]
                    .into_iter()
                    .fold(f32::INFINITY, f32::min)
                    > 0.0
            } else {
                t.into_iter().fold(f32::INFINITY, f32::min) > 0.0
            };
            let m = t.into_iter().fold(f32::NEG_INFINITY, f32::max) as f64;
            if inside && m >= lo && m <= hi && best.is_none_or(|(a, _)| areas[gi] < a) {
                best = Some((areas[gi], gi));
            }
        }
        if let Some((_, gi)) = best {
            let b = gt.bboxes[gi];
            let t = [x - b[0], y - b[1], b[2] - x, b[3] - y];
            labels[p] = gt.labels[gi];
            let (lr, tb) = ((t[0], t[2]), (t[1], t[3]));
            let c = (lr.0.min(lr.1) / lr.0.max(lr.1)) * (tb.0.min(tb.1) / tb.0.max(tb.1));
            centerness[p] = c.sqrt();
            let s = if cfg.norm_on_bbox {
                cfg.strides[l] as f32
            } else {
                1.0
            };
            bbox_targets[p] = t.map(|v| v / s);
            num_pos += 1;
        }
    }
    FcosTargets {
        labels,
        bbox_targets,
        centerness,
        num_pos,
    }
}
