//! `mmrun bench train`: seconds per training iteration of a detector built from a recipe
//! (default: RetinaNet ResNet-18-FPN, 80 classes, batch 2 × 3 × 256 × 256) on the CPU backend,
//! against torchvision's RetinaNet with the same backbone and sizes under PyTorch
//! (`scripts/bench_train_torch.py`), measured in the same run, and where mmrun's time goes.
//!
//! One mmrun iteration is what a training iteration of `mmrun exec` does, on a fixed batch:
//! target assignment for each image, the engine's step (`engine::step::TrainStep`: feeds,
//! forward + backward, gradients and running statistics moved into the parameters) and the
//! SGD update. On a GPU (`--device cuda|wgpu`) the parameters stay on the device between steps
//! and the update runs there, as in `exec` (`engine::device_params`). The profile comes from the executor's opt-in per-op timer plus timers around
//! the host-side parts, grouped by op family. The load average is printed: both sides slow
//! down under load, PyTorch's OpenMP threads most (oversubscription); on a busy machine
//! `--threads 1` gives the fairer ratio.

use crate::backend::Device;
use crate::engine::optim::{Optimizer, OptimizerConfig};
use crate::engine::step::TrainStep;
use crate::ir::HostTensor;
use crate::model::assign::ImageGt;
use crate::model::config::DetectorConfig;
use crate::model::net::Detector;
use crate::model::target::{DenseTargets, PaddedShapes};
use crate::recipe::{self, CheckOptions};
use crate::util::rng::Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// The model a training benchmark runs, and its batch (shared with `bench fusion`).
#[derive(clap::Args)]
pub(super) struct Model {
    /// The recipe whose `model` is trained (its data sections are not read).
    #[arg(long, default_value = "pipelines/bench/retinanet_r18_fpn.recipe")]
    pub(super) recipe: PathBuf,
    /// Recipe overrides, as `mmrun exec --set`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub(super) set: Vec<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 2)]
    pub(super) batch: usize,
    /// Input side in pixels (square).
    #[arg(long, default_value_t = 256)]
    pub(super) size: usize,
}

impl Model {
    /// The recipe's detector.
    pub(super) fn detector(&self) -> Result<Detector, String> {
        let opts = CheckOptions {
            no_fs: true,
            ..Default::default()
        };
        let r = recipe::load(&self.recipe, &self.set, &opts)
            .map_err(|f| format!("{}: the recipe has errors:\n{f}", self.recipe.display()))?;
        let model = r
            .get("model")
            .ok_or_else(|| format!("{}: no `model` section", self.recipe.display()))?;
        let cfg = DetectorConfig::from_value(model).map_err(|e| format!("model: {e}"))?;
        Detector::new(cfg).map_err(|e| format!("model: {e}"))
    }

    /// Its settings in a report.
    pub(super) fn report(&self, report: &mut super::Report) {
        report.setting("recipe", self.recipe.display().to_string());
        report.setting("set", &self.set);
        report.setting("batch", self.batch);
        report.setting("size", [self.size, self.size]);
    }
}

/// Arguments of `mmrun bench train`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: Model,
    /// Timed iterations (after the warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed iterations first (graph planning, buffer allocation, caches).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Threads for both mmrun (rayon) and PyTorch.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Python interpreter with torch and torchvision.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The PyTorch peer script.
    #[arg(long, default_value = "scripts/bench_train_torch.py")]
    script: PathBuf,
    /// Measure mmrun only.
    #[arg(long)]
    no_peer: bool,
    /// Also print the N slowest graph nodes (op, scope, shapes) of the profile.
    #[arg(long, default_value_t = 0)]
    top_nodes: usize,
    /// Where mmrun's step runs (`cpu`, `cuda:N`, `wgpu[:N|:NAME]`); another device than the
    /// CPU is also compared with the CPU backend in the same run (PyTorch runs on the CPU).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Ground-truth boxes per synthetic image.
const BOXES: usize = 3;

