//! From a checked recipe's config tree (`optimizer`, `schedule`, `hooks`, `run`, `runtime`
//! sections, see `docs/ARCHITECTURE.md`) to the optimizer settings, the ordered hooks and
//! the run config. Every problem is collected with its config path.

use crate::engine::checkpoint::KeepPolicy;
use crate::engine::hooks::{
    self, CheckpointConfig, CheckpointHook, Ctx, EarlyStopConfig, EarlyStopHook, EmaConfig,
    EmaHook, EvalConfig, EvalHook, Hook, HookError, HookPoint, LogConfig, LogHook, LrHook, Mode,
    NanGuardHook, OptimizerHook, OptimizerHookConfig, Progress, SamplerSeedHook,
};
use crate::engine::optim::OptimizerConfig;
use crate::engine::runner::{CheckpointSettings, RunConfig};
use crate::engine::schedule::{RunLength, Schedules};
use crate::util::units::{Period, PeriodUnit};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The `runtime` section.
#[derive(Clone, Debug, PartialEq)]
pub struct Runtime {
    pub seed: u64,
    pub deterministic: bool,
    pub work_dir: PathBuf,
    pub devices: u64,
    pub backend: String,
    pub resume: Option<String>,
}

/// Everything the runner needs besides the model and data.
pub struct Training {
    pub optimizer: OptimizerConfig,
    pub hooks: Vec<Box<dyn Hook>>,
    pub run: RunConfig,
    pub runtime: Runtime,
    /// The evaluator the `eval` hook names (`coco_bbox`), when there is one.
    pub eval_metric: Option<String>,
    /// Iterations whose gradients add up before a step (for auto LR scaling).
    pub accumulation: u64,
}

/// mmdetection's `auto_scale_lr`: scale the base LR linearly by the total batch per
/// optimizer step (per-device batch × devices × accumulation) over the batch the LR was
/// tuned for.
pub fn auto_scale_lr(
    lr: f64,
    samples_per_device: u64,
    devices: u64,
    accumulation: u64,
    base_batch_size: u64,
) -> f64 {
    lr * (samples_per_device * devices * accumulation) as f64 / base_batch_size as f64
}

impl crate::engine::hooks::Schedule for crate::engine::schedule::Schedule {
    fn value(&self, p: &Progress, base: f64) -> f64 {
        // One param group: paramwise multipliers scale the scheduled base value.
        crate::engine::schedule::Schedule::value(self, 0, base, p.epoch, p.iter)
    }
}

/// A hook with extra ordering constraints from the recipe (`before`/`after`).
struct Ordered {
    inner: Box<dyn Hook>,
    before: Vec<String>,
    after: Vec<String>,
}

impl Hook for Ordered {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn before(&self) -> Vec<String> {
        let mut v = self.inner.before();
        v.extend(self.before.iter().cloned());
        v
    }
    fn after(&self) -> Vec<String> {
        let mut v = self.inner.after();
        v.extend(self.after.iter().cloned());
        v
    }
    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        self.inner.on(point, cx)
    }
    fn state(&self) -> Value {
        self.inner.state()
    }
    fn state_tensors(&self) -> crate::engine::checkpoint::Tensors {
        self.inner.state_tensors()
    }
    fn load_state(
        &mut self,
        s: &Value,
        t: &crate::engine::checkpoint::Tensors,
    ) -> Result<(), String> {
        self.inner.load_state(s, t)
    }
}

fn period(v: &Value, default_unit: PeriodUnit, path: &str) -> Result<Period, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|count| Period {
                count,
                unit: default_unit,
            })
            .ok_or_else(|| format!("{path}: expected a whole number, found {n}")),
        Value::String(s) => s.parse().map_err(|e| format!("{path}: {e}")),
        other => Err(format!(
            "{path}: expected a length like `1 epoch`, found {other}"
        )),
    }
}

