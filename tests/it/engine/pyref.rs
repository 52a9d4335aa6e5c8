//! Run a Python reference script and read its JSON answer; `None` (with the reason printed)
//! when Python or torch is missing, so the calling test skips.

use std::process::Command;

pub fn run_python(script: &str, input: &serde_json::Value) -> Option<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input.json");
    std::fs::write(&input_path, serde_json::to_vec(input).unwrap()).unwrap();
    let out = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&input_path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            let why = format!("python3 cannot run ({e})");
            crate::support::skip_without_reference("torch reference", &why);
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("No module named 'torch'") {
            crate::support::skip_without_reference("torch reference", "torch is not installed");
            return None;
        }
        panic!("python reference failed:\n{stderr}");
    }
    Some(serde_json::from_slice(&out.stdout).expect("python printed JSON"))
}