/// The op families of the profile, by executor op name.
pub(super) fn family(op: &str) -> &'static str {
    match op {
        "conv2d" => "conv fwd",
        "conv2d_grad_input" => "conv grad-input",
        "conv2d_grad_weight" => "conv grad-weight",
        "update_running_stats" => "norm",
        n if n.starts_with("norm_") => "norm",
        "reshape" | "permute" | "slice" | "slice_pad" | "concat" | "broadcast_to" => "layout",
        "max_pool2d" | "max_pool2d_grad" | "upsample_nearest" | "upsample_nearest_grad" => {
            "pool/upsample"
        }
        "matmul" => "matmul",
        "upload" | "download" => "host<->backend copies",
        n if n.ends_with("_loss") || n == "loss_grad" || n == "bce_with_logits" => "loss",
        "cross_entropy" => "loss",
        _ => "elementwise",
    }
}

/// Fixed synthetic batch: images in `[-1, 1)` (already normalised) and a few boxes each.
pub(super) struct Synthetic {
    pub(super) img: HostTensor,
    pub(super) gts: Vec<ImageGt>,
}

pub(super) fn synthetic(batch: usize, size: usize, classes: usize) -> Result<Synthetic, String> {
    let mut rng = Rng::seed(0);
    let data: Vec<f32> = (0..batch * 3 * size * size)
        .map(|_| rng.range_f64(-1.0, 1.0) as f32)
        .collect();
    let img = HostTensor::f32(vec![batch, 3, size, size], data).map_err(|e| e.to_string())?;
    let s = size as f64;
    let gts = (0..batch)
        .map(|_| {
            let bboxes: Vec<[f32; 4]> = (0..BOXES)
                .map(|_| {
                    let (x, y) = (rng.range_f64(0.0, 0.6 * s), rng.range_f64(0.0, 0.6 * s));
                    let (w, h) = (rng.range_f64(16.0, 0.35 * s), rng.range_f64(16.0, 0.35 * s));
                    [
                        x as f32,
                        y as f32,
                        (x + w).min(s - 1.0) as f32,
                        (y + h).min(s - 1.0) as f32,
                    ]
                })
                .collect();
            let labels = (0..BOXES)
                .map(|_| rng.below(classes as u64) as usize)
                .collect();
            ImageGt {
                bboxes,
                labels,
                bboxes_ignore: vec![],
            }
        })
        .collect();
    Ok(Synthetic { img, gts })
}

/// Host-side time per family over the timed iterations.
#[derive(Default)]
struct HostTimes {
    targets: f64,
    copies: f64,
    optimizer: f64,
}

/// mmrun's side: median seconds per iteration and the profile (family → seconds, calls).
struct Measured {
    per_iter: Vec<f64>,
    profile: BTreeMap<&'static str, (f64, u64)>,
    /// The slowest nodes: (seconds, calls, description).
    top_nodes: Vec<(f64, u64, String)>,
    loss: f64,
}

