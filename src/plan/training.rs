//! The recipe's training sections (`optimizer`, `schedule`, `hooks`, `run`, `runtime`) →
//! the engine's [`TrainingSpec`]. The one place they are read from the config tree; every
//! problem is collected with its config path.

use crate::engine::hooks::{
    CheckpointConfig, EarlyStopConfig, EmaConfig, EvalConfig, LogConfig, Mode, OptimizerHookConfig,
};
use crate::engine::optim::{DynamicName, LossScaleConfig};
use crate::engine::setup::{HookKind, HookSpec, RunSpec, Runtime, TrainingSpec};
use crate::ir::Precision;
use crate::model::config::InitConfig;
use crate::model::weights::{LoadFrom, sources};
use crate::registry::{self, Category};
use crate::schedule::ScheduleSpecs;
use crate::util::units::{Period, PeriodUnit};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A problem at a config path (`hooks.log.every`).
#[derive(Clone, Debug, PartialEq)]
pub struct PathError {
    pub path: String,
    pub message: String,
}

impl PathError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PathError {
            path: path.into(),
            message: message.into(),
        }
    }
}

fn section<'a>(config: &'a Value, key: &str) -> &'a Value {
    config.get(key).unwrap_or(&Value::Null)
}

fn parse<T: DeserializeOwned>(v: &Value, path: &str) -> Result<T, PathError> {
    serde_json::from_value(v.clone()).map_err(|e| PathError::new(path, e.to_string()))
}

fn period(v: &Value, default_unit: PeriodUnit, path: &str) -> Result<Period, PathError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|count| Period {
                count,
                unit: default_unit,
            })
            .ok_or_else(|| PathError::new(path, format!("expected a whole number, found {n}"))),
        Value::String(s) => (s.parse::<Period>()).map_err(|e| PathError::new(path, e.to_string())),
        other => Err(PathError::new(
            path,
            format!("expected a length like `1 epoch`, found {other}"),
        )),
    }
}

/// Lengths may be written as bare numbers (mmcv's `interval`); make them canonical strings.
fn canonical_lengths(
    obj: &mut Map<String, Value>,
    keys: &[&str],
    unit: PeriodUnit,
    path: &str,
) -> Result<(), PathError> {
    for k in keys {
        match obj.get(*k).cloned() {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    out.push(Value::String(
                        period(it, unit, &format!("{path}.{k}.{i}"))?.to_string(),
                    ));
                }
                obj.insert(k.to_string(), Value::Array(out));
            }
            Some(v) => {
                let p = period(&v, unit, &format!("{path}.{k}"))?;
                obj.insert(k.to_string(), Value::String(p.to_string()));
            }
        }
    }
    Ok(())
}

fn strings(v: Option<Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// `runtime.auto_scale_lr`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoScaleLr {
    enable: bool,
    base_batch_size: u64,
}

/// The `runtime` section as the checker leaves it: every key present, defaults filled in
/// from the registry.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeSection {
    seed: u64,
    deterministic: bool,
    tf32: bool,
    work_dir: PathBuf,
    devices: u64,
    backend: String,
    precision: Precision,
    auto_scale_lr: Option<AutoScaleLr>,
    launcher: crate::dist::launch::Launcher,
    /// Read through [`sources`] with the other weights a recipe names.
    load_from: Option<LoadFrom>,
    resume: Option<String>,
}

/// The `runtime` section, and the weights file it names (`load_from`).
fn runtime(rt: &Value) -> Result<(Runtime, Option<LoadFrom>), PathError> {
    let r: RuntimeSection = parse(rt, "runtime")?;
    let runtime = Runtime {
        seed: r.seed,
        deterministic: r.deterministic,
        tf32: r.tf32,
        work_dir: r.work_dir,
        devices: r.devices,
        // `cuda` is the first GPU.
        device: match r.backend.as_str() {
            "cuda" => "cuda:0".to_string(),
            _ => r.backend,
        },
        resume: r.resume,
        precision: r.precision,
        loss_scale: None,
        auto_scale_lr: (r.auto_scale_lr)
            .filter(|a| a.enable)
            .map(|a| a.base_batch_size),
        launcher: r.launcher,
    };
    Ok((runtime, r.load_from))
}

