//! The weights a run starts from: the files [`crate::model::weights::sources`] finds in the
//! recipe (the backbone's `init_cfg`, mmcv's `Pretrained` initialiser; then `load_from`, which
//! may override any weight), each loaded by its rule. Applied when a run starts from scratch,
//! never on resume (the checkpoint restores every weight).
//!
//! A file is a torchvision or mmcv `.pth` (the restricted pickle reader: no code runs),
//! safetensors in any float dtype, or an mmrun checkpoint folder (its MANIFEST checked). The
//! rule is the one `mmrun check` matches headers by, so a file `check` passes loads.

use crate::engine::checkpoint::{CheckpointError, Tensors, load_checkpoint};
use crate::engine::runner::Runner;
use crate::model::weights::{Source, WeightsError};
use std::path::{Path, PathBuf};

/// Why a weights file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadWeightsError {
    /// An mmrun checkpoint folder that does not load (its MANIFEST, its files).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A `.pth` or safetensors file that does not load.
    #[error(transparent)]
    File(#[from] WeightsError),
}

/// Why the weights a recipe names could not be applied at the start of a run. Each names
/// the recipe key (`load_from`, `model.backbone.init_cfg`) and so the file.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    /// The file could not be read.
    #[error("{key}: {source}")]
    Read {
        key: &'static str,
        #[source]
        source: ReadWeightsError,
    },
    /// The file was read but its load rule refuses it (missing or mismatched parameters).
    #[error("{key}: {}: {why}", path.display())]
    Refused {
        key: &'static str,
        path: PathBuf,
        /// What the rule refuses, naming the parameters.
        why: String,
    },
}

/// Loads every weights file of `named` (the plan's, in order); one note per file says what was
/// loaded and what was not. A load its rule refuses is an error naming the key, the file and
/// the parameters.
pub fn load_initial_weights(
    named: &[Source],
    runner: &mut Runner,
) -> Result<Vec<String>, PretrainedError> {
    let mut notes = Vec::new();
    for Source { key, path, rule } in named {
        let key = *key;
        let tensors = read_weights(path).map_err(|source| PretrainedError::Read { key, source })?;
        let report =
            (runner.load_weights(&tensors, rule)).map_err(|why| PretrainedError::Refused {
                key,
                path: path.clone(),
                why,
            })?;
        notes.push(format!("{key}: {}: {report}", path.display()));
    }
    Ok(notes)
}

/// A weights file as named tensors: a PyTorch `.pth`/`.pt`/`.bin` zip (a bare state dict or
/// mmcv's `{"state_dict": ..., "meta": ...}`, through the restricted reader), safetensors in
/// any float dtype cast to f32, or an mmrun checkpoint folder's weights.
pub fn read_weights(path: &Path) -> Result<Tensors, ReadWeightsError> {
    if path.is_dir() {
        return Ok(load_checkpoint(path)?.weights);
    }
    Ok(crate::model::weights::load_weights(path)?)
}
