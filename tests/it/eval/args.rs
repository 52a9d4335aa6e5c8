//! Every numeric argument of `mmrun eval` is checked: an IoU threshold outside [0, 1] or NaN
//! (which used to print an `AP-100`), a proposal count of 0. The error names the argument and
//! the value, exit 2.

use std::process::Command;

const GT: &str = r#"{"images": [{"id": 1}], "categories": [{"id": 1, "name": "cat"}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "area": 1600, "iscrowd": 0}]}"#;
const DT: &str = r#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "score": 0.9}]"#;

fn eval(kind: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (gt, dt) = (dir.path().join("gt.json"), dir.path().join("dt.json"));
    std::fs::write(&gt, GT).unwrap();
    std::fs::write(&dt, DT).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(["eval", kind, "--gt"])
        .arg(&gt)
        .arg("--dt")
        .arg(&dt)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn iou_thresholds_must_be_numbers_in_0_1() {
    for bad in ["2.0", "-1", "nan", "NaN", "inf", "1.0000001", "x"] {
        let (code, out, err) = eval("voc", &["--iou-thrs", &format!("0.5,{bad}")]);
        assert_eq!(code, 2, "{bad}: {out}{err}");
        assert!(out.is_empty(), "{bad}: nothing is printed: {out}");
        assert!(
            err.contains("--iou-thrs") && err.contains(&format!("'{bad}'")),
            "{bad}: {err}"
        );
    }
    let (code, out, err) = eval("voc", &["--iou-thrs", "0,0.5,1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("AP50: 1.000") && out.contains("AP100"),
        "{out}"
    );
}

#[test]
fn proposal_counts_must_be_at_least_one() {
    for bad in ["0", "-5", "1.5", "many"] {
        let (code, _, err) = eval("proposal", &[&format!("--proposal-nums=100,{bad}")]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains("--proposal-nums") && err.contains(&format!("'{bad}'")),
            "{bad}: {err}"
        );
    }
    let (code, _, err) = eval("proposal", &["--proposal-nums", "1,10"]);
    assert_eq!(code, 0, "{err}");
}
