//! mmdetection's own log tools read a work dir `mmrun exec` wrote: `analyze_logs.py` from the
//! mmdetection 2.28.2 wheel on PyPI (installed by `.ci/run` without its dependencies; the
//! script needs only matplotlib, numpy and seaborn) plots loss and bbox_mAP from the run's
//! `<timestamp>.log.json` and computes its train time, unchanged.

use super::detector::{dataset, exec, overrides_stepped};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `tools/analysis_tools/analyze_logs.py` of the installed mmdet package (found without
/// importing it: mmdet's `__init__` needs mmcv).
fn analyze_logs() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u, matplotlib, seaborn; \
             s = u.find_spec('mmdet'); print(s.submodule_search_locations[0] if s else '')",
        ])
        .output();
    let why = match out {
        Ok(o) if o.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            let script = dir.join(".mim/tools/analysis_tools/analyze_logs.py");
            if script.is_file() {
                return Some(script);
            }
            "mmdet 2.28.2 is not installed (pip install --no-deps mmdet==2.28.2)".to_string()
        }
        Ok(o) => format!(
            "matplotlib or seaborn is missing: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("python3 cannot run ({e})"),
    };
    crate::support::skip_without_reference("analyze_logs", &why);
    None
}

fn run(script: &Path, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env("MPLBACKEND", "Agg")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "analyze_logs.py {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn mmdetection_analyze_logs_plots_and_times_a_run_mmrun_wrote() {
    let Some(script) = analyze_logs() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = overrides_stepped(&root, 3, 2);
    let work = dir.path().join("w");
    let (code, text) = exec(&work, &sets, &[]);
    assert_eq!(code, 0, "{text}");
    let logs: Vec<PathBuf> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".log.json"))
        .collect();
    assert_eq!(logs.len(), 1, "one <timestamp>.log.json per run: {logs:?}");
    let log = logs[0].to_str().unwrap();
    let name = logs[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.len() == "20261206_203000.log.json".len() && name.as_bytes()[8] == b'_',
        "{name} is not mmcv's <timestamp>.log.json"
    );

    for key in ["loss", "bbox_mAP"] {
        let png = dir.path().join(format!("{key}.png"));
        let out = run(
            &script,
            &[
                "plot_curve",
                log,
                "--keys",
                key,
                "--out",
                png.to_str().unwrap(),
            ],
        );
        assert!(out.contains("save curve to"), "{out}");
        let bytes = std::fs::read(&png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{key}: a {}-byte file",
            bytes.len()
        );
    }
    let out = run(&script, &["cal_train_time", log]);
    let avg: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("average iter time: "))
        .and_then(|l| l.trim_end_matches(" s/iter").parse().ok())
        .unwrap_or_else(|| panic!("no average iter time in\n{out}"));
    assert!(avg > 0.0 && avg < 30.0, "{out}");
    // The text log's lines carry mmcv's timestamps.
    let txt = std::fs::read_to_string(work.join("log.txt")).unwrap();
    let first = txt.lines().next().unwrap();
    assert!(
        first.len() > 23
            && first.as_bytes()[4] == b'-'
            && first[23..].starts_with(" - mmrun - INFO - "),
        "{first}"
    );
}
