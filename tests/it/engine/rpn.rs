//! The RPN quickstart end to end through the real CLI, shortened (the shapes set of
//! `detector.rs` at 64 px): it trains, its eval hook reports proposal recall by default, the
//! best checkpoint by AR@100 is kept, `mmrun test` writes the proposals it scored, and
//! `mmrun eval proposal` gives the same AR@100 from that file.

use super::detector::{dataset, log_records, mmrun};
use std::path::Path;

const RECIPE: &str = "pipelines/quickstart_rpn.recipe";

const SMALL: &str = "[load_image, load_annotations, resize { scale = [64, 64], keep_ratio = true }, \
    normalize { mean = [127.5, 127.5, 127.5], std = [64.0, 64.0, 64.0], to_rgb = true }, \
    pad { size_divisor = 32 }]";

fn overrides(root: &Path) -> Vec<String> {
    let r = root.display();
    vec![
        format!("data.train.pipeline={SMALL}"),
        format!("data.val.pipeline={SMALL}"),
        format!("data.train.ann_file=\"{r}/annotations/instances_train.json\""),
        format!("data.train.img_prefix=\"{r}/train/\""),
        format!("data.val.ann_file=\"{r}/annotations/instances_val.json\""),
        format!("data.val.img_prefix=\"{r}/val/\""),
        "data.samples_per_gpu=4".into(),
        "run.epochs=2".into(),
        "hooks.log.every=1 iters".into(),
        "schedule.lr.warmup.duration=2 iters".into(),
        "schedule.lr.main.at=[1 epochs]".into(),
    ]
}

fn with_sets(mut args: Vec<String>, sets: &[String]) -> Vec<String> {
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    args
}

fn run(args: &[String]) -> (i32, String) {
    mmrun(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn rpn_reports_proposal_recall_and_eval_proposal_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = overrides(&root);
    let work = dir.path().join("w");
    let exec: Vec<String> = ["exec", RECIPE, "--work-dir", work.to_str().unwrap()]
        .map(String::from)
        .to_vec();
    let (code, text) = run(&with_sets(exec, &sets));
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
    let test: Vec<String> = [
        "test",
        RECIPE,
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--work-dir",
        work.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let (code, out) = run(&with_sets(test, &sets));
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
    let (code, out) = mmrun(&[
        "eval",
        "proposal",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        props.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["AR@100"].as_f64(), Some(ar100), "{v}");
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
