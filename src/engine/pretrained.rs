//! The weights a run starts from: the files [`crate::model::weights::sources`] finds in the
//! recipe (the backbone's `init_cfg`, mmcv's `Pretrained` initialiser; then `load_from`, which
//! may override any weight), each loaded by its rule. Applied when a run starts from scratch,
//! never on resume (the checkpoint restores every weight).
//!
//! A file is a torchvision or mmcv `.pth` (the restricted pickle reader: no code runs),
//! safetensors in any float dtype, or an mmrun checkpoint folder (its MANIFEST checked). The
//! rule is the one `mmrun check` matches headers by, so a file `check` passes loads.

use crate::engine::checkpoint::{Tensors, load_checkpoint};
use crate::engine::runner::Runner;
use crate::model::weights::Source;
use std::path::Path;

/// Loads every weights file of `named` (the plan's, in order); one note per file says what was
/// loaded and what was not. A load its rule refuses is an error naming the key, the file and
/// the parameters.
pub fn load_initial_weights(named: &[Source], runner: &mut Runner) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    for Source { key, path, rule } in named {
        let at = format!("{key}: {}", path.display());
        let tensors = read_weights(path).map_err(|e| format!("{key}: {e}"))?;
        let report = runner
            .load_weights(&tensors, rule)
            .map_err(|why| format!("{at}: {why}"))?;
        notes.push(format!("{at}: {report}"));
    }
    Ok(notes)
}

/// A weights file as named tensors: a PyTorch `.pth`/`.pt`/`.bin` zip (a bare state dict or
/// mmcv's `{"state_dict": ..., "meta": ...}`, through the restricted reader), safetensors in
/// any float dtype cast to f32, or an mmrun checkpoint folder's weights.
pub fn read_weights(path: &Path) -> Result<Tensors, String> {
    if path.is_dir() {
        return load_checkpoint(path)
            .map(|c| c.weights)
            .map_err(|e| e.to_string());
    }
    crate::model::weights::load_weights(path).map_err(|e| e.to_string())
}
