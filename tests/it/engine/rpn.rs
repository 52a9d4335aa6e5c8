//! The RPN quickstart end to end through the real CLI, shortened (the shapes set of
//! `detector.rs` at 64 px): it trains, its eval hook reports proposal recall by default, the
//! best checkpoint by AR@100 is kept, `mmrun test` writes the proposals it scored, and
//! `mmrun eval proposal` gives the same AR@100 from that file.

use super::detector::{dataset, eval_json, log_records, mmrun, run_with_sets, small_variant_sets};
use std::path::Path;

const RECIPE: &str = "pipelines/quickstart_rpn.recipe";

#[test]
fn rpn_reports_proposal_recall_and_eval_proposal_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = small_variant_sets(&root);
    let work = dir.path().join("w");
    let w = work.to_str().unwrap();
    let (code, text) = run_with_sets(&["exec", RECIPE, "--work-dir", w], &sets);
    assert_eq!(code, 0, "{text}");
    let recs = log_records(&work);
    let train: Vec<_> = recs.iter().filter(|r| r["mode"] == "train").collect();
    assert!(!train.is_empty() && train.iter().all(|r| r["loss_rpn_cls"].is_f64()));
    assert!(train.iter().all(|r| r["loss_rpn_bbox"].is_f64()));
    let evals: Vec<_> = recs.iter().filter(|r| r["mode"] == "val").collect();
    assert_eq!(evals.len(), 2, "{evals:?}");
    for e in &evals {
        for k in ["AR@100", "AR@300", "AR@1000"] {
            let v = e[k].as_f64().unwrap_or(f64::NAN);
            assert!((0.0..=1.0).contains(&v), "{k} in {e}");
        }
        assert!(e.get("bbox_mAP").is_none(), "{e}");
    }
    let best: Vec<_> = std::fs::read_dir(work.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("best_AR@100_"))
        .collect();
    assert_eq!(best.len(), 1, "{best:?}");
    let ckpt = work.join("checkpoints").join(&best[0]);
    let c = ckpt.to_str().unwrap();
    let (code, out) = run_with_sets(&["test", RECIPE, "--checkpoint", c, "--work-dir", w], &sets);
    assert_eq!(code, 0, "{out}");
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let metrics = read(&work.join("results/metrics.json"));
    let ar100 = metrics["AR@100"].as_f64().unwrap();
    assert!(
        evals.iter().any(|e| e["AR@100"].as_f64() == Some(ar100)),
        "the best checkpoint's AR@100 {ar100} is one of the logged {evals:?}"
    );
    // Proposals, class-agnostic: category 1 (mmdetection's `_proposal2json`), at most
    // `max_per_img` per image.
    let props = work.join("results/proposals.json");
    let list = read(&props);
    let list = list.as_array().unwrap();
    assert!(!list.is_empty());
    assert!(list.iter().all(|p| p["category_id"] == 1));
    let gt = root.join("annotations/instances_val.json");
    let v = eval_json(&["proposal"], &gt, &props);
    assert_eq!(v["AR@100"].as_f64(), Some(ar100), "{v}");

    // mmdetection's RPN configs evaluate by `proposal_fast`: the same checkpoint through
    // `mmrun test` with that evaluator, and `mmrun eval proposal --fast` on its proposals.
    let mut fast = sets.clone();
    fast.push("hooks.eval.metric=proposal_fast".into());
    let (code, out) = run_with_sets(&["test", RECIPE, "--checkpoint", c, "--work-dir", w], &fast);
    assert_eq!(code, 0, "{out}");
    // Printed in the evaluator's order, as mmdetection prints them (not alphabetically).
    let at = |k: &str| {
        out.find(&format!("{k}: "))
            .unwrap_or_else(|| panic!("{k}: {out}"))
    };
    assert!(
        at("AR@100") < at("AR@300") && at("AR@300") < at("AR@1000"),
        "{out}"
    );
    let metrics = read(&work.join("results/metrics.json"));
    let v = eval_json(&["proposal", "--fast"], &gt, &props);
    for k in ["AR@100", "AR@300", "AR@1000"] {
        let m = metrics[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&m), "{metrics}");
        assert_eq!(v[k].as_f64(), Some(m), "{k}: {v} vs {metrics}");
    }
}

#[test]
fn check_refuses_a_detection_metric_for_an_rpn() {
    let (code, out) = mmrun(&[
        "check",
        "--no-fs",
        RECIPE,
        "--set",
        "hooks.eval.metric=coco_bbox",
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("E0418") && out.contains("proposal_recall"),
        "{out}"
    );
}
