//! The two-stage quickstart end to end through the real CLI, shortened (the shapes set of
//! `detector.rs` at 64 px): Faster R-CNN trains with its four loss terms, the eval hook reports
//! COCO bbox mAP, `mmrun test` writes the detections it scored and `mmrun eval coco` gives the
//! same mAP from that file; and a resumed run ends with the weights of a straight one.

use super::detector::{dataset, eval_json, log_records, run_with_sets, small_variant_sets};
use std::path::Path;

const RECIPE: &str = "pipelines/quickstart_two_stage.recipe";

#[test]
fn faster_rcnn_trains_evaluates_and_eval_coco_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let mut sets = small_variant_sets(&root);
    sets.push("hooks.checkpoint.max_keep_ckpts=-1".into());
    let work = dir.path().join("w");
    let w = work.to_str().unwrap();
    let (code, text) = run_with_sets(&["exec", RECIPE, "--work-dir", w], &sets);
    assert_eq!(code, 0, "{text}");
    let recs = log_records(&work);
    let train: Vec<_> = recs.iter().filter(|r| r["mode"] == "train").collect();
    assert!(!train.is_empty());
    for k in [
        "loss_rpn_cls",
        "loss_rpn_bbox",
        "loss_cls",
        "loss_bbox",
        "loss",
    ] {
        assert!(
            train
                .iter()
                .all(|r| r[k].as_f64().is_some_and(f64::is_finite)),
            "{k}"
        );
    }
    // mmdetection's `acc` (the second stage's top-1 accuracy over the sampled RoIs, percent),
    // logged after `loss_cls` and not summed into `loss`.
    for r in &train {
        let acc = r["acc"].as_f64().unwrap_or(f64::NAN);
        assert!((0.0..=100.0).contains(&acc), "{r}");
        let terms: f64 = ["loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"]
            .iter()
            .map(|k| r[k].as_f64().unwrap())
            .sum();
        let loss = r["loss"].as_f64().unwrap();
        assert!((terms - loss).abs() <= 1e-5 * loss.abs(), "{r}");
    }
    assert!(
        text.contains("loss_cls: ") && text.contains(", acc: "),
        "the log line shows acc: {text}"
    );
    let evals: Vec<_> = recs.iter().filter(|r| r["mode"] == "val").collect();
    assert_eq!(evals.len(), 2, "{evals:?}");
    for e in &evals {
        let v = e["bbox_mAP"].as_f64().unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&v), "{e}");
    }
    // `mmrun test` on the last checkpoint: its metrics are the eval hook's, and the COCO
    // evaluation of the detections it wrote gives them again.
    let ckpt = work.join("checkpoints/epoch_2");
    let c = ckpt.to_str().unwrap();
    let (code, out) = run_with_sets(&["test", RECIPE, "--checkpoint", c, "--work-dir", w], &sets);
    assert_eq!(code, 0, "{out}");
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let metrics = read(&work.join("results/metrics.json"));
    assert_eq!(metrics["bbox_mAP"], evals[1]["bbox_mAP"], "{metrics}");
    let dets = work.join("results/bbox.json");
    let gt = root.join("annotations/instances_val.json");
    let v = eval_json(&["coco"], &gt, &dets);
    assert_eq!(v["bbox_mAP"], metrics["bbox_mAP"], "{v}");

    // Checkpoints every 3 iterations, stopped after 5 (the resume point, iteration 3, is in
    // the middle of epoch 1; the second stage's sampling is keyed by image and step), resumed:
    // the same weights as the straight run.
    let work2 = dir.path().join("w2");
    let w2 = work2.to_str().unwrap();
    let mut sets2 = sets.clone();
    sets2.push("hooks.checkpoint.every=3 iters".into());
    let (code, out) = run_with_sets(
        &["exec", RECIPE, "--work-dir", w2, "--max-iters", "5"],
        &sets2,
    );
    assert_eq!(code, 0, "{out}");
    assert!(work2.join("checkpoints/iter_3").is_dir(), "{out}");
    let (code, out) = run_with_sets(
        &["exec", RECIPE, "--work-dir", w2, "--resume", "auto"],
        &sets2,
    );
    assert_eq!(code, 0, "{out}");
    let weights = |c: &Path| std::fs::read(c.join("model.safetensors")).unwrap();
    assert!(
        weights(&work.join("checkpoints/epoch_2")) == weights(&work2.join("checkpoints/iter_8")),
        "resumed weights differ from the straight run's"
    );
}
