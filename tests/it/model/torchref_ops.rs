//! Box ops against torchvision: the stored oracle (`MMRUN_TORCHREF`, default
//! `tests/oracles/torchref`) and fresh random cases computed live with torchvision.

use super::py;
use mmrun::model::boxes::{
    DEFAULT_WH_RATIO_CLIP, DeltaXYWHBBoxCoder, batched_nms, box_iou, generalized_box_iou, nms,
};
use serde_json::Value;

/// The `ops` cases of the stored oracle (checked in: a missing file fails, never skips).
fn oracle() -> Value {
    let dir = std::env::var("MMRUN_TORCHREF")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracles/torchref").into());
    let path = std::path::Path::new(&dir).join("torchref_f64.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str::<Value>(&text).expect("oracle JSON parses")["ops"].clone()
}

fn arr(v: &Value) -> Vec<f64> {
    py::f64s(&v["data"])
}

fn bx(v: &Value) -> Vec<[f64; 4]> {
    arr(v).chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, torchvision {w}"
        );
    }
}

/// torchvision `BoxCoder(weights)` as mmdetection's coder: stds = 1 / weights.
fn coder_from_weights(w: &[f64]) -> DeltaXYWHBBoxCoder {
    DeltaXYWHBBoxCoder {
        target_stds: [1.0 / w[0], 1.0 / w[1], 1.0 / w[2], 1.0 / w[3]],
        clip_border: false,
        ..Default::default()
    }
}

fn check_coder(case: &Value, tag: &str) {
    let w = py::f64s(&case["params"]["weights"]);
    let clip = case["params"]["bbox_xform_clip"].as_f64().unwrap();
    assert!((clip - DEFAULT_WH_RATIO_CLIP.ln().abs()).abs() < 1e-15);
    let c = coder_from_weights(&w);
    let anchors = bx(&case["inputs"]["anchors"]);
    let gts = bx(&case["inputs"]["gt_boxes"]);
    let rel = bx(&case["inputs"]["rel_codes"]);
    let enc: Vec<f64> = anchors
        .iter()
        .zip(&gts)
        .flat_map(|(a, g)| c.encode(a, g))
        .collect();
    close(
        &enc,
        &arr(&case["outputs"]["encoded"]),
        1e-12,
        &format!("{tag} encode"),
    );
    let dec: Vec<f64> = anchors
        .iter()
        .zip(&rel)
        .flat_map(|(a, r)| c.decode(a, r, None, DEFAULT_WH_RATIO_CLIP))
        .collect();
    close(
        &dec,
        &arr(&case["outputs"]["decoded"]),
        1e-12,
        &format!("{tag} decode"),
    );
}

fn keep(v: &Value) -> Vec<usize> {
    arr(v).into_iter().map(|x| x as usize).collect()
}

#[test]
fn torchref_oracle_box_iou_giou() {
    let ops = oracle();
    let c = &ops["box_iou"];
    let (a, b) = (bx(&c["inputs"]["boxes1"]), bx(&c["inputs"]["boxes2"]));
    close(
        &box_iou(&a, &b),
        &arr(&c["outputs"]["iou"]),
        1e-15,
        "box_iou",
    );
    let c = &ops["generalized_box_iou"];
    let (a, b) = (bx(&c["inputs"]["boxes1"]), bx(&c["inputs"]["boxes2"]));
    close(
        &generalized_box_iou(&a, &b),
        &arr(&c["outputs"]["giou"]),
        1e-15,
        "giou",
    );
}

#[test]
fn torchref_oracle_nms_and_batched_nms() {
    let ops = oracle();
    let c = &ops["nms"];
    let thr = c["params"]["iou_threshold"].as_f64().unwrap();
    let (b, s) = (bx(&c["inputs"]["boxes"]), arr(&c["inputs"]["scores"]));
    assert_eq!(nms(&b, &s, thr), keep(&c["outputs"]["keep"]));
    let c = &ops["batched_nms"];
    let idx: Vec<usize> = keep(&c["inputs"]["idxs"]);
    let (b, s) = (bx(&c["inputs"]["boxes"]), arr(&c["inputs"]["scores"]));
    assert_eq!(batched_nms(&b, &s, &idx, thr), keep(&c["outputs"]["keep"]));
}

#[test]
fn torchref_oracle_box_coders() {
    let ops = oracle();
    check_coder(&ops["box_coder_retinanet"], "retinanet");
    check_coder(&ops["box_coder_faster_rcnn"], "faster_rcnn");
}

