//! RPN proposals against a transcription of mmdetection 2.28's `RPNHead._get_bboxes_single`
//! and `_bbox_post_process` in PyTorch (its `delta2bbox`, torchvision's `batched_nms`), run
//! live on random outputs of three levels: per-level sort and `nms_pre`, decoding clipped to
//! the image, the `min_bbox_size` filter, NMS per level, `max_per_img` (binding, and not);
//! and the FPN level of each RoI (`SingleRoIExtractor.map_roi_levels`), boundaries included.

use super::py;
use mmrun::model::anchor::{AnchorGenerator, AnchorGeneratorConfig, Stride};
use mmrun::model::boxes::DeltaXYWHBBoxCoder;
use mmrun::model::proposals::{ProposalConfig, RpnLevel, rpn_proposals};
use mmrun::util::rng::Rng;
use serde_json::json;

const MMDET: &str = r#"
import json, math, sys, torch
from torchvision.ops import batched_nms
d = json.load(sys.stdin)
def delta2bbox(rois, deltas, max_shape, wh_ratio_clip=16 / 1000):
    dx, dy, dw, dh = deltas.unbind(1)  # means 0, stds 1 (the RPN's coder)
    max_ratio = abs(math.log(wh_ratio_clip))
    dw = dw.clamp(min=-max_ratio, max=max_ratio)
    dh = dh.clamp(min=-max_ratio, max=max_ratio)
    px = (rois[:, 0] + rois[:, 2]) * 0.5
    py = (rois[:, 1] + rois[:, 3]) * 0.5
    pw = rois[:, 2] - rois[:, 0]
    ph = rois[:, 3] - rois[:, 1]
    gx = px + pw * dx
    gy = py + ph * dy
    gw = pw * dw.exp()
    gh = ph * dh.exp()
    b = torch.stack([gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5], -1)
    b[:, 0::2] = b[:, 0::2].clamp(min=0, max=max_shape[1])
    b[:, 1::2] = b[:, 1::2].clamp(min=0, max=max_shape[0])
    return b
out = []
for case in d["cases"]:
    mlvl_scores, mlvl_deltas, mlvl_anchors, level_ids = [], [], [], []
    for l, lv in enumerate(case["levels"]):
        a, h, w = lv["a"], lv["h"], lv["w"]
        cls = torch.tensor(lv["cls"], dtype=torch.float32).reshape(a, h, w)
        reg = torch.tensor(lv["reg"], dtype=torch.float32).reshape(a * 4, h, w)
        scores = cls.permute(1, 2, 0).reshape(-1).sigmoid()
        deltas = reg.permute(1, 2, 0).reshape(-1, 4)
        anchors = torch.tensor(lv["anchors"], dtype=torch.float32).reshape(-1, 4)
        nms_pre = case["nms_pre"]
        if 0 < nms_pre < scores.shape[0]:
            ranked, inds = scores.sort(descending=True)
            scores, deltas, anchors = ranked[:nms_pre], deltas[inds[:nms_pre]], anchors[inds[:nms_pre]]
        mlvl_scores.append(scores); mlvl_deltas.append(deltas); mlvl_anchors.append(anchors)
        level_ids.append(torch.full((scores.shape[0],), l, dtype=torch.long))
    scores = torch.cat(mlvl_scores)
    proposals = delta2bbox(torch.cat(mlvl_anchors), torch.cat(mlvl_deltas), case["img_shape"])
    ids = torch.cat(level_ids)
    w = proposals[:, 2] - proposals[:, 0]
    h = proposals[:, 3] - proposals[:, 1]
    valid = (w > case["min_bbox_size"]) & (h > case["min_bbox_size"])
    proposals, scores, ids = proposals[valid], scores[valid], ids[valid]
    keep = batched_nms(proposals, scores, ids, case["iou_threshold"])
    keep = keep[: case["max_per_img"]]
    out.append({"boxes": proposals[keep].flatten().tolist(), "scores": scores[keep].tolist()})
print(json.dumps(out))
"#;

