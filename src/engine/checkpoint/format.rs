//! One checkpoint folder: `model.safetensors`, optional `optimizer.safetensors` and
//! `ema.safetensors`, `state.json`, and `MANIFEST` (sha256 of each, verified on load).

use super::tensors::{Tensors, decode, encode};
use crate::util::rng::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const MODEL: &str = crate::model::weights::CHECKPOINT_WEIGHTS;
const OPTIM: &str = "optimizer.safetensors";
const EMA: &str = "ema.safetensors";
const HOOKS: &str = "hooks.safetensors";
const STATE: &str = "state.json";
const MANIFEST: &str = "MANIFEST";

/// Everything besides tensors that resume needs to continue exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    pub mmrun_version: String,
    /// sha256 of the merged recipe, to warn when resuming under a changed recipe.
    pub recipe_hash: String,
    /// Epochs completed.
    pub epoch: u64,
    /// Training iterations completed over the whole run.
    pub iter: u64,
    /// Training iterations completed within the current epoch (0 at an epoch boundary).
    pub inner_iter: u64,
    /// Scalar optimizer state (current lr, momentum, step counts).
    pub optimizer: serde_json::Value,
    /// State of the schedules (opaque to the runner).
    pub schedule: serde_json::Value,
    /// Every RNG stream the run draws from, by name.
    pub rng: BTreeMap<String, Rng>,
    /// Sampler/loader position (opaque to the runner; the data side owns it).
    pub sampler: serde_json::Value,
    /// Mixed-precision loss scaler, when one is used.
    pub loss_scaler: Option<serde_json::Value>,
    /// Best score so far: `(metric, value, iteration)`.
    pub best: Option<(String, f64, u64)>,
    /// Each hook's own state, by hook name.
    pub hooks: BTreeMap<String, serde_json::Value>,
    /// Position in the workflow: phase index and units (epochs or iters) done in it.
    #[serde(default)]
    pub workflow: (usize, u64),
    /// Iterations per epoch of the run that wrote it (0 in checkpoints of mmrun 0.1 before
    /// it was recorded), so a resume under another dataset or batch size says both numbers.
    #[serde(default)]
    pub iters_per_epoch: u64,
}

/// What a save writes and a load returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointData {
    pub weights: Tensors,
    pub optimizer: Option<Tensors>,
    pub ema: Option<Tensors>,
    /// Hooks' tensor state, keyed `<hook>/<name>`.
    pub hooks: Option<Tensors>,
    pub state: RunState,
}

/// Errors of reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read checkpoint {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "checkpoint {path} is corrupt: {file} does not match its recorded sha256 (truncated or modified)"
    )]
    Checksum { path: PathBuf, file: String },
    #[error("checkpoint {path} is not valid: {why}")]
    Invalid { path: PathBuf, why: String },
    /// A run state whose position does not fit the run resuming from it.
    #[error("checkpoint {path} is not valid: {source}")]
    Position {
        path: PathBuf,
        #[source]
        source: PositionError,
    },
    #[error("no checkpoint to resume from in {0}")]
    NoneFound(PathBuf),
}

