//! Checks `mmrun check` runs on the `schedule` section before anything is built: the
//! schedule parses, step milestones lie inside the run, warmup is shorter than the run, and,
//! when the epoch length is known, that the whole schedule builds.

use super::config::{ConfigError, ProblemKind, Quantity, RunLength};
use super::policy::Schedule;
use super::raw::{self, Count, StepArg};
use crate::util::units::{Period, PeriodUnit};
use serde_json::Value;

/// Checks the `schedule` section (at config path `path`) against a run of length `total`.
/// `iters_per_epoch` is the epoch length when known (it depends on the dataset); checks that
/// need it to compare iters with epochs are skipped without it. Returns every error found.
pub fn check(
    section: &Value,
    path: &str,
    total: Period,
    iters_per_epoch: Option<u64>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let Some(map) = section.as_object() else {
        return vec![ConfigError::new(path, "expected a record of schedules")];
    };
    for (key, v) in map {
        if v.is_null() {
            continue;
        }
        let sub = format!("{path}.{key}");
        let q = match key.as_str() {
            "lr" => Quantity::Lr,
            "momentum" => Quantity::Momentum,
            other => {
                errors.push(ConfigError::new(
                    &sub,
                    format!("unknown scheduled quantity `{other}`: expected `lr` or `momentum`"),
                ));
                continue;
            }
        };
        let before = errors.len();
        check_one(v, &sub, total, iters_per_epoch, &mut errors);
        // The build repeats the structural checks; run it only when they passed, so each
        // problem is reported once.
        if let (Some(ipe), true) = (iters_per_epoch, errors.len() == before)
            && let Err(e) = Schedule::from_config(q, v, &RunLength::from_period(total, ipe), &sub)
        {
            errors.push(e);
        }
    }
    errors
}

/// Compares `p` with the run length; `None` when the units differ and the epoch length is
/// unknown.
fn at_or_past_end(p: Period, total: Period, ipe: Option<u64>) -> Option<bool> {
    if p.unit == total.unit {
        return Some(p.count >= total.count);
    }
    let ipe = ipe?;
    let to_iters = |q: Period| match q.unit {
        PeriodUnit::Iters => q.count,
        PeriodUnit::Epochs => q.count.saturating_mul(ipe),
    };
    Some(to_iters(p) >= to_iters(total))
}

fn check_one(
    v: &Value,
    path: &str,
    total: Period,
    ipe: Option<u64>,
    errors: &mut Vec<ConfigError>,
) {
    let spec = match raw::split(v, path) {
        Ok(s) => s,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    let mut warmups: Vec<(&raw::WarmupConfig, &str)> = Vec::new();
    if let Some((w, p)) = &spec.warmup {
        warmups.push((w, p));
    }
    for (f, p) in &spec.main {
        if let Some(w) = &f.inline_warmup {
            warmups.push((w, p));
        }
    }
    for (w, p) in warmups {
        let len = match (w.duration, w.warmup_iters) {
            (Some(d), _) => Some((d, format!("{p}.duration"))),
            (None, Some(n)) if w.warmup_by_epoch => {
                Some((Period::epochs(n), format!("{p}.warmup_iters")))
            }
            (None, Some(n)) => Some((Period::iters(n), format!("{p}.warmup_iters"))),
            (None, None) => None,
        };
        if let Some((d, dp)) = len
            && at_or_past_end(d, total, ipe) == Some(true)
        {
            errors.push(
                ConfigError::new(
                    dp,
                    format!("the warmup ({d}) is not shorter than the run ({total})"),
                )
                .with_kind(ProblemKind::WarmupTooLong),
            );
        }
    }
    for (f, p) in &spec.main {
        let by_epoch_default = !matches!(
            f.policy,
            raw::Policy::Cyclic { .. } | raw::Policy::OneCycle { .. } | raw::Policy::Custom { .. }
        );
        let by_epoch = f.by_epoch.unwrap_or(by_epoch_default);
        let bare = |n: u64| {
            if by_epoch {
                Period::epochs(n)
            } else {
                Period::iters(n)
            }
        };
        let marks: Vec<(Period, String)> = match &f.policy {
            raw::Policy::Step { at: Some(at), .. } => at
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let per = match *c {
                        Count::Bare(n) => bare(n),
                        Count::Period(per) => per,
                    };
                    (per, format!("{p}.at[{i}]"))
                })
                .collect(),
            raw::Policy::Step {
                step: Some(StepArg::List(v)),
                ..
            } => v
                .iter()
                .enumerate()
                .map(|(i, &n)| (bare(n), format!("{p}.step[{i}]")))
                .collect(),
            _ => Vec::new(),
        };
        // Each milestone after the one before (mmcv counts the milestones passed, so an
        // out-of-order list decays at the wrong times without a word).
        for w in marks.windows(2) {
            if at_or_past_end(w[0].0, w[1].0, ipe) == Some(true) {
                errors.push(ConfigError::new(
                    w[1].1.clone(),
                    format!(
                        "milestones must increase: {} comes after {}",
                        w[1].0, w[0].0
                    ),
                ));
            }
        }
        for (m, mp) in marks {
            if m.count == 0 {
                errors.push(ConfigError::new(
                    mp,
                    "a milestone at 0 decays from the start: drop it or lower the base value",
                ));
            } else if at_or_past_end(m, total, ipe) == Some(true) {
                errors.push(
                    ConfigError::new(
                        mp,
                        format!(
                            "the milestone {m} is not inside the run ({total}): it never takes effect"
                        ),
                    )
                    .with_kind(ProblemKind::MilestoneOutside),
                );
            }
        }
        if let raw::Policy::Custom { expr } = &f.policy
            && let Err(e) = super::expr::parse(expr)
        {
            errors.push(
                ConfigError::new(
                    format!("{p}.expr"),
                    format!("{} (at byte {} of the expression)", e.message, e.offset),
                )
                .with_kind(ProblemKind::Expression {
                    reason: e.message.clone(),
                    offset: e.offset,
                }),
            );
        }
    }
}
