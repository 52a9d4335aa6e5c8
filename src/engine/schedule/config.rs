//! The `schedule` config section and its validation into [`Schedule`]s.
//!
//! The section maps each scheduled quantity (`lr`, `momentum`) to either one policy object
//! (`{"type": "step", "step": [8, 11], "warmup": "linear", "warmup_iters": 500}` — mmcv's
//! `lr_config` moved across) or phases (`{"warmup": {...}, "main": {...} | [{...}, ...]}` —
//! the recipe form). Policy parameters keep mmcv's names; the recipe's `at`, `duration` and
//! `ratio` are accepted beside them.

use super::policy::{Mark, Phase, Rule, Schedule, Steps, Warmup, WarmupKind};
use super::raw::{self, Count, PolicyFields};
use crate::util::units::{Period, PeriodUnit};
use serde::Deserialize;
use serde_json::Value;

/// A problem in the config, at a dotted path (`schedule.lr.main.step`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What a schedule drives. Momentum warmup divides where LR warmup multiplies (mmcv).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    Lr,
    Momentum,
}

impl Quantity {
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Lr => "lr",
            Quantity::Momentum => "momentum",
        }
    }
}

/// The run's length as the schedule needs it. For an iteration-based run, `max_epochs` is
/// `ceil(max_iters / iters_per_epoch)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLength {
    pub max_iters: u64,
    pub max_epochs: u64,
    pub iters_per_epoch: u64,
}

impl RunLength {
    /// An epoch-based run (mmcv `EpochBasedRunner`: `max_iters = max_epochs * len(loader)`).
    pub fn epochs(max_epochs: u64, iters_per_epoch: u64) -> Self {
        RunLength {
            max_iters: max_epochs * iters_per_epoch,
            max_epochs,
            iters_per_epoch,
        }
    }
    /// An iteration-based run.
    pub fn iters(max_iters: u64, iters_per_epoch: u64) -> Self {
        RunLength {
            max_iters,
            max_epochs: max_iters.div_ceil(iters_per_epoch.max(1)),
            iters_per_epoch,
        }
    }
    /// From the run's `Period` (`"12 epochs"` / `"90000 iters"`).
    pub fn from_period(total: Period, iters_per_epoch: u64) -> Self {
        match total.unit {
            PeriodUnit::Epochs => Self::epochs(total.count, iters_per_epoch),
            PeriodUnit::Iters => Self::iters(total.count, iters_per_epoch),
        }
    }
    pub(crate) fn to_iters(self, p: Period) -> u64 {
        match p.unit {
            PeriodUnit::Iters => p.count,
            PeriodUnit::Epochs => p.count.saturating_mul(self.iters_per_epoch),
        }
    }
}

/// The built `schedule` section.
#[derive(Debug, Default)]
pub struct Schedules {
    pub lr: Option<Schedule>,
    pub momentum: Option<Schedule>,
}

