//! `COCOeval.params` for bbox evaluation, with pycocotools' defaults and the normalisation
//! `evaluate()` applies (sorted unique image and category ids, sorted maxDets).

use super::super::EvalError;
use super::super::numpy::linspace;
use super::data::CocoGt;

/// Evaluation parameters; `Default` is pycocotools' bbox setting.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoParams {
    /// Images to evaluate; `None` means every ground-truth image.
    pub img_ids: Option<Vec<i64>>,
    /// Categories to evaluate; `None` means every ground-truth category.
    pub cat_ids: Option<Vec<i64>>,
    /// IoU thresholds (`linspace(0.5, 0.95, 10)`).
    pub iou_thrs: Vec<f64>,
    /// Recall thresholds (`linspace(0, 1, 101)`).
    pub rec_thrs: Vec<f64>,
    /// Detections kept per (image, category), e.g. `[1, 10, 100]`.
    pub max_dets: Vec<usize>,
    /// Area ranges `[lo, hi]`, both ends included.
    pub area_rng: Vec<[f64; 2]>,
    /// Labels of the area ranges (`all`, `small`, `medium`, `large`); `summarize` looks them up.
    pub area_rng_lbl: Vec<String>,
    /// Match within categories (`true`) or across them (`false`, used for proposals).
    pub use_cats: bool,
}

impl Default for CocoParams {
    fn default() -> Self {
        CocoParams {
            img_ids: None,
            cat_ids: None,
            iou_thrs: linspace(0.5, 0.95, 10),
            rec_thrs: linspace(0.0, 1.0, 101),
            max_dets: vec![1, 10, 100],
            area_rng: vec![
                [0.0, 1e10],
                [0.0, 32.0 * 32.0],
                [32.0 * 32.0, 96.0 * 96.0],
                [96.0 * 96.0, 1e10],
            ],
            area_rng_lbl: ["all", "small", "medium", "large"]
                .map(String::from)
                .to_vec(),
            use_cats: true,
        }
    }
}

impl CocoParams {
    /// mmdetection's `proposal` metric: class-agnostic matching, `maxDets = proposal_nums`.
    pub fn proposal(proposal_nums: &[usize]) -> Self {
        CocoParams {
            max_dets: proposal_nums.to_vec(),
            use_cats: false,
            ..Self::default()
        }
    }

    /// The parameters `evaluate()` actually runs with.
    pub(super) fn resolved(&self, gt: &CocoGt) -> Result<CocoParams, EvalError> {
        let mut p = self.clone();
        let mut imgs = self.img_ids.clone().unwrap_or_else(|| gt.images.clone());
        imgs.sort_unstable();
        imgs.dedup();
        let mut cats = self.cat_ids.clone().unwrap_or_else(|| gt.cat_ids());
        cats.sort_unstable();
        cats.dedup();
        p.img_ids = Some(imgs);
        p.cat_ids = Some(cats);
        p.max_dets.sort_unstable();
        let bad = |m: &str| Err(EvalError::Params(m.to_string()));
        if p.iou_thrs.is_empty() || p.iou_thrs.iter().any(|t| !t.is_finite()) {
            return bad("iou_thrs must be a non-empty list of numbers");
        }
        if p.rec_thrs.is_empty() || p.rec_thrs.iter().any(|t| !t.is_finite()) {
            return bad("rec_thrs must be a non-empty list of numbers");
        }
        if p.rec_thrs.windows(2).any(|w| w[0] > w[1]) {
            return bad("rec_thrs must be non-decreasing");
        }
        if p.max_dets.is_empty() || p.max_dets[0] == 0 {
            return bad("max_dets must be a non-empty list of positive counts");
        }
        if p.area_rng.is_empty() || p.area_rng.len() != p.area_rng_lbl.len() {
            return bad("area_rng and area_rng_lbl must be non-empty and of equal length");
        }
        Ok(p)
    }

    pub(super) fn imgs(&self) -> &[i64] {
        self.img_ids.as_deref().unwrap_or(&[])
    }

    pub(super) fn cats(&self) -> &[i64] {
        self.cat_ids.as_deref().unwrap_or(&[])
    }

    /// Number of category slots K of the result arrays (1 when categories are pooled).
    pub(super) fn k_slots(&self) -> usize {
        if self.use_cats { self.cats().len() } else { 1 }
    }
}
