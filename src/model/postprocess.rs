//! Inference post-processing of dense heads, mmdetection 2.x (≥ 2.18) semantics:
//! per level, sigmoid scores → keep (prior, class) pairs with score > `score_thr` → the
//! `nms_pre` best of them → decode their boxes (clipped to `img_shape`); then all levels
//! together: multiply by centerness (FCOS), rescale to the original image, class-aware
//! batched NMS, keep `max_per_img`. Results convert to COCO's result format.

use super::boxes::{
    DEFAULT_WH_RATIO_CLIP, DeltaXYWHBBoxCoder, DistancePointBBoxCoder, batched_nms,
};
use serde::{Deserialize, Serialize};

/// `test_cfg.nms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NmsConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub iou_threshold: f64,
}

/// `test_cfg` of a dense head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// Candidates kept per level before NMS (`<= 0`: all).
    pub nms_pre: i64,
    pub min_bbox_size: f64,
    pub score_thr: f64,
    pub nms: NmsConfig,
    pub max_per_img: usize,
}

/// One level of one image's raw head outputs, channel-first (`[channels, h, w]`) as the
/// network writes them.
#[derive(Clone, Copy, Debug)]
pub struct LevelOutput<'a> {
    /// `[A·C, h, w]` classification logits.
    pub cls: &'a [f32],
    /// `[A·4, h, w]` regression outputs.
    pub reg: &'a [f32],
    /// `[A, h, w]` centerness logits (FCOS), if any.
    pub centerness: Option<&'a [f32]>,
    pub h: usize,
    pub w: usize,
}

/// How boxes are decoded from priors.
#[derive(Clone, Debug)]
pub enum Decoder<'a> {
    /// Anchors of each level (`h·w·A` each) with a delta coder.
    Delta {
        anchors: &'a [Vec<[f32; 4]>],
        coder: &'a DeltaXYWHBBoxCoder,
    },
    /// Points of each level (`h·w` each) with a distance coder; distances are multiplied by
    /// `scale[l]` first (FCOS `norm_on_bbox` gives the stride, else 1).
    Distance {
        points: &'a [Vec<[f32; 2]>],
        coder: &'a DistancePointBBoxCoder,
        scale: &'a [f32],
    },
}

/// Detections of one image, sorted by decreasing score.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detections {
    pub bboxes: Vec<[f32; 4]>,
    pub scores: Vec<f32>,
    pub labels: Vec<usize>,
}

/// Why post-processing could not run (shapes that do not fit together).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("postprocess: {0}")]
pub struct PostprocessError(String);

pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Post-process one image. `img_shape` is `(height, width)` of the resized image (boxes are
/// clipped to it); `scale_factor` is `[w, h, w, h]` from resizing (boxes are divided by it
/// when `rescale`).
#[allow(clippy::too_many_arguments)]
pub fn postprocess(
    levels: &[LevelOutput<'_>],
    decoder: &Decoder<'_>,
    num_classes: usize,
    cfg: &TestConfig,
    img_shape: (usize, usize),
    scale_factor: [f32; 4],
    rescale: bool,
) -> Result<Detections, PostprocessError> {
    let err = |m: String| Err(PostprocessError(m));
    let shape = Some((img_shape.0 as f32, img_shape.1 as f32));
    let mut boxes = Vec::new();
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    let mut factors = Vec::new();
    for (l, lv) in levels.iter().enumerate() {
        let hw = lv.h * lv.w;
        if hw == 0 || lv.cls.len() % (hw * num_classes) != 0 {
            return err(format!(
                "level {l}: {} class outputs for {hw} locations × {num_classes} classes",
                lv.cls.len()
            ));
        }
        let a = lv.cls.len() / (hw * num_classes);
        if lv.reg.len() != a * 4 * hw {
            return err(format!(
                "level {l}: {} regression outputs, expected {}",
                lv.reg.len(),
                a * 4 * hw
            ));
        }
        let nprior = match decoder {
            Decoder::Delta { anchors, .. } => anchors.get(l).map(Vec::len),
            Decoder::Distance { points, .. } => points.get(l).map(|p| p.len() * a),
        };
        if nprior != Some(hw * a) {
            return err(format!(
                "level {l}: {nprior:?} priors for {} outputs",
                hw * a
            ));
        }
        // (prior, class) pairs above the threshold, prior index = (y·w + x)·A + anchor.
        let mut cand: Vec<(f32, usize, usize)> = Vec::new();
        for loc in 0..hw {
            for ai in 0..a {
                for c in 0..num_classes {
                    let s = sigmoid(lv.cls[(ai * num_classes + c) * hw + loc]);
                    if s as f64 > cfg.score_thr {
                        cand.push((s, loc * a + ai, c));
                    }
                }
            }
        }
        // torch's sort(descending) on the filtered scores; ties keep flattened order.
        cand.sort_by(|x, y| y.0.total_cmp(&x.0));
        if cfg.nms_pre > 0 {
            cand.truncate(cfg.nms_pre as usize);
        }
        for (s, prior, c) in cand {
            let (loc, ai) = (prior / a, prior % a);
            let d: [f32; 4] = std::array::from_fn(|k| lv.reg[(ai * 4 + k) * hw + loc]);
            let b = match decoder {
                Decoder::Delta { anchors, coder } => {
                    coder.decode(&anchors[l][prior], &d, shape, DEFAULT_WH_RATIO_CLIP)
                }
                Decoder::Distance {
                    points,
                    coder,
                    scale,
                } => {
                    let s = scale.get(l).copied().unwrap_or(1.0);
                    coder.decode(points[l][loc], &d.map(|v| v * s), shape)
                }
            };
            boxes.push(b);
            scores.push(s);
            labels.push(c);
            factors.push(match lv.centerness {
                Some(ctr) if ctr.len() == a * hw => sigmoid(ctr[ai * hw + loc]),
                Some(ctr) => {
                    return err(format!(
                        "level {l}: {} centerness outputs, expected {}",
                        ctr.len(),
                        a * hw
                    ));
                }
                None => 1.0,
            });
        }
    }
    for (s, f) in scores.iter_mut().zip(&factors) {
        *s *= f;
    }
    if rescale {
        for b in &mut boxes {
            for k in 0..4 {
                b[k] /= scale_factor[k];
            }
        }
    }
    if cfg.min_bbox_size > 0.0 {
        let m = cfg.min_bbox_size as f32;
        let keep: Vec<usize> = (0..boxes.len())
            .filter(|&i| boxes[i][2] - boxes[i][0] > m && boxes[i][3] - boxes[i][1] > m)
            .collect();
        boxes = keep.iter().map(|&i| boxes[i]).collect();
        scores = keep.iter().map(|&i| scores[i]).collect();
        labels = keep.iter().map(|&i| labels[i]).collect();
    }
    let mut keep = batched_nms(&boxes, &scores, &labels, cfg.nms.iou_threshold as f32);
    keep.truncate(cfg.max_per_img);
    Ok(Detections {
        bboxes: keep.iter().map(|&i| boxes[i]).collect(),
        scores: keep.iter().map(|&i| scores[i]).collect(),
        labels: keep.iter().map(|&i| labels[i]).collect(),
    })
}

/// One detection in COCO's result format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoDetection {
    pub image_id: u64,
    /// `[x, y, width, height]`.
    pub bbox: [f64; 4],
    pub score: f64,
    pub category_id: u64,
}

/// Detections of one image as COCO results; `cat_ids[label]` gives the category id.
pub fn to_coco(
    dets: &Detections,
    image_id: u64,
    cat_ids: &[u64],
) -> Result<Vec<CocoDetection>, PostprocessError> {
    dets.bboxes
        .iter()
        .zip(&dets.scores)
        .zip(&dets.labels)
        .map(|((b, &s), &l)| {
            let cat = *cat_ids.get(l).ok_or_else(|| {
                PostprocessError(format!(
                    "label {l} has no category id ({} known)",
                    cat_ids.len()
                ))
            })?;
            let [x1, y1, x2, y2] = b.map(f64::from);
            Ok(CocoDetection {
                image_id,
                bbox: [x1, y1, x2 - x1, y2 - y1],
                score: s as f64,
                category_id: cat,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    fn cfg(nms_pre: i64, max_per_img: usize) -> TestConfig {
        TestConfig {
            nms_pre,
            min_bbox_size: 0.0,
            score_thr: 0.05,
            nms: NmsConfig {
                kind: "nms".into(),
                iou_threshold: 0.5,
            },
            max_per_img,
        }
    }

    /// One level of 1×2 locations, one anchor each, two classes; zero deltas decode to the
    /// anchors themselves.
    #[test]
    fn threshold_topk_nms_and_rescale() {
        let anchors = vec![vec![[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]]];
        let coder = DeltaXYWHBBoxCoder::default();
        // channel-first [A·C=2, h=1, w=2]: class 0 at both locations, then class 1.
        let cls = [logit(0.9), logit(0.8), logit(0.04), logit(0.7)];
        let reg = [0.0f32; 8];
        let lv = [LevelOutput {
            cls: &cls,
            reg: &reg,
            centerness: None,
            h: 1,
            w: 2,
        }];
        let dec = Decoder::Delta {
            anchors: &anchors,
            coder: &coder,
        };
        let d = postprocess(&lv, &dec, 2, &cfg(1000, 100), (20, 20), [2.0; 4], true).unwrap();
        // class 0: the two boxes overlap (IoU 9/11 > 0.5) so 0.8 goes; class 1 keeps 0.7;
        // 0.04 is under score_thr.
        assert_eq!(d.labels, vec![0, 1]);
        assert!((d.scores[0] - 0.9).abs() < 1e-6 && (d.scores[1] - 0.7).abs() < 1e-6);
        assert_eq!(d.bboxes[0], [0.0, 0.0, 5.0, 5.0]);
        assert_eq!(d.bboxes[1], [0.5, 0.0, 5.5, 5.0]);
        // nms_pre keeps the best (prior, class) pair of the level only.
        let d = postprocess(&lv, &dec, 2, &cfg(1, 100), (20, 20), [1.0; 4], false).unwrap();
        assert_eq!((d.labels.clone(), d.scores.len()), (vec![0], 1));
        let d = postprocess(&lv, &dec, 2, &cfg(1000, 1), (20, 20), [1.0; 4], false).unwrap();
        assert_eq!(d.scores.len(), 1);
        let coco = to_coco(&d, 7, &[3, 5]).unwrap();
        assert_eq!(coco[0].bbox, [0.0, 0.0, 10.0, 10.0]);
        assert_eq!((coco[0].image_id, coco[0].category_id), (7, 3));
        assert!(to_coco(&d, 7, &[]).is_err());
    }

    #[test]
    fn centerness_multiplies_after_threshold_and_shapes_are_checked() {
        let points = vec![vec![[5.0f32, 5.0]]];
        let coder = DistancePointBBoxCoder::default();
        let cls = [logit(0.5)];
        let reg = [1.0f32, 2.0, 3.0, 4.0];
        let ctr = [0.0f32]; // sigmoid 0.5
        let lv = [LevelOutput {
            cls: &cls,
            reg: &reg,
            centerness: Some(&ctr),
            h: 1,
            w: 1,
        }];
        let dec = Decoder::Distance {
            points: &points,
            coder: &coder,
            scale: &[2.0],
        };
        let d = postprocess(&lv, &dec, 1, &cfg(1000, 100), (100, 100), [1.0; 4], false).unwrap();
        assert!((d.scores[0] - 0.25).abs() < 1e-6);
        assert_eq!(d.bboxes[0], [3.0, 1.0, 11.0, 13.0]);
        let bad = [LevelOutput {
            cls: &cls,
            reg: &reg[..3],
            centerness: None,
            h: 1,
            w: 1,
        }];
        assert!(postprocess(&bad, &dec, 1, &cfg(1000, 100), (100, 100), [1.0; 4], false).is_err());
    }
}
