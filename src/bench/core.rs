//! `mmrun bench core`: conv2d forward and backward (input + weight gradients) on the
//! ResNet-18 layer shapes at batch 2 × 256², in GFLOP/s, against PyTorch on the same shapes
//! measured in the same run (a python subprocess with `torch.set_num_threads(N)`).
//!
//! What limits mmrun here: PyTorch runs oneDNN's direct AVX-512 convolutions; mmrun unfolds
//! each image (im2col, ~8% of the time in `perf`) and runs large GEMMs that the `gemm` crate
//! splits across both threads, on the micro-kernels of the instruction set `backend::cpu::isa`
//! picks (the header's `mmrun cpu kernels:` line; `MMRUN_CPU_ISA` forces one), packing operands
//! per call. The stride-2 input gradient goes through GEMM + col2im. The load average is printed because
//! on a shared machine PyTorch's OpenMP threads spin-wait and its figures collapse under
//! oversubscription: compare runs made on an idle machine.

use crate::backend::cpu::conv;
use crate::ir::op::Conv2dAttrs;
use crate::util::rng::Rng;
use std::time::Instant;

/// Arguments of `mmrun bench core`.
#[derive(clap::Args)]
pub struct Args {
    /// Repetitions per shape (the minimum time is reported).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Threads for both mmrun (rayon) and PyTorch.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Python interpreter with torch.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// (name, Ci, Co, k, stride, input size) of ResNet-18's distinct convolutions at 256².
const SHAPES: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("conv1 7x7/2", 3, 64, 7, 2, 256),
    ("layer1 3x3", 64, 64, 3, 1, 64),
    ("layer2 3x3/2", 64, 128, 3, 2, 64),
    ("layer2 3x3", 128, 128, 3, 1, 32),
    ("layer2 down 1x1/2", 64, 128, 1, 2, 64),
    ("layer3 3x3/2", 128, 256, 3, 2, 32),
    ("layer3 3x3", 256, 256, 3, 1, 16),
    ("layer4 3x3/2", 256, 512, 3, 2, 16),
    ("layer4 3x3", 512, 512, 3, 1, 8),
];
const BATCH: usize = 2;