#[test]
fn rpn_proposals_equal_mmdetection() {
    let mut rng = Rng::seed(crate::support::fresh_seed(
        "rpn_proposals_equal_mmdetection",
    ));
    // mmdetection's RPN anchors (scale 8, ratios 0.5/1/2) on three levels of a 100×132 image.
    let generator = AnchorGenerator::new(&AnchorGeneratorConfig {
        strides: [4.0, 8.0, 16.0].map(Stride::Square).into(),
        ratios: vec![0.5, 1.0, 2.0],
        scales: Some(vec![8.0]),
        base_sizes: None,
        scale_major: true,
        octave_base_scale: None,
        scales_per_octave: None,
        center_offset: 0.0,
    })
    .unwrap();
    let img_shape = (100usize, 132usize);
    let sizes = [(25usize, 33usize), (13, 17), (7, 9)];
    let anchors = generator.grid_anchors(&sizes).unwrap();

    let outputs: Vec<(Vec<f32>, Vec<f32>)> = sizes
        .iter()
        .map(|&(h, w)| {
            let cls = (0..3 * h * w)
                .map(|_| rng.range_f64(-4.0, 4.0) as f32)
                .collect();
            let reg = (0..12 * h * w)
                .map(|_| rng.range_f64(-0.8, 0.8) as f32)
                .collect();
            (cls, reg)
        })
        .collect();
    // Training's and test's settings (mmdetection's), a tight NMS, and a size filter.
    let cfgs = [
        (2000, 0.0, 0.7, 1000),
        (1000, 0.0, 0.7, 1000),
        (300, 0.0, 0.3, 50),
        (0, 6.0, 0.7, 200),
        (100, 0.0, 0.3, 1000),
    ]
    .map(
        |(nms_pre, min_bbox_size, iou_threshold, max_per_img)| ProposalConfig {
            nms_pre,
            min_bbox_size,
            iou_threshold,
            max_per_img,
        },
    );
    let levels: Vec<serde_json::Value> = sizes
        .iter()
        .zip(&outputs)
        .zip(&anchors)
        .map(|((&(h, w), (cls, reg)), anc)| {
            json!({"a": 3, "h": h, "w": w, "cls": cls, "reg": reg, "anchors": anc.concat()})
        })
        .collect();
    let cases: Vec<serde_json::Value> = cfgs
        .iter()
        .map(|c| {
            json!({"levels": levels, "nms_pre": c.nms_pre, "min_bbox_size": c.min_bbox_size,
                   "iou_threshold": c.iou_threshold, "max_per_img": c.max_per_img,
                   "img_shape": [img_shape.0, img_shape.1]})
        })
        .collect();
    let Some(reference) = py::run(&["torch", "torchvision"], MMDET, &json!({ "cases": cases }))
    else {
        return;
    };
    let coder = DeltaXYWHBBoxCoder {
        target_stds: [1.0; 4],
        ..Default::default()
    };
    let rpn_levels: Vec<RpnLevel> = sizes
        .iter()
        .zip(&outputs)
        .map(|(&(h, w), (cls, reg))| RpnLevel { cls, reg, h, w })
        .collect();
    for (c, cfg) in cfgs.iter().enumerate() {
        let ours = rpn_proposals(&rpn_levels, &anchors, &coder, cfg, img_shape).unwrap();
        let (boxes, scores) = (
            py::boxes(&reference[c]["boxes"]),
            py::f64s(&reference[c]["scores"]),
        );
        assert_eq!(ours.boxes.len(), boxes.len(), "{cfg:?}: proposal count");
        eprintln!("{cfg:?}: {} proposals, as mmdetection", boxes.len());
        assert!(!boxes.is_empty());
        // Equal scores (two logits with one f32 sigmoid) may come out in either order:
        // torch's sort is not stable. Compare with ties ordered by box.
        let ours = by_score_then_box(
            (ours.boxes.iter())
                .map(|b| b.map(f64::from))
                .zip(ours.scores.iter().map(|&s| s as f64)),
        );
        let theirs = by_score_then_box(boxes.into_iter().zip(scores));
        for (i, ((b, s), (rb, rs))) in ours.iter().zip(&theirs).enumerate() {
            for k in 0..4 {
                assert!(
                    (b[k] - rb[k]).abs() <= 1e-4 * rb[k].abs().max(1.0),
                    "{cfg:?}: proposal {i}: {b:?} (score {s}) vs mmdetection {rb:?} (score {rs})"
                );
            }
            assert!((s - rs).abs() <= 1e-6, "{cfg:?}: score {i}");
        }
    }
}

/// Proposals by decreasing score, equal scores by their boxes.
fn by_score_then_box(p: impl Iterator<Item = ([f64; 4], f64)>) -> Vec<([f64; 4], f64)> {
    let mut p: Vec<_> = p.collect();
    p.sort_by(|(a, sa), (b, sb)| {
        sb.total_cmp(sa).then_with(|| {
            a.iter()
                .zip(b)
                .fold(std::cmp::Ordering::Equal, |o, (x, y)| {
                    o.then(x.total_cmp(y))
                })
        })
    });
    p
}

const LEVELS: &str = r#"
import json, sys, torch
d = json.load(sys.stdin)
rois = torch.tensor(d["rois"], dtype=torch.float32).reshape(-1, 5)
# mmdetection 2.28 SingleRoIExtractor.map_roi_levels
scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
target_lvls = torch.floor(torch.log2(scale / d["finest_scale"] + 1e-6))
target_lvls = target_lvls.clamp(min=0, max=d["levels"] - 1).long()
print(json.dumps(target_lvls.tolist()))
"#;

#[test]
fn roi_levels_equal_mmdetection() {
    let mut rng = Rng::seed(crate::support::fresh_seed("roi_levels_equal_mmdetection"));
    // Random boxes from tiny to huge, and squares exactly at the level boundaries 56·2^k.
    let mut rois: Vec<[f32; 5]> = (0..300)
        .map(|_| {
            let (x, y) = (
                rng.range_f64(0.0, 500.0) as f32,
                rng.range_f64(0.0, 500.0) as f32,
            );
            let s = 2f64.powf(rng.range_f64(1.0, 10.0)) as f32;
            let r = rng.range_f64(0.3, 3.0) as f32;
            [0.0, x, y, x + s * r, y + s / r]
        })
        .collect();
    for k in 0..6 {
        let s = 56.0 * 2f32.powi(k);
        rois.extend([
            [0.0, 0.0, 0.0, s, s],
            [0.0, 10.0, 10.0, 10.0 + s - 0.01, 10.0 + s],
        ]);
    }
    let input = json!({"rois": rois.concat(), "finest_scale": 56.0, "levels": 4});
    let Some(reference) = py::run(&["torch"], LEVELS, &input) else {
        return;
    };
    let want: Vec<usize> = py::f64s(&reference).iter().map(|&v| v as usize).collect();
    let got = mmrun::model::proposals::roi_levels(&rois, 56.0, 4);
    assert_eq!(got, want);
    assert!(
        (0..4).all(|l| got.contains(&l)),
        "every level is used: {got:?}"
    );
}
