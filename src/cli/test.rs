//! `mmrun test`: arguments and output only: inference over the recipe's evaluation set with
//! a checkpoint's weights, metrics printed and written to `<work_dir>/results/`.

use crate::engine::checkpoint::{load_checkpoint, load_weights_into};
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
    /// `cpu` or `cuda:N` (default: the recipe's `runtime.backend`; `cuda` is `cuda:0`).
    #[arg(long)]
    pub device: Option<String>,
    /// Use the model weights even when the checkpoint holds EMA weights.
    #[arg(long)]
    pub no_ema: bool,
}

pub fn run(args: Args) -> u8 {
    if let Err(code) = super::exec::device_flag_ok(args.device.as_deref()) {
        return code;
    }
    let data = match load_checkpoint(&args.checkpoint) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let plan = match super::exec::load_recipe(&args.recipe, &args.set) {
        Ok((_, plan)) => plan,
        Err(code) => return code,
    };
    let device = match super::exec::open_device(args.device.as_deref(), &plan) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let (mut task, mut params) = match super::exec::build_task(&plan, device) {
        Ok(t) => t,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let (weights, which) = match (&data.ema, args.no_ema) {
        (Some(e), false) => (e, "EMA weights"),
        _ => (&data.weights, "weights"),
    };
    let report = load_weights_into(&mut params, weights);
    if !report.is_exact() {
        crate::errln!("error: the checkpoint's {which} do not fit the recipe's model:\n{report}");
        return super::EXIT_PROBLEMS;
    }
    crate::errln!("evaluating {} ({which})", args.checkpoint.display());
    let metrics = match task.evaluate(&params, None) {
        Ok(m) => m,
        Err(e) => {
            crate::errln!("error: evaluation failed: {e}");
            return super::EXIT_PROBLEMS;
        }
    };
    for (k, v) in &metrics {
        crate::outln!("{k}: {v:.4}");
    }
    let work_dir = (args.work_dir).unwrap_or_else(|| plan.training.runtime.work_dir.clone());
    let results = work_dir.join("results");
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::create_dir_all(&results)
            .and_then(|_| {
                crate::util::atomic_file::write_atomic(
                    &results.join(name),
                    serde_json::to_string_pretty(v)
                        .unwrap_or_default()
                        .as_bytes(),
                )
            })
            .map_err(|e| format!("cannot write {}: {e}", results.join(name).display()))
    };
    let mut out = vec![("metrics.json", serde_json::json!(metrics))];
    if let Some(r) = task.results_json() {
        out.push(("bbox.json", r));
    }
    for (name, v) in out {
        if let Err(e) = write(name, &v) {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    }
    crate::outln!("results written to {}", results.display());
    super::EXIT_OK
}