impl Schedules {
    /// Builds every schedule of the section (`path` is the section's own path, usually
    /// `"schedule"`). Returns every error found, not just the first.
    pub fn from_config(
        section: &Value,
        run: &RunLength,
        path: &str,
    ) -> Result<Schedules, Vec<ConfigError>> {
        let Some(map) = section.as_object() else {
            return Err(vec![ConfigError::new(
                path,
                "expected a record of schedules",
            )]);
        };
        let mut out = Schedules::default();
        let mut errors = Vec::new();
        for (key, v) in map {
            if v.is_null() {
                continue; // an absent schedule: the value stays as configured
            }
            let sub = format!("{path}.{key}");
            let q = match key.as_str() {
                "lr" => Quantity::Lr,
                "momentum" => Quantity::Momentum,
                other => {
                    errors.push(ConfigError::new(
                        &sub,
                        format!(
                            "unknown scheduled quantity `{other}`: expected `lr` or `momentum`"
                        ),
                    ));
                    continue;
                }
            };
            match Schedule::from_config(q, v, run, &sub) {
                Ok(s) if q == Quantity::Lr => out.lr = Some(s),
                Ok(s) => out.momentum = Some(s),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

impl Schedule {
    /// Builds the schedule of one quantity from its config value at `path`.
    pub fn from_config(
        q: Quantity,
        value: &Value,
        run: &RunLength,
        path: &str,
    ) -> Result<Schedule, ConfigError> {
        if run.iters_per_epoch == 0 || run.max_iters == 0 {
            return Err(ConfigError::new(path, "the run has no iterations"));
        }
        let spec = raw::split(value, path)?;
        let mut warmup = match &spec.warmup {
            Some((w, wpath)) => Some(build_warmup(q, w, run, wpath)?),
            None => None,
        };
        let mut phases = Vec::new();
        let mut group_lists = Vec::new();
        let mut start = 0u64;
        let n = spec.main.len();
        for (i, (fields, ppath)) in spec.main.iter().enumerate() {
            if let Some(w) = &fields.inline_warmup {
                if warmup.is_some() {
                    return Err(ConfigError::new(
                        ppath,
                        "warmup is given both as a phase and inline (`warmup = ...`): keep one",
                    ));
                }
                warmup = Some(build_warmup(q, w, run, ppath)?);
            }
            let len = match fields.duration {
                Some(d) => run.to_iters(d),
                None if i + 1 == n => run.max_iters.saturating_sub(start),
                None => {
                    return Err(ConfigError::new(
                        ppath,
                        "every phase but the last needs a `duration`",
                    ));
                }
            };
            if len == 0 || start >= run.max_iters {
                return Err(ConfigError::new(
                    ppath,
                    format!(
                        "this phase starts at iter {start} and lasts {len} iters: it is empty \
                         or outside the run ({} iters)",
                        run.max_iters
                    ),
                ));
            }
            let local = RunLength {
                max_iters: len,
                max_epochs: len.div_ceil(run.iters_per_epoch),
                iters_per_epoch: run.iters_per_epoch,
            };
            let (rule, by_epoch) = build_rule(q, fields, &local, ppath, &mut group_lists)?;
            phases.push(Phase {
                rule,
                by_epoch,
                start_iter: start,
                len_iters: len,
            });
            start = start.saturating_add(len);
        }
        Ok(Schedule {
            quantity: q,
            warmup,
            phases,
            iters_per_epoch: run.iters_per_epoch,
            group_lists,
        })
    }
}

fn build_warmup(
    q: Quantity,
    w: &raw::WarmupConfig,
    run: &RunLength,
    path: &str,
) -> Result<Warmup, ConfigError> {
    let iters = match (w.duration, w.warmup_iters) {
        (Some(d), None) => run.to_iters(d),
        (None, Some(n)) if w.warmup_by_epoch => n.saturating_mul(run.iters_per_epoch),
        (None, Some(n)) => n,
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                path,
                "give the warmup length once: `duration` or `warmup_iters`",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                path,
                "missing warmup length: `duration = N iters` (or mmcv's `warmup_iters`)",
            ));
        }
    };
    if iters == 0 {
        return Err(ConfigError::new(
            path,
            "the warmup must last at least 1 iter",
        ));
    }
    // mmcv's defaults: 0.1 for LR, 0.9 for momentum.
    let ratio = w.ratio.unwrap_or(match q {
        Quantity::Lr => 0.1,
        Quantity::Momentum => 0.9,
    });
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(ConfigError::new(
            format!("{path}.ratio"),
            format!("the warmup ratio must be in (0, 1], found {ratio}"),
        ));
    }
    let kind = match w.kind {
        raw::WarmupType::Constant => WarmupKind::Constant,
        raw::WarmupType::Linear => WarmupKind::Linear,
        raw::WarmupType::Exp => WarmupKind::Exp,
    };
    Ok(Warmup { kind, iters, ratio })
}

