//! `mmrun exec`: arguments and output only; the work happens in `crate::engine::job`.

use super::setup::{build_task, device_flag_ok, ensure_shapes_data, load_recipe, open_device};
use crate::engine::job::{ExecOptions, JobError, execute, prepare};
use crate::engine::runner::RunError;
use std::path::PathBuf;

/// Exit status of a run stopped by Ctrl-C/SIGTERM (a checkpoint was written).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Arguments of `mmrun exec`.
#[derive(clap::Args)]
pub struct Args {
    /// The recipe to train.
    pub recipe: PathBuf,
    /// Override a value: `--set optimizer.lr=0.02` (recipe value syntax; unknown paths fail).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Work dir (default: the recipe's `runtime.work_dir`).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// `auto` (the latest checkpoint in the work dir) or a checkpoint folder.
    #[arg(long)]
    pub resume: Option<String>,
    /// `cpu`, `cuda:N` or `wgpu[:N|:NAME]` (default: the recipe's `runtime.backend`; `cuda` is `cuda:0`; `mmrun devices` lists them).
    #[arg(long)]
    pub device: Option<String>,
    /// Stop after this many iterations in total (the schedule still spans the whole run).
    #[arg(long)]
    pub max_iters: Option<u64>,
    /// Check, build everything and print the plan, but do not train.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub ranks: super::ranks::RankArgs,
    /// Output: log lines, or JSON lines on stdout (each log record as in `log.jsonl`, then a
    /// `"mode": "summary"` or `"mode": "error"` object; the lines for people go to stderr). A
    /// run refused before it starts (recipe, device, weights) reports on stderr only.
    #[arg(long, value_enum, default_value_t)]
    pub format: super::Format,
}

/// One JSON line on stdout: the run's end (`exec --format json`).
fn json_line(mode: &str, fields: serde_json::Value) {
    let mut v = serde_json::json!({ "mode": mode });
    if let (Some(o), serde_json::Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    crate::outln!("{v}");
}

fn exit_code(e: &JobError) -> u8 {
    match e {
        JobError::Recipe(_) => super::EXIT_PROBLEMS,
        JobError::Io(_) | JobError::WorkDir(_) | JobError::Weights(_) => super::EXIT_CANNOT_RUN,
        JobError::Run(RunError::Interrupted { .. }) => EXIT_INTERRUPTED,
        JobError::Run(RunError::Checkpoint(_) | RunError::Halted { .. }) => super::EXIT_CANNOT_RUN,
        JobError::Run(_) => super::EXIT_PROBLEMS,
    }
}

pub fn run(mut args: Args) -> u8 {
    if let Err(code) = device_flag_ok(args.device.as_deref()) {
        return code;
    }
    let other_rank = match super::ranks::start(&args.ranks, &args.recipe, &mut args.set) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (recipe, plan) = match load_recipe(&args.recipe, &args.set, !other_rank) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let dist = match super::ranks::join(&plan) {
        Ok(d) => d,
        Err(code) => return code,
    };
    // One rank writes the generated dataset; the others wait for it.
    if crate::dist::is_main(dist.as_ref()) {
        ensure_shapes_data(&plan);
    }
    if let Some(Err(e)) = dist.as_ref().map(|d| d.barrier()) {
        crate::errln!("error: {e}");
        return super::EXIT_CANNOT_RUN;
    }
    let device = match open_device(args.device.as_deref(), &plan) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let device_name = device.label();
    if let Err(e) = crate::plan::check_fits(&plan, device.name(), device.available_memory()) {
        crate::errln!("error: {e}");
        return super::EXIT_CANNOT_RUN;
    }
    // The weights files the recipe names, by their headers, before any data is loaded; the
    // same rule loads them in `prepare`.
    let refused = crate::plan::check_weights(&recipe, &plan);
    if !refused.is_empty() {
        crate::err!("{}", recipe.render(&refused));
        crate::errln!("error: the weights the recipe names do not load; nothing was run");
        return super::EXIT_CANNOT_RUN;
    }
    let (mut task, params) = match build_task(&plan, device, dist.clone()) {
        Ok(t) => t,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let opts = ExecOptions {
        work_dir: args.work_dir,
        resume: args.resume,
        stop_at_iter: args.max_iters,
        dist,
        console: match args.format {
            super::Format::Text => crate::engine::hooks::Console::Text,
            super::Format::Json => crate::engine::hooks::Console::Json,
        },
    };
    let json = args.format == super::Format::Json;
    if args.dry_run {
        return match prepare(&plan.training, &plan.config, task.as_mut(), params, &opts) {
            Ok(p) if json => {
                json_line(
                    "dry_run",
                    serde_json::json!({
                        "notes": p.notes,
                        "device": device_name,
                        "cpu_kernels": crate::backend::cpu::isa::active().name(),
                        "work_dir": p.work_dir.display().to_string(),
                        "hooks": p.runner.hook_names(),
                        "iterations": p.runner.max_iters(),
                        "done": p.runner.iters_done(),
                        "trainable_parameters": p.runner.params().trainable_numel(),
                    }),
                );
                super::EXIT_OK
            }
            Ok(p) => {
                for n in &p.notes {
                    crate::outln!("{n}");
                }
                crate::outln!("device: {device_name}");
                crate::outln!("work dir: {}", p.work_dir.display());
                crate::outln!("hooks, in order: {}", p.runner.hook_names().join(", "));
                crate::outln!(
                    "iterations: {} ({} done); trainable parameters: {}",
                    p.runner.max_iters(),
                    p.runner.iters_done(),
                    p.runner.params().trainable_numel()
                );
                crate::outln!("dry run: nothing was trained");
                super::EXIT_OK
            }
            Err(e) => {
                crate::errln!("error: {e}");
                if json {
                    json_line("error", serde_json::json!({ "error": e.to_string() }));
                }
                exit_code(&e)
            }
        };
    }
    match execute(&plan.training, &plan.config, task.as_mut(), params, &opts) {
        Ok(s) if json => {
            json_line(
                "summary",
                serde_json::json!({
                    "iters": s.iters,
                    "epochs": s.epochs,
                    "final_metrics": s.last_metrics,
                    "best": s.best.as_ref().map(|(metric, value, iter)| {
                        serde_json::json!({ "metric": metric, "value": value, "iter": iter })
                    }),
                    "stopped": s.stopped,
                    "last_checkpoint": s.last_checkpoint.as_ref().map(|c| c.display().to_string()),
                    "skipped_samples": s.skipped_samples,
                }),
            );
            super::EXIT_OK
        }
        Ok(s) => {
            if let Some(m) = &s.last_metrics {
                let line: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v:.4}")).collect();
                crate::outln!("final metrics: {}", line.join(", "));
            }
            if let Some((metric, v, it)) = &s.best {
                crate::outln!("best {metric}: {v:.4} (iteration {it})");
            }
            if let Some(c) = &s.last_checkpoint {
                crate::outln!("last checkpoint: {}", c.display());
            }
            if s.skipped_samples > 0 {
                crate::outln!(
                    "skipped samples: {} (on_bad_sample = skip; the warnings on stderr name the first ten of each epoch)",
                    s.skipped_samples
                );
            }
            super::EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            if json {
                json_line("error", serde_json::json!({ "error": e.to_string() }));
            }
            exit_code(&e)
        }
    }
}