fn measure(args: &Args, device: Device) -> Result<Measured, String> {
    let det = args.model.detector()?;
    let hw = (args.model.size, args.model.size);
    let data = synthetic(args.model.batch, args.model.size, det.num_classes())?;
    let mut step = TrainStep::new(det, device);
    let mut params = step.init_params(0).map_err(|e| e.to_string())?;
    let sgd = OptimizerConfig::sgd(0.01, 0.9, 1e-4);
    let mut optim = Optimizer::new(sgd, &params).map_err(|e| e.to_string())?;
    // On a GPU the parameters stay there between steps, as in `exec`.
    step.keep_params_on_device();
    let meta = PaddedShapes {
        img_shape: hw,
        pad_shape: hw,
        batch_shape: hw,
    };

    let mut host = HostTimes::default();
    let mut per_iter = Vec::new();
    let mut loss = f64::NAN;
    for it in 0..args.warmup + args.iters {
        if it == args.warmup {
            step.set_profile(true);
            host = HostTimes::default();
        }
        let start = Instant::now();
        let t = Instant::now();
        let targets: Vec<DenseTargets> = data
            .gts
            .iter()
            .map(|gt| {
                let mut rng = crate::util::rng::Rng::seed(0);
                step.detector()
                    .target_builder()
                    .targets(gt, &meta, &mut rng)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| format!("targets: {e}"))?;
        host.targets += t.elapsed().as_secs_f64();
        let out =
            (step.run(&mut params, data.img.clone(), &targets, 1.0)).map_err(|e| e.to_string())?;
        host.copies += out.host_s;
        let t = Instant::now();
        match step.device_params() {
            Some(kept) => (kept.update(&mut optim, &params, 1.0)).map_err(|e| e.to_string())?,
            None => optim.step(&mut params),
        }
        host.optimizer += t.elapsed().as_secs_f64();
        if it >= args.warmup {
            per_iter.push(start.elapsed().as_secs_f64());
        }
        loss = out.losses.iter().map(|(_, v)| v).sum();
        if !loss.is_finite() {
            return Err(format!("iteration {it}: the loss is {loss}"));
        }
    }
    let exec = step
        .graph((args.model.batch, args.model.size, args.model.size))
        .ok_or("the train graph did not run")?;
    let n = args.iters as u64;
    let mut profile: BTreeMap<&'static str, (f64, u64)> = BTreeMap::new();
    for (op, s, calls) in exec.profile() {
        let e = profile.entry(family(op)).or_default();
        e.0 += s;
        e.1 += calls;
    }
    for (k, s) in [
        ("target assignment", host.targets),
        ("host<->backend copies", host.copies),
        ("optimizer", host.optimizer),
    ] {
        let e = profile.entry(k).or_default();
        e.0 += s;
        e.1 += n;
    }
    let top_nodes = (exec.node_profile().into_iter().take(args.top_nodes))
        .map(|(id, s, calls)| (s, calls, exec.describe_node(id)))
        .collect();
    Ok(Measured {
        per_iter,
        profile,
        top_nodes,
        loss,
    })
}

/// Median of a non-empty sample.
pub(super) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// The PyTorch peer's seconds per iteration, or why it could not run.
fn peer(args: &Args) -> Result<(Vec<f64>, String), String> {
    if !args.script.is_file() {
        return Err(format!("{} not found", args.script.display()));
    }
    let out = std::process::Command::new(&args.python)
        .arg(&args.script)
        .args(["--iters", &args.iters.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--batch", &args.model.batch.to_string()])
        .args(["--size", &args.model.size.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--boxes", &BOXES.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args.python))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("python failed").to_string());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("bad reply `{}`: {e}", line.trim()))?;
    let times: Vec<f64> = v["s_per_iter"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    if times.is_empty() {
        return Err(format!("no timings in `{}`", line.trim()));
    }
    let version = format!(
        "torch {}, torchvision {}",
        v["torch"].as_str().unwrap_or("?"),
        v["torchvision"].as_str().unwrap_or("?")
    );
    Ok((times, version))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn run(args: Args, report: &mut super::Report) -> super::Outcome {
    args.model.report(report);
    report.setting("threads", args.threads);
    report.setting("iterations", args.iters);
    report.setting("warmup", args.warmup);
    report.setting("device", &args.device);
    report.setting("peer", !args.no_peer);
    if args.iters == 0 || args.model.batch == 0 || args.model.size == 0 || args.threads == 0 {
        report.error("--iters, --batch, --size and --threads must be at least 1");
        return super::Outcome::CannotRun;
    }
    // The global pool may already exist (it is built once per process); then it keeps its size.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global();
    report.line(format_args!(
        "training step: {} at batch {} × 3 × {} × {}, {} threads, {} timed iterations after {} warm-up",
        args.model.recipe.display(),
        args.model.batch,
        args.model.size,
        args.model.size,
        args.threads,
        args.iters,
        args.warmup
    ));
    // The load first: the header's probe starts python and torch.
    report.line(format_args!("load average before: {}", load_average()));
    report.result("load_average_before", super::load_average());
    let python = (!args.no_peer).then_some(args.python.as_str());
    report.header(python);
    let device = match Device::open(&args.device) {
        Ok(d) => d,
        Err(e) => {
            report.error(e);
            return super::Outcome::CannotRun;
        }
    };
    if !matches!(device, Device::Cpu) {
        return against_cpu(&args, device, report);
    }
    let m = match measure(&args, Device::Cpu) {
        Ok(m) => m,
        Err(e) => {
            report.error(e);
            return super::Outcome::CannotRun;
        }
    };
    let ours = median(&m.per_iter);
    report.line(format_args!(
        "mmrun (cpu backend):  {ours:.3} s/iteration (median; last loss {:.4})",
        m.loss
    ));
    report.result("mmrun_s_per_iter", ours);
    report.result("mmrun_s_per_iter_each", &m.per_iter);
    report.result("last_loss", m.loss);
    if args.no_peer {
        report.line("PyTorch: skipped (--no-peer)");
        report.result("pytorch_skipped", "--no-peer");
    } else {
        match peer(&args) {
            Ok((times, version)) => {
                let theirs = median(&times);
                report.line(format_args!(
                    "PyTorch ({version}): {theirs:.3} s/iteration (median)"
                ));
                report.line(format_args!(
                    "ratio: mmrun throughput = {:.2}× PyTorch's (target ≥ 1.0×)",
                    theirs / ours
                ));
                report.result("pytorch_s_per_iter", theirs);
                report.result("pytorch_s_per_iter_each", &times);
                report.result("pytorch_version", version);
                report.ratio("mmrun_throughput_vs_pytorch", theirs / ours);
            }
            Err(e) => {
                report.line(format_args!("PyTorch: skipped ({e})"));
                report.result("pytorch_skipped", e);
            }
        }
    }
    report.line(format_args!("load average after: {}", load_average()));
    report.result("load_average_after", super::load_average());
    let iters = m.per_iter.len() as f64;
    let total: f64 = m.per_iter.iter().sum();
    let mut rows: Vec<_> = m.profile.iter().collect();
    rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    report.line(format_args!(
        "mmrun profile over {} iterations ({total:.3} s):",
        m.per_iter.len()
    ));
    let mut counted = 0.0;
    let mut profile = serde_json::Map::new();
    for (name, (s, calls)) in rows {
        counted += s;
        report.line(format_args!(
            "  {name:<22} {:>8.1} ms/iter {:>5.1}%  ({calls} calls)",
            1e3 * s / iters,
            100.0 * s / total
        ));
        let row = serde_json::json!({
            "ms_per_iter": 1e3 * s / iters,
            "percent": 100.0 * s / total,
            "calls": calls,
        });
        profile.insert(name.to_string(), row);
    }
    report.line(format_args!(
        "  {:<22} {:>8.1} ms/iter {:>5.1}%",
        "other (executor, feeds)",
        1e3 * (total - counted) / iters,
        100.0 * (total - counted) / total
    ));
    profile.insert(
        "other (executor, feeds)".into(),
        serde_json::json!({
            "ms_per_iter": 1e3 * (total - counted) / iters,
            "percent": 100.0 * (total - counted) / total,
        }),
    );
    report.result("profile", profile);
    if !m.top_nodes.is_empty() {
        report.line("slowest nodes:");
    }
    let mut nodes = Vec::new();
    for (s, calls, what) in &m.top_nodes {
        report.line(format_args!(
            "  {:>8.2} ms/iter {:>5.1}%  {calls:>3}×  {what}",
            1e3 * s / iters,
            100.0 * s / total
        ));
        nodes.push(serde_json::json!({
            "ms_per_iter": 1e3 * s / iters,
            "percent": 100.0 * s / total,
            "calls": calls,
            "node": what,
        }));
    }
    report.result("slowest_nodes", nodes);
    super::Outcome::Done
}

/// A device other than the CPU: its step time against the CPU backend's, same shapes and
/// run. Per-op profiles are the CPU's only (device ops are recorded and run asynchronously).
fn against_cpu(args: &Args, device: Device, report: &mut super::Report) -> super::Outcome {
    let what = device.label();
    let name = device.name();
    report.machine("device", &what);
    let mut medians = Vec::new();
    for (label, key, d) in [
        (what.as_str(), "device", device.clone()),
        ("cpu", "cpu", Device::Cpu),
    ] {
        match measure(args, d) {
            Ok(m) => {
                let spread = spread(&m.per_iter);
                report.line(format_args!(
                    "mmrun on {label}: {:.3} s/iteration (median; {spread}; last loss {:.4})",
                    median(&m.per_iter),
                    m.loss
                ));
                report.result(&format!("mmrun_{key}_s_per_iter"), median(&m.per_iter));
                report.result(&format!("mmrun_{key}_s_per_iter_each"), &m.per_iter);
                report.result(&format!("mmrun_{key}_last_loss"), m.loss);
                medians.push(median(&m.per_iter));
            }
            Err(e) => {
                report.error(format_args!("{label}: {e}"));
                return super::Outcome::CannotRun;
            }
        }
    }
    report.line(format_args!(
        "ratio: the {name} backend's throughput = {:.3}× the cpu backend's (reported, no target)",
        medians[1] / medians[0]
    ));
    report.ratio("device_throughput_vs_cpu", medians[1] / medians[0]);
    report.line(format_args!("load average after: {}", load_average()));
    report.result("load_average_after", super::load_average());
    super::Outcome::Done
}

/// `min–max` of a sample, in seconds.
pub(super) fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.3}–{hi:.3} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_cover_the_op_names() {
        assert_eq!(family("conv2d_grad_weight"), "conv grad-weight");
        assert_eq!(family("norm_apply_grad_x"), "norm");
        assert_eq!(family("sigmoid_focal_loss"), "loss");
        assert_eq!(family("giou_loss"), "loss");
        assert_eq!(family("permute"), "layout");
        assert_eq!(family("relu_grad"), "elementwise");
        assert_eq!(family("upload"), "host<->backend copies");
    }

    #[test]
    fn measures_steps_and_profiles_them_by_family() {
        // The quickstart's small FCOS at 64 px: a couple of seconds, yet every part of a step.
        let args = Args {
            model: Model {
                recipe: "pipelines/quickstart.recipe".into(),
                set: vec![],
                batch: 1,
                size: 64,
            },
            iters: 2,
            warmup: 1,
            threads: 1,
            python: "python3".into(),
            script: "scripts/bench_train_torch.py".into(),
            no_peer: true,
            top_nodes: 3,
            device: "cpu".into(),
        };
        let m = measure(&args, Device::Cpu).unwrap();
        assert_eq!(m.per_iter.len(), 2);
        assert!(m.loss.is_finite() && m.loss > 0.0);
        for k in [
            "conv fwd",
            "conv grad-input",
            "conv grad-weight",
            "norm",
            "loss",
        ] {
            let (s, calls) = m.profile[k];
            assert!(
                s > 0.0 && calls > 0 && calls % 2 == 0,
                "{k}: {s} s, {calls} calls"
            );
        }
        let counted: f64 = m.profile.values().map(|v| v.0).sum();
        assert!(counted <= m.per_iter.iter().sum::<f64>() * 1.0001);
        // The slowest nodes come slowest first and name what they run on.
        assert_eq!(m.top_nodes.len(), 3);
        assert!(m.top_nodes.windows(2).all(|w| w[0].0 >= w[1].0));
        assert!(
            m.top_nodes
                .iter()
                .all(|n| n.1 == 2 && n.2.contains(" -> [")),
            "{:?}",
            m.top_nodes
        );
    }

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
