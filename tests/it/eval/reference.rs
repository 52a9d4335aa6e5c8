//! Where the reference scripts live and whether Python with pycocotools can run them.

use std::path::PathBuf;
use std::process::Command;

/// `shared/` (the oracle scripts): `$MMRUN_SHARED`, else `<crate>/../shared`, else
/// `<crate>/shared`.
pub fn shared_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MMRUN_SHARED") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [root.join("../shared"), root.join("shared")]
        .into_iter()
        .find(|p| p.join("oracles/coco/gen_coco.py").exists())
}

/// The Python interpreter if it can import pycocotools and numpy; otherwise prints why the
/// caller skips and returns `None`.
pub fn pycocotools(test: &str) -> Option<(String, PathBuf)> {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping {test}: shared/oracles not found (set MMRUN_SHARED)");
        return None;
    };
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import pycocotools, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping {test}: {py} cannot import pycocotools and numpy");
        return None;
    }
    Some((py, shared.join("oracles/coco")))
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
