//! `mmrun bench recipe`: time to fully check `retinanet_r50_fpn_1x_coco.recipe` with its
//! imports, the plan included (the model's graphs built), in process and as a whole
//! `mmrun check` process, against mmengine's `Config.fromfile` on mmdetection's config (which
//! parses and merges but validates nothing).

use crate::recipe::CheckOptions;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// mmengine 0.10.7 `Config.fromfile` on mmdetection 3.3's `retinanet_r50_fpn_1x_coco.py`,
/// measured on this kind of machine (issue #2); used when mmengine is not installed.
const PEER_RECORDED_MS: f64 = 11.0;

/// Milliseconds the whole-process ratio adds to the peer's load for importing mmengine (a
/// recorded figure, as the text line says).
const PEER_IMPORT_MS: f64 = 140.0;

/// Arguments of `mmrun bench recipe`.
#[derive(clap::Args)]
pub struct Args {
    /// The recipe to check.
    #[arg(long, default_value = "pipelines/retinanet_r50_fpn_1x_coco.recipe")]
    pub recipe: PathBuf,
    /// In-process repetitions.
    #[arg(long, default_value_t = 2000)]
    pub iters: usize,
    /// Whole-process repetitions.
    #[arg(long, default_value_t = 30)]
    pub processes: usize,
}

pub fn run(args: Args, report: &mut super::Report) -> super::Outcome {
    report.setting("recipe", args.recipe.display().to_string());
    report.setting("iterations", args.iters);
    report.setting("processes", args.processes);
    if args.iters == 0 || args.processes == 0 {
        report.error("--iters and --processes must be at least 1");
        return super::Outcome::CannotRun;
    }
    if !args.recipe.is_file() {
        report.error(format_args!("cannot read `{}`", args.recipe.display()));
        return super::Outcome::CannotRun;
    }
    // `--no-fs`: the COCO files are usually absent; file checks are stat calls anyway.
    let opts = CheckOptions {
        no_fs: true,
        ..CheckOptions::default()
    };
    let check = || crate::plan::check(&args.recipe, &[], &opts);
    let first = check();
    if first.recipe.is_none() {
        let render = Default::default();
        let text = crate::recipe::render::render_all(&first.diagnostics.0, &first.files, render);
        report.error_text(text);
        return super::Outcome::Problems;
    }
    for _ in 0..args.iters.min(50) {
        std::hint::black_box(check());
    }
    let iters = args.iters.max(1);
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(check());
    }
    let in_process_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;

    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            report.error(format_args!("cannot find the mmrun executable: {e}"));
            return super::Outcome::CannotRun;
        }
    };
    let procs = args.processes.max(1);
    let t = Instant::now();
    for _ in 0..procs {
        let ok = Command::new(&exe)
            .args(["check", "--no-fs"])
            .arg(&args.recipe)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            report.error("`mmrun check` failed");
            return super::Outcome::CannotRun;
        }
    }
    let process_ms = t.elapsed().as_secs_f64() * 1e3 / procs as f64;

    let measured = measure_peer();
    let (peer_ms, peer_src) = match measured {
        Some(ms) => (ms, "mmengine Config.fromfile, measured now"),
        None => (
            PEER_RECORDED_MS,
            "mmengine Config.fromfile, recorded (mmengine/mmdet not installed here)",
        ),
    };
    let in_process_ratio = peer_ms / in_process_ms;
    let process_ratio = (peer_ms + PEER_IMPORT_MS) / process_ms;
    report.line(format_args!("recipe: {}", args.recipe.display()));
    report.line(format_args!(
        "in process   : {in_process_ms:.3} ms per full check, plan included ({iters} runs)   target < 5 ms   peer {peer_ms:.1} ms ({peer_src})   ratio {in_process_ratio:.1}x faster"
    ));
    report.line(format_args!(
        "whole process: {process_ms:.2} ms per `mmrun check` ({procs} runs)   target < 20 ms   peer in-process load alone {peer_ms:.1} ms + {PEER_IMPORT_MS:.0} ms import   ratio {process_ratio:.1}x faster"
    ));
    report.result("mmrun_in_process_ms_per_check", in_process_ms);
    report.result("mmrun_process_ms_per_check", process_ms);
    report.result("peer_ms_per_load", peer_ms);
    report.result("peer_import_ms", PEER_IMPORT_MS);
    report.result("peer_measured", measured.is_some());
    report.result("peer", peer_src);
    report.ratio("in_process_speedup_vs_peer", in_process_ratio);
    report.ratio("process_speedup_vs_peer", process_ratio);
    super::Outcome::Done
}

/// Times mmengine's `Config.fromfile` on mmdetection's RetinaNet config when both are
/// installed; `None` otherwise.
fn measure_peer() -> Option<f64> {
    let script = r#"
import os, time
from mmengine import Config
import mmdet
root = os.path.dirname(mmdet.__file__)
cfg = os.path.join(root, '.mim', 'configs', 'retinanet', 'retinanet_r50_fpn_1x_coco.py')
Config.fromfile(cfg)
n = 50
t = time.perf_counter()
for _ in range(n):
    Config.fromfile(cfg)
print((time.perf_counter() - t) * 1e3 / n)
"#;
    let out = Command::new("python3").args(["-c", script]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
