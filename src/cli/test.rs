//! `mmrun test`: arguments and output only; the work (a checkpoint's weights evaluated on the
//! recipe's evaluation set, results written to `<work_dir>/results/`) is
//! `crate::engine::job::test_checkpoint`; the pictures of `--show-dir` are
//! `crate::engine::job::show_results`.

use crate::engine::checkpoint::load_checkpoint;
use crate::engine::detector::pictures::SHOW_SCORE_THR;
use crate::engine::job::{TestError, show_results, test_checkpoint};
use std::path::PathBuf;

/// Arguments of `mmrun test`.
#[derive(clap::Args)]
pub struct Args {
    /// The recipe whose model and evaluation set to use.
    pub recipe: PathBuf,
    /// A checkpoint folder (verified before loading).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Override a value: `--set data.val.ann_file="..."`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Where `results/` goes (default: the recipe's `runtime.work_dir`).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// `cpu`, `cuda:N` or `wgpu[:N|:NAME]` (default: the recipe's `runtime.backend`; `cuda` is `cuda:0`; `mmrun devices` lists them).
    #[arg(long)]
    pub device: Option<String>,
    /// Use the model weights even when the checkpoint holds EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// Output format: text, or one JSON object (`metrics`, `weights`, `results`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
    /// Write a picture of each evaluated image into this folder (created if needed): its
    /// ground truth beside the predictions, as mmdetection's `test.py --show-dir`.
    #[arg(long)]
    pub show_dir: Option<PathBuf>,
    /// The score a prediction needs to be drawn in `--show-dir`'s pictures, 0 to 1
    /// [default: 0.3].
    #[arg(long, value_parser = super::score_thr, requires = "show_dir")]
    pub score_thr: Option<f64>,
    #[command(flatten)]
    pub ranks: super::ranks::RankArgs,
}

/// A score threshold: a number from 0 to 1 (clap names the option on error).
pub fn run(mut args: Args) -> u8 {
    if let Err(code) = super::setup::device_flag_ok(args.device.as_deref()) {
        return code;
    }
    let other_rank = match super::ranks::start(&args.ranks, &args.recipe, &mut args.set) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let data = match load_checkpoint(&args.checkpoint) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let plan = match super::setup::load_recipe(&args.recipe, &args.set, !other_rank) {
        Ok((_, plan)) => plan,
        Err(code) => return code,
    };
    let dist = match super::ranks::join(&plan) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let main = crate::dist::is_main(dist.as_ref());
    let device = match super::setup::open_device(args.device.as_deref(), &plan) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let (mut task, params) = match super::setup::build_task(&plan, device, dist) {
        Ok(t) => t,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let work_dir =
        (args.work_dir.clone()).unwrap_or_else(|| plan.training.runtime.work_dir.clone());
    // A folder that cannot be made is refused before the evaluation, not after it.
    if let Some(dir) = args.show_dir.as_ref().filter(|_| main)
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        crate::errln!("error: --show-dir {}: {e}", dir.display());
        return super::EXIT_CANNOT_RUN;
    }
    if main {
        crate::errln!("evaluating {}", args.checkpoint.display());
    }
    // Every rank evaluates its shard and gathers the others'; rank 0 writes the results.
    let results_dir = main.then_some(work_dir.as_path());
    let tested = test_checkpoint(task.as_mut(), params, &data, args.no_ema, results_dir);
    // The pictures come after the metrics, from the detections they were computed from; a
    // picture that cannot be drawn is reported after the metrics, which stand.
    let show_dir = args.show_dir.as_ref().filter(|_| main);
    let mut picture_error = None;
    let tested = tested.map(|s| match show_dir {
        Some(dir) => {
            let thr = args.score_thr.unwrap_or(SHOW_SCORE_THR);
            match show_results(task.as_ref(), dir, thr) {
                Ok(n) => (s, Some((n, dir))),
                Err(e) => {
                    picture_error = Some(e);
                    (s, None)
                }
            }
        }
        None => (s, None),
    });
    let code = report(&args, tested);
    match picture_error {
        Some(e) => {
            crate::errln!("error: the metrics stand, but the pictures stopped: {e}");
            code.max(super::EXIT_CANNOT_RUN)
        }
        None => code,
    }
}

type Tested<'a> = Result<
    (
        crate::engine::job::TestSummary,
        Option<(usize, &'a std::path::PathBuf)>,
    ),
    TestError,
>;

/// Prints the metrics (text or JSON) or the error; the exit status.
fn report(args: &Args, tested: Tested<'_>) -> u8 {
    let shown = |s: &crate::engine::job::TestSummary| {
        (s.results.as_ref()).map_or_else(String::new, |p| p.display().to_string())
    };
    match tested {
        Ok((s, pictures)) if args.format == super::Format::Json => {
            let mut v = serde_json::json!({
                "checkpoint": args.checkpoint.display().to_string(),
                "weights": s.which,
                "metrics": s.metrics,
                "results": shown(&s),
            });
            if let Some((n, dir)) = pictures {
                v["pictures"] = serde_json::json!({ "count": n, "dir": dir.display().to_string() });
            }
            crate::outln!("{v}");
            super::EXIT_OK
        }
        Ok((s, pictures)) => {
            for (k, v) in &s.metrics {
                crate::outln!("{k}: {v:.4}");
            }
            crate::outln!("{} evaluated; results written to {}", s.which, shown(&s));
            if let Some((n, dir)) = pictures {
                crate::outln!("{n} pictures written to {}", dir.display());
            }
            super::EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            match e {
                TestError::Io(_) => super::EXIT_CANNOT_RUN,
                TestError::Mismatch { .. } | TestError::Eval(_) => super::EXIT_PROBLEMS,
            }
        }
    }
}
