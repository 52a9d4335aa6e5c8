//! Anchors, assigners and FCOS targets against numpy transcriptions of mmdetection 2.x's
//! vectorised tensor code (`AnchorGenerator`, `MaxIoUAssigner`, `ATSSAssigner`,
//! `FCOSHead._get_target_single`), run live on random ground truth.

use super::py;
use mmrun::model::anchor::{AnchorGenerator, AnchorGeneratorConfig, Stride, point_grid};
use mmrun::model::assign::fcos::{FcosTargetConfig, fcos_targets};
use mmrun::model::assign::{AssignerConfig, AtssAssigner, ImageGt, MaxIouAssigner, NegIouThr};
use serde_json::json;

const ANCHORS: &str = r#"
import json, sys, numpy as np
c = json.load(sys.stdin)
f = np.float32
if c["octave_base_scale"] is not None:
    scales = (np.array([2 ** (i / c["scales_per_octave"]) for i in range(c["scales_per_octave"])]) * c["octave_base_scale"]).astype(f)
else:
    scales = np.array(c["scales"]).astype(f)
ratios = np.array(c["ratios"]).astype(f)
out = []
for stride, base, (fh, fw) in zip(c["strides"], c["base_sizes"], c["sizes"]):
    w = h = f(base)
    xc, yc = f(c["center_offset"]) * w, f(c["center_offset"]) * h
    hr = np.sqrt(ratios); wr = f(1) / hr
    ws = (w * wr[:, None] * scales[None, :]).reshape(-1)
    hs = (h * hr[:, None] * scales[None, :]).reshape(-1)
    base_anchors = np.stack([xc - f(0.5) * ws, yc - f(0.5) * hs, xc + f(0.5) * ws, yc + f(0.5) * hs], -1)
    sx = (np.arange(fw) * stride).astype(f); sy = (np.arange(fh) * stride).astype(f)
    xx = np.tile(sx, len(sy)); yy = np.repeat(sy, len(sx))
    shifts = np.stack([xx, yy, xx, yy], -1)
    out.append((base_anchors[None] + shifts[:, None]).reshape(-1).tolist())
print(json.dumps(out))
"#;

#[test]
fn anchor_generator_matches_mmdet_formula() {
    let cases = [
        // RetinaNet: octave scales, default base sizes = strides.
        (
            vec![8.0, 16.0, 32.0, 64.0, 128.0],
            vec![0.5, 1.0, 2.0],
            None,
            Some((4.0, 3)),
            None,
            0.0,
        ),
        // Explicit scales and base sizes, half-pixel centre offset.
        (
            vec![4.0, 8.0],
            vec![0.25, 1.0, 3.0],
            Some(vec![1.0, 2.5]),
            None,
            Some(vec![6.0, 11.0]),
            0.5,
        ),
    ];
    for (strides, ratios, scales, octave, base_sizes, offset) in cases {
        let cfg = AnchorGeneratorConfig {
            strides: strides.iter().map(|&s| Stride::Square(s)).collect(),
            ratios: ratios.clone(),
            scales: scales.clone(),
            base_sizes: base_sizes.clone(),
            scale_major: true,
            octave_base_scale: octave.map(|o| o.0),
            scales_per_octave: octave.map(|o| o.1),
            center_offset: offset,
        };
        let g = AnchorGenerator::new(&cfg).unwrap();
        let sizes: Vec<(usize, usize)> =
            (0..strides.len()).map(|l| (5 - l.min(3), 7 - l)).collect();
        let got = g.grid_anchors(&sizes).unwrap();
        let input = json!({
            "strides": strides, "ratios": ratios, "scales": scales,
            "octave_base_scale": octave.map(|o| o.0), "scales_per_octave": octave.map(|o| o.1),
            "base_sizes": base_sizes.unwrap_or(strides.clone()), "center_offset": offset, "sizes": sizes,
        });
        let Some(want) = py::run(&["numpy"], ANCHORS, &input) else {
            return;
        };
        for (l, lvl) in got.iter().enumerate() {
            let flat: Vec<f64> = lvl.iter().flatten().map(|&v| v as f64).collect();
            // float32 in the same operation order: bit-identical.
            assert_eq!(flat, py::f64s(&want[l]), "level {l}");
        }
    }
}

#[test]
fn point_grid_is_offset_by_half_stride() {
    let p = point_grid(&[(8.0, 8.0)], &[(2, 3)], 0.5);
    assert_eq!(
        p[0],
        vec![
            [4.0, 4.0],
            [12.0, 4.0],
            [20.0, 4.0],
            [4.0, 12.0],
            [12.0, 12.0],
            [20.0, 12.0]
        ]
    );
}

