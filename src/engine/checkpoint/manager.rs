//! Checkpoint policy: names (`epoch_N`, `iter_N`, `best_<metric>_<epoch|iter>_N`, `last`),
//! `max_keep_ckpts`, best tracking by rule, and the `last_checkpoint` pointer that
//! `--resume auto` follows.

use super::format::{
    CheckpointData, CheckpointError, FileWriter, FsWriter, load_checkpoint, save_checkpoint,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const POINTER: &str = "last_checkpoint";

/// Whether a larger or a smaller score is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestRule {
    Greater,
    Less,
}

impl BestRule {
    /// mmcv's inference: metrics named like losses are better smaller, everything else larger.
    pub fn infer(metric: &str) -> BestRule {
        if metric.contains("loss") {
            BestRule::Less
        } else {
            BestRule::Greater
        }
    }
    pub fn better(&self, new: f64, old: f64) -> bool {
        match self {
            BestRule::Greater => new > old,
            BestRule::Less => new < old,
        }
    }
}

/// How many periodic checkpoints survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepPolicy {
    All,
    Last(usize),
}

/// Saves checkpoints into one folder and keeps it tidy.
pub struct CheckpointManager {
    dir: PathBuf,
    keep: KeepPolicy,
    writer: Box<dyn FileWriter>,
}

/// Whether a folder name is a periodic checkpoint's (`epoch_N`, `iter_N`).
fn is_periodic(name: &str) -> bool {
    name.strip_prefix("epoch_")
        .or_else(|| name.strip_prefix("iter_"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The training position a checkpoint folder was written at, read from its `state.json`
/// (names cannot order `epoch_3` against `iter_12`). `None` when it cannot be read; such a
/// folder sorts before every readable one.
pub fn position(dir: &Path) -> Option<u64> {
    #[derive(Deserialize)]
    struct At {
        iter: u64,
    }
    let bytes =
        crate::util::read::regular_file(&dir.join("state.json"), crate::util::read::UNLIMITED)
            .ok()?;
    serde_json::from_slice::<At>(&bytes).ok().map(|a| a.iter)
}

impl CheckpointManager {
    pub fn new(dir: impl Into<PathBuf>, keep: KeepPolicy) -> Self {
        CheckpointManager {
            dir: dir.into(),
            keep,
            writer: Box::new(FsWriter),
        }
    }

    /// Replace the file writer (tests inject failures with it).
    pub fn with_writer(mut self, writer: Box<dyn FileWriter>) -> Self {
        self.writer = writer;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Periodic checkpoints present on disk, oldest first by training position (ties by
    /// name, `epoch_N` before `iter_M`).
    pub fn periodic(&self) -> Vec<PathBuf> {
        let mut found: Vec<(Option<u64>, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(is_periodic) && e.path().is_dir())
            .map(|e| (position(&e.path()), e.path()))
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    fn write_pointer(&self, name: &str) -> Result<(), CheckpointError> {
        self.writer
            .write(&self.dir.join(POINTER), format!("{name}\n").as_bytes())
            .map_err(|source| CheckpointError::Write {
                path: self.dir.join(POINTER),
                source,
            })
    }

    /// Save a checkpoint named `name` (e.g. `epoch_3`), point `last_checkpoint` at it, and
    /// remove the oldest periodic checkpoints beyond `max_keep_ckpts`.
    pub fn save(&self, name: &str, data: &CheckpointData) -> Result<PathBuf, CheckpointError> {
        let path = self.dir.join(name);
        save_checkpoint(&path, data, self.writer.as_ref())?;
        self.write_pointer(name)?;
        if let KeepPolicy::Last(n) = self.keep {
            let all = self.periodic();
            if all.len() > n {
                for old in &all[..all.len() - n] {
                    if old != &path {
                        let _ = std::fs::remove_dir_all(old);
                    }
                }
            }
        }
        Ok(path)
    }

    /// Save `best_<metric>_<tag>` and remove the previous best of that metric.
    pub fn save_best(
        &self,
        metric: &str,
        tag: &str,
        data: &CheckpointData,
    ) -> Result<PathBuf, CheckpointError> {
        let prefix = format!("best_{metric}_");
        let name = format!("{prefix}{tag}");
        let path = self.dir.join(&name);
        save_checkpoint(&path, data, self.writer.as_ref())?;
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with(&prefix) && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(path)
    }

    /// The checkpoint `last_checkpoint` names, if any.
    pub fn last(&self) -> Option<PathBuf> {
        let name =
            crate::util::read::regular_text(&self.dir.join(POINTER), crate::util::read::UNLIMITED)
                .ok()?;
        let p = self.dir.join(name.trim());
        p.is_dir().then_some(p)
    }
}

/// Resolve `--resume`: `auto` follows `last_checkpoint` in `ckpt_dir` (falling back to the
/// newest periodic checkpoint), anything else is a path. `Ok(None)` when `auto` finds nothing.
pub fn resolve_resume(
    spec: &str,
    ckpt_dir: &Path,
) -> Result<Option<(PathBuf, CheckpointData)>, CheckpointError> {
    if spec != "auto" {
        let p = PathBuf::from(spec);
        let data = load_checkpoint(&p)?;
        return Ok(Some((p, data)));
    }
    let m = CheckpointManager::new(ckpt_dir, KeepPolicy::All);
    let candidate = m.last().or_else(|| m.periodic().pop());
    match candidate {
        None => Ok(None),
        Some(p) => {
            let data = load_checkpoint(&p)?;
            Ok(Some((p, data)))
        }
    }
}
