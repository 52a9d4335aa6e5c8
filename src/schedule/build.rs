//! Validation of one policy's parameters into a [`Rule`]: defaults per quantity (mmcv's
//! LR and momentum hooks differ), unit conversion, and the errors mmcv would only raise
//! mid-run (cosine-restart periods shorter than the run, one-cycle `total_steps` too short).

use super::config::{ConfigError, Quantity, RunLength};
use super::policy::{Mark, Rule, Steps};
use super::raw::{self, Count};
use crate::util::units::PeriodUnit;

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

/// mmcv divides by each one-cycle phase's length and fails on a zero-length phase (at iter
/// 0 when `pct_start * total_steps == 1`); refuse such a configuration up front.
fn one_cycle_phases_distinct(
    pct_start: f64,
    total: f64,
    three_phase: bool,
    path: &str,
) -> Result<(), ConfigError> {
    let mut ends = vec![pct_start * total - 1.0];
    if three_phase {
        ends.push(2.0 * pct_start * total - 2.0);
    }
    ends.push(total - 1.0);
    let mut start = 0.0;
    for end in ends {
        if end == start {
            return Err(ConfigError::new(
                format!("{path}.pct_start"),
                format!(
                    "a one-cycle phase has zero length (pct_start {pct_start} of {total} steps): \
                     mmcv divides by it; change pct_start or the run length"
                ),
            ));
        }
        start = end;
    }
    Ok(())
}

impl raw::Policy {
    pub(crate) fn default_by_epoch(&self) -> bool {
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

    pub(crate) fn build(
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
                        PeriodUnit::Epochs => m.count.saturating_mul(run.iters_per_epoch),
                    };
                    if marks.windows(2).any(|w| to_iters(&w[0]) >= to_iters(&w[1])) {
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
                    Some(r) => r
                        .resolve()
                        .map_err(|e| err("target_ratio", e.to_string()))?,
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
                        if max_lr.is_empty() {
                            return Err(err("max_lr", "expected at least one value".into()));
                        }
                        let total = total_steps.unwrap_or(run.max_iters) as f64;
                        one_cycle_phases_distinct(pct_start, total, three_phase, path)?;
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
                        if lo.is_empty() || hi.is_empty() {
                            return Err(ConfigError::new(
                                path,
                                "`base_momentum` and `max_momentum` need at least one value",
                            ));
                        }
                        one_cycle_phases_distinct(
                            pct_start,
                            run.max_iters as f64,
                            three_phase,
                            path,
                        )?;
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
    super::compiled::compile_expr(&e)
        .map(|c| super::policy::Evaluator::Jit(Box::new(c)))
        .map_err(|m| ConfigError::new(path, format!("could not compile the expression: {m}")))
}

#[cfg(not(feature = "jit"))]
fn compile(e: super::expr::Expr, _path: &str) -> Result<super::policy::Evaluator, ConfigError> {
    Ok(super::policy::Evaluator::Interp(e))
}