/// Random anchors/GT shared by the assigner tests, and the numpy references.
const ASSIGN: &str = r#"
import json, sys, numpy as np
c = json.load(sys.stdin)
rng = np.random.default_rng(c["seed"])
f = np.float32
def boxes(n, lo, hi):
    xy = rng.uniform(0, 100, (n, 2)); wh = rng.uniform(lo, hi, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(f)
pri = boxes(c["n"], 4, 40)
# a few exact duplicates make ties in IoU
pri[1] = pri[0]
gt = boxes(c["g"], 8, 50); gt[-1] = pri[5]
ign = boxes(2, 10, 30)
labels = rng.integers(0, 7, c["g"])
def overlaps(a, b, mode="iou", eps=f(1e-6)):
    area1 = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]); area2 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2]); rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None); ov = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None] - ov if mode == "iou" else np.broadcast_to(area1[:, None], ov.shape)
    return ov / np.maximum(union, eps)
out = {"pri": pri.flatten().tolist(), "gt": gt.flatten().tolist(), "ign": ign.flatten().tolist(), "labels": labels.tolist()}
# ---- MaxIoUAssigner.assign / assign_wrt_overlaps
def max_iou(pos, neg, min_pos, all_, ignore_thr):
    ov = overlaps(gt, pri)
    if ignore_thr > 0:
        im = overlaps(pri, ign, "iof").max(1); ov[:, im > ignore_thr] = -1
    a = np.full(len(pri), -1)
    mo, am = ov.max(0), ov.argmax(0)
    gmo, gam = ov.max(1), ov.argmax(1)
    if isinstance(neg, list): a[(mo >= neg[0]) & (mo < neg[1])] = 0
    else: a[(mo >= 0) & (mo < neg)] = 0
    p = mo >= pos; a[p] = am[p] + 1
    for i in range(len(gt)):
        if gmo[i] >= min_pos:
            if all_: a[ov[i] == gmo[i]] = i + 1
            else: a[gam[i]] = i + 1
    return a.tolist()
