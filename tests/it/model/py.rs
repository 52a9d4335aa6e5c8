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