/// The `run` section: its length and workflow.
fn run(run: &Value, errors: &mut Vec<PathError>) -> Option<RunSpec> {
    let length = match (
        run.get("epochs").and_then(Value::as_u64),
        run.get("iters").and_then(Value::as_u64),
    ) {
        (Some(e), None) => Some(Period::epochs(e)),
        (None, Some(i)) => Some(Period::iters(i)),
        (Some(_), Some(_)) => {
            errors.push(PathError::new("run", "give `epochs` or `iters`, not both"));
            None
        }
        (None, None) => {
            errors.push(PathError::new(
                "run",
                "the run needs a length (`epochs` or `iters`)",
            ));
            None
        }
    };
    let default_unit = length.map_or(PeriodUnit::Epochs, |l| l.unit);
    let mut workflow = Vec::new();
    let phases = run.get("workflow").and_then(Value::as_array);
    for (i, ph) in phases.into_iter().flatten().enumerate() {
        let path = format!("run.workflow.{i}");
        let mode = match ph.get("mode").and_then(Value::as_str) {
            Some("train") => Mode::Train,
            Some("val") => Mode::Val,
            other => {
                errors.push(PathError::new(
                    format!("{path}.mode"),
                    format!("expected train or val, found {other:?}"),
                ));
                continue;
            }
        };
        match ph.get("length") {
            Some(l) => match period(l, default_unit, &format!("{path}.length")) {
                Ok(p) => workflow.push((mode, p)),
                Err(e) => errors.push(e),
            },
            None => errors.push(PathError::new(path, "missing length")),
        }
    }
    Some(RunSpec {
        length: length?,
        workflow,
    })
}

/// One hook record → its spec; `Ok(None)` for hooks the runner always has or that have
/// nothing to do on one device.
fn hook(name: &str, v: &Value) -> Result<Option<HookSpec>, PathError> {
    let path = format!("hooks.{name}");
    let Some(obj) = v.as_object() else {
        return Err(PathError::new(path, "expected a hook"));
    };
    let mut params = obj.clone();
    let ty = (params.remove("type"))
        .and_then(|t| t.as_str().map(String::from))
        .unwrap_or_else(|| name.to_string());
    let before = strings(params.remove("before"));
    let after = strings(params.remove("after"));
    let lengths = |p: &mut Map<String, Value>, keys: &[&str], unit| {
        canonical_lengths(p, keys, unit, &path).map(|()| Value::Object(p.clone()))
    };
    let kind = match ty.as_str() {
        "checkpoint" => HookKind::Checkpoint(parse::<CheckpointConfig>(
            &lengths(&mut params, &["every"], PeriodUnit::Epochs)?,
            &path,
        )?),
        "log" => HookKind::Log(parse::<LogConfig>(
            &lengths(&mut params, &["every"], PeriodUnit::Iters)?,
            &path,
        )?),
        "eval" => HookKind::Eval(parse::<EvalConfig>(
            &lengths(&mut params, &["every", "start", "at"], PeriodUnit::Epochs)?,
            &path,
        )?),
        "ema" => HookKind::Ema(parse::<EmaConfig>(&Value::Object(params), &path)?),
        "early_stopping" => {
            HookKind::EarlyStopping(parse::<EarlyStopConfig>(&Value::Object(params), &path)?)
        }
        "optimizer" => {
            HookKind::Optimizer(parse::<OptimizerHookConfig>(&Value::Object(params), &path)?)
        }
        // Registered by default; a recipe entry only adds ordering.
        "sampler_seed" if before.is_empty() && after.is_empty() => return Ok(None),
        "sampler_seed" => return Err(PathError::new(path, "sampler_seed cannot be reordered")),
        // One device: there is nothing to synchronise.
        "sync_buffers" => return Ok(None),
        // Not a hook of its own: `mixed_precision` folds it into the runtime and the
        // optimizer hook, as mmcv's Fp16OptimizerHook replaces the OptimizerHook.
        "fp16" if before.is_empty() && after.is_empty() => return Ok(None),
        "fp16" => {
            return Err(PathError::new(
                path,
                "the fp16 hook is part of the optimizer step and cannot be reordered",
            ));
        }
        other => {
            return Err(PathError::new(
                path,
                format!("the `{other}` hook is not supported by this build"),
            ));
        }
    };
    Ok(Some(HookSpec {
        name: name.to_string(),
        kind,
        before,
        after,
    }))
}

