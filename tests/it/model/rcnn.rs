//! Faster R-CNN's host work between its stages against transcriptions of mmdetection 2.28,
//! run live on random cases: the second stage's targets (`MaxIoUAssigner(0.5, 0.5, 0.5)`
//! without low-quality matches, ground truth added as proposals by `add_gt_`, and
//! `BBoxHead._get_target_single` with target stds 0.1/0.1/0.2/0.2), sampling replaced by a
//! quota that takes every candidate; and test-time detections (`BBoxHead.get_bboxes`:
//! softmax, class-specific `delta2bbox` clipped to the image, rescale, `multiclass_nms` with
//! torchvision's `batched_nms`).

use super::py;
use mmrun::model::assign::{AssignerConfig, ImageGt, MaxIouAssigner, NegIouThr};
use mmrun::model::boxes::DeltaXYWHBBoxCoder;
use mmrun::model::config::{RandomSamplerConfig, RcnnTestConfig};
use mmrun::model::postprocess::NmsConfig;
use mmrun::model::rcnn::{RcnnTargetConfig, rcnn_detections, rcnn_samples};
use mmrun::util::rng::Rng;
use serde_json::json;

const TARGETS: &str = r#"
import json, sys, numpy as np
d = json.load(sys.stdin)
f = np.float32
out = []
for c in d["cases"]:
    props = np.array(c["proposals"], dtype=f).reshape(-1, 4)
    gt = np.array(c["gt"], dtype=f).reshape(-1, 4); labels = np.array(c["labels"])
    # MaxIoUAssigner.assign (pos 0.5, neg 0.5, min_pos_iou 0.5, match_low_quality False)
    a = np.full(len(props), -1)
    if len(gt):
        ov = overlaps(gt, props); mo, am = ov.max(0), ov.argmax(0)
        a[(mo >= 0) & (mo < 0.5)] = 0
        p = mo >= 0.5; a[p] = am[p] + 1
    else:
        a[:] = 0
    # add_gt_as_proposals: gt first, each assigned to itself
    bboxes = np.concatenate([gt, props], 0)
    a = np.concatenate([np.arange(1, len(gt) + 1), a])
    pos = np.nonzero(a > 0)[0]; neg = np.nonzero(a == 0)[0]
    rois = np.concatenate([bboxes[pos], bboxes[neg]], 0)
    lab = np.concatenate([labels[a[pos] - 1], np.full(len(neg), c["num_classes"])])
    bt = np.zeros((len(rois), 4), f)
    if len(pos):
        bt[:len(pos)] = bbox2delta(bboxes[pos], gt[a[pos] - 1], [0.1, 0.1, 0.2, 0.2])
    out.append({"rois": rois.flatten().tolist(), "labels": lab.tolist(), "bbox_targets": bt.flatten().tolist(), "num_pos": int(len(pos))})
print(json.dumps(out))
"#;

fn assigner() -> AssignerConfig {
    AssignerConfig::MaxIou(MaxIouAssigner {
        pos_iou_thr: 0.5,
        neg_iou_thr: NegIouThr::Below(0.5),
        min_pos_iou: 0.5,
        gt_max_assign_all: true,
        ignore_iof_thr: -1.0,
        ignore_wrt_candidates: true,
        match_low_quality: false,
        gpu_assign_thr: -1.0,
    })
}

fn rcnn_coder() -> DeltaXYWHBBoxCoder {
    DeltaXYWHBBoxCoder {
        target_stds: [0.1, 0.1, 0.2, 0.2],
        ..Default::default()
    }
}

fn boxes(rng: &mut Rng, n: usize) -> Vec<[f32; 4]> {
    (0..n)
        .map(|_| {
            let (x, y) = (rng.range_f64(0.0, 150.0), rng.range_f64(0.0, 100.0));
            let (w, h) = (rng.range_f64(4.0, 60.0), rng.range_f64(4.0, 60.0));
            [x, y, x + w, y + h].map(|v| v as f32)
        })
        .collect()
}

