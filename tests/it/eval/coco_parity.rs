//! Live parity with pycocotools 2.0.11 on freshly generated cases (`gen_coco.py`): all 12
//! stats within 1e-12, precision / recall / scores arrays within 1e-15.

use super::reference::{pycocotools, run_py};
use mmrun::eval::coco::{self, CocoGt, CocoParams, CocoReport};
use std::path::Path;

/// Turn the `.npz` arrays written by `run_eval.py` into JSON (floats round-trip exactly).
const NPZ_TO_JSON: &str = r#"
import json, sys, numpy as np
z = np.load(sys.argv[1])
print(json.dumps({k: {'shape': list(z[k].shape), 'data': z[k].ravel().tolist()}
                  for k in ('precision', 'recall', 'scores')}))
"#;

/// pycocotools with mmdetection's `proposal` settings (class-agnostic, maxDets 100/300/1000).
const PROPOSAL_REF: &str = r#"
import contextlib, io, json, sys, numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1]); dt = gt.loadRes(sys.argv[2])
    E = COCOeval(gt, dt, 'bbox'); E.params.useCats = 0; E.params.maxDets = [100, 300, 1000]
    E.evaluate(); E.accumulate(); E.summarize()
out = {k: {'shape': list(E.eval[k].shape), 'data': np.asarray(E.eval[k]).ravel().tolist()}
       for k in ('precision', 'recall', 'scores')}
out['stats'] = [float(x) for x in E.stats]
print(json.dumps(out))
"#;

fn generate(py: &str, dir: &Path, name: &str, args: &[&str], oracle: &Path) -> (String, String) {
    let gen_script = oracle.join("gen_coco.py");
    let out = dir.to_str().unwrap();
    let mut full = vec![gen_script.to_str().unwrap(), "--out", out, "--name", name];
    full.extend_from_slice(args);
    run_py(py, &full);
    (
        dir.join(format!("{name}_gt.json")).display().to_string(),
        dir.join(format!("{name}_dt.json")).display().to_string(),
    )
}

fn compare_array(what: &str, ours: &[f64], shape: &[usize; 5], reference: &serde_json::Value) {
    let ref_shape: Vec<usize> = serde_json::from_value(reference["shape"].clone()).unwrap();
    let data: Vec<f64> = serde_json::from_value(reference["data"].clone()).unwrap();
    let expect_shape: Vec<usize> = if what == "recall" {
        vec![shape[0], shape[2], shape[3], shape[4]]
    } else {
        shape.to_vec()
    };
    assert_eq!(ref_shape, expect_shape, "{what} shape");
    assert_eq!(ours.len(), data.len(), "{what} length");
    let mut worst = (0.0f64, 0usize);
    for (i, (a, b)) in ours.iter().zip(&data).enumerate() {
        let d = (a - b).abs();
        if d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= 1e-15,
        "{what}[{}] differs by {} (ours {}, pycocotools {})",
        worst.1,
        worst.0,
        ours[worst.1],
        data[worst.1]
    );
}

fn compare_stats(ours: &[f64; 12], reference: &[f64]) {
    assert_eq!(reference.len(), 12);
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12,
            "stat {i}: ours {a}, pycocotools {b}"
        );
    }
}

fn compare_all(report: &CocoReport, reference: &serde_json::Value) {
    let shape = report.shape();
    compare_array(
        "precision",
        &report.precision,
        &shape,
        &reference["precision"],
    );
    compare_array("recall", &report.recall, &shape, &reference["recall"]);
    compare_array("scores", &report.scores, &shape, &reference["scores"]);
}

fn bbox_case(name: &str, args: &[&str]) {
    let Some((py, oracle)) = pycocotools(name) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (gt_path, dt_path) = generate(&py, dir.path(), name, args, &oracle);
    let prefix = dir.path().join("ref").display().to_string();
    let run_eval = oracle.join("run_eval.py");
    run_py(
        &py,
        &[
            run_eval.to_str().unwrap(),
            &gt_path,
            &dt_path,
            &prefix,
            "--no-fast",
        ],
    );
    let stats_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{prefix}_pycocotools.json")).unwrap(),
    )
    .unwrap();
    let ref_stats: Vec<f64> = serde_json::from_value(stats_json["stats_list"].clone()).unwrap();
    let arrays: serde_json::Value = serde_json::from_str(&run_py(
        &py,
        &["-c", NPZ_TO_JSON, &format!("{prefix}_pycocotools.npz")],
    ))
    .unwrap();

    let gt = CocoGt::from_json_path(Path::new(&gt_path)).unwrap();
    let dets = coco::load_detections_path(Path::new(&dt_path)).unwrap();
    let report = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap();
    compare_stats(&report.stats, &ref_stats);
    compare_all(&report, &arrays);
    // The case must exercise the metric: some categories scored, one without ground truth.
    assert!(
        report.stats[0] > 0.05 && report.stats[0] < 0.95,
        "{:?}",
        report.stats
    );
    assert!(report.classwise().iter().any(|(_, ap)| ap.is_nan()));
}

#[test]
fn parity_seed_1_seg_areas() {
    bbox_case(
        "p1",
        &["--images", "200", "--seed", "1", "--area-mode", "seg"],
    );
}

#[test]
fn parity_seed_2_box_areas_at_boundaries() {
    bbox_case(
        "p2",
        &["--images", "200", "--seed", "2", "--area-mode", "box"],
    );
}

#[test]
fn parity_seed_3_score_ties() {
    // Scores rounded to 2 decimals: many ties, resolved by image id then file order.
    bbox_case(
        "p3",
        &[
            "--images",
            "200",
            "--seed",
            "3",
            "--score-decimals",
            "2",
            "--overflow-frac",
            "0.1",
        ],
    );
}

#[test]
fn parity_seed_4_many_categories_fixed_100_dets() {
    bbox_case(
        "p4",
        &[
            "--images",
            "40",
            "--cats",
            "20",
            "--seed",
            "4",
            "--dets-per-image",
            "100",
            "--score-decimals",
            "3",
        ],
    );
}

#[test]
fn parity_proposal_class_agnostic() {
    let name = "proposal";
    let Some((py, oracle)) = pycocotools(name) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (gt_path, dt_path) = generate(
        &py,
        dir.path(),
        name,
        &[
            "--images",
            "120",
            "--seed",
            "5",
            "--overflow-frac",
            "0.2",
            "--score-decimals",
            "2",
        ],
        &oracle,
    );
    let reference: serde_json::Value =
        serde_json::from_str(&run_py(&py, &["-c", PROPOSAL_REF, &gt_path, &dt_path])).unwrap();
    let gt = CocoGt::from_json_path(Path::new(&gt_path)).unwrap();
    let dets = coco::load_detections_path(Path::new(&dt_path)).unwrap();
    let report = coco::evaluate(&gt, &dets, &CocoParams::proposal(&[100, 300, 1000])).unwrap();
    let ref_stats: Vec<f64> = serde_json::from_value(reference["stats"].clone()).unwrap();
    compare_stats(&report.stats, &ref_stats);
    compare_all(&report, &reference);
    let keys: Vec<String> = report
        .proposal_metrics()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, mmrun::eval::coco::PROPOSAL_METRIC_NAMES);
}
