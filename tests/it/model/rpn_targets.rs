//! An RPN's training targets against a numpy transcription of mmdetection 2.28's
//! `AnchorHead._get_targets_single` / `get_targets` as `RPNHead.loss` calls them (no labels:
//! every positive is class 0), run live on random ground truth over three levels of anchors:
//! `valid_flags` at the image's pad shape, `anchor_inside_flags` with `allowed_border = 0`,
//! `MaxIoUAssigner(0.7, 0.3, min_pos_iou = 0.3)` on the inside anchors, `bbox2delta`, and
//! `num_total_samples` (the sum over images of max(pos, 1) + max(neg, 1)). Sampling is replaced
//! by a sampler whose quota takes every candidate (the issue's "fixed choice"); its random
//! quotas are checked separately.

use super::py;
use mmrun::model::anchor::{AnchorGenerator, AnchorGeneratorConfig, Stride};
use mmrun::model::assign::{AssignerConfig, ImageGt, MaxIouAssigner, NegIouThr};
use mmrun::model::boxes::DeltaXYWHBBoxCoder;
use mmrun::model::config::RandomSamplerConfig;
use mmrun::model::target::{AnchorTargetConfig, PaddedShapes, TargetBuilder};
use mmrun::util::rng::Rng;
use serde_json::json;
use std::sync::Arc;

const MMDET: &str = r#"
import json, sys, numpy as np
d = json.load(sys.stdin)
f = np.float32
out, total = [], 0
for im in d["images"]:
    anchors = np.array(d["anchors"], dtype=f).reshape(-1, 4)
    # AnchorGenerator.valid_flags at pad_shape
    valid = []
    for (fh, fw), s in zip(d["sizes"], d["strides"]):
        vh = min(int(np.ceil(im["pad_shape"][0] / s)), fh); vw = min(int(np.ceil(im["pad_shape"][1] / s)), fw)
        vx = np.zeros(fw, bool); vy = np.zeros(fh, bool); vx[:vw] = True; vy[:vh] = True
        vv = (np.tile(vx, fh) & np.repeat(vy, fw))
        valid.append(np.repeat(vv, d["a"]))
    valid = np.concatenate(valid)
    # anchor_inside_flags, allowed_border = 0, img_shape
    h, w = im["img_shape"]; ab = 0
    inside = valid & (anchors[:, 0] >= -ab) & (anchors[:, 1] >= -ab) & (anchors[:, 2] < w + ab) & (anchors[:, 3] < h + ab)
    a = anchors[inside]
    gt = np.array(im["gt"], dtype=f).reshape(-1, 4)
    # MaxIoUAssigner(pos 0.7, neg 0.3, min_pos_iou 0.3, gt_max_assign_all, match_low_quality)
    assigned = np.full(len(a), -1)
    if len(gt) and len(a):
        ov = overlaps(gt, a)
        mo, am = ov.max(0), ov.argmax(0)
        gmo = ov.max(1)
        assigned[(mo >= 0) & (mo < 0.3)] = 0
        p = mo >= 0.7; assigned[p] = am[p] + 1
        for i in range(len(gt)):
            if gmo[i] >= 0.3:
                assigned[ov[i] == gmo[i]] = i + 1
    elif len(a):
        assigned[:] = 0
    pos = np.nonzero(assigned > 0)[0]; neg = np.nonzero(assigned == 0)[0]
    n = len(a)
    labels = np.full(n, 1); lw = np.zeros(n, f); bt = np.zeros((n, 4), f); bw = np.zeros((n, 4), f)
    if len(pos):
        bt[pos] = bbox2delta(a[pos], gt[assigned[pos] - 1]); bw[pos] = 1.0
        labels[pos] = 0; lw[pos] = 1.0
    lw[neg] = 1.0
    # unmap to every anchor (labels fill with num_classes, the rest with 0)
    N = len(anchors)
    L = np.full(N, 1); L[inside] = labels
    LW = np.zeros(N, f); LW[inside] = lw
    BT = np.zeros((N, 4), f); BT[inside] = bt
    BW = np.zeros((N, 4), f); BW[inside] = bw
    total += max(len(pos), 1) + max(len(neg), 1)
    out.append({"labels": L.tolist(), "label_weights": LW.tolist(), "bbox_targets": BT.flatten().tolist(), "bbox_weights": BW[:, 0].tolist()})
print(json.dumps({"images": out, "num_total_samples": total}))
"#;

fn builder(num: usize) -> TargetBuilder {
    let anchor_generator = AnchorGenerator::new(&AnchorGeneratorConfig {
        strides: [8.0, 16.0, 32.0].map(Stride::Square).to_vec(),
        ratios: vec![0.5, 1.0, 2.0],
        scales: Some(vec![4.0]),
        base_sizes: None,
        scale_major: true,
        octave_base_scale: None,
        scales_per_octave: None,
        center_offset: 0.0,
    })
    .unwrap();
    TargetBuilder::Anchor(Arc::new(AnchorTargetConfig {
        num_classes: 1,
        anchor_generator,
        assigner: AssignerConfig::MaxIou(MaxIouAssigner {
            pos_iou_thr: 0.7,
            neg_iou_thr: NegIouThr::Below(0.3),
            min_pos_iou: 0.3,
            gt_max_assign_all: true,
            ignore_iof_thr: -1.0,
            ignore_wrt_candidates: true,
            match_low_quality: true,
            gpu_assign_thr: -1.0,
        }),
        bbox_coder: DeltaXYWHBBoxCoder::default(),
        allowed_border: 0.0,
        pos_weight: -1.0,
        reg_decoded_bbox: false,
        sampler: Some(RandomSamplerConfig {
            num,
            pos_fraction: 0.5,
            neg_pos_ub: -1.0,
            add_gt_as_proposals: false,
        }),
        class_agnostic: true,
        keep_gt: None,
    }))
}