const FRESH: &str = r#"
import json, sys, torch
from torchvision.ops import box_iou, generalized_box_iou, nms, batched_nms
from torchvision.models.detection._utils import BoxCoder
cfg = json.load(sys.stdin)
res = []
for seed in cfg["seeds"]:
  g = torch.Generator().manual_seed(seed)
  D = torch.float64
  def boxes(n, scale):
      xy = torch.rand(n, 2, generator=g, dtype=D) * scale
      wh = torch.rand(n, 2, generator=g, dtype=D) * scale * 0.5 + 0.5
      return torch.cat([xy, xy + wh], 1)
  out = {}
  a, b = boxes(37, 50.0), boxes(23, 50.0)
  out["a"], out["b"] = a.flatten().tolist(), b.flatten().tolist()
  out["iou"] = box_iou(a, b).flatten().tolist()
  out["giou"] = generalized_box_iou(a, b).flatten().tolist()
  nb = boxes(300, 80.0)
  # quantised scores give ties, which must keep index order
  ns = (torch.rand(300, generator=g, dtype=D) * 50).floor() / 50
  nl = torch.randint(0, 5, (300,), generator=g)
  out["nb"], out["ns"], out["nl"] = nb.flatten().tolist(), ns.tolist(), nl.tolist()
  for t in (0.3, 0.5, 0.7):
      out[f"nms_{t}"] = nms(nb, ns, t).tolist()
      out[f"bnms_{t}"] = batched_nms(nb, ns, nl, t).tolist()
  anc = boxes(60, 100.0)
  gt = anc + (torch.rand(60, 4, generator=g, dtype=D) - 0.5) * 20
  gt[:, 2:] = torch.maximum(gt[:, 2:], gt[:, :2] + 1.0)
  rel = (torch.rand(60, 4, generator=g, dtype=D) - 0.5) * 6
  bc = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
  out["anc"], out["gt"], out["rel"] = anc.flatten().tolist(), gt.flatten().tolist(), rel.flatten().tolist()
  out["enc"] = bc.encode_single(gt, anc).flatten().tolist()
  out["dec"] = bc.decode_single(rel, anc).flatten().tolist()
  res.append(out)
print(json.dumps(res))
"#;

#[test]
fn torchref_fresh_random_cases() {
    let seeds = [1u64, 2];
    let input = serde_json::json!({ "seeds": seeds });
    let Some(all) = py::run(&["torch", "torchvision"], FRESH, &input) else {
        return;
    };
    for (o, seed) in all.as_array().unwrap().iter().zip(seeds) {
        let (a, b) = (py::boxes(&o["a"]), py::boxes(&o["b"]));
        close(&box_iou(&a, &b), &py::f64s(&o["iou"]), 1e-15, "fresh iou");
        close(
            &generalized_box_iou(&a, &b),
            &py::f64s(&o["giou"]),
            1e-15,
            "fresh giou",
        );
        // f32 path agrees with the f64 reference to f32 precision.
        let a32: Vec<[f32; 4]> = a.iter().map(|b| b.map(|v| v as f32)).collect();
        let b32: Vec<[f32; 4]> = b.iter().map(|b| b.map(|v| v as f32)).collect();
        let iou32: Vec<f64> = box_iou(&a32, &b32).into_iter().map(f64::from).collect();
        close(&iou32, &py::f64s(&o["iou"]), 1e-5, "fresh iou f32");
        let nb = py::boxes(&o["nb"]);
        let ns = py::f64s(&o["ns"]);
        let nl: Vec<usize> = py::f64s(&o["nl"]).into_iter().map(|v| v as usize).collect();
        for t in ["0.3", "0.5", "0.7"] {
            let thr: f64 = t.parse().unwrap();
            let want: Vec<usize> = py::f64s(&o[format!("nms_{t}")])
                .into_iter()
                .map(|v| v as usize)
                .collect();
            assert_eq!(nms(&nb, &ns, thr), want, "nms {t} seed {seed}");
            let want: Vec<usize> = py::f64s(&o[format!("bnms_{t}")])
                .into_iter()
                .map(|v| v as usize)
                .collect();
            assert_eq!(
                batched_nms(&nb, &ns, &nl, thr),
                want,
                "batched_nms {t} seed {seed}"
            );
        }
        let c = coder_from_weights(&[10.0, 10.0, 5.0, 5.0]);
        let (anc, gt, rel) = (
            py::boxes(&o["anc"]),
            py::boxes(&o["gt"]),
            py::boxes(&o["rel"]),
        );
        let enc: Vec<f64> = anc
            .iter()
            .zip(&gt)
            .flat_map(|(a, g)| c.encode(a, g))
            .collect();
        close(&enc, &py::f64s(&o["enc"]), 1e-12, "fresh encode");
        let dec: Vec<f64> = anc
            .iter()
            .zip(&rel)
            .flat_map(|(a, r)| c.decode(a, r, None, DEFAULT_WH_RATIO_CLIP))
            .collect();
        close(&dec, &py::f64s(&o["dec"]), 1e-12, "fresh decode");
    }
}