#[test]
fn rcnn_targets_match_mmdet_code() {
    let mut rng = Rng::seed(crate::support::fresh_seed("rcnn_targets_match_mmdet_code"));
    let cfg = RcnnTargetConfig {
        num_classes: 5,
        assigner: assigner(),
        sampler: RandomSamplerConfig {
            num: 1_000_000,
            pos_fraction: 0.5,
            neg_pos_ub: -1.0,
            add_gt_as_proposals: true,
        },
        coder: rcnn_coder(),
        pos_weight: -1.0,
        reg_class_agnostic: false,
    };
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (n_gt, n_props) in [(4, 300), (1, 50), (0, 40), (7, 12)] {
        let gt_boxes = boxes(&mut rng, n_gt);
        // Proposals near the ground truth (jittered copies) and anywhere.
        let mut props = boxes(&mut rng, n_props / 2);
        for k in 0..n_props - n_props / 2 {
            match gt_boxes.get(k % n_gt.max(1)) {
                Some(g) => props.push(g.map(|v| v + rng.range_f64(-6.0, 6.0) as f32)),
                None => props.extend(boxes(&mut rng, 1)),
            }
        }
        let props: Vec<[f32; 4]> = props
            .into_iter()
            .map(|b| [b[0], b[1], b[2].max(b[0] + 1.0), b[3].max(b[1] + 1.0)])
            .collect();
        let gt = ImageGt {
            labels: (0..n_gt).map(|_| rng.below(5) as usize).collect(),
            bboxes: gt_boxes,
            bboxes_ignore: vec![],
        };
        cases.push(json!({"proposals": props.concat(), "gt": gt.bboxes.concat(), "labels": gt.labels, "num_classes": 5}));
        ours.push(rcnn_samples(&props, &gt, &cfg, &mut Rng::seed(0)));
    }
    let Some(r) = py::run(
        &["numpy"],
        &format!("{}{TARGETS}", py::NUMPY_BOX_OPS),
        &json!({ "cases": cases }),
    ) else {
        return;
    };
    for (k, (s, want)) in ours.iter().zip(r.as_array().unwrap()).enumerate() {
        assert_eq!(
            s.num_pos as u64,
            want["num_pos"].as_u64().unwrap(),
            "case {k}"
        );
        let rois: Vec<[f32; 4]> = (py::boxes(&want["rois"]).iter())
            .map(|b| b.map(|v| v as f32))
            .collect();
        assert_eq!(s.rois, rois, "case {k}: rois");
        let labels: Vec<usize> = py::f64s(&want["labels"])
            .iter()
            .map(|&v| v as usize)
            .collect();
        assert_eq!(s.labels, labels, "case {k}: labels");
        assert!(s.label_weights.iter().all(|&w| w == 1.0));
        for (i, (got, want)) in s
            .bbox_targets
            .iter()
            .zip(py::boxes(&want["bbox_targets"]))
            .enumerate()
        {
            for j in 0..4 {
                let tol = 1e-5 * want[j].abs().max(1.0);
                assert!(
                    (got[j] as f64 - want[j]).abs() <= tol,
                    "case {k} roi {i}: {got:?} vs {want:?}"
                );
            }
        }
    }
}

/// The sampler's quota on the second stage: at most a quarter positive, `num` in all.
#[test]
fn rcnn_sampler_quota() {
    let mut rng = Rng::seed(4);
    let gt = ImageGt {
        bboxes: boxes(&mut rng, 5),
        labels: vec![0, 1, 2, 3, 4],
        bboxes_ignore: vec![],
    };
    let props: Vec<[f32; 4]> = (0..400)
        .map(|k| gt.bboxes[k % 5])
        .chain(boxes(&mut rng, 600))
        .collect();
    let cfg = RcnnTargetConfig {
        num_classes: 5,
        assigner: assigner(),
        sampler: RandomSamplerConfig {
            num: 64,
            pos_fraction: 0.25,
            neg_pos_ub: -1.0,
            add_gt_as_proposals: true,
        },
        coder: rcnn_coder(),
        pos_weight: -1.0,
        reg_class_agnostic: false,
    };
    let s = rcnn_samples(&props, &gt, &cfg, &mut rng);
    assert_eq!((s.num_pos, s.rois.len()), (16, 64));
    assert!(s.labels[..16].iter().all(|&l| l < 5) && s.labels[16..].iter().all(|&l| l == 5));
}