/// `runtime.precision` with the `fp16` hook (mmdetection's spelling of f16 training): the
/// precision the run trains in and, for f16, its loss scaling. The hook alone means f16 with
/// its `loss_scale`; `precision = fp16` alone means a dynamic scale (torch's defaults).
fn mixed_precision(config: &Value, runtime: &mut Runtime) -> Result<(), PathError> {
    let hook = section(config, "hooks").get("fp16");
    if let Some(h) = hook {
        if runtime.precision == Precision::Bf16 {
            return Err(PathError::new(
                "hooks.fp16",
                "the fp16 hook trains in f16, but `runtime.precision` is bf16: keep one of them",
            ));
        }
        runtime.precision = Precision::Fp16;
        let scale = h.get("loss_scale").cloned().unwrap_or(Value::Null);
        let cfg: LossScaleConfig = parse(&scale, "hooks.fp16.loss_scale")?;
        cfg.validate()
            .map_err(|e| PathError::new("hooks.fp16.loss_scale", e.to_string()))?;
        runtime.loss_scale = Some(cfg);
    } else if runtime.precision == Precision::Fp16 {
        runtime.loss_scale = Some(LossScaleConfig::Named(DynamicName::Dynamic));
    }
    Ok(())
}

/// The training sections of a checked config tree, typed; `backbone_init` is the model's
/// `init_cfg` (the first weights a run starts from).
pub fn training_spec(
    config: &Value,
    samples_per_device: u64,
    backbone_init: Option<&InitConfig>,
) -> Result<TrainingSpec, Vec<PathError>> {
    let mut errors = Vec::new();
    let runtime = match runtime(section(config, "runtime")) {
        Ok(mut r) => match mixed_precision(config, &mut r.0) {
            Ok(()) => Some(r),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let run = run(section(config, "run"), &mut errors);
    let optimizer = match parse(section(config, "optimizer"), "optimizer") {
        Ok(o) => Some(o),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let schedules = match ScheduleSpecs::parse(section(config, "schedule"), "schedule") {
        Ok(s) => s,
        Err(es) => {
            errors.extend(es.into_iter().map(|e| PathError::new(e.path, e.message)));
            ScheduleSpecs::default()
        }
    };
    let mut hooks = Vec::new();
    if let Some(map) = section(config, "hooks").as_object() {
        for (name, v) in map {
            match hook(name, v) {
                Ok(Some(h)) => hooks.push(h),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    // The runner always steps the optimizer: a recipe without the hook gets its defaults.
    if !hooks
        .iter()
        .any(|h| matches!(h.kind, HookKind::Optimizer(_)))
    {
        match registry::defaults::<OptimizerHookConfig>(Category::Hook, "optimizer") {
            Ok(c) => hooks.push(HookSpec {
                name: "optimizer".into(),
                kind: HookKind::Optimizer(c),
                before: Vec::new(),
                after: Vec::new(),
            }),
            Err(e) => errors.push(PathError::new("hooks.optimizer", e)),
        }
    }
    let weights = sources(backbone_init, runtime.as_ref().and_then(|r| r.1.as_ref()));
    match (runtime, run, optimizer) {
        (Some((runtime, _)), Some(run), Some(optimizer)) if errors.is_empty() => Ok(TrainingSpec {
            optimizer,
            schedules,
            hooks,
            run,
            runtime,
            weights,
            samples_per_device,
        }),
        _ => Err(errors),
    }
}