/// The PyTorch peer: one process, told which shape to time next on stdin, so that its
/// measurements interleave with ours and both see the same machine load.
const TORCH_SCRIPT: &str = r#"
import sys, time, json, torch
torch.set_num_threads(int(sys.argv[1]))
shapes = json.loads(sys.argv[2])
g = torch.Generator().manual_seed(0)
data = []
for (ci, co, k, s, hw) in shapes:
    x = torch.randn(2, ci, hw, hw, generator=g, requires_grad=True)
    w = torch.randn(co, ci, k, k, generator=g, requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, stride=s, padding=k // 2)
    data.append((x, w, s, k // 2, torch.randn_like(y)))
print("ready", flush=True)
def once(x, w, s, p, dy):
    t = time.perf_counter()
    with torch.no_grad():
        torch.nn.functional.conv2d(x, w, stride=s, padding=p)
    f = time.perf_counter() - t
    y = torch.nn.functional.conv2d(x, w, stride=s, padding=p)
    t = time.perf_counter()
    torch.autograd.grad(y, [x, w], dy)
    return [f, time.perf_counter() - t]
for line in sys.stdin:
    case = data[int(line)]
    once(*case)
    print(json.dumps(once(*case)), flush=True)
"#;

struct Peer {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn start(args: &Args) -> Result<Peer, String> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let shapes: Vec<[usize; 5]> = SHAPES.iter().map(|s| [s.1, s.2, s.3, s.4, s.5]).collect();
        let mut child = Command::new(&args.python)
            .args(["-c", TORCH_SCRIPT, &args.threads.to_string()])
            .arg(serde_json::to_string(&shapes).map_err(|e| e.to_string())?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", args.python))?;
        let mut out = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let _ = child.wait();
            return Err(err.lines().last().unwrap_or("python exited").to_string());
        }
        Ok(Peer { child, out })
    }

    fn time(&mut self, i: usize) -> Result<(f64, f64), String> {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{i}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.out.read_line(&mut line).map_err(|e| e.to_string())?;
        serde_json::from_str(&line).map_err(|e| format!("bad reply `{}`: {e}", line.trim()))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Buffers of one benchmark shape.
struct Case {
    attrs: Conv2dAttrs,
    shapes: [[usize; 4]; 3],
    x: Vec<f32>,
    w: Vec<f32>,
    dy: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
}

impl Case {
    fn new(
        rng: &mut Rng,
        &(_, ci, co, k, s, hw): &(&str, usize, usize, usize, usize, usize),
    ) -> Case {
        let p = k / 2;
        let ho = (hw + 2 * p - k) / s + 1;
        let shapes = [[BATCH, ci, hw, hw], [co, ci, k, k], [BATCH, co, ho, ho]];
        let mut rand = |sh: &[usize; 4]| {
            (0..sh.iter().product())
                .map(|_| rng.range_f64(-1.0, 1.0) as f32)
                .collect::<Vec<f32>>()
        };
        let (x, w, dy) = (rand(&shapes[0]), rand(&shapes[1]), rand(&shapes[2]));
        Case {
            attrs: Conv2dAttrs {
                stride: [s, s],
                padding: [p, p],
                ..Default::default()
            },
            y: vec![0.0; dy.len()],
            dx: vec![0.0; x.len()],
            dw: vec![0.0; w.len()],
            shapes,
            x,
            w,
            dy,
        }
    }

    /// One forward and one backward, timed.
    fn time(&mut self) -> (f64, f64) {
        let [xs, ws, ys] = &self.shapes;
        let t = Instant::now();
        conv::conv2d(&self.x, xs, &self.w, ws, None, &self.attrs, &mut self.y, ys);
        let f = t.elapsed().as_secs_f64();
        let t = Instant::now();
        conv::conv2d_grad_input(&self.dy, ys, &self.w, ws, &self.attrs, &mut self.dx, xs);
        conv::conv2d_grad_weight(&self.x, xs, &self.dy, ys, &self.attrs, &mut self.dw, ws);
        (f, t.elapsed().as_secs_f64())
    }
}

type Times = Vec<(f64, f64)>;

/// Alternates one PyTorch and one mmrun measurement per shape, `reps + 1` rounds (the first is
/// warm-up), keeping the minimum of each.
fn measure(args: &Args, peer: &mut Option<Peer>) -> Result<(Times, Option<Times>), String> {
    let mut rng = Rng::seed(0);
    let mut cases: Vec<Case> = SHAPES.iter().map(|s| Case::new(&mut rng, s)).collect();
    let inf = (f64::INFINITY, f64::INFINITY);
    let mut mine = vec![inf; SHAPES.len()];
    let mut theirs = vec![inf; SHAPES.len()];
    let min2 = |a: (f64, f64), b: (f64, f64)| (a.0.min(b.0), a.1.min(b.1));
    for round in 0..=args.reps {
        for (i, case) in cases.iter_mut().enumerate() {
            if let Some(p) = peer.as_mut() {
                let t = p.time(i)?;
                if round > 0 {
                    theirs[i] = min2(theirs[i], t);
                }
            }
            // Each turn runs once untimed: the other side's idle threads (libgomp's under
            // PyTorch spin for milliseconds after a parallel region) stop spinning meanwhile.
            case.time();
            let t = case.time();
            if round > 0 {
                mine[i] = min2(mine[i], t);
            }
        }
    }
    Ok((mine, peer.is_some().then_some(theirs)))
}

pub fn run(args: Args, report: &mut super::Report) -> super::Outcome {
    report.setting("batch", BATCH);
    report.setting("threads", args.threads);
    report.setting("reps", args.reps);
    report.setting("dtype", "f32");
    report.setting(
        "shapes",
        SHAPES
            .iter()
            .map(|&(name, ci, co, k, stride, size)| {
                serde_json::json!({
                    "layer": name, "in_channels": ci, "out_channels": co, "kernel": k,
                    "stride": stride, "input_size": size,
                })
            })
            .collect::<Vec<_>>(),
    );
    report.header(Some(&args.python));
    let mut peer = match Peer::start(&args) {
        Ok(p) => Some(p),
        Err(e) => {
            report.warning(format!(
                "note: PyTorch peer unavailable ({e}); printing mmrun figures only"
            ));
            None
        }
    };
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            report.error(format_args!("cannot start {} threads: {e}", args.threads));
            return super::Outcome::CannotRun;
        }
    };
    let (mine, torch) = match pool.install(|| measure(&args, &mut peer)) {
        Ok(r) => r,
        Err(e) => {
            report.error(format_args!("PyTorch peer failed: {e}"));
            return super::Outcome::CannotRun;
        }
    };
    drop(peer);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report.line(format_args!(
        "load average: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    report.result("load_average", super::load_average());
    report.line(format_args!(
        "conv2d f32, batch {BATCH}, ResNet-18 shapes at 256², {} threads, min of {} interleaved reps (GFLOP/s; bwd = input + weight grads)",
        args.threads,
        args.reps
    ));
    report.line(format_args!(
        "{:<20} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}",
        "layer", "fwd", "torch", "ratio", "bwd", "torch", "ratio"
    ));
    let (mut tot_f, mut tot_b, mut tt_f, mut tt_b, mut flops_all) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut layers = Vec::new();
    for (i, &(name, ci, co, k, s, hw)) in SHAPES.iter().enumerate() {
        let ho = (hw + 2 * (k / 2) - k) / s + 1;
        let flops = 2.0 * (BATCH * co * ho * ho * ci * k * k) as f64;
        flops_all += flops;
        let (f, b) = mine[i];
        tot_f += f;
        tot_b += b;
        let gf = |t: f64, mult: f64| flops * mult / t / 1e9;
        let mut row = serde_json::json!({
            "layer": name,
            "fwd_gflop": flops / 1e9,
            "mmrun_fwd_s": f,
            "mmrun_bwd_s": b,
            "mmrun_fwd_gflop_per_s": gf(f, 1.0),
            "mmrun_bwd_gflop_per_s": gf(b, 2.0),
        });
        match &torch {
            Some(t) => {
                let (tf, tb) = t[i];
                tt_f += tf;
                tt_b += tb;
                report.line(format_args!(
                    "{name:<20} {:>9.1} {:>9.1} {:>6.2}x   {:>9.1} {:>9.1} {:>6.2}x",
                    gf(f, 1.0),
                    gf(tf, 1.0),
                    tf / f,
                    gf(b, 2.0),
                    gf(tb, 2.0),
                    tb / b
                ));
                row["torch_fwd_s"] = tf.into();
                row["torch_bwd_s"] = tb.into();
                row["torch_fwd_gflop_per_s"] = gf(tf, 1.0).into();
                row["torch_bwd_gflop_per_s"] = gf(tb, 2.0).into();
                row["fwd_ratio"] = (tf / f).into();
                row["bwd_ratio"] = (tb / b).into();
            }
            None => report.line(format_args!(
                "{name:<20} {:>9.1} {:>9} {:>7}   {:>9.1}",
                gf(f, 1.0),
                "-",
                "-",
                gf(b, 2.0)
            )),
        }
        layers.push(row);
    }
    report.result("layers", layers);
    report.result("mmrun_total_fwd_gflop_per_s", flops_all / tot_f / 1e9);
    report.result("mmrun_total_bwd_gflop_per_s", 2.0 * flops_all / tot_b / 1e9);
    report.result("peer", torch.is_some());
    if torch.is_some() {
        report.line(format_args!(
            "{:<20} {:>9.1} {:>9.1} {:>6.2}x   {:>9.1} {:>9.1} {:>6.2}x",
            "total",
            flops_all / tot_f / 1e9,
            flops_all / tt_f / 1e9,
            tt_f / tot_f,
            2.0 * flops_all / tot_b / 1e9,
            2.0 * flops_all / tt_b / 1e9,
            tt_b / tot_b
        ));
        report.result("torch_total_fwd_gflop_per_s", flops_all / tt_f / 1e9);
        report.result("torch_total_bwd_gflop_per_s", 2.0 * flops_all / tt_b / 1e9);
        report.ratio("total_fwd_vs_torch", tt_f / tot_f);
        report.ratio("total_bwd_vs_torch", tt_b / tot_b);
    }
    super::Outcome::Done
}
