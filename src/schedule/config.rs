//! The `schedule` config section and its validation into [`Schedule`]s.
//!
//! The section maps each scheduled quantity (`lr`, `momentum`) to either one policy object
//! (`{"type": "step", "step": [8, 11], "warmup": "linear", "warmup_iters": 500}` — mmcv's
//! `lr_config` moved across) or phases (`{"warmup": {...}, "main": {...} | [{...}, ...]}` —
//! the recipe form). Policy parameters keep mmcv's names; the recipe's `at`, `duration` and
//! `ratio` are accepted beside them.

use super::policy::{Phase, Rule, Schedule, Warmup, WarmupKind};
use super::raw::{self, PolicyFields};
use crate::util::units::{Period, PeriodUnit};
use serde::Deserialize;
use serde_json::Value;

/// A problem in the config, at a dotted path (`schedule.lr.main.step`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
    /// What kind of problem, so `mmrun check` can give each its own code and label.
    pub kind: ProblemKind,
}

/// The problems `mmrun check` reports under their own codes; everything else is `Invalid`.
#[derive(Clone, Debug, PartialEq)]
pub enum ProblemKind {
    Invalid,
    /// The warmup is not shorter than the run.
    WarmupTooLong,
    /// A milestone at or past the end of the run.
    MilestoneOutside,
    /// A custom expression that does not parse: the parser's reason and byte offset.
    Expression {
        reason: String,
        offset: usize,
    },
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
            kind: ProblemKind::Invalid,
        }
    }

    /// The same problem, tagged with its kind.
    pub fn with_kind(mut self, kind: ProblemKind) -> Self {
        self.kind = kind;
        self
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
            max_iters: max_epochs.saturating_mul(iters_per_epoch),
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

/// The `schedule` section typed, before it is laid over a run: that needs the train loader's
/// iterations per epoch, known only once the data is loaded. `plan` makes it from the recipe;
/// the engine builds it with [`ScheduleSpecs::build`].
#[derive(Clone, Debug, Default)]
pub struct ScheduleSpecs {
    lr: Option<(raw::Spec, String)>,
    momentum: Option<(raw::Spec, String)>,
}

impl ScheduleSpecs {
    /// Types every schedule of the section (`path` is the section's own path, usually
    /// `"schedule"`). Returns every error found, not just the first.
    pub fn parse(section: &Value, path: &str) -> Result<ScheduleSpecs, Vec<ConfigError>> {
        if section.is_null() {
            return Ok(ScheduleSpecs::default());
        }
        let Some(map) = section.as_object() else {
            return Err(vec![ConfigError::new(
                path,
                "expected a record of schedules",
            )]);
        };
        let mut out = ScheduleSpecs::default();
        let mut errors = Vec::new();
        for (key, v) in map {
            if v.is_null() {
                continue; // an absent schedule: the value stays as configured
            }
            let sub = format!("{path}.{key}");
            let slot = match key.as_str() {
                "lr" => &mut out.lr,
                "momentum" => &mut out.momentum,
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
            match raw::split(v, &sub) {
                Ok(spec) => *slot = Some((spec, sub)),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Lays every schedule over the run.
    pub fn build(&self, run: &RunLength) -> Result<Schedules, Vec<ConfigError>> {
        let mut out = Schedules::default();
        let mut errors = Vec::new();
        let each = [
            (Quantity::Lr, &self.lr),
            (Quantity::Momentum, &self.momentum),
        ];
        for (q, spec) in each {
            let Some((spec, path)) = spec else { continue };
            match Schedule::from_spec(q, spec, run, path) {
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

impl Schedules {
    /// Types and builds every schedule of the section ([`ScheduleSpecs::parse`], then
    /// [`ScheduleSpecs::build`]).
    pub fn from_config(
        section: &Value,
        run: &RunLength,
        path: &str,
    ) -> Result<Schedules, Vec<ConfigError>> {
        ScheduleSpecs::parse(section, path)?.build(run)
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
        Self::from_spec(q, &raw::split(value, path)?, run, path)
    }

    /// Builds the schedule of one quantity from its typed phases.
    fn from_spec(
        q: Quantity,
        spec: &raw::Spec,
        run: &RunLength,
        path: &str,
    ) -> Result<Schedule, ConfigError> {
        if run.iters_per_epoch == 0 || run.max_iters == 0 {
            return Err(ConfigError::new(path, "the run has no iterations"));
        }

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
            if i + 1 == n && start < run.max_iters {
                // After its last phase a schedule would have no defined value.
                return Err(ConfigError::new(
                    format!("{ppath}.duration"),
                    format!(
                        "the phases end at iter {start} but the run has {} iters: drop the last \
                         phase's duration or add a phase",
                        run.max_iters
                    ),
                ));
            }
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
    if matches!(rule, Rule::Custom(_)) {
        custom_is_finite(&rule, by_epoch, run, path)?;
    }
    Ok((rule, by_epoch))
}

/// A custom expression that gives NaN or infinity (`base_lr / progress` at iter 0) would
/// only show up as a NaN loss; evaluate it at every epoch start and the last iteration of
/// its phase (base value 1) and refuse it with the place it fails.
fn custom_is_finite(
    rule: &Rule,
    by_epoch: bool,
    run: &RunLength,
    path: &str,
) -> Result<(), ConfigError> {
    let ipe = run.iters_per_epoch;
    let last = run.max_iters - 1;
    let epochs = (0..run.max_epochs).take(100_000).map(|e| e * ipe);
    for iter in epochs.chain([last]).filter(|&i| i <= last) {
        let epoch = iter / ipe;
        let clock = super::policy::Clock {
            epoch,
            iter,
            max_epochs: run.max_epochs,
            max_iters: run.max_iters,
        };
        let v = rule.regular(0, 1.0, by_epoch, &clock);
        if !v.is_finite() {
            return Err(ConfigError::new(
                format!("{path}.expr"),
                format!("the expression gives {v} at epoch {epoch}, iter {iter} (base value 1)"),
            ));
        }
    }
    Ok(())
}
