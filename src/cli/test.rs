//! `mmrun test`: arguments and output only; the work (a checkpoint's weights evaluated on the
//! recipe's evaluation set, results written to `<work_dir>/results/`) is
//! `crate::engine::job::test_checkpoint`.

use crate::engine::checkpoint::load_checkpoint;
use crate::engine::job::{TestError, test_checkpoint};
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
    #[command(flatten)]
    pub ranks: super::ranks::RankArgs,
}

pub fn run(mut args: Args) -> u8 {
    if let Err(code) = super::exec::device_flag_ok(args.device.as_deref()) {
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
    let plan = match super::exec::load_recipe(&args.recipe, &args.set, !other_rank) {
        Ok((_, plan)) => plan,
        Err(code) => return code,
    };
    let dist = match super::ranks::join(&plan) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let main = crate::dist::is_main(dist.as_ref());
    let device = match super::exec::open_device(args.device.as_deref(), &plan) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let (mut task, params) = match super::exec::build_task(&plan, device, dist) {
        Ok(t) => t,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let work_dir = (args.work_dir).unwrap_or_else(|| plan.training.runtime.work_dir.clone());
    if main {
        crate::errln!("evaluating {}", args.checkpoint.display());
    }
    // Every rank evaluates its shard and gathers the others'; rank 0 writes the results.
    let results_dir = main.then_some(work_dir.as_path());
    let shown = |s: &crate::engine::job::TestSummary| {
        (s.results.as_ref()).map_or_else(String::new, |p| p.display().to_string())
    };
    match test_checkpoint(task.as_mut(), params, &data, args.no_ema, results_dir) {
        Ok(s) if args.format == super::Format::Json => {
            let v = serde_json::json!({
                "checkpoint": args.checkpoint.display().to_string(),
                "weights": s.which,
                "metrics": s.metrics,
                "results": shown(&s),
            });
            crate::outln!("{v}");
            super::EXIT_OK
        }
        Ok(s) => {
            for (k, v) in &s.metrics {
                crate::outln!("{k}: {v:.4}");
            }
            crate::outln!("{} evaluated; results written to {}", s.which, shown(&s));
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