/// Why a checkpoint's position ([`RunState`]: counters, workflow phase, best score) cannot be
/// resumed by this run. The state is untrusted input; each message says what changed or what
/// was edited.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PositionError {
    /// Written by a run with another number of iterations per epoch.
    #[error(
        "it was written with {saved} iterations per epoch, but this run has {run}: the dataset, \
         samples_per_gpu or sampler changed (resume with the settings it was trained with, \
         or start a new run with load_from)"
    )]
    ItersPerEpoch {
        /// The checkpoint's `iters_per_epoch`.
        saved: u64,
        /// This run's.
        run: u64,
    },
    /// An iteration past the end of this run.
    #[error("it is at iteration {iter} but the run is {max_iters} iterations long")]
    PastEnd {
        /// The checkpoint's `iter`.
        iter: u64,
        /// This run's length in iterations.
        max_iters: u64,
    },
    /// Epoch, iteration and iteration within the epoch that do not agree with this run's
    /// iterations per epoch.
    #[error(
        "its position (epoch {epoch}, iteration {iter}, {inner} into the epoch) is not consistent with \
         this run's {ipe} iterations per epoch{}: the dataset or batch size changed, \
         or state.json was edited",
        implied_ipe(*.epoch, *.iter, *.inner)
    )]
    Inconsistent {
        /// The checkpoint's `epoch`.
        epoch: u64,
        /// The checkpoint's `iter`.
        iter: u64,
        /// The checkpoint's `inner_iter`.
        inner: u64,
        /// This run's iterations per epoch.
        ipe: u64,
    },
    /// A workflow phase the recipe does not have.
    #[error("its workflow position (phase {phase}) does not fit this recipe's {phases} phase(s)")]
    WorkflowPhase {
        /// The checkpoint's phase, counted from 1.
        phase: usize,
        /// The recipe's workflow phases.
        phases: usize,
    },
    /// More of a workflow phase done than the phase is long.
    #[error(
        "its workflow position ({done} done in phase {phase}) is past that phase's length ({length})"
    )]
    WorkflowDone {
        /// Units (epochs or iterations) done, as the checkpoint says.
        done: u64,
        /// The phase, counted from 1.
        phase: usize,
        /// The phase's length in the recipe.
        length: crate::util::units::Period,
    },
    /// A best score that is not finite or lies after the checkpoint's iteration.
    #[error(
        "its best score ({metric} = {value} at iteration {at}) is not possible at iteration {iter}"
    )]
    Best {
        /// The metric's key.
        metric: String,
        /// The score.
        value: f64,
        /// The iteration it was reached at.
        at: u64,
        /// The checkpoint's `iter`.
        iter: u64,
    },
}

/// The iterations per epoch a position implies, as a parenthesis (nothing at epoch 0).
fn implied_ipe(epoch: u64, iter: u64, inner: u64) -> String {
    match epoch {
        0 => String::new(),
        e => format!(
            " (its epoch {e} and iteration {iter} imply {} per epoch)",
            iter.saturating_sub(inner) / e
        ),
    }
}

