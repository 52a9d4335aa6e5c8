//! `mmrun eval` as users run it: output, error messages, exit codes.

use std::path::Path;

const GT: &str = r#"{"images": [{"id": 1}, {"id": 2}],
 "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
 "annotations": [
  {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "area": 1600, "iscrowd": 0},
  {"id": 2, "image_id": 2, "category_id": 2, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}]}"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

use crate::bin::mmrun_split as mmrun;

#[test]
fn eval_coco_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let gt = write(dir.path(), "gt.json", GT);
    let dt = write(
        dir.path(),
        "dt.json",
        r#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "score": 0.9},
            {"image_id": 2, "category_id": 2, "bbox": [50, 50, 20, 20], "score": 0.8}]"#,
    );
    let (code, out, err) = mmrun(&[
        "eval",
        "coco",
        "--gt",
        &gt,
        "--dt",
        &dt,
        "--format",
        "json",
        "--classwise",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stats = v["stats"].as_array().unwrap();
    assert_eq!(stats.len(), 12);
    // cat (medium) found: AP 1/(1+2^-52); dog (small) missed: AP 0. Mean about 0.5.
    assert!((stats[0].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(v["bbox_mAP"], 0.5);
    assert_eq!(
        v["bbox_mAP_copypaste"],
        "0.500 0.500 0.500 0.000 1.000 -1.000"
    );
    assert_eq!(v["classwise"]["dog"], 0.0);

    let (code, out, _) = mmrun(&["eval", "coco", "--gt", &gt, "--dt", &dt]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500"
        ),
        "{out}"
    );
}

#[test]
fn eval_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let gt = write(dir.path(), "gt.json", GT);
    let bad = write(
        dir.path(),
        "bad.json",
        r#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]"#,
    );
    let (code, _, err) = mmrun(&["eval", "coco", "--gt", &gt, "--dt", &bad]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.json: malformed JSON"), "{err}");

    let unknown = write(
        dir.path(),
        "unknown.json",
        r#"[{"image_id": 7, "category_id": 3, "bbox": [0, 0, 4, -4], "score": 0.5}]"#,
    );
    let (code, _, err) = mmrun(&["eval", "coco", "--gt", &gt, "--dt", &unknown]);
    assert_eq!(code, 1);
    for needle in [
        "unknown.json",
        "image_id 7",
        "category_id 3",
        "negative width or height",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }

    let (code, _, err) = mmrun(&[
        "eval",
        "coco",
        "--gt",
        "/nonexistent/gt.json",
        "--dt",
        &unknown,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/gt.json: cannot read"), "{err}");
}

#[test]
fn eval_proposal_keys() {
    let dir = tempfile::tempdir().unwrap();
    let gt = write(dir.path(), "gt.json", GT);
    let dt = write(
        dir.path(),
        "dt.json",
        r#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "score": 0.9}]"#,
    );
    let (code, out, err) = mmrun(&[
        "eval", "proposal", "--gt", &gt, "--dt", &dt, "--format", "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Class-agnostic: one of the two GT boxes found at every threshold.
    assert_eq!(v["AR@100"], 0.5);
    assert_eq!(v["AR@1000"], 0.5);
    assert!(v.get("AR_l@1000").is_some());
}
