//! Where the reference scripts live and whether Python with pycocotools can run them.

use std::path::PathBuf;
use std::process::Command;

/// The folder of the pycocotools scripts (`gen_coco.py`, `run_eval.py`): `$MMRUN_ORACLES/coco`,
/// else the copy in `tests/oracles/coco`.
pub fn coco_oracle_dir() -> PathBuf {
    std::env::var_os("MMRUN_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracles"))
        .join("coco")
}

/// The Python interpreter if it can import pycocotools and numpy; otherwise prints why the
/// caller skips and returns `None`.
pub fn pycocotools(test: &str) -> Option<(String, PathBuf)> {
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import pycocotools, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let why = format!("{py} cannot import pycocotools and numpy");
        crate::support::skip_without_reference(test, &why);
        return None;
    }
    Some((py, coco_oracle_dir()))
}

/// Run a Python command; panics with its stderr on failure (the reference must run).
pub fn run_py(py: &str, args: &[&str]) -> String {
    let out = Command::new(py).args(args).output().expect("python runs");
    assert!(
        out.status.success(),
        "python {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
