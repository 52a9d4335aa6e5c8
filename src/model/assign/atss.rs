//! mmdetection's `ATSSAssigner` (adaptive training sample selection): per ground truth, the
//! `topk` priors nearest its centre on each level are candidates; those with IoU ≥ mean + std
//! of the candidates' IoUs (unbiased std, as `torch.std`) whose centres lie inside the box are
//! positive; a prior positive for several boxes goes to the one it overlaps most.

use super::{AssignResult, ImageGt};
use crate::model::boxes::{OverlapMode, bbox_overlaps};
use serde::{Deserialize, Serialize};

/// Config and logic of `ATSSAssigner`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtssAssigner {
    pub topk: usize,
    pub ignore_iof_thr: f64,
}

impl AtssAssigner {
    /// Assign `priors`, grouped by level with `num_level_priors[l]` priors on level `l`.
    pub fn assign(
        &self,
        priors: &[[f32; 4]],
        num_level_priors: &[usize],
        gt: &ImageGt,
    ) -> AssignResult {
        let (g, n) = (gt.bboxes.len(), priors.len());
        let mut gt_inds = vec![0i64; n];
        if g == 0 || n == 0 {
            return AssignResult {
                gt_inds,
                max_overlaps: vec![0.0; n],
            };
        }
        // overlaps[p * g + gi]
        let overlaps = bbox_overlaps(priors, &gt.bboxes, OverlapMode::Iou, Some(1e-6));
        let centre = |b: &[f32; 4]| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0];
        let pc: Vec<[f32; 2]> = priors.iter().map(centre).collect();
        let gc: Vec<[f32; 2]> = gt.bboxes.iter().map(centre).collect();
        let mut dist = vec![0f32; n * g];
        for p in 0..n {
            for gi in 0..g {
                let dx = pc[p][0] - gc[gi][0];
                let dy = pc[p][1] - gc[gi][1];
                dist[p * g + gi] = (dx * dx + dy * dy).sqrt();
            }
        }
        if self.ignore_iof_thr > 0.0 && !gt.bboxes_ignore.is_empty() {
            let k = gt.bboxes_ignore.len();
            let iof = bbox_overlaps(priors, &gt.bboxes_ignore, OverlapMode::Iof, Some(1e-6));
            for p in 0..n {
                let m = iof[p * k..(p + 1) * k]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                if m as f64 > self.ignore_iof_thr {
                    dist[p * g..(p + 1) * g].fill(f32::INFINITY);
                    gt_inds[p] = -1;
                }
            }
        }
        // best[p] = (IoU, gt) of the best positive gt for prior p.
        let mut best: Vec<Option<(f32, usize)>> = vec![None; n];
        for gi in 0..g {
            let mut cands = Vec::new();
            let mut start = 0;
            for &cnt in num_level_priors {
                let mut lvl: Vec<usize> = (start..start + cnt).collect();
                // Stable: equal distances keep index order.
                lvl.sort_by(|&a, &b| dist[a * g + gi].total_cmp(&dist[b * g + gi]));
                cands.extend(lvl.into_iter().take(self.topk.min(cnt)));
                start += cnt;
            }
            let ious: Vec<f64> = cands.iter().map(|&p| overlaps[p * g + gi] as f64).collect();
            let m = ious.len() as f64;
            let mean = ious.iter().sum::<f64>() / m;
            let var = ious.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (m - 1.0);
            let thr = (mean + var.sqrt()) as f32;
            let b = &gt.bboxes[gi];
            for &p in &cands {
                let iou = overlaps[p * g + gi];
                let [cx, cy] = pc[p];
                let inside = [cx - b[0], cy - b[1], b[2] - cx, b[3] - cy]
                    .into_iter()
                    .fold(f32::INFINITY, f32::min)
                    > 0.01;
                // `thr` is NaN with a single candidate: nothing is positive, as in torch.
                if iou >= thr && inside {
                    // Ties keep the lower gt index (torch.max's first maximum).
                    if best[p].is_none_or(|(v, _)| iou > v) {
                        best[p] = Some((iou, gi));
                    }
                }
            }
        }
        let mut max_overlaps = vec![0f32; n];
        for p in 0..n {
            max_overlaps[p] = (0..g)
                .map(|gi| overlaps[p * g + gi])
                .fold(f32::NEG_INFINITY, f32::max);
            if let Some((_, gi)) = best[p] {
                gt_inds[p] = gi as i64 + 1;
            }
        }
        AssignResult {
            gt_inds,
            max_overlaps,
        }
    }
}