/// Where checkpoint bytes go: the file system, or a faulty stand-in in tests.
pub trait FileWriter: Send {
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// Writes through `util::atomic_file` (temporary file, fsync, rename).
pub struct FsWriter;

impl FileWriter for FsWriter {
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        crate::util::atomic_file::write_atomic(path, bytes)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write checkpoint `dir` (a folder path) atomically: build it as a hidden sibling, then
/// rename it into place (replacing an older folder of the same name).
pub fn save_checkpoint(
    dir: &Path,
    data: &CheckpointData,
    writer: &dyn FileWriter,
) -> Result<(), CheckpointError> {
    let werr = |source: io::Error| CheckpointError::Write {
        path: dir.to_path_buf(),
        source,
    };
    // JSON has no infinities or NaN (serde_json writes them as `null`): such a best score
    // would save and then never load. The checkpoint hook only records finite scores.
    if let Some((metric, value, _)) = &data.state.best
        && !value.is_finite()
    {
        return Err(werr(io::Error::other(format!(
            "state.best: the best {metric} score is {value}, and only finite scores can be saved"
        ))));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(werr)?;
    let tmp = crate::util::atomic_file::temporary_dir(dir).map_err(werr)?;
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(werr)?;
    }
    std::fs::create_dir(&tmp).map_err(werr)?;
    let result = (|| {
        let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
        let enc = |t: &Tensors| encode(t, None).map_err(|e| werr(io::Error::other(e)));
        files.push((MODEL, enc(&data.weights)?));
        if let Some(o) = &data.optimizer {
            files.push((OPTIM, enc(o)?));
        }
        if let Some(e) = &data.ema {
            files.push((EMA, enc(e)?));
        }
        if let Some(h) = &data.hooks {
            files.push((HOOKS, enc(h)?));
        }
        let state = serde_json::to_vec_pretty(&data.state)
            .map_err(|e| werr(io::Error::other(e.to_string())))?;
        files.push((STATE, state));
        let mut manifest = String::new();
        for (f, bytes) in &files {
            writer.write(&tmp.join(f), bytes).map_err(werr)?;
            manifest.push_str(&format!("{}  {f}\n", sha256_hex(bytes)));
        }
        writer
            .write(&tmp.join(MANIFEST), manifest.as_bytes())
            .map_err(werr)?;
        // One atomic rename puts it in place, replacing a folder of the same name whole.
        crate::util::atomic_file::replace_dir(&tmp, dir).map_err(werr)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Read and verify a checkpoint folder. Every file is checked against `MANIFEST` before it is
/// parsed; a missing, truncated or modified file is an error naming it.
pub fn load_checkpoint(dir: &Path) -> Result<CheckpointData, CheckpointError> {
    let invalid = |why: String| CheckpointError::Invalid {
        path: dir.to_path_buf(),
        why,
    };
    if !dir.is_dir() {
        return Err(invalid(
            "not a checkpoint folder (expected model.safetensors, state.json, MANIFEST)".into(),
        ));
    }
    let manifest_path = dir.join(MANIFEST);
    if !manifest_path.is_file() {
        return Err(invalid(
            "it has no MANIFEST: not an mmrun checkpoint folder, or an incomplete one".into(),
        ));
    }
    let manifest = crate::util::read::regular_text(&manifest_path, crate::util::read::UNLIMITED)
        .map_err(|source| CheckpointError::Read {
            path: manifest_path.clone(),
            source,
        })?;
    let mut sums = BTreeMap::new();
    for (n, line) in manifest.lines().enumerate() {
        let Some((sum, file)) = line.split_once("  ") else {
            return Err(invalid(format!("MANIFEST line {} is malformed", n + 1)));
        };
        if ![MODEL, OPTIM, EMA, HOOKS, STATE].contains(&file) {
            return Err(invalid(format!("MANIFEST names an unknown file `{file}`")));
        }
        sums.insert(file.to_string(), sum.to_string());
    }
    for required in [MODEL, STATE] {
        if !sums.contains_key(required) {
            return Err(invalid(format!("MANIFEST does not list {required}")));
        }
    }
    let read = |file: &str| -> Result<Option<Vec<u8>>, CheckpointError> {
        let Some(sum) = sums.get(file) else {
            return Ok(None);
        };
        let bytes = crate::util::read::regular_file(&dir.join(file), crate::util::read::UNLIMITED)
            .map_err(|source| CheckpointError::Read {
                path: dir.join(file),
                source,
            })?;
        if &sha256_hex(&bytes) != sum {
            return Err(CheckpointError::Checksum {
                path: dir.to_path_buf(),
                file: file.to_string(),
            });
        }
        Ok(Some(bytes))
    };
    let tensors =
        |file: &str, bytes: Vec<u8>| decode(&bytes).map_err(|e| invalid(format!("{file}: {e}")));
    let weights = tensors(MODEL, read(MODEL)?.unwrap_or_default())?;
    let optimizer = read(OPTIM)?.map(|b| tensors(OPTIM, b)).transpose()?;
    let ema = read(EMA)?.map(|b| tensors(EMA, b)).transpose()?;
    let hooks = read(HOOKS)?.map(|b| tensors(HOOKS, b)).transpose()?;
    let state_bytes = read(STATE)?.unwrap_or_default();
    let state: RunState =
        serde_json::from_slice(&state_bytes).map_err(|e| invalid(format!("state.json: {e}")))?;
    Ok(CheckpointData {
        weights,
        optimizer,
        ema,
        hooks,
        state,
    })
}
