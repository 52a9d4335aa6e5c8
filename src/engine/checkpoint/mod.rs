//! Checkpoints are data: weights, optimizer state and EMA weights as safetensors, the run
//! state as JSON, and a `MANIFEST` of sha256 sums (`sha256sum -c` format) that is verified
//! before anything is read. A checkpoint is a folder, written under a temporary name and
//! renamed into place, so a crash leaves either the old set of checkpoints or the new one.
//!
//! `format` reads and writes one checkpoint; `manager` decides names, keeps `max_keep_ckpts`,
//! tracks the best one and maintains the `last_checkpoint` pointer.

mod format;
mod manager;
mod tensors;

pub use crate::model::weights::LoadReport;
pub use format::{
    CheckpointData, CheckpointError, FileWriter, FsWriter, PositionError, RunState,
    load_checkpoint, save_checkpoint,
};
pub use manager::{BestRule, CheckpointManager, KeepPolicy, position, resolve_resume};
pub use tensors::{
    Tensor, Tensors, copy_matched, load_weights_by, load_weights_into, match_params, param_shapes,
    params_to_tensors,
};
