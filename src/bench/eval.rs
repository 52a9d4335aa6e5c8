//! `mmrun bench eval`: COCO bbox evaluation wall time (load + evaluate + accumulate +
//! summarize) of mmrun against pycocotools and faster-coco-eval, run on the same generated case
//! in the same run, with the 12 stats compared.

use crate::eval::coco::{self, CocoGt, CocoParams};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Arguments of `mmrun bench eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Images of the generated case.
    #[arg(long, default_value_t = 5000)]
    images: usize,
    /// Categories of the generated case.
    #[arg(long, default_value_t = 80)]
    cats: usize,
    /// Detections per image.
    #[arg(long, default_value_t = 100)]
    dets_per_image: usize,
    /// Folder for the generated case (kept, and reused when it already holds it).
    #[arg(long, default_value = "target/bench-eval")]
    dir: PathBuf,
    /// The folder holding `coco/gen_coco.py` (default: `$MMRUN_ORACLES`, else `tests/oracles`
    /// of the source tree).
    #[arg(long)]
    oracles: Option<PathBuf>,
    /// Python interpreter with pycocotools and faster-coco-eval.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip pycocotools (it takes about half a minute on this case).
    #[arg(long)]
    no_pycocotools: bool,
}

/// Time one Python tool the same way mmrun is timed, and print its 12 stats.
const PY_TIMER: &str = r#"
import contextlib, io, json, sys, time
tool, gtp, dtp = sys.argv[1:4]
with contextlib.redirect_stdout(io.StringIO()):
    t0 = time.perf_counter(); c0 = time.process_time()
    if tool == 'pycocotools':
        from pycocotools.coco import COCO; from pycocotools.cocoeval import COCOeval as CE
        gt = COCO(gtp); dt = gt.loadRes(dtp); E = CE(gt, dt, 'bbox')
    else:
        from faster_coco_eval import COCO, COCOeval_faster as CE
        gt = COCO(gtp); dt = gt.loadRes(dtp); E = CE(gt, dt, 'bbox', print_function=lambda *a: None)
    t1 = time.perf_counter(); E.evaluate(); E.accumulate(); E.summarize(); t2 = time.perf_counter()
    c2 = time.process_time()
print(json.dumps({'load': t1 - t0, 'eval': t2 - t1, 'cpu': c2 - c0, 'stats': [float(x) for x in E.stats[:12]]}))
"#;

struct Timing {
    load: f64,
    eval: f64,
    /// CPU seconds of load + evaluation (all threads): robust to other load on the machine.
    cpu: f64,
    stats: Vec<f64>,
}

/// CPU time of this process (user + system, all threads) from `/proc/self/stat`, in seconds;
/// NaN where that file does not exist.
fn cpu_seconds() -> f64 {
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / TICKS_PER_SECOND
}

fn oracles_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("MMRUN_ORACLES").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles"))
}

fn generate(a: &Args, gt: &Path, dt: &Path, report: &super::Report) -> Result<(), String> {
    if gt.exists() && dt.exists() {
        report.line(format_args!("using the case in {}", a.dir.display()));
        return Ok(());
    }
    let script = oracles_dir(a.oracles.clone()).join("coco/gen_coco.py");
    report.line(format_args!(
        "generating the case with {} …",
        script.display()
    ));
    let out = Command::new(&a.python)
        .arg(&script)
        .args(["--out", &a.dir.display().to_string(), "--name", "bench"])
        .args([
            "--images",
            &a.images.to_string(),
            "--cats",
            &a.cats.to_string(),
        ])
        .args([
            "--dets-per-image",
            &a.dets_per_image.to_string(),
            "--seed",
            "0",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", a.python))?;
    if !out.status.success() {
        return Err(format!(
            "gen_coco.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    report.text(String::from_utf8_lossy(&out.stdout));
    Ok(())
}

fn time_python(a: &Args, tool: &str, gt: &Path, dt: &Path) -> Result<Timing, String> {
    let out = Command::new(&a.python)
        .args(["-c", PY_TIMER, tool])
        .arg(gt)
        .arg(dt)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", a.python))?;
    if !out.status.success() {
        return Err(format!(
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{tool}: unreadable timing output: {e}"))?;
    Ok(Timing {
        load: v["load"].as_f64().unwrap_or(f64::NAN),
        eval: v["eval"].as_f64().unwrap_or(f64::NAN),
        cpu: v["cpu"].as_f64().unwrap_or(f64::NAN),
        stats: serde_json::from_value(v["stats"].clone()).unwrap_or_default(),
    })
}

fn time_mmrun(gt: &Path, dt: &Path) -> Result<Timing, String> {
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let g = CocoGt::from_json_path(gt).map_err(|e| e.to_string())?;
    let d = coco::load_detections_path(dt).map_err(|e| e.to_string())?;
    let t1 = Instant::now();
    let r = coco::evaluate(&g, &d, &CocoParams::default()).map_err(|e| e.to_string())?;
    let t2 = Instant::now();
    Ok(Timing {
        load: (t1 - t0).as_secs_f64(),
        eval: (t2 - t1).as_secs_f64(),
        cpu: cpu_seconds() - c0,
        stats: r.stats.to_vec(),
    })
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

pub fn run(a: Args, report: &mut super::Report) -> super::Outcome {
    report.setting("images", a.images);
    report.setting("categories", a.cats);
    report.setting("detections_per_image", a.dets_per_image);
    report.setting("dir", a.dir.display().to_string());
    report.setting("threads", rayon::current_num_threads());
    // The peers are pycocotools and faster-coco-eval: the machine matters, not torch.
    report.header(None);
    let gt = a.dir.join("bench_gt.json");
    let dt = a.dir.join("bench_dt.json");
    if let Err(e) = generate(&a, &gt, &dt, report) {
        report.error(e);
        return super::Outcome::CannotRun;
    }
    report.line(format_args!(
        "threads: {} (rayon); case: {} images × {} categories × {} detections/image",
        rayon::current_num_threads(),
        a.images,
        a.cats,
        a.dets_per_image
    ));
    let mut rows: Vec<(&str, Timing)> = Vec::new();
    // mmrun: best of three (the run is short; the Python tools run once).
    let mut best: Option<Timing> = None;
    for _ in 0..3 {
        match time_mmrun(&gt, &dt) {
            Ok(t) => {
                if best
                    .as_ref()
                    .is_none_or(|b| t.load + t.eval < b.load + b.eval)
                {
                    best = Some(t);
                }
            }
            Err(e) => {
                report.error(e);
                return super::Outcome::CannotRun;
            }
        }
    }
    rows.push(("mmrun", best.expect("three runs")));
    let mut tools = vec!["faster_coco_eval"];
    if !a.no_pycocotools {
        tools.push("pycocotools");
    }
    for tool in tools {
        match time_python(&a, tool, &gt, &dt) {
            Ok(t) => rows.push((tool, t)),
            Err(e) => report.warning(format!("warning: {e}")),
        }
    }
    report.line(format_args!(
        "{:<18} {:>9} {:>12} {:>9} {:>14} {:>12} {:>8} {:>12}",
        "tool",
        "load s",
        "eval+acc s",
        "total s",
        "total/mmrun",
        "eval/mmrun",
        "cpu s",
        "cpu/mmrun"
    ));
    let (ml, me, mc) = (rows[0].1.load, rows[0].1.eval, rows[0].1.cpu);
    for (name, t) in &rows {
        report.line(format_args!(
            "{:<18} {:>9.3} {:>12.3} {:>9.3} {:>13.1}× {:>11.1}× {:>8.2} {:>11.1}×",
            name,
            t.load,
            t.eval,
            t.load + t.eval,
            (t.load + t.eval) / (ml + me),
            t.eval / me,
            t.cpu,
            t.cpu / mc
        ));
        report.result(&format!("{name}_load_s"), t.load);
        report.result(&format!("{name}_eval_s"), t.eval);
        report.result(&format!("{name}_total_s"), t.load + t.eval);
        report.result(&format!("{name}_cpu_s"), t.cpu);
        if *name != "mmrun" {
            report.ratio(
                &format!("{name}_total_vs_mmrun"),
                (t.load + t.eval) / (ml + me),
            );
            report.ratio(&format!("{name}_eval_vs_mmrun"), t.eval / me);
            report.ratio(&format!("{name}_cpu_vs_mmrun"), t.cpu / mc);
        }
    }
    report.line("(wall times: mmrun best of 3, Python tools one run each; cpu: all threads)");
    let mut equal = true;
    for (name, t) in &rows[1..] {
        let d = max_diff(&rows[0].1.stats, &t.stats);
        let bitwise = rows[0].1.stats == t.stats;
        report.line(format_args!(
            "stats vs {name}: max |diff| {d:e}{}",
            if bitwise { " (bit-identical)" } else { "" }
        ));
        report.result(&format!("stats_max_abs_diff_vs_{name}"), d);
        report.result(&format!("stats_bit_identical_to_{name}"), bitwise);
        if *name == "pycocotools" && d > 1e-12 {
            equal = false;
        }
    }
    report.line(format_args!("mmrun stats: {:?}", rows[0].1.stats));
    report.result("mmrun_stats", &rows[0].1.stats);
    if equal {
        super::Outcome::Done
    } else {
        report.error("mmrun's stats differ from pycocotools'");
        super::Outcome::Problems
    }
}
