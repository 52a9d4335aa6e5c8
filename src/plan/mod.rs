//! Checked recipe → [`Plan`]: the one typed boundary between the recipe language and what
//! runs it. A plan holds the model, data, optimizer, schedules, hooks, run and runtime as
//! typed values, built here in one place with the defaults the checker filled in from the
//! registry; `exec`, `test` and `plan` read the plan, never the config tree.
//!
//! Building the plan also builds the model and its graph at the recipe's batch shape, so a
//! recipe `check` passes builds in `exec`: what only building finds is reported as E05xx on
//! the recipe text. A file without a `model` (a base meant for import) is a partial recipe:
//! checked, not planned.

mod flops;
mod report;
mod shapes;
mod training;
mod weights;

pub use flops::mmcv_flops;
pub use report::{
    GraphReport, PlanError, PlanShape, check_fits, default_shape, param_count, report, thousands,
};
pub use training::{PathError, training_spec};
pub use weights::check_weights;

use crate::data::config::DataConfig;
use crate::engine::setup::{HookKind, TrainingSpec, build_hooks};
use crate::eval::MetricKind;
use crate::model::config::DetectorConfig;
use crate::recipe::{self, CheckOptions, CheckedRecipe, Diagnostic, Outcome};
use serde_json::Value;
use std::path::Path;

/// Everything a run is built from, typed.
#[derive(Clone, Debug)]
pub struct Plan {
    pub model: DetectorConfig,
    pub data: DataConfig,
    pub training: TrainingSpec,
    /// The evaluator of the `eval` hook (COCO bbox mAP without one).
    pub metric: MetricKind,
    /// The merged config tree: recorded in the work dir and hashed into checkpoints, read by
    /// nothing.
    pub config: Value,
}

/// What a checked recipe plans to.
pub enum Planned {
    Plan(Box<Plan>),
    /// No `model` section: a base file meant for import, checked but not planned.
    Partial,
}

/// Plans a checked recipe (one [`check`] passed: the model builds). Errors are E0503
/// diagnostics on the recipe text, for settings the engine refuses.
pub fn build(r: &CheckedRecipe) -> Result<Planned, Vec<Diagnostic>> {
    if r.is_partial() {
        return Ok(Planned::Partial);
    }
    let model = &r.config["model"];
    let at = |path: &str, code: &'static str, message: String, label: &str| {
        r.diagnostic_at(path, code, message, label)
    };
    let mut errors = Vec::new();
    let model = match DetectorConfig::from_value(model) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(at("model", "E0501", e.to_string(), "this model"));
            None
        }
    };
    let data: Option<DataConfig> = match serde_json::from_value(section(r, "data")) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(at("data", "E0503", format!("data: {e}"), "here"));
            None
        }
    };
    let samples = data.as_ref().map_or(1, |d| d.samples_per_gpu as u64);
    let init = model.as_ref().and_then(|m| {
        let crate::model::config::BackboneConfig::Resnet(bb) = m.backbone();
        bb.init_cfg.as_ref()
    });
    let training = match training_spec(&r.config, samples, init) {
        Ok(t) => Some(t),
        Err(es) => {
            for e in es {
                errors.push(at(
                    &e.path,
                    "E0503",
                    format!("{}: {}", e.path, e.message),
                    "here",
                ));
            }
            None
        }
    };
    if let Some(t) = &training
        && let Err(es) = build_hooks(&t.hooks, &t.runtime)
    {
        for e in es {
            let path = e.split(':').next().unwrap_or_default().to_string();
            errors.push(at(&path, "E0503", e, "here"));
        }
    }
    let metric = (training.as_ref())
        .zip(model.as_ref())
        .map(|(t, m)| eval_metric(t, m));
    if let Some(Err(e)) = &metric {
        errors.push(at(UnknownEvaluator::PATH, "E0503", e.to_string(), "here"));
    }
    match (model, data, training, metric) {
        (Some(model), Some(data), Some(training), Some(Ok(metric))) if errors.is_empty() => {
            Ok(Planned::Plan(Box::new(Plan {
                model,
                data,
                training,
                metric,
                config: r.config.clone(),
            })))
        }
        _ => Err(errors),
    }
}

