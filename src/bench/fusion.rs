//! `mmrun bench fusion`: what fused elementwise chains buy on the CPU. The training graph of
//! `bench train`'s model runs on two executors in one process, interleaved step by step: one
//! with its chains fused (`Executor::new`, what every run uses) and its peer with every op
//! alone (`Executor::unfused`). Both read the same parameters and feeds, so their losses must
//! be the same bits; the report gives the step and the elementwise family per iteration, the
//! chains fused and both memory plans. No optimizer runs: each step repeats the first.

use super::train::{Model, family, median, spread, synthetic};
use crate::backend::cpu::CpuBackend;
use crate::engine::{Executor, ParamSet};
use crate::ir::DType;
use crate::ir::op::Op;
use crate::model::net::GraphMode;
use crate::model::target::{DenseTargets, PaddedShapes};
use std::time::Instant;

/// Arguments of `mmrun bench fusion`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: Model,
    /// Timed steps of each executor (after one warm-up step each).
    #[arg(long, default_value_t = 10)]
    iters: usize,
}

/// One executor's side: seconds per step, and of the elementwise family per step.
#[derive(Default)]
struct Side {
    step: Vec<f64>,
    elementwise: Vec<f64>,
}

pub fn run(args: Args, report: &mut super::Report) -> super::Outcome {
    args.model.report(report);
    report.setting("iterations", args.iters);
    if args.iters == 0 || args.model.batch == 0 || args.model.size == 0 {
        report.error("--iters, --batch and --size must be at least 1");
        return super::Outcome::CannotRun;
    }
    report.header(None);
    match measure(&args, report) {
        Ok(outcome) => outcome,
        Err(e) => {
            report.error(e);
            super::Outcome::CannotRun
        }
    }
}

fn measure(args: &Args, report: &mut super::Report) -> Result<super::Outcome, String> {
    let det = args.model.detector()?;
    let hw = (args.model.size, args.model.size);
    let data = synthetic(args.model.batch, args.model.size, det.num_classes())?;
    let meta = PaddedShapes {
        img_shape: hw,
        pad_shape: hw,
        batch_shape: hw,
    };
    let targets: Vec<DenseTargets> = (data.gts.iter())
        .map(|gt| (det.target_builder()).targets(gt, &meta, &mut crate::util::rng::Rng::seed(0)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("targets: {e}"))?;
    let norms = det.loss_normalisers(&targets);
    let feeds = (det.train_feeds(data.img, &targets, hw, &norms)).map_err(|e| e.to_string())?;
    let graph = (det.build(GraphMode::Train, args.model.batch, hw, DType::F32))
        .map_err(|e| format!("model: {e}"))?
        .graph;
    let params = ParamSet::init(&graph, 0);
    let ops_alone = graph.nodes.len();
    let mut fused = Executor::new(graph.clone(), CpuBackend);
    let mut alone = Executor::unfused(graph, CpuBackend);

    let chains: Vec<usize> = (fused.plan().schedule.iter())
        .filter_map(|id| match &fused.graph().nodes[id.0].op {
            Op::Fused(f) => Some(f.steps.len()),
            _ => None,
        })
        .collect();
    let ops_fused: usize = chains.iter().sum();
    report.line(format_args!(
        "train graph: {} at batch {} × 3 × {} × {}, {} nodes; {} chains fuse {} elementwise ops \
         (runs {} nodes instead of {})",
        args.model.recipe.display(),
        args.model.batch,
        args.model.size,
        args.model.size,
        ops_alone,
        chains.len(),
        ops_fused,
        fused.plan().schedule.len(),
        alone.plan().schedule.len(),
    ));
    report.line(format_args!("fused:       {}", fused.plan().summary()));
    report.line(format_args!("one by one:  {}", alone.plan().summary()));
    report.result("chains", chains.len());
    report.result("ops_fused", ops_fused);
    report.result("peak_bytes_fused", fused.plan().peak_bytes);
    report.result("peak_bytes_one_by_one", alone.plan().peak_bytes);

    let (mut ours, mut peer) = (Side::default(), Side::default());
    let mut differ = Vec::new();
    for it in 0..=args.iters {
        let timed = it > 0;
        let mut losses = Vec::new();
        // Each goes first every other step: the second of a pair finds the caches as the
        // first left them.
        let mut pair = [(&mut fused, &mut ours), (&mut alone, &mut peer)];
        if it % 2 == 1 {
            pair.reverse();
        }
        for (ex, side) in pair {
            ex.set_profile(true);
            let t = Instant::now();
            let out = ex.run(&params, &feeds).map_err(|e| e.to_string())?;
            let s = t.elapsed().as_secs_f64();
            let elementwise: f64 = (ex.profile().iter())
                .filter(|(op, _, _)| family(op) == "elementwise")
                .map(|(_, s, _)| s)
                .sum();
            if timed {
                side.step.push(s);
                side.elementwise.push(elementwise);
            }
            let bits: Vec<(String, u64)> = (out.outputs.iter())
                .filter(|(_, t)| t.numel() == 1)
                .map(|(k, t)| (k.clone(), t.data.get_f64(0).to_bits()))
                .collect();
            losses.push(bits);
        }
        if losses[0] != losses[1] {
            differ.push(it);
        }
    }
    let ms = |v: &[f64]| median(v) * 1e3;
    report.line(format_args!(
        "step, fused:       {:.1} ms (median; {}), of which elementwise {:.2} ms",
        ms(&ours.step),
        spread(&ours.step),
        ms(&ours.elementwise)
    ));
    report.line(format_args!(
        "step, one by one:  {:.1} ms (median; {}), of which elementwise {:.2} ms",
        ms(&peer.step),
        spread(&peer.step),
        ms(&peer.elementwise)
    ));
    let step_ratio = median(&peer.step) / median(&ours.step);
    let elementwise_ratio = median(&peer.elementwise) / median(&ours.elementwise);
    report.line(format_args!(
        "ratio: {step_ratio:.3}× the step, {elementwise_ratio:.2}× the elementwise ops \
         (one by one ÷ fused)"
    ));
    report.result("fused_step_s_each", &ours.step);
    report.result("one_by_one_step_s_each", &peer.step);
    report.result("fused_elementwise_s_each", &ours.elementwise);
    report.result("one_by_one_elementwise_s_each", &peer.elementwise);
    report.ratio("step", step_ratio);
    report.ratio("elementwise", elementwise_ratio);
    if differ.is_empty() {
        report.line("losses: the same bits fused and one by one, every step");
        Ok(super::Outcome::Done)
    } else {
        report.error(format_args!(
            "losses differ between fused and one by one at steps {differ:?}"
        ));
        Ok(super::Outcome::Problems)
    }
}
