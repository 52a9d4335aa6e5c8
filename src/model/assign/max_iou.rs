//! mmdetection's `MaxIoUAssigner`.

use super::{AssignResult, ImageGt};
use crate::model::boxes::{OverlapMode, bbox_overlaps};
use serde::{Deserialize, Serialize};

/// `neg_iou_thr`: one threshold (negatives have IoU in `[0, thr)`) or a range `[lo, hi)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NegIouThr {
    Below(f64),
    Range([f64; 2]),
}

/// Config and logic of `MaxIoUAssigner` (mmdetection parameter names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxIouAssigner {
    pub pos_iou_thr: f64,
    pub neg_iou_thr: NegIouThr,
    pub min_pos_iou: f64,
    pub gt_max_assign_all: bool,
    pub ignore_iof_thr: f64,
    pub ignore_wrt_candidates: bool,
    pub match_low_quality: bool,
    /// Accepted for config compatibility; assignment always runs on the CPU here.
    pub gpu_assign_thr: f64,
}

impl MaxIouAssigner {
    /// Assign every prior in `priors` (all treated as valid).
    pub fn assign(&self, priors: &[[f32; 4]], gt: &ImageGt) -> AssignResult {
        let (g, n) = (gt.bboxes.len(), priors.len());
        if g == 0 || n == 0 {
            return AssignResult {
                // No ground truth: everything is background (mmdetection sets 0).
                gt_inds: vec![if g == 0 { 0 } else { -1 }; n],
                max_overlaps: vec![0.0; n],
            };
        }
        // overlaps[gi * n + pi]
        let mut overlaps = bbox_overlaps(&gt.bboxes, priors, OverlapMode::Iou, Some(1e-6));
        if self.ignore_iof_thr > 0.0 && !gt.bboxes_ignore.is_empty() {
            let ign = &gt.bboxes_ignore;
            let ignored: Vec<bool> = if self.ignore_wrt_candidates {
                let iof = bbox_overlaps(priors, ign, OverlapMode::Iof, Some(1e-6));
                iof.chunks(ign.len())
                    .map(|r| max_first(r).0 as f64 > self.ignore_iof_thr)
                    .collect()
            } else {
                let iof = bbox_overlaps(ign, priors, OverlapMode::Iof, Some(1e-6));
                (0..n)
                    .map(|p| {
                        (0..ign.len())
                            .map(|k| iof[k * n + p])
                            .fold(f32::NEG_INFINITY, f32::max) as f64
                            > self.ignore_iof_thr
                    })
                    .collect()
            };
            for (p, &ig) in ignored.iter().enumerate() {
                if ig {
                    for gi in 0..g {
                        overlaps[gi * n + p] = -1.0;
                    }
                }
            }
        }
        self.assign_wrt_overlaps(&overlaps, g, n)
    }

    /// mmdetection's `assign_wrt_overlaps` on a `[g × n]` overlap matrix.
    fn assign_wrt_overlaps(&self, overlaps: &[f32], g: usize, n: usize) -> AssignResult {
        let mut gt_inds = vec![-1i64; n];
        // Per prior: best gt (first index on ties, as torch.max on CPU).
        let mut max_ov = vec![f32::NEG_INFINITY; n];
        let mut argmax = vec![0usize; n];
        for gi in 0..g {
            for p in 0..n {
                if overlaps[gi * n + p] > max_ov[p] {
                    max_ov[p] = overlaps[gi * n + p];
                    argmax[p] = gi;
                }
            }
        }
        let (lo, hi) = match self.neg_iou_thr {
            NegIouThr::Below(t) => (0.0, t),
            NegIouThr::Range([a, b]) => (a, b),
        };
        for p in 0..n {
            let m = max_ov[p] as f64;
            if m >= lo && m < hi {
                gt_inds[p] = 0;
            }
        }
        for p in 0..n {
            if max_ov[p] as f64 >= self.pos_iou_thr {
                gt_inds[p] = argmax[p] as i64 + 1;
            }
        }
        if self.match_low_quality {
            // Every gt also takes its best prior(s), later gts overriding earlier ones.
            for gi in 0..g {
                let row = &overlaps[gi * n..(gi + 1) * n];
                let (best, best_p) = max_first(row);
                if best as f64 >= self.min_pos_iou {
                    if self.gt_max_assign_all {
                        for (p, &v) in row.iter().enumerate() {
                            if v == best {
                                gt_inds[p] = gi as i64 + 1;
                            }
                        }
                    } else {
                        gt_inds[best_p] = gi as i64 + 1;
                    }
                }
            }
        }
        AssignResult {
            gt_inds,
            max_overlaps: max_ov,
        }
    }
}

/// Maximum and the first index holding it.
pub(crate) fn max_first(v: &[f32]) -> (f32, usize) {
    let mut best = (f32::NEG_INFINITY, 0);
    for (i, &x) in v.iter().enumerate() {
        if x > best.0 {
            best = (x, i);
        }
    }
    best
}