fn section(r: &CheckedRecipe, key: &str) -> Value {
    r.config.get(key).cloned().unwrap_or(Value::Null)
}

/// The evaluator a recipe names in its `eval` hook (or its detector type's default) that this
/// build does not have. The message starts with the config path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: unknown evaluator `{name}`", UnknownEvaluator::PATH)]
struct UnknownEvaluator {
    /// The evaluator's name as the recipe gives it.
    name: String,
}

impl UnknownEvaluator {
    /// The config path of the setting.
    const PATH: &str = "hooks.eval.metric";
}

/// The evaluator the recipe's `eval` hook names; without one, the detector type's default
/// (`registry::metrics::default_evaluator`).
fn eval_metric(t: &TrainingSpec, model: &DetectorConfig) -> Result<MetricKind, UnknownEvaluator> {
    let named = (t.hooks.iter()).find_map(|h| match &h.kind {
        HookKind::Eval(c) => c.metric.clone(),
        _ => None,
    });
    let name = named
        .unwrap_or_else(|| crate::registry::metrics::default_evaluator(model.type_name()).into());
    MetricKind::from_name(&name).ok_or(UnknownEvaluator { name })
}

/// `mmrun check` on one file: the recipe checks with the model's own (its parts built and
/// compared, then the whole train graph: E0407–E0409, E0501, E0502), then the plan (E0503),
/// then the weights the recipe names against the planned model (E0417, unless `no_fs`). A
/// recipe with errors is not returned as checked.
pub fn check(path: &Path, overrides: &[String], opts: &CheckOptions) -> Outcome {
    check_and_plan(path, overrides, opts, !opts.no_fs).0
}

/// [`check`] (the weights files only with `weights`), and the plan when the recipe passed and
/// has a model.
fn check_and_plan(
    path: &Path,
    overrides: &[String],
    opts: &CheckOptions,
    weights: bool,
) -> (Outcome, Option<Plan>) {
    let mut out = recipe::check_with(path, overrides, opts, &shapes::check);
    let Some(r) = &out.recipe else {
        return (out, None);
    };
    let (plan, found) = match build(r) {
        Ok(Planned::Plan(p)) if !weights => (Some(*p), Vec::new()),
        Ok(Planned::Plan(p)) => {
            let refused = check_weights(r, &p);
            (Some(*p), refused)
        }
        Ok(Planned::Partial) => (None, Vec::new()),
        Err(d) => (None, d),
    };
    if found.is_empty() {
        return (out, plan);
    }
    let failed = found.iter().any(Diagnostic::is_error);
    out.diagnostics.0.extend(found);
    out.diagnostics.sort();
    if failed {
        out.recipe = None;
        return (out, None);
    }
    if let Some(r) = &mut out.recipe {
        r.warnings = out.diagnostics.clone();
    }
    (out, plan)
}

/// Why a recipe was not planned for running.
#[derive(Debug, thiserror::Error)]
pub enum NotPlanned {
    /// The recipe has errors (every diagnostic, as `check` reports them).
    #[error("{}", .0.render())]
    Errors(recipe::Failed),
    /// No `model` section: a base file meant for import, checked but not planned.
    #[error(
        "the recipe has no `model` section: it is a partial recipe (a base file meant for \
         import), checked but not planned, so there is nothing to run"
    )]
    Partial,
}

/// Loads a recipe for running it: checked as [`check`] does (every error reported with the
/// others) and planned. The weights files are left to the caller ([`check_weights`]): a file
/// that does not load is a reason the run cannot start rather than a mistake in the recipe
/// text.
pub fn load(
    path: &Path,
    overrides: &[String],
    opts: &CheckOptions,
) -> Result<(CheckedRecipe, Plan), NotPlanned> {
    let (out, plan) = check_and_plan(path, overrides, opts, false);
    let r = out.into_result().map_err(NotPlanned::Errors)?;
    match plan {
        Some(p) => Ok((r, p)),
        None => Err(NotPlanned::Partial),
    }
}
