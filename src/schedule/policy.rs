//! The formulas. Each rule mirrors one hook class of mmcv 1.7
//! (`mmcv/runner/hooks/lr_updater.py`, `momentum_updater.py`), including its operation order,
//! so that values agree with mmcv to the last bit where the arithmetic is the same.
//!
//! Time follows mmcv's runner: `epoch` is 0-based and constant during an epoch, `iter` is the
//! global 0-based iteration about to run. A by-epoch rule reads `epoch` / `max_epochs`, a
//! by-iter rule `iter` / `max_iters`.

use super::config::Quantity;
use super::expr::{Expr, Vars};
use crate::util::units::PeriodUnit;
use std::f64::consts::PI;

/// The value a rule anneals to: `min_lr` (absolute) or `min_lr_ratio` (times the base).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    Abs(f64),
    Ratio(f64),
}

impl Target {
    fn of(self, base: f64) -> f64 {
        match self {
            Target::Abs(v) => v,
            Target::Ratio(r) => base * r,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Anneal {
    Cos,
    Linear,
}

impl Anneal {
    fn apply(self, start: f64, end: f64, factor: f64) -> f64 {
        match self {
            Anneal::Cos => annealing_cos(start, end, factor, 1.0),
            Anneal::Linear => annealing_linear(start, end, factor),
        }
    }
}

/// mmcv `annealing_cos`: `end + 0.5 * weight * (start - end) * (cos(pi * factor) + 1)`.
pub(crate) fn annealing_cos(start: f64, end: f64, factor: f64, weight: f64) -> f64 {
    let cos_out = (PI * factor).cos() + 1.0;
    end + 0.5 * weight * (start - end) * cos_out
}

/// mmcv `annealing_linear`.
pub(crate) fn annealing_linear(start: f64, end: f64, factor: f64) -> f64 {
    start + (end - start) * factor
}

/// A step milestone or interval with the unit it counts in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    pub count: u64,
    pub unit: PeriodUnit,
}

#[derive(Clone, Debug)]
pub(crate) enum Steps {
    /// mmcv `step=int`: decay every `n` units of the rule's clock.
    Every(u64),
    /// mmcv `step=[..]` / recipe `at = [..]`: decay at each milestone.
    At(Vec<Mark>),
}

/// How a custom expression is evaluated.
pub(crate) enum Evaluator {
    // Built only without feature `jit`.
    #[cfg_attr(feature = "jit", allow(dead_code))]
    Interp(Expr),
    #[cfg(feature = "jit")]
    Jit(Box<super::compiled::CompiledExpr>),
}

impl Evaluator {
    fn eval(&self, v: &Vars) -> f64 {
        match self {
            Evaluator::Interp(e) => e.eval(v),
            #[cfg(feature = "jit")]
            Evaluator::Jit(c) => c.call(v),
        }
    }
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evaluator::Interp(_) => f.write_str("Interp"),
            #[cfg(feature = "jit")]
            Evaluator::Jit(_) => f.write_str("Jit"),
        }
    }
}

/// One policy with its parameters resolved (defaults filled, units converted).
#[derive(Debug)]
pub(crate) enum Rule {
    Constant,
    Step {
        steps: Steps,
        gamma: f64,
        min: Option<f64>,
    },
    Exp {
        gamma: f64,
    },
    Poly {
        power: f64,
        min: f64,
    },
    Inv {
        gamma: f64,
        power: f64,
    },
    Cosine {
        target: Target,
    },
    Linear {
        target: Target,
    },
    FlatCosine {
        start_percent: f64,
        target: Target,
    },
    CosineRestart {
        periods: Vec<u64>,
        cumulative: Vec<u64>,
        weights: Vec<f64>,
        target: Target,
    },
    Cyclic {
        ratios: (f64, f64),
        cyclic_times: u64,
        step_ratio_up: f64,
        anneal: Anneal,
        gamma: f64,
    },
    /// LR one-cycle: the base is `max_lr / div_factor`, not the optimizer's lr.
    OneCycle {
        max_lr: Vec<f64>,
        total_steps: Option<u64>,
        pct_start: f64,
        anneal: Anneal,
        div_factor: f64,
        final_div_factor: f64,
        three_phase: bool,
    },
    /// Momentum one-cycle: cycles between per-group `max_momentum` and `base_momentum`.
    OneCycleMomentum {
        base_momentum: Vec<f64>,
        max_momentum: Vec<f64>,
        pct_start: f64,
        anneal: Anneal,
        three_phase: bool,
    },
    Custom(Evaluator),
}