out["max_iou"] = [max_iou(0.5, 0.4, 0.0, True, -1), max_iou(0.6, [0.1, 0.3], 0.2, False, 0.5)]
# ---- ATSSAssigner.assign (topk 5) over two levels
def atss(topk, counts, ignore_thr):
    ov = overlaps(pri, gt); n, g = ov.shape
    a = np.zeros(n, dtype=np.int64)
    gc = np.stack([(gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2], 1)
    pc = np.stack([(pri[:, 0] + pri[:, 2]) / 2, (pri[:, 1] + pri[:, 3]) / 2], 1)
    d = np.sqrt(((pc[:, None] - gc[None]) ** 2).sum(-1))
    if ignore_thr > 0:
        ig = overlaps(pri, ign, "iof").max(1) > ignore_thr; d[ig] = np.inf; a[ig] = -1
    cand = []; s = 0
    for k in counts:
        cand.append(np.argsort(d[s:s + k], axis=0, kind="stable")[:min(topk, k)] + s); s += k
    cand = np.concatenate(cand, 0)
    co = ov[cand, np.arange(g)]
    thr = co.mean(0) + co.std(0, ddof=1)
    pos = co >= thr
    l_ = pc[cand, 0] - gt[:, 0]; t_ = pc[cand, 1] - gt[:, 1]; r_ = gt[:, 2] - pc[cand, 0]; b_ = gt[:, 3] - pc[cand, 1]
    pos &= np.stack([l_, t_, r_, b_], 1).min(1) > 0.01
    inf = np.full((n, g), -np.inf, dtype=f)
    for j in range(g):
        inf[cand[pos[:, j], j], j] = ov[cand[pos[:, j], j], j]
    m = inf.max(1); am = inf.argmax(1)
    a[m != -np.inf] = am[m != -np.inf] + 1
    return a.tolist()
out["atss"] = [atss(5, [c["n"] // 2, c["n"] - c["n"] // 2], -1), atss(3, [c["n"] // 3, c["n"] - c["n"] // 3], 0.5)]
# ---- FCOS _get_target_single
def fcos(strides, rr, counts, pts, sampling, radius, ncls):
    n, g = len(pts), len(gt)
    areas = np.tile(((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))[None], (n, 1))
    xs, ys = pts[:, 0][:, None], pts[:, 1][:, None]
    bt = np.stack([xs - gt[:, 0], ys - gt[:, 1], gt[:, 2] - xs, gt[:, 3] - ys], -1)
    lvl_stride = np.concatenate([np.full(k, s) for s, k in zip(strides, counts)])
    lvl_rr = np.concatenate([np.tile(np.array(r, dtype=np.float64), (k, 1)) for r, k in zip(rr, counts)])
    if sampling:
        cx = (gt[:, 0] + gt[:, 2]) / 2; cy = (gt[:, 1] + gt[:, 3]) / 2
        st = (lvl_stride * radius).astype(f)[:, None]
        x0 = np.where(cx - st > gt[:, 0], cx - st, gt[:, 0]); y0 = np.where(cy - st > gt[:, 1], cy - st, gt[:, 1])
        x1 = np.where(cx + st > gt[:, 2], gt[:, 2], cx + st); y1 = np.where(cy + st > gt[:, 3], gt[:, 3], cy + st)
        inside = np.stack([xs - x0, ys - y0, x1 - xs, y1 - ys], -1).min(-1) > 0
    else:
        inside = bt.min(-1) > 0
    mx = bt.max(-1)
    inr = (mx >= lvl_rr[:, 0:1]) & (mx <= lvl_rr[:, 1:2])
    areas[~inside] = np.inf; areas[~inr] = np.inf
    ma, mi = areas.min(1), areas.argmin(1)
    lab = labels[mi].copy(); lab[ma == np.inf] = ncls
    return lab.tolist(), bt[np.arange(n), mi].flatten().tolist()
pts = rng.uniform(0, 120, (c["n"], 2)).astype(f)
out["pts"] = pts.flatten().tolist()
out["fcos"] = [fcos([8, 16], [[-1, 20], [20, 1e8]], [c["n"] // 2, c["n"] - c["n"] // 2], pts, s, 1.5, 7) for s in (False, True)]
print(json.dumps(out))
"#;

fn b32(v: &serde_json::Value) -> Vec<[f32; 4]> {
    py::boxes(v)
        .into_iter()
        .map(|b| b.map(|x| x as f32))
        .collect()
}

#[test]
fn assigners_and_fcos_targets_match_mmdet_code() {
    for seed in [3u64, 4, 5] {
        let (n, g) = (60usize, 6usize);
        let Some(o) = py::run(&["numpy"], ASSIGN, &json!({"seed": seed, "n": n, "g": g})) else {
            return;
        };
        let pri = b32(&o["pri"]);
        let gt = ImageGt {
            bboxes: b32(&o["gt"]),
            labels: py::f64s(&o["labels"])
                .into_iter()
                .map(|v| v as usize)
                .collect(),
            bboxes_ignore: b32(&o["ign"]),
        };
        let as_i64 = |v: &serde_json::Value| -> Vec<i64> {
            py::f64s(v).into_iter().map(|x| x as i64).collect()
        };
        let mk = |pos, neg, min_pos, all, ign| MaxIouAssigner {
            pos_iou_thr: pos,
            neg_iou_thr: neg,
            min_pos_iou: min_pos,
            gt_max_assign_all: all,
            ignore_iof_thr: ign,
            ignore_wrt_candidates: true,
            match_low_quality: true,
            gpu_assign_thr: -1.0,
        };
        let a = mk(0.5, NegIouThr::Below(0.4), 0.0, true, -1.0);
        assert_eq!(
            a.assign(&pri, &gt).gt_inds,
            as_i64(&o["max_iou"][0]),
            "max_iou seed {seed}"
        );
        let a = mk(0.6, NegIouThr::Range([0.1, 0.3]), 0.2, false, 0.5);
        assert_eq!(
            a.assign(&pri, &gt).gt_inds,
            as_i64(&o["max_iou"][1]),
            "max_iou/ignore seed {seed}"
        );
        // Through the config enum with all priors valid.
        let cfg = AssignerConfig::Atss(AtssAssigner {
            topk: 5,
            ignore_iof_thr: -1.0,
        });
        let counts = [n / 2, n - n / 2];
        assert_eq!(
            cfg.assign(&pri, &vec![true; n], &counts, &gt).gt_inds,
            as_i64(&o["atss"][0]),
            "atss seed {seed}"
        );
        let a = AtssAssigner {
            topk: 3,
            ignore_iof_thr: 0.5,
        };
        assert_eq!(
            a.assign(&pri, &[n / 3, n - n / 3], &gt).gt_inds,
            as_i64(&o["atss"][1]),
            "atss/ignore seed {seed}"
        );
        let pts: Vec<[f32; 2]> = py::f64s(&o["pts"])
            .chunks(2)
            .map(|c| [c[0] as f32, c[1] as f32])
            .collect();
        for (k, sampling) in [false, true].into_iter().enumerate() {
            let cfg = FcosTargetConfig {
                num_classes: 7,
                strides: vec![8.0, 16.0],
                regress_ranges: vec![[-1.0, 20.0], [20.0, 1e8]],
                center_sampling: sampling,
                center_sample_radius: 1.5,
                norm_on_bbox: false,
            };
            let t = fcos_targets(&cfg, &pts, &[n / 2, n - n / 2], &gt);
            let want_labels: Vec<usize> = py::f64s(&o["fcos"][k][0])
                .into_iter()
                .map(|v| v as usize)
                .collect();
            assert_eq!(
                t.labels, want_labels,
                "fcos labels seed {seed} sampling {sampling}"
            );
            assert!(t.num_pos > 0, "case has positives");
            let want_t = py::boxes(&o["fcos"][k][1]);
            for (i, l) in t.labels.iter().enumerate() {
                if *l < 7 {
                    assert_eq!(
                        t.bbox_targets[i].map(f64::from),
                        want_t[i],
                        "fcos target {i}"
                    );
                }
            }
        }
    }
}
