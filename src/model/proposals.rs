//! RPN proposals, as mmdetection 2.28's `RPNHead._get_bboxes_single` and `_bbox_post_process`
//! make them for one image: per level, the sigmoid objectness of every anchor sorted, the
//! `nms_pre` best kept with their anchors and deltas; all levels together decoded (clipped to
//! the image), boxes not wider and taller than `min_bbox_size` dropped, NMS per level
//! (`batched_nms` with the level as the group), the `max_per_img` best kept. And the FPN
//! level each RoI is pooled from (`SingleRoIExtractor.map_roi_levels`).

use super::boxes::{BBox, DEFAULT_WH_RATIO_CLIP, DeltaXYWHBBoxCoder, batched_nms};
use super::postprocess::sigmoid;

/// The proposal settings of `rpn` in `train_cfg` / `test_cfg`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProposalConfig {
    /// Candidates kept per level before NMS (0: all).
    pub nms_pre: usize,
    /// Kept boxes are wider and taller than this (mmdetection's default 0 drops empty ones).
    pub min_bbox_size: f64,
    pub iou_threshold: f64,
    pub max_per_img: usize,
}

/// One level of one image's RPN outputs, channel-first as the network writes them.
#[derive(Clone, Copy, Debug)]
pub struct RpnLevel<'a> {
    /// `[A, h, w]` objectness logits (sigmoid).
    pub cls: &'a [f32],
    /// `[A·4, h, w]` deltas.
    pub reg: &'a [f32],
    pub h: usize,
    pub w: usize,
}

/// One image's proposals, by decreasing objectness.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proposals {
    pub boxes: Vec<BBox<f32>>,
    pub scores: Vec<f32>,
}

/// Outputs and anchors that do not fit together.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("rpn proposals: {0}")]
pub struct ProposalError(String);

/// The proposals of one image of shape `img_shape` (`(h, w)`) from its levels' outputs and
/// anchors (`h·w·A` per level, anchor index `(y·w + x)·A + a`).
pub fn rpn_proposals(
    levels: &[RpnLevel<'_>],
    anchors: &[Vec<BBox<f32>>],
    coder: &DeltaXYWHBBoxCoder,
    cfg: &ProposalConfig,
    img_shape: (usize, usize),
) -> Result<Proposals, ProposalError> {
    if levels.len() != anchors.len() {
        return Err(ProposalError(format!(
            "{} levels of outputs for {} levels of anchors",
            levels.len(),
            anchors.len()
        )));
    }
    let (mut boxes, mut scores, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    let shape = Some((img_shape.0 as f32, img_shape.1 as f32));
    for (l, (lv, anc)) in levels.iter().zip(anchors).enumerate() {
        let hw = lv.h * lv.w;
        let a = lv.cls.len().checked_div(hw).unwrap_or(0);
        if hw == 0 || lv.cls.len() != a * hw || lv.reg.len() != 4 * a * hw || anc.len() != a * hw {
            return Err(ProposalError(format!(
                "level {l}: {} logits, {} deltas and {} anchors for {}×{} locations",
                lv.cls.len(),
                lv.reg.len(),
                anc.len(),
                lv.h,
                lv.w
            )));
        }
        // Prior p = loc·A + a reads channel a (logit) and channels 4a..4a+4 (deltas) at loc.
        let score = |p: usize| sigmoid(lv.cls[(p % a) * hw + p / a]);
        let level_scores: Vec<f32> = (0..a * hw).map(score).collect();
        let mut order: Vec<usize> = (0..a * hw).collect();
        order.sort_by(|&i, &j| level_scores[j].total_cmp(&level_scores[i]));
        if cfg.nms_pre > 0 {
            order.truncate(cfg.nms_pre);
        }
        for p in order {
            let (loc, ai) = (p / a, p % a);
            let delta: [f32; 4] = std::array::from_fn(|k| lv.reg[(4 * ai + k) * hw + loc]);
            boxes.push(coder.decode(&anc[p], &delta, shape, DEFAULT_WH_RATIO_CLIP));
            scores.push(level_scores[p]);
            ids.push(l);
        }
    }
    let min = cfg.min_bbox_size as f32;
    let keep: Vec<usize> = (0..boxes.len())
        .filter(|&i| boxes[i][2] - boxes[i][0] > min && boxes[i][3] - boxes[i][1] > min)
        .collect();
    let boxes: Vec<BBox<f32>> = keep.iter().map(|&i| boxes[i]).collect();
    let scores: Vec<f32> = keep.iter().map(|&i| scores[i]).collect();
    let ids: Vec<usize> = keep.iter().map(|&i| ids[i]).collect();
    let kept = batched_nms(&boxes, &scores, &ids, cfg.iou_threshold as f32);
    let kept = &kept[..kept.len().min(cfg.max_per_img)];
    Ok(Proposals {
        boxes: kept.iter().map(|&i| boxes[i]).collect(),
        scores: kept.iter().map(|&i| scores[i]).collect(),
    })
}

/// The FPN level each RoI is pooled from (mmdetection's `SingleRoIExtractor.map_roi_levels`):
/// `floor(log2(sqrt(w·h) / finest_scale + 1e-6))`, clamped to `0..levels`, in f32 as
/// mmdetection computes it. RoIs are `[batch, x1, y1, x2, y2]`.
pub fn roi_levels(rois: &[[f32; 5]], finest_scale: f32, levels: usize) -> Vec<usize> {
    let top = levels.saturating_sub(1) as f32;
    rois.iter()
        .map(|r| {
            let scale = ((r[3] - r[1]) * (r[4] - r[2])).sqrt();
            let lvl = (scale / finest_scale + 1e-6).log2().floor();
            // `as` maps NaN (a malformed box) to level 0.
            lvl.clamp(0.0, top) as usize
        })
        .collect()
}
