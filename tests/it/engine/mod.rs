//! Integration tests of the `engine` area: optimizers against torch.optim, checkpoints,
//! hooks, and whole runs of the Runner with a small stand-in model.

mod checkpoint;
mod cli;
mod cpu_isa;
#[cfg(feature = "mpi")]
mod data_parallel;
pub(crate) mod detector;
mod exec;
mod faults;
mod hostile;
mod kill;
mod loss_scale;
mod mixed_precision;
mod mmdet_logs;
mod optim;
mod pictures;
mod plots;
mod pretrained;
pub(crate) mod pyref;
mod rpn;
mod runner;
mod standin;
mod two_stage;
#[cfg(feature = "wgpu")]
mod wgpu;

/// A hook's settings with the registry's defaults (what a recipe that names the hook without
/// settings gets).
pub fn hook_defaults<T: serde::de::DeserializeOwned>(name: &str) -> T {
    mmrun::registry::defaults(mmrun::registry::Category::Hook, name)
        .unwrap_or_else(|e| panic!("{e}"))
}
