//! Running a Python reference snippet: JSON in on stdin, JSON out on stdout. Returns `None`
//! (after printing why) when Python or one of the modules it needs is missing, so tests skip.

use std::io::Write;
use std::process::{Command, Stdio};

/// Run `script` with `input` as JSON on stdin; `modules` are imported first to decide skipping.
pub fn run(modules: &[&str], script: &str, input: &serde_json::Value) -> Option<serde_json::Value> {
    let probe = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &probe])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let why = format!("python3 with {modules:?} is not available");
        crate::support::skip_without_reference("python reference", &why);
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("reference prints JSON"))
}

/// A JSON array of numbers as `f64`s.
pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// A flat JSON array of numbers as boxes.
pub fn boxes(v: &serde_json::Value) -> Vec<[f64; 4]> {
    f64s(v)
        .chunks(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// numpy transcriptions of mmdetection's `bbox_overlaps` (IoU with its eps) and `bbox2delta`
/// (means 0, the given stds) in float32: a prelude for the reference scripts.
pub const NUMPY_BOX_OPS: &str = r#"
import numpy as np
f = np.float32
def overlaps(a, b, eps=f(1e-6)):
    area1 = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]); area2 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2]); rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None); ov = wh[..., 0] * wh[..., 1]
    return ov / np.maximum(area1[:, None] + area2[None] - ov, eps)
def bbox2delta(p, g, stds=(1.0, 1.0, 1.0, 1.0)):
    px = (p[:, 0] + p[:, 2]) * f(0.5); py = (p[:, 1] + p[:, 3]) * f(0.5)
    pw = p[:, 2] - p[:, 0]; ph = p[:, 3] - p[:, 1]
    gx = (g[:, 0] + g[:, 2]) * f(0.5); gy = (g[:, 1] + g[:, 3]) * f(0.5)
    gw = g[:, 2] - g[:, 0]; gh = g[:, 3] - g[:, 1]
    dl = np.stack([(gx - px) / pw, (gy - py) / ph, np.log(gw / pw), np.log(gh / ph)], -1)
    return dl / np.array(stds, dtype=f)
"#;