const DETECTIONS: &str = r#"
import json, math, sys, torch
from torchvision.ops import batched_nms
d = json.load(sys.stdin)
rois = torch.tensor(d["rois"], dtype=torch.float32).reshape(-1, 4)
cls = torch.tensor(d["cls"], dtype=torch.float32).reshape(len(rois), -1)
reg = torch.tensor(d["reg"], dtype=torch.float32).reshape(len(rois), -1)
C = cls.shape[1] - 1
scores = torch.softmax(cls, -1)
# DeltaXYWHBBoxCoder.decode (delta2bbox) with class-specific deltas, clipped to img_shape
deltas = reg.reshape(-1, 4) * torch.tensor([0.1, 0.1, 0.2, 0.2])
r = rois.repeat_interleave(C, 0)
max_ratio = abs(math.log(16 / 1000))
dw = deltas[:, 2].clamp(-max_ratio, max_ratio); dh = deltas[:, 3].clamp(-max_ratio, max_ratio)
px = (r[:, 0] + r[:, 2]) * 0.5; py = (r[:, 1] + r[:, 3]) * 0.5
pw = r[:, 2] - r[:, 0]; ph = r[:, 3] - r[:, 1]
gx = px + pw * deltas[:, 0]; gy = py + ph * deltas[:, 1]
gw = pw * dw.exp(); gh = ph * dh.exp()
b = torch.stack([gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5], -1)
h, w = d["img_shape"]
b[:, 0::2] = b[:, 0::2].clamp(0, w); b[:, 1::2] = b[:, 1::2].clamp(0, h)
b = b / torch.tensor(d["scale_factor"])
# multiclass_nms
s = scores[:, :-1].reshape(-1)
labels = torch.arange(C).repeat(len(rois))
valid = s > d["score_thr"]
b, s, labels = b[valid], s[valid], labels[valid]
keep = batched_nms(b, s, labels, d["iou"])[: d["max_per_img"]]
print(json.dumps({"boxes": b[keep].flatten().tolist(), "scores": s[keep].tolist(), "labels": labels[keep].tolist()}))
"#;

#[test]
fn rcnn_detections_match_mmdet_code() {
    let mut rng = Rng::seed(crate::support::fresh_seed(
        "rcnn_detections_match_mmdet_code",
    ));
    let (n, c) = (120, 4);
    let rois = boxes(&mut rng, n);
    let cls: Vec<f32> = (0..n * (c + 1))
        .map(|_| rng.range_f64(-3.0, 3.0) as f32)
        .collect();
    let reg: Vec<f32> = (0..n * 4 * c)
        .map(|_| rng.range_f64(-1.5, 1.5) as f32)
        .collect();
    let cfg = RcnnTestConfig {
        score_thr: 0.05,
        nms: NmsConfig {
            kind: "nms".into(),
            iou_threshold: 0.5,
        },
        max_per_img: 60,
    };
    let (img_shape, scale) = ((100, 180), [1.5f32, 1.25, 1.5, 1.25]);
    let d = rcnn_detections(&rois, &cls, &reg, c, &rcnn_coder(), &cfg, img_shape, scale);
    let Some(r) = py::run(
        &["torch", "torchvision"],
        DETECTIONS,
        &json!({"rois": rois.concat(), "cls": cls, "reg": reg, "img_shape": [100, 180],
                "scale_factor": scale, "score_thr": 0.05, "iou": 0.5, "max_per_img": 60}),
    ) else {
        return;
    };
    let want = py::boxes(&r["boxes"]);
    assert_eq!(d.bboxes.len(), want.len());
    assert!(d.bboxes.len() > 10, "{} detections", d.bboxes.len());
    let labels: Vec<usize> = py::f64s(&r["labels"]).iter().map(|&v| v as usize).collect();
    assert_eq!(d.labels, labels);
    for (i, (b, w)) in d.bboxes.iter().zip(&want).enumerate() {
        for k in 0..4 {
            assert!(
                (b[k] as f64 - w[k]).abs() <= 1e-4 * w[k].abs().max(1.0),
                "{i}: {b:?} vs {w:?}"
            );
        }
        assert!((d.scores[i] as f64 - r["scores"][i].as_f64().unwrap()).abs() <= 1e-6);
    }
}