/// Lengths may be written as bare numbers (mmcv's `interval`); make them canonical strings.
fn canonical_lengths(
    obj: &mut Map<String, Value>,
    keys: &[&str],
    unit: PeriodUnit,
    path: &str,
) -> Result<(), String> {
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

fn parse<T: DeserializeOwned>(v: Value, path: &str) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("{path}: {e}"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Build the training setup from the config tree. `iters_per_epoch` comes from the train
/// loader (schedules and epoch-based lengths need it).
pub fn build_training(config: &Value, iters_per_epoch: u64) -> Result<Training, Vec<String>> {
    let mut errors = Vec::new();
    let section = |k: &str| config.get(k).cloned().unwrap_or(Value::Null);

    // runtime
    let rt = section("runtime");
    let runtime = Runtime {
        seed: rt.get("seed").and_then(|v| v.as_u64()).unwrap_or(0),
        deterministic: rt
            .get("deterministic")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        work_dir: rt
            .get("work_dir")
            .and_then(|v| v.as_str())
            .map_or_else(|| PathBuf::from("work_dirs"), PathBuf::from),
        devices: rt.get("devices").and_then(|v| v.as_u64()).unwrap_or(1),
        backend: rt
            .get("backend")
            .and_then(|v| v.as_str())
            .unwrap_or("cpu")
            .to_string(),
        resume: rt.get("resume").and_then(|v| v.as_str()).map(String::from),
    };

    // run
    let run = section("run");
    let length = match (
        run.get("epochs").and_then(|v| v.as_u64()),
        run.get("iters").and_then(|v| v.as_u64()),
    ) {
        (Some(e), None) => Some(Period::epochs(e)),
        (None, Some(i)) => Some(Period::iters(i)),
        (Some(_), Some(_)) => {
            errors.push("run: give `epochs` or `iters`, not both".into());
            None
        }
        (None, None) => {
            errors.push("run: the run needs a length (`epochs` or `iters`)".into());
            None
        }
    };
    let default_unit = length.map_or(PeriodUnit::Epochs, |l| l.unit);
    let mut workflow = Vec::new();
    for (i, ph) in run
        .get("workflow")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("run.workflow.{i}");
        let mode = match ph.get("mode").and_then(|v| v.as_str()) {
            Some("train") => Mode::Train,
            Some("val") => Mode::Val,
            other => {
                errors.push(format!(
                    "{path}.mode: expected train or val, found {other:?}"
                ));
                continue;
            }
        };
        match ph
            .get("length")
            .map(|l| period(l, default_unit, &format!("{path}.length")))
        {
            Some(Ok(p)) => workflow.push((mode, p)),
            Some(Err(e)) => errors.push(e),
            None => errors.push(format!("{path}: missing length")),
        }
    }

    // optimizer
    let optimizer: Option<OptimizerConfig> = match parse(section("optimizer"), "optimizer") {
        Ok(o) => Some(o),
        Err(e) => {
            errors.push(e);
            None
        }
    };

    // schedules
    let schedules = match (length, config.get("schedule")) {
        (Some(l), Some(s)) if !s.is_null() => {
            match Schedules::from_config(s, &RunLength::from_period(l, iters_per_epoch), "schedule")
            {
                Ok(s) => s,
                Err(es) => {
                    errors.extend(es.into_iter().map(|e| format!("{}: {}", e.path, e.message)));
                    Schedules::default()
                }
            }
        }
        _ => Schedules::default(),
    };

    // hooks
    let mut hooks: Vec<Box<dyn Hook>> = vec![Box::new(NanGuardHook), Box::new(SamplerSeedHook)];
    let lr = schedules
        .lr
        .map(|s| Box::new(s) as Box<dyn hooks::Schedule>);
    let mom = schedules
        .momentum
        .map(|s| Box::new(s) as Box<dyn hooks::Schedule>);
    hooks.push(Box::new(LrHook::new(lr, mom)));
    let mut ckpt_settings = None;
    let mut eval_metric = None;
    let mut accumulation = 1;
    let mut have_optimizer_hook = false;
    let hook_section = section("hooks");
    let empty = Map::new();
    let hook_map = hook_section.as_object().unwrap_or(&empty);
    for (name, v) in hook_map {
        let path = format!("hooks.{name}");
        let Some(obj) = v.as_object() else {
            errors.push(format!("{path}: expected a hook"));
            continue;
        };
        let mut params = obj.clone();
        let ty = params
            .remove("type")
            .and_then(|t| t.as_str().map(String::from))
            .unwrap_or_else(|| name.clone());
        let before = strings(params.remove("before").as_ref());
        let after = strings(params.remove("after").as_ref());
        let built = (|| -> Result<Option<Box<dyn Hook>>, String> {
            let h: Option<Box<dyn Hook>> = match ty.as_str() {
                "checkpoint" => {
                    canonical_lengths(&mut params, &["every"], PeriodUnit::Epochs, &path)?;
                    let c: CheckpointConfig = parse(Value::Object(params), &path)?;
                    let dir = c
                        .out_dir
                        .clone()
                        .unwrap_or_else(|| runtime.work_dir.join("checkpoints"));
                    ckpt_settings = Some(CheckpointSettings {
                        dir,
                        keep: if c.max_keep_ckpts < 0 {
                            KeepPolicy::All
                        } else {
                            KeepPolicy::Last(c.max_keep_ckpts as usize)
                        },
                        save_optimizer: c.save_optimizer,
                    });
                    Some(Box::new(CheckpointHook::new(c)?) as Box<dyn Hook>)
                }
                "log" => {
                    canonical_lengths(&mut params, &["every"], PeriodUnit::Iters, &path)?;
                    Some(Box::new(LogHook::new(parse::<LogConfig>(
                        Value::Object(params),
                        &path,
                    )?)?))
                }
                "eval" => {
                    canonical_lengths(
                        &mut params,
                        &["every", "start", "at"],
                        PeriodUnit::Epochs,
                        &path,
                    )?;
                    let c: EvalConfig = parse(Value::Object(params), &path)?;
                    eval_metric = c.metric.clone().or(Some("coco_bbox".into()));
                    Some(Box::new(EvalHook::new(c)?))
                }
                "ema" => Some(Box::new(EmaHook::new(parse::<EmaConfig>(
                    Value::Object(params),
                    &path,
                )?)?)),
                "early_stopping" => Some(Box::new(EarlyStopHook::new(parse::<EarlyStopConfig>(
                    Value::Object(params),
                    &path,
                )?)?)),
                "optimizer" => {
                    let c: OptimizerHookConfig = parse(Value::Object(params), &path)?;
                    accumulation = c.cumulative_iters;
                    have_optimizer_hook = true;
                    Some(Box::new(OptimizerHook::new(c)?))
                }
                // Registered by default; a recipe entry only adds ordering.
                "sampler_seed" => {
                    if !before.is_empty() || !after.is_empty() {
                        return Err(format!("{path}: sampler_seed cannot be reordered"));
                    }
                    None
                }
                // One device: there is nothing to synchronise.
                "sync_buffers" => None,
                "fp16" => {
                    return Err(format!(
                        "{path}: mixed precision is not supported yet: the cpu and cuda backends train in f32"
                    ));
                }
                other => {
                    return Err(format!(
                        "{path}: the `{other}` hook is not supported by this build"
                    ));
                }
            };
            Ok(h)
        })();
        match built {
            Ok(Some(h)) => hooks.push(if before.is_empty() && after.is_empty() {
                h
            } else {
                Box::new(Ordered {
                    inner: h,
                    before,
                    after,
                })
            }),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if !have_optimizer_hook {
        hooks.push(Box::new(
            OptimizerHook::new(OptimizerHookConfig::default()).expect("defaults are valid"),
        ));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let length = length.expect("checked above");
    let mut run = RunConfig::new(length, &runtime.work_dir);
    if !workflow.is_empty() {
        run.workflow = workflow;
    }
    run.seed = runtime.seed;
    if let Some(c) = ckpt_settings {
        run.checkpoint = c;
    }
    Ok(Training {
        optimizer: optimizer.expect("checked above"),
        hooks,
        run,
        runtime,
        eval_metric,
        accumulation,
    })
}