/// The local clock a rule sees: inside a phase, counted from the phase's start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub epoch: u64,
    pub iter: u64,
    pub max_epochs: u64,
    pub max_iters: u64,
}

fn pick(list: &[f64], group: usize) -> f64 {
    // Lengths are checked against the optimizer by `Schedule::check_groups`; clamping keeps
    // an unchecked call from panicking.
    list[group.min(list.len() - 1)]
}

impl Rule {
    /// mmcv `get_lr` / `get_momentum`: the value without warmup.
    pub(crate) fn regular(&self, group: usize, base: f64, by_epoch: bool, c: &Clock) -> f64 {
        let (progress, max_progress) = if by_epoch {
            (c.epoch, c.max_epochs)
        } else {
            (c.iter, c.max_iters)
        };
        let p = progress as f64;
        let frac = p / max_progress as f64;
        match self {
            Rule::Constant => base,
            Rule::Step { steps, gamma, min } => {
                let exp = match steps {
                    Steps::Every(n) => progress / n,
                    Steps::At(marks) => marks
                        .iter()
                        .position(|m| {
                            let now = match m.unit {
                                PeriodUnit::Epochs => c.epoch,
                                PeriodUnit::Iters => c.iter,
                            };
                            now < m.count
                        })
                        .unwrap_or(marks.len()) as u64,
                };
                let v = base * gamma.powf(exp as f64);
                match min {
                    Some(m) if *m > v => *m,
                    _ => v,
                }
            }
            Rule::Exp { gamma } => base * gamma.powf(p),
            Rule::Poly { power, min } => {
                let coeff = (1.0 - frac).powf(*power);
                (base - min) * coeff + min
            }
            Rule::Inv { gamma, power } => base * (1.0 + gamma * p).powf(-power),
            Rule::Cosine { target } => annealing_cos(base, target.of(base), frac, 1.0),
            Rule::Linear { target } => annealing_linear(base, target.of(base), frac),
            Rule::FlatCosine {
                start_percent,
                target,
            } => {
                // Python's round() rounds half to even.
                let start = (max_progress as f64 * start_percent).round_ties_even() as i64;
                let local = progress as i64 - start;
                if local < 0 {
                    base
                } else {
                    let span = max_progress as i64 - start;
                    annealing_cos(base, target.of(base), local as f64 / span as f64, 1.0)
                }
            }
            Rule::CosineRestart {
                periods,
                cumulative,
                weights,
                target,
            } => {
                // mmcv raises past the last period; the builder rejects such runs, and the
                // last period is held here so a direct call cannot panic.
                let idx = cumulative
                    .iter()
                    .position(|&c| progress < c)
                    .unwrap_or(cumulative.len() - 1);
                let restart = if idx == 0 { 0 } else { cumulative[idx - 1] };
                let alpha = ((progress as f64 - restart as f64) / periods[idx] as f64).min(1.0);
                annealing_cos(base, target.of(base), alpha, weights[idx])
            }
            Rule::Cyclic {
                ratios,
                cyclic_times,
                step_ratio_up,
                anneal,
                gamma,
            } => {
                let per_phase = c.max_iters / cyclic_times;
                let up = (step_ratio_up * per_phase as f64) as u64;
                let curr = c.iter % per_phase;
                let cycle = c.iter / per_phase;
                let scale = gamma.powf(cycle as f64);
                let phases = [(0, up, 1.0, ratios.0), (up, per_phase, ratios.0, ratios.1)];
                for (start, end, mut start_ratio, mut end_ratio) in phases {
                    if start <= curr && curr < end {
                        if start == 0 {
                            end_ratio = 1.0 - scale + end_ratio * scale;
                        } else {
                            start_ratio = 1.0 - scale + start_ratio * scale;
                        }
                        let f = (curr - start) as f64 / (end - start) as f64;
                        return anneal.apply(base * start_ratio, base * end_ratio, f);
                    }
                }
                unreachable!("curr < per_phase lies in one of the two phases")
            }
            Rule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                anneal,
                div_factor,
                final_div_factor,
                three_phase,
            } => {
                let base = pick(max_lr, group) / div_factor;
                let total = total_steps.unwrap_or(c.max_iters) as f64;
                let mut phases = vec![(pct_start * total - 1.0, 1.0, *div_factor)];
                if *three_phase {
                    phases.push((2.0 * pct_start * total - 2.0, *div_factor, 1.0));
                    phases.push((total - 1.0, 1.0, 1.0 / final_div_factor));
                } else {
                    phases.push((total - 1.0, *div_factor, 1.0 / final_div_factor));
                }
                let mut start = 0.0;
                for (end, s, e) in &phases {
                    if p <= *end {
                        let pct = (p - start) / (end - start);
                        return anneal.apply(base * s, base * e, pct);
                    }
                    start = *end;
                }
                // Past total_steps (the builder rejects total_steps < max_iters): mmcv would
                // fail; hold the final value.
                base / final_div_factor
            }
            Rule::OneCycleMomentum {
                base_momentum,
                max_momentum,
                pct_start,
                anneal,
                three_phase,
            } => {
                let (lo, hi) = (pick(base_momentum, group), pick(max_momentum, group));
                let total = c.max_iters as f64;
                let phases: Vec<(f64, f64, f64)> = if *three_phase {
                    vec![
                        (pct_start * total - 1.0, hi, lo),
                        (2.0 * pct_start * total - 2.0, lo, hi),
                        (total - 1.0, hi, hi),
                    ]
                } else {
                    vec![(pct_start * total - 1.0, hi, lo), (total - 1.0, lo, hi)]
                };
                let mut start = 0.0;
                for (i, (end, s, e)) in phases.iter().enumerate() {
                    if p <= *end || i == phases.len() - 1 {
                        let pct = (p - start) / (end - start);
                        return anneal.apply(*s, *e, pct);
                    }
                    start = *end;
                }
                unreachable!("the last phase always matches")
            }
            Rule::Custom(ev) => ev.eval(&Vars {
                epoch: c.epoch as f64,
                iter: c.iter as f64,
                progress: frac,
                base,
                max_epochs: c.max_epochs as f64,
                max_iters: c.max_iters as f64,
            }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WarmupKind {
    Constant,
    Linear,
    Exp,
}

/// Warmup over the first `iters` global iterations (mmcv: `warmup_iters`, or
/// `warmup_epochs * len(data_loader)` with `warmup_by_epoch`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Warmup {
    pub kind: WarmupKind,
    pub iters: u64,
    pub ratio: f64,
}

impl Warmup {
    /// mmcv `get_warmup_lr` (LR multiplies) / `get_warmup_momentum` (momentum divides).
    fn apply(&self, q: Quantity, regular: f64, iter: u64) -> f64 {
        let cur = iter as f64 / self.iters as f64;
        let k = match self.kind {
            WarmupKind::Constant => self.ratio,
            WarmupKind::Linear => 1.0 - (1.0 - cur) * (1.0 - self.ratio),
            WarmupKind::Exp => self.ratio.powf(1.0 - cur),
        };
        match q {
            Quantity::Lr => regular * k,
            Quantity::Momentum => regular / k,
        }
    }
}

/// One policy over a window of the run: `[start_iter, start_iter + len_iters)`.
#[derive(Debug)]
pub(crate) struct Phase {
    pub rule: Rule,
    pub by_epoch: bool,
    pub start_iter: u64,
    pub len_iters: u64,
}

/// A built schedule for one quantity: optional warmup over a sequence of phases.
///
/// Pure: the value depends only on its arguments, so checkpoints need no schedule state.
#[derive(Debug)]
pub struct Schedule {
    pub(crate) quantity: Quantity,
    pub(crate) warmup: Option<Warmup>,
    pub(crate) phases: Vec<Phase>,
    pub(crate) iters_per_epoch: u64,
    /// Per-group lists inside the rules (one-cycle `max_lr`, …) and their config paths.
    pub(crate) group_lists: Vec<(String, usize)>,
}

impl Schedule {
    /// What this schedule drives.
    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    /// The value for param group `group` whose configured (initial) value is `base`, at
    /// 0-based `epoch` and 0-based global `iter` — the value to set before that iteration
    /// runs, as mmcv's `before_train_epoch` + `before_train_iter` would.
    pub fn value(&self, group: usize, base: f64, epoch: u64, iter: u64) -> f64 {
        let idx = self
            .phases
            .iter()
            .rposition(|p| p.start_iter <= iter)
            .unwrap_or(0);
        let ph = &self.phases[idx];
        let ipe = self.iters_per_epoch;
        let start_epoch = ph.start_iter / ipe;
        let clock = Clock {
            epoch: epoch.saturating_sub(start_epoch),
            iter: iter - ph.start_iter.min(iter),
            max_epochs: ph.len_iters.div_ceil(ipe),
            max_iters: ph.len_iters,
        };
        let regular = ph.rule.regular(group, base, ph.by_epoch, &clock);
        match &self.warmup {
            Some(w) if iter < w.iters => w.apply(self.quantity, regular, iter),
            _ => regular,
        }
    }

    /// Values for every param group (`bases[i]` is group `i`'s configured value).
    pub fn values(&self, bases: &[f64], epoch: u64, iter: u64) -> Vec<f64> {
        bases
            .iter()
            .enumerate()
            .map(|(g, &b)| self.value(g, b, epoch, iter))
            .collect()
    }

    /// Checks per-group parameter lists (one-cycle `max_lr = [..]`, `base_momentum = [..]`)
    /// against the optimizer's number of param groups.
    pub fn check_groups(&self, groups: usize) -> Result<(), super::ConfigError> {
        for (path, len) in &self.group_lists {
            if *len != groups && *len != 1 {
                return Err(super::ConfigError::new(
                    path,
                    format!("expected 1 or {groups} values (one per param group), found {len}"),
                ));
            }
        }
        Ok(())
    }

    /// Warmup length in global iterations (0 without warmup).
    pub fn warmup_iters(&self) -> u64 {
        self.warmup.map_or(0, |w| w.iters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(epoch: u64, iter: u64) -> Clock {
        Clock {
            epoch,
            iter,
            max_epochs: 12,
            max_iters: 1200,
        }
    }

    // Hand-computed from mmcv 1.7.2 lr_updater.py: StepLrUpdaterHook.get_lr with
    // step=[8, 11], gamma=0.1 gives base * 0.1 ** (number of milestones <= epoch).
    #[test]
    fn step_counts_milestones_reached() {
        let r = Rule::Step {
            steps: Steps::At(vec![
                Mark {
                    count: 8,
                    unit: PeriodUnit::Epochs,
                },
                Mark {
                    count: 11,
                    unit: PeriodUnit::Epochs,
                },
            ]),
            gamma: 0.1,
            min: None,
        };
        assert_eq!(r.regular(0, 0.02, true, &clock(7, 799)), 0.02);
        assert_eq!(r.regular(0, 0.02, true, &clock(8, 800)), 0.02 * 0.1);
        assert_eq!(
            r.regular(0, 0.02, true, &clock(11, 1100)),
            0.02 * 0.1f64.powf(2.0)
        );
    }

    // CosineAnnealingLrUpdaterHook at half the run: end + 0.5 * (start - end) * (cos(pi/2) + 1).
    #[test]
    fn cosine_half_way_is_the_midpoint() {
        let r = Rule::Cosine {
            target: Target::Abs(0.0),
        };
        let v = r.regular(0, 1.0, false, &clock(6, 600));
        assert!((v - 0.5).abs() < 1e-15, "{v}");
    }

    // get_warmup_lr 'linear': k = (1 - cur/warmup_iters) * (1 - ratio); lr * (1 - k).
    // At iter 250 of 500 with ratio 0.001: k = 0.5 * 0.999, lr * 0.5005.
    #[test]
    fn linear_warmup_half_way() {
        let w = Warmup {
            kind: WarmupKind::Linear,
            iters: 500,
            ratio: 0.001,
        };
        let v = w.apply(Quantity::Lr, 0.02, 250);
        assert!((v - 0.02 * 0.5005).abs() < 1e-17, "{v}");
        let m = w.apply(Quantity::Momentum, 0.9, 250);
        assert!((m - 0.9 / 0.5005).abs() < 1e-15, "{m}");
    }
}
