//! Why hooks cannot be built, ordered or restored. Building and ordering fail on the recipe's
//! settings (the checker refuses most of these first; these are the hooks' own guards);
//! restoring fails on a checkpoint's state, which is untrusted input.

use crate::util::units::Period;

/// A hook's settings that cannot work. The message starts with the hook's name.
#[derive(Debug, thiserror::Error)]
pub enum HookConfigError {
    /// A count that must be at least 1 (`every`, `interval`, `cumulative_iters`).
    #[error("{hook}: `{key}` must be at least 1")]
    Zero {
        /// The hook (`optimizer`, `eval`, `checkpoint`, `ema`).
        hook: &'static str,
        /// The setting.
        key: &'static str,
    },
    /// `log.every` in epochs, or zero.
    #[error("log: `every` must be a positive number of iters, got {every}")]
    LogEvery {
        /// The setting as given.
        every: Period,
    },
    /// `eval.start` and `eval.every` in different units.
    #[error("eval: `start` ({start}) and `every` ({every}) must use the same unit")]
    EvalUnits { start: Period, every: Period },
    /// `grad_clip` with a norm other than 2.
    #[error("grad_clip: only norm_type = 2 is supported, not {norm_type}")]
    NormType {
        /// The norm asked for.
        norm_type: f64,
    },
    /// `grad_clip` with both limits, neither, or one that is not positive.
    #[error("grad_clip: give exactly one of max_norm or clip_value, and it must be > 0")]
    ClipLimit,
    /// `checkpoint.max_keep_ckpts` of 0 or below -1.
    #[error("checkpoint: max_keep_ckpts must be -1 (keep all) or positive, not {max_keep}")]
    MaxKeep {
        /// The setting as given.
        max_keep: i64,
    },
    /// `ema.momentum` outside (0, 1).
    #[error("ema: momentum must lie in (0, 1), not {momentum}")]
    EmaMomentum {
        /// The setting as given.
        momentum: f64,
    },
    /// `early_stopping` with `patience` 0 or a negative `min_delta`.
    #[error("early_stopping: patience must be >= 1 and min_delta >= 0")]
    EarlyStop,
}

/// Why hooks cannot be put in one order by their `before`/`after` names.
#[derive(Debug, thiserror::Error)]
pub enum HookOrderError {
    /// Two hooks of one name.
    #[error("hook `{name}` is registered twice")]
    Twice { name: String },
    /// A `before`/`after` name that no hook has.
    #[error(
        "hook `{by}` is ordered relative to `{name}`, which is not registered (hooks: {})",
        hooks.join(", ")
    )]
    Unknown {
        /// The hook whose constraint names it.
        by: String,
        /// The missing name.
        name: String,
        /// The hooks there are.
        hooks: Vec<String>,
    },
    /// Constraints that contradict each other.
    #[error(
        "hook order has a cycle among: {} (check their before/after names)",
        among.join(", ")
    )]
    Cycle {
        /// The hooks left unordered.
        among: Vec<String>,
    },
}

/// Why a hook cannot restore the state a checkpoint holds for it.
#[derive(Debug, thiserror::Error)]
pub enum HookStateError {
    /// The optimizer hook was mid-accumulation but the checkpoint has no gradients for it.
    #[error(
        "{pending} accumulated iterations are pending but their gradients are missing from the checkpoint"
    )]
    MissingAccumulation {
        /// Iterations accumulated, as the state says.
        pending: u64,
    },
    /// A state entry that is not what this hook saves.
    #[error("`{key}`: {source}")]
    Malformed {
        /// The entry of the hook's state.
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
}
