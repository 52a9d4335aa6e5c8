//! The serde shapes of the `schedule` section, before validation. Policy names are
//! snake_case mmcv policy names (with mmcv's spellings as aliases); parameters keep mmcv's
//! names. Keys every policy shares (`by_epoch`, `duration`, mmcv's inline `warmup*`) are
//! taken out by hand first, because serde's `deny_unknown_fields` cannot be combined with
//! `flatten`.

use super::config::{ConfigError, Quantity};
use super::policy::{Anneal, Target};
use crate::util::units::Period;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A count in the schedule's own unit (mmcv: a bare integer) or a quantity (`"8 epochs"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Count {
    Bare(u64),
    Period(Period),
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number or a quantity such as \"8 epochs\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count::Bare(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count::Bare)
                    .map_err(|_| E::custom(format!("expected a non-negative count, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                v.parse().map(Count::Period).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// mmcv `step`: an interval or a list of milestones.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged, expecting = "a whole number or a list of whole numbers")]
pub(crate) enum StepArg {
    Every(u64),
    List(Vec<u64>),
}

/// A value per param group, or one for all.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a number or a list of numbers (one per param group)"
)]
pub(crate) enum PerGroup {
    One(f64),
    Many(Vec<f64>),
}

impl PerGroup {
    pub(crate) fn into_vec(self) -> Vec<f64> {
        match self {
            PerGroup::One(v) => vec![v],
            PerGroup::Many(v) => v,
        }
    }
}

/// mmcv cyclic `target_ratio`: a float `r` means `(r, r / 1e5)`, as does a 1-tuple.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged, expecting = "a number or a list of one or two numbers")]
pub(crate) enum RatioArg {
    One(f64),
    Many(Vec<f64>),
}

/// A `target_ratio` list of neither one nor two numbers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected one or two ratios, found {found}")]
pub(crate) struct RatioCount {
    /// How many the list has.
    pub found: usize,
}

impl RatioArg {
    pub(crate) fn resolve(self) -> Result<(f64, f64), RatioCount> {
        match self {
            RatioArg::One(r) => Ok((r, r / 1e5)),
            RatioArg::Many(v) => match v[..] {
                [r] => Ok((r, r / 1e5)),
                [a, b] => Ok((a, b)),
                _ => Err(RatioCount { found: v.len() }),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AnnealStrategy {
    #[default]
    Cos,
    Linear,
}

impl From<AnnealStrategy> for Anneal {
    fn from(a: AnnealStrategy) -> Anneal {
        match a {
            AnnealStrategy::Cos => Anneal::Cos,
            AnnealStrategy::Linear => Anneal::Linear,
        }
    }
}

/// `min_lr` / `min_lr_ratio` (LR) or `min_momentum` / `min_momentum_ratio` (momentum).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetArgs {
    min_lr: Option<f64>,
    min_lr_ratio: Option<f64>,
    min_momentum: Option<f64>,
    min_momentum_ratio: Option<f64>,
}

impl TargetArgs {
    pub(crate) fn resolve(&self, q: Quantity, path: &str) -> Result<Target, ConfigError> {
        let (min, ratio, other, names) = match q {
            Quantity::Lr => (
                self.min_lr,
                self.min_lr_ratio,
                self.min_momentum.or(self.min_momentum_ratio),
                ("min_lr", "min_lr_ratio"),
            ),
            Quantity::Momentum => (
                self.min_momentum,
                self.min_momentum_ratio,
                self.min_lr.or(self.min_lr_ratio),
                ("min_momentum", "min_momentum_ratio"),
            ),
        };
        if other.is_some() {
            return Err(ConfigError::new(
                path,
                format!(
                    "a {} schedule takes `{}` / `{}`",
                    q.name(),
                    names.0,
                    names.1
                ),
            ));
        }
        match (min, ratio) {
            (Some(v), None) => Ok(Target::Abs(v)),
            (None, Some(r)) => Ok(Target::Ratio(r)),
            _ => Err(ConfigError::new(
                path,
                format!("give exactly one of `{}` and `{}`", names.0, names.1),
            )),
        }
    }
}

/// One policy, tagged by `type`, with mmcv's parameter names and defaults. Momentum reuses
/// the LR shapes (`step`, `cosine`, `linear_annealing`, `cyclic`, `one_cycle`) with its own
/// parameter names, as mmcv's momentum hooks do.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Policy {
    #[serde(alias = "fixed")]
    Constant {},
    #[serde(alias = "multistep")]
    Step {
        step: Option<StepArg>,
        at: Option<Vec<Count>>,
        gamma: Option<f64>,
        min_lr: Option<f64>,
        min_momentum: Option<f64>,
    },
    Exp {
        gamma: f64,
    },
    Poly {
        power: f64,
        min_lr: f64,
    },
    Inv {
        gamma: f64,
        power: f64,
    },
    #[serde(alias = "cosine_annealing")]
    Cosine(TargetArgs),
    LinearAnnealing(TargetArgs),
    #[serde(alias = "flat_cosine_annealing")]
    FlatCosine {
        start_percent: f64,
        min_lr: Option<f64>,
        min_lr_ratio: Option<f64>,
    },
    CosineRestart {
        periods: Vec<Count>,
        restart_weights: Option<Vec<f64>>,
        min_lr: Option<f64>,
        min_lr_ratio: Option<f64>,
    },
    Cyclic {
        target_ratio: Option<RatioArg>,
        cyclic_times: u64,
        step_ratio_up: f64,
        anneal_strategy: AnnealStrategy,
        gamma: f64,
    },
    #[serde(alias = "onecycle")]
    OneCycle {
        max_lr: Option<PerGroup>,
        total_steps: Option<u64>,
        pct_start: f64,
        anneal_strategy: AnnealStrategy,
        div_factor: f64,
        final_div_factor: f64,
        three_phase: bool,
        base_momentum: Option<PerGroup>,
        max_momentum: Option<PerGroup>,
    },
    Custom {
        expr: String,
    },
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WarmupType {
    Constant,
    Linear,
    Exp,
}

/// A warmup phase: recipe `{type, duration, ratio}` or mmcv `warmup_iters` /
/// `warmup_ratio` / `warmup_by_epoch`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WarmupConfig {
    #[serde(rename = "type")]
    pub kind: WarmupType,
    pub duration: Option<Period>,
    #[serde(alias = "warmup_ratio")]
    pub ratio: Option<f64>,
    pub warmup_iters: Option<u64>,
    #[serde(default)]
    pub warmup_by_epoch: bool,
}

/// A policy plus the keys every policy shares.
#[derive(Clone, Debug)]
pub(crate) struct PolicyFields {
    pub policy: Policy,
    pub by_epoch: Option<bool>,
    pub duration: Option<Period>,
    pub inline_warmup: Option<WarmupConfig>,
}

/// One quantity's schedule, split into warmup and main phases, each with its config path.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub warmup: Option<(WarmupConfig, String)>,
    pub main: Vec<(PolicyFields, String)>,
}

fn de<T: for<'a> Deserialize<'a>>(v: Value, path: &str) -> Result<T, ConfigError> {
    serde_json::from_value(v).map_err(|e| ConfigError::new(path, e.to_string()))
}

fn take<T: for<'a> Deserialize<'a>>(
    m: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<T>, ConfigError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => de(v, &format!("{path}.{key}")).map(Some),
    }
}

fn policy_fields(v: &Value, path: &str) -> Result<PolicyFields, ConfigError> {
    let Some(obj) = v.as_object() else {
        return Err(ConfigError::new(
            path,
            "expected a policy record with a `type`",
        ));
    };
    let mut m = obj.clone();
    let by_epoch = take(&mut m, "by_epoch", path)?;
    let duration = take(&mut m, "duration", path)?;
    // mmcv's `lr_config` keeps warmup inline; without `warmup` its other keys are ignored,
    // as in mmcv (where they carry defaults).
    let kind: Option<WarmupType> = take(&mut m, "warmup", path)?;
    let warmup_iters = take(&mut m, "warmup_iters", path)?;
    let ratio = take(&mut m, "warmup_ratio", path)?;
    let warmup_by_epoch: Option<bool> = take(&mut m, "warmup_by_epoch", path)?;
    let inline_warmup = kind.map(|kind| WarmupConfig {
        kind,
        duration: None,
        ratio,
        warmup_iters,
        warmup_by_epoch: warmup_by_epoch.unwrap_or(false),
    });
    let policy = de(Value::Object(m), path)?;
    Ok(PolicyFields {
        policy,
        by_epoch,
        duration,
        inline_warmup,
    })
}

/// Splits one quantity's config into its phases.
pub(crate) fn split(v: &Value, path: &str) -> Result<Spec, ConfigError> {
    let Some(obj) = v.as_object() else {
        return Err(ConfigError::new(
            path,
            "expected a policy record or `{ warmup, main }` phases",
        ));
    };
    if obj.contains_key("type") {
        return Ok(Spec {
            warmup: None,
            main: vec![(policy_fields(v, path)?, path.to_string())],
        });
    }
    let mut warmup = None;
    let mut main = Vec::new();
    for (k, sub) in obj {
        let sp = format!("{path}.{k}");
        match k.as_str() {
            "warmup" if sub.is_null() => {}
            "warmup" => warmup = Some((de(sub.clone(), &sp)?, sp)),
            "main" => match sub {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{sp}[{i}]");
                        main.push((policy_fields(item, &ip)?, ip));
                    }
                }
                _ => main.push((policy_fields(sub, &sp)?, sp)),
            },
            other => {
                return Err(ConfigError::new(
                    sp,
                    format!("unknown key `{other}`: a schedule has `warmup` and `main`"),
                ));
            }
        }
    }
    if main.is_empty() {
        return Err(ConfigError::new(path, "missing `main` policy"));
    }
    Ok(Spec { warmup, main })
}