/// Converts a count to the rule's clock unit (bare numbers already count in it).
fn in_clock_units(
    c: Count,
    by_epoch: bool,
    run: &RunLength,
    path: &str,
) -> Result<u64, ConfigError> {
    match (c, by_epoch) {
        (Count::Bare(n), _) => Ok(n),
        (Count::Period(p), false) => Ok(run.to_iters(p)),
        (Count::Period(p), true) if p.unit == PeriodUnit::Epochs => Ok(p.count),
        (Count::Period(p), true) => Err(ConfigError::new(
            path,
            format!("`{p}` is in iters but this schedule steps by epoch (`by_epoch = true`)"),
        )),
    }
}

fn build_rule(
    q: Quantity,
    f: &PolicyFields,
    run: &RunLength,
    path: &str,
    group_lists: &mut Vec<(String, usize)>,
) -> Result<(Rule, bool), ConfigError> {
    let by_epoch = f.by_epoch.unwrap_or_else(|| f.policy.default_by_epoch());
    let per_iter_only = matches!(
        f.policy,
        raw::Policy::Cyclic { .. } | raw::Policy::OneCycle { .. }
    );
    if per_iter_only && by_epoch {
        return Err(ConfigError::new(
            format!("{path}.by_epoch"),
            "this policy is defined per iteration only (mmcv asserts by_epoch = false)",
        ));
    }
    let rule = f
        .policy
        .clone()
        .build(q, by_epoch, run, path, group_lists)?;
    Ok((rule, by_epoch))
}

impl raw::Policy {
    fn default_by_epoch(&self) -> bool {
        use raw::Policy as P;
        match self {
            P::Cyclic { .. } | P::OneCycle { .. } | P::Custom { .. } => false,
            // Milestones written in iters step by iter; mmcv's default otherwise.
            P::Step { at: Some(at), .. } => !at
                .iter()
                .any(|c| matches!(c, Count::Period(p) if p.unit == PeriodUnit::Iters)),
            _ => true,
        }
    }