/// Random ground truth inside `(h, w)`, with labels the RPN must not read.
fn random_gt(rng: &mut Rng, n: usize, (h, w): (usize, usize)) -> ImageGt {
    let mut gt = ImageGt::default();
    for _ in 0..n {
        let (bw, bh) = (rng.range_f64(6.0, 70.0), rng.range_f64(6.0, 70.0));
        let x = rng.range_f64(0.0, (w as f64 - bw).max(1.0));
        let y = rng.range_f64(0.0, (h as f64 - bh).max(1.0));
        gt.bboxes.push([x, y, x + bw, y + bh].map(|v| v as f32));
        gt.labels.push(rng.below(6) as usize);
    }
    gt
}

#[test]
fn rpn_targets_match_mmdet_code() {
    let tb = builder(1_000_000);
    let batch_shape = (96, 128);
    let sizes = tb.featmap_sizes(batch_shape);
    let TargetBuilder::Anchor(c) = &tb else {
        unreachable!()
    };
    let anchors: Vec<f32> = (c.anchor_generator.grid_anchors(&sizes).unwrap())
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let mut rng = Rng::seed(11);
    // Images: several boxes; one box only; no boxes (all negatives); a small unpadded image.
    let images = [
        ((90, 120), (96, 128), 7),
        ((96, 100), (96, 128), 1),
        ((80, 128), (96, 128), 0),
        ((40, 60), (64, 64), 4),
    ];
    let mut cases = Vec::new();
    let mut input = Vec::new();
    for &(img_shape, pad_shape, n) in &images {
        let gt = random_gt(&mut rng, n, img_shape);
        let meta = PaddedShapes {
            img_shape,
            pad_shape,
            batch_shape,
        };
        let flat: Vec<f32> = gt.bboxes.iter().flatten().copied().collect();
        input.push(json!({"img_shape": [img_shape.0, img_shape.1], "pad_shape": [pad_shape.0, pad_shape.1], "gt": flat}));
        cases.push(tb.targets(&gt, &meta, &mut Rng::seed(0)).unwrap());
    }
    let Some(r) = py::run(
        &["numpy"],
        &format!("{}{MMDET}", py::NUMPY_BOX_OPS),
        &json!({"images": input, "anchors": anchors, "sizes": sizes, "strides": [8, 16, 32], "a": 3}),
    ) else {
        return;
    };
    let mut total = 0;
    for (k, (t, want)) in cases
        .iter()
        .zip(r["images"].as_array().unwrap())
        .enumerate()
    {
        let labels: Vec<u32> = py::f64s(&want["labels"])
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(t.labels, labels, "image {k}: labels");
        let lw: Vec<f32> = py::f64s(&want["label_weights"])
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(t.label_weights, lw, "image {k}: label weights");
        let bw: Vec<f32> = py::f64s(&want["bbox_weights"])
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(t.bbox_weights, bw, "image {k}: bbox weights");
        for (i, (got, want)) in t
            .bbox_targets
            .iter()
            .zip(py::boxes(&want["bbox_targets"]))
            .enumerate()
        {
            for j in 0..4 {
                let d = (got[j] as f64 - want[j]).abs();
                assert!(
                    d <= 1e-5 * want[j].abs().max(1.0),
                    "image {k} anchor {i}: {got:?} vs {want:?}"
                );
            }
        }
        assert!(t.num_pos > 0 || images[k].2 == 0, "image {k} has positives");
        total += t.num_pos.max(1) + t.num_neg.max(1);
    }
    assert_eq!(total as u64, r["num_total_samples"].as_u64().unwrap());
}

/// The random sampler's quota through the target builder: `num` anchors train, at most half
/// positive, the rest negatives; different streams draw different anchors.
#[test]
fn rpn_sampler_keeps_num_anchors_per_image() {
    let tb = builder(32);
    let meta = PaddedShapes {
        img_shape: (96, 128),
        pad_shape: (96, 128),
        batch_shape: (96, 128),
    };
    let gt = random_gt(&mut Rng::seed(5), 6, (96, 128));
    let all = builder(1_000_000)
        .targets(&gt, &meta, &mut Rng::seed(0))
        .unwrap();
    assert!(
        all.num_pos > 0 && all.num_neg > 64,
        "{} {}",
        all.num_pos,
        all.num_neg
    );
    let a = tb.targets(&gt, &meta, &mut Rng::seed(1)).unwrap();
    let b = tb.targets(&gt, &meta, &mut Rng::seed(2)).unwrap();
    for t in [&a, &b] {
        assert_eq!(t.num_pos, all.num_pos.min(16));
        assert_eq!(t.num_pos + t.num_neg, 32);
        assert_eq!(t.label_weights.iter().sum::<f32>(), 32.0);
        // Sampled anchors are a subset of the candidates, with the same targets.
        for i in 0..t.labels.len() {
            if t.label_weights[i] > 0.0 {
                assert_eq!(all.label_weights[i], 1.0);
                assert_eq!(
                    (t.labels[i], t.bbox_targets[i]),
                    (all.labels[i], all.bbox_targets[i])
                );
            }
        }
    }
    assert_ne!(a.label_weights, b.label_weights);
}
