//! What this build honours. Settings the registry types but `exec` would refuse once the data
//! is loaded (hooks it cannot run, intervals its hooks reject, launchers it has not got) are
//! refused here, so a recipe that checks clean runs. `tests/it/recipe/check_exec.rs` holds
//! each rule against the engine's own builders.

use super::diag::{Diagnostic, Diagnostics};
use super::spans::SpanTable;
use crate::util::units::{Period, PeriodUnit};
use serde_json::Value;

/// Runs every rule on the typed config.
pub fn check(config: &Value, spans: &SpanTable, diags: &mut Diagnostics) {
    let err = |code: &'static str, path: &str, msg: String, label: &str, help: &str| {
        Diagnostic::error(code, msg)
            .with_label_opt(spans.nearest(path), label.to_string())
            .with_help(help.to_string())
    };
    let hooks = config.get("hooks").and_then(Value::as_object);
    for (name, help) in [(
        "profiler",
        "remove the hook; `mmrun bench train` times a training step by operation",
    )] {
        if hooks.is_some_and(|h| h.contains_key(name)) {
            let path = format!("hooks.{name}");
            diags.push(err(
                "E0311",
                &path,
                format!("the `{name}` hook is not supported by this build"),
                "not supported",
                help,
            ));
        }
    }
    for hook in ["checkpoint", "eval", "log"] {
        let path = format!("hooks.{hook}.every");
        let Some(every) = period_at(config, &path) else {
            continue;
        };
        if every.count == 0 {
            diags.push(err(
                "E0304",
                &path,
                format!("`{path}` = {every}: an interval must be at least 1"),
                "zero",
                "write a positive interval",
            ));
        } else if hook == "log" && every.unit != PeriodUnit::Iters {
            diags.push(err(
                "E0305",
                &path,
                format!("`{path}` counts iterations, found {every}"),
                "not in iters",
                "the log averages over iterations: write `N iters`",
            ));
        }
    }
    let keep = "hooks.checkpoint.max_keep_ckpts";
    if let Some(0) = at(config, keep).and_then(Value::as_i64) {
        diags.push(err(
            "E0304",
            keep,
            format!("`{keep}` = 0 would delete every checkpoint it writes"),
            "zero",
            "write -1 to keep all, or a positive count",
        ));
    }
    let momentum = "hooks.ema.momentum";
    if let Some(m) = at(config, momentum).and_then(Value::as_f64)
        && !(m > 0.0 && m < 1.0)
    {
        diags.push(err(
            "E0304",
            momentum,
            format!(
                "`{momentum}` = {m} is out of range: the EMA momentum lies strictly between 0 and 1"
            ),
            "out of range",
            "mmdetection's default is 0.0002",
        ));
    }
    let norm = "hooks.optimizer.grad_clip.norm_type";
    if let Some(n) = at(config, norm).and_then(Value::as_f64)
        && n != 2.0
    {
        diags.push(err(
            "E0311",
            norm,
            format!("gradient clipping by the {n}-norm is not supported by this build"),
            "not supported",
            "this build clips the 2-norm (mmcv's default): remove `norm_type` or write 2",
        ));
    }
    let clip = "hooks.optimizer.grad_clip";
    if let Some(c) = at(config, clip).filter(|c| c.is_object()) {
        let positive = |k: &str| c.get(k).and_then(Value::as_f64).map(|x| x > 0.0);
        if !matches!(
            (positive("max_norm"), positive("clip_value")),
            (Some(true), None) | (None, Some(true))
        ) {
            diags.push(err(
                "E0304",
                clip,
                "`hooks.optimizer.grad_clip` needs exactly one of `max_norm` and `clip_value`, above 0"
                    .into(),
                "here",
                "clip the norm (`max_norm = 35`, mmdetection's usual) or each value (`clip_value`)",
            ));
        }
    }
    let launcher = "runtime.launcher";
    match at(config, launcher).and_then(Value::as_str) {
        Some(l @ ("pytorch" | "slurm")) => diags.push(err(
            "E0311",
            launcher,
            format!("the `{l}` launcher's ranks talk through NCCL, which this build has not got"),
            "not supported",
            "train CPU ranks with `launcher = mpi` (under `mpirun`, `srun --mpi=pmix`, or `mmrun exec --nproc N`), or remove `runtime.launcher` to train in one process",
        )),
        Some("mpi") if !cfg!(feature = "mpi") => diags.push(err(
            "E0311",
            launcher,
            "the `mpi` launcher needs mmrun built with the `mpi` feature".into(),
            "not in this build",
            "build with `cargo build --release --features mpi` (Open MPI installed), or remove `runtime.launcher` to train in one process",
        )),
        Some("mpi") if at(config, "runtime.backend").and_then(Value::as_str) == Some("cuda") => {
            diags.push(err(
                "E0311",
                launcher,
                "MPI ranks train on the cpu backend; CUDA ranks need NCCL, which this build has not got".into(),
                "not supported",
                "use `runtime.backend = cpu` with `launcher = mpi`",
            ))
        }
        _ => {}
    }
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// A length the typed config holds as text (`"2 epochs"`).
fn period_at(v: &Value, path: &str) -> Option<Period> {
    at(v, path)?.as_str()?.parse().ok()
}