    fn build(
        self,
        q: Quantity,
        by_epoch: bool,
        run: &RunLength,
        path: &str,
        group_lists: &mut Vec<(String, usize)>,
    ) -> Result<Rule, ConfigError> {
        use raw::Policy as P;
        let err = |key: &str, msg: String| ConfigError::new(format!("{path}.{key}"), msg);
        let clock_len = if by_epoch {
            run.max_epochs
        } else {
            run.max_iters
        };
        let target = |min: Option<f64>, ratio: Option<f64>, names: (&str, &str)| match (min, ratio)
        {
            (Some(v), None) => Ok(super::policy::Target::Abs(v)),
            (None, Some(r)) => Ok(super::policy::Target::Ratio(r)),
            _ => Err(ConfigError::new(
                path,
                format!("give exactly one of `{}` and `{}`", names.0, names.1),
            )),
        };
        let tnames = match q {
            Quantity::Lr => ("min_lr", "min_lr_ratio"),
            Quantity::Momentum => ("min_momentum", "min_momentum_ratio"),
        };
        let lr_only = |name: &str| -> Result<(), ConfigError> {
            if q == Quantity::Momentum {
                Err(ConfigError::new(
                    path,
                    format!(
                        "policy `{name}` schedules the LR only (mmcv has no momentum `{name}`)"
                    ),
                ))
            } else {
                Ok(())
            }
        };
        Ok(match self {
            P::Constant {} => Rule::Constant,
            P::Step {
                step,
                at,
                gamma,
                min_lr,
                min_momentum,
            } => {
                let steps = match (step, at) {
                    (Some(raw::StepArg::Every(n)), None) => {
                        if n == 0 {
                            return Err(err("step", "the step interval must be positive".into()));
                        }
                        Steps::Every(n)
                    }
                    (Some(raw::StepArg::List(v)), None) => {
                        let unit = if by_epoch {
                            PeriodUnit::Epochs
                        } else {
                            PeriodUnit::Iters
                        };
                        Steps::At(v.into_iter().map(|count| Mark { count, unit }).collect())
                    }
                    (None, Some(at)) => {
                        let unit = if by_epoch {
                            PeriodUnit::Epochs
                        } else {
                            PeriodUnit::Iters
                        };
                        Steps::At(
                            at.into_iter()
                                .map(|c| match c {
                                    Count::Bare(count) => Mark { count, unit },
                                    Count::Period(p) => Mark {
                                        count: p.count,
                                        unit: p.unit,
                                    },
                                })
                                .collect(),
                        )
                    }
                    _ => {
                        return Err(ConfigError::new(
                            path,
                            "give the milestones once: `at = [..]` or mmcv's `step`",
                        ));
                    }
                };
                if let Steps::At(marks) = &steps {
                    let to_iters = |m: &Mark| match m.unit {
                        PeriodUnit::Iters => m.count,
                        PeriodUnit::Epochs => m.count * run.iters_per_epoch,
                    };
                    if marks.windows(2).any(|w| to_iters(&w[0]) > to_iters(&w[1])) {
                        return Err(err("at", "milestones must be in increasing order".into()));
                    }
                }
                let (gamma, min) = match q {
                    Quantity::Lr => (gamma.unwrap_or(0.1), min_lr),
                    Quantity::Momentum => (gamma.unwrap_or(0.5), min_momentum),
                };
                Rule::Step { steps, gamma, min }
            }
            P::Exp { gamma } => {
                lr_only("exp")?;
                Rule::Exp { gamma }
            }
            P::Poly { power, min_lr } => {
                lr_only("poly")?;
                Rule::Poly { power, min: min_lr }
            }
            P::Inv { gamma, power } => {
                lr_only("inv")?;
                Rule::Inv { gamma, power }
            }
            P::Cosine(t) => Rule::Cosine {
                target: t.resolve(q, path)?,
            },
            P::LinearAnnealing(t) => Rule::Linear {
                target: t.resolve(q, path)?,
            },
            P::FlatCosine {
                start_percent,
                min_lr,
                min_lr_ratio,
            } => {
                lr_only("flat_cosine")?;
                if !(0.0..1.0).contains(&start_percent) {
                    return Err(err(
                        "start_percent",
                        format!("expected a fraction in [0, 1), found {start_percent}"),
                    ));
                }
                Rule::FlatCosine {
                    start_percent,
                    target: target(min_lr, min_lr_ratio, tnames)?,
                }
            }
            P::CosineRestart {
                periods,
                restart_weights,
                min_lr,
                min_lr_ratio,
            } => {
                lr_only("cosine_restart")?;
                let periods = periods
                    .into_iter()
                    .map(|c| in_clock_units(c, by_epoch, run, &format!("{path}.periods")))
                    .collect::<Result<Vec<_>, _>>()?;
                if periods.is_empty() || periods.contains(&0) {
                    return Err(err("periods", "expected positive periods".into()));
                }
                let weights = restart_weights.unwrap_or_else(|| vec![1.0; periods.len()]);
                if weights.len() != periods.len() {
                    return Err(err(
                        "restart_weights",
                        format!(
                            "expected {} weights (one per period), found {}",
                            periods.len(),
                            weights.len()
                        ),
                    ));
                }
                let cumulative: Vec<u64> = periods
                    .iter()
                    .scan(0u64, |s, &p| {
                        *s += p;
                        Some(*s)
                    })
                    .collect();
                if *cumulative.last().unwrap_or(&0) < clock_len {
                    return Err(err(
                        "periods",
                        format!(
                            "the periods cover {} {} but the schedule runs {clock_len}; mmcv \
                             fails when the last period ends",
                            cumulative.last().unwrap_or(&0),
                            if by_epoch { "epochs" } else { "iters" }
                        ),
                    ));
                }
                Rule::CosineRestart {
                    periods,
                    cumulative,
                    weights,
                    target: target(min_lr, min_lr_ratio, tnames)?,
                }
            }
            P::Cyclic {
                target_ratio,
                cyclic_times,
                step_ratio_up,
                anneal_strategy,
                gamma,
            } => {
                let ratios = match target_ratio {
                    None if q == Quantity::Lr => (10.0, 1e-4),
                    None => (0.85 / 0.95, 1.0),
                    Some(r) => r.resolve().map_err(|m| err("target_ratio", m))?,
                };
                if !(0.0..1.0).contains(&step_ratio_up) {
                    return Err(err(
                        "step_ratio_up",
                        format!("expected a fraction in [0, 1), found {step_ratio_up}"),
                    ));
                }
                if q == Quantity::Lr && !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(err(
                        "gamma",
                        format!("expected a value in (0, 1], found {gamma}"),
                    ));
                }
                if cyclic_times == 0 || run.max_iters / cyclic_times == 0 {
                    return Err(err(
                        "cyclic_times",
                        format!(
                            "{cyclic_times} cycles do not fit in {} iters",
                            run.max_iters
                        ),
                    ));
                }
                Rule::Cyclic {
                    ratios,
                    cyclic_times,
                    step_ratio_up,
                    anneal: anneal_strategy.into(),
                    gamma,
                }
            }
            P::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                anneal_strategy,
                div_factor,
                final_div_factor,
                three_phase,
                base_momentum,
                max_momentum,
            } => {
                if !(0.0..=1.0).contains(&pct_start) {
                    return Err(err(
                        "pct_start",
                        format!("expected a fraction in [0, 1], found {pct_start}"),
                    ));
                }
                let anneal = anneal_strategy.into();
                match q {
                    Quantity::Lr => {
                        let Some(max_lr) = max_lr else {
                            return Err(ConfigError::new(path, "one_cycle needs `max_lr`"));
                        };
                        if base_momentum.is_some() || max_momentum.is_some() {
                            return Err(ConfigError::new(
                                path,
                                "`base_momentum` / `max_momentum` belong to the momentum schedule",
                            ));
                        }
                        if let Some(t) = total_steps
                            && t < run.max_iters
                        {
                            return Err(err(
                                "total_steps",
                                format!(
                                    "must be at least the run's {} iters, found {t}",
                                    run.max_iters
                                ),
                            ));
                        }
                        let max_lr = max_lr.into_vec();
                        group_lists.push((format!("{path}.max_lr"), max_lr.len()));
                        Rule::OneCycle {
                            max_lr,
                            total_steps,
                            pct_start,
                            anneal,
                            div_factor,
                            final_div_factor,
                            three_phase,
                        }
                    }
                    Quantity::Momentum => {
                        if max_lr.is_some() || total_steps.is_some() {
                            return Err(ConfigError::new(
                                path,
                                "`max_lr` / `total_steps` belong to the lr schedule",
                            ));
                        }
                        let lo = base_momentum.unwrap_or(raw::PerGroup::One(0.85)).into_vec();
                        let hi = max_momentum.unwrap_or(raw::PerGroup::One(0.95)).into_vec();
                        group_lists.push((format!("{path}.base_momentum"), lo.len()));
                        group_lists.push((format!("{path}.max_momentum"), hi.len()));
                        Rule::OneCycleMomentum {
                            base_momentum: lo,
                            max_momentum: hi,
                            pct_start,
                            anneal,
                            three_phase,
                        }
                    }
                }
            }
            P::Custom { expr } => {
                let parsed = super::expr::parse(&expr).map_err(|e| {
                    err(
                        "expr",
                        format!("{} (at byte {} of the expression)", e.message, e.offset),
                    )
                })?;
                Rule::Custom(compile(parsed, &format!("{path}.expr"))?)
            }
        })
    }
}

#[cfg(feature = "jit")]
fn compile(e: super::expr::Expr, path: &str) -> Result<super::policy::Evaluator, ConfigError> {
    crate::jit::compile_expr(&e)
        .map(|c| super::policy::Evaluator::Jit(Box::new(c)))
        .map_err(|m| ConfigError::new(path, format!("could not compile the expression: {m}")))
}

#[cfg(not(feature = "jit"))]
fn compile(e: super::expr::Expr, _path: &str) -> Result<super::policy::Evaluator, ConfigError> {
    Ok(super::policy::Evaluator::Interp(e))
}
