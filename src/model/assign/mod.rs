//! Assigners: which ground-truth box (if any) each anchor or point is responsible for.
//! `max_iou` and `atss` follow mmdetection 2.x's `MaxIoUAssigner` and `ATSSAssigner`; FCOS
//! point targets live in [`fcos`]; [`sampler`] picks which assigned priors train.

mod atss;
pub mod fcos;
mod max_iou;
pub mod sampler;

pub use atss::AtssAssigner;
pub use max_iou::{MaxIouAssigner, NegIouThr};

use serde::{Deserialize, Serialize};

/// Result of assigning `num_priors` anchors: for each, `-1` = ignored, `0` = negative,
/// `k > 0` = positive for ground truth `k - 1` (mmdetection's `assigned_gt_inds`).
#[derive(Clone, Debug, PartialEq)]
pub struct AssignResult {
    pub gt_inds: Vec<i64>,
    /// Best IoU of each prior with any ground truth (0 when there is none).
    pub max_overlaps: Vec<f32>,
}

impl AssignResult {
    /// Number of positive priors.
    pub fn num_pos(&self) -> usize {
        self.gt_inds.iter().filter(|&&g| g > 0).count()
    }
}

/// Ground truth of one image, in the (resized, padded) image's pixel coordinates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageGt {
    pub bboxes: Vec<[f32; 4]>,
    /// Category index in `0..num_classes` for each box.
    pub labels: Vec<usize>,
    /// Boxes marked ignore/crowd.
    pub bboxes_ignore: Vec<[f32; 4]>,
}

/// An assigner chosen by a config's `type` (`max_iou` or `atss`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AssignerConfig {
    #[serde(rename = "max_iou")]
    MaxIou(MaxIouAssigner),
    #[serde(rename = "atss")]
    Atss(AtssAssigner),
}

impl AssignerConfig {
    /// Assign `priors` (with `valid` flags; invalid ones come out as `-1`) to `gt`.
    /// `num_level_priors` is only used by ATSS.
    pub fn assign(
        &self,
        priors: &[[f32; 4]],
        valid: &[bool],
        num_level_priors: &[usize],
        gt: &ImageGt,
    ) -> AssignResult {
        // mmdetection assigns on the valid (inside) priors only and scatters back.
        let idx: Vec<usize> = (0..priors.len()).filter(|&i| valid[i]).collect();
        let sub: Vec<[f32; 4]> = idx.iter().map(|&i| priors[i]).collect();
        let r = match self {
            AssignerConfig::MaxIou(a) => a.assign(&sub, gt),
            AssignerConfig::Atss(a) => {
                // Count the valid priors per level for ATSS's per-level top-k.
                let mut counts = Vec::with_capacity(num_level_priors.len());
                let mut start = 0;
                for &n in num_level_priors {
                    counts.push(valid[start..start + n].iter().filter(|&&v| v).count());
                    start += n;
                }
                a.assign(&sub, &counts, gt)
            }
        };
        let mut out = AssignResult {
            gt_inds: vec![-1; priors.len()],
            max_overlaps: vec![0.0; priors.len()],
        };
        for (k, &i) in idx.iter().enumerate() {
            out.gt_inds[i] = r.gt_inds[k];
            out.max_overlaps[i] = r.max_overlaps[k];
        }
        out
    }
}
