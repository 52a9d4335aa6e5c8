//! LR and momentum schedules: every policy of mmcv 1.x's `LrUpdaterHook` /
//! `MomentumUpdaterHook` family with mmcv's formulas and 0-based epoch semantics, warmup,
//! sequential phases, and custom expressions (interpreted, or compiled with cranelift under
//! feature `jit`).
//!
//! This module owns turning the `schedule` config section into pure functions of
//! `(param group, base value, epoch, global iter)`. It does not own applying the values to
//! an optimizer (the runner does, before each train iteration) nor parsing recipe text.
//! A schedule holds no mutable state: resuming only needs the epoch and iter counters.
//!
//! - `config`: the serde structs (mmcv parameter names plus the recipe's `at`, `duration`,
//!   `ratio`) and their validation into [`Schedule`].
//! - `build`: one policy's parameters validated into a rule.
//! - `policy`: the formulas, one function per mmcv hook class.
//! - `check`: run-independent checks for `mmrun check` (milestones inside the run …).
//! - `expr`: the custom-expression language, its parser and interpreter.
//! - `compiled`: the same expressions compiled with `crate::jit` (feature `jit`).

mod build;
mod check;
#[cfg(feature = "jit")]
pub mod compiled;
mod config;
pub mod expr;
mod policy;
mod raw;

pub use check::check;
pub use config::{ConfigError, ProblemKind, Quantity, RunLength, ScheduleSpecs, Schedules};
pub use policy::Schedule;
