//! Errors of the data area and the bad-sample policy.
//!
//! Every error names the file it came from and, where one exists, the annotation id, so a
//! user can open the file and find the record. Nothing in `data` panics on user input.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An error while reading a dataset, decoding an image or running a transform.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or folder could not be written (`data synth`).
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An annotation file is not valid JSON/XML or does not have the expected structure.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A VOC annotation file that is not XML this reader takes.
    #[error("{path}: {source}")]
    Xml {
        path: PathBuf,
        #[source]
        source: super::xml::XmlError,
    },
    /// An image file exists but cannot be decoded.
    #[error("{path}: corrupt or unsupported image: {message}")]
    Decode { path: PathBuf, message: String },
    /// One annotation is wrong (box outside the image, negative size, unknown image or
    /// category). `ann_id` is the annotation's id in the file (COCO `id`, VOC object index).
    #[error("{path}: annotation {ann_id}: {message}")]
    BadAnnotation {
        path: PathBuf,
        ann_id: String,
        message: String,
    },
    /// A class named in the config does not exist in the annotation file.
    #[error("{path}: unknown class `{name}`; the classes in this file are: {available}")]
    UnknownClass {
        path: PathBuf,
        name: String,
        available: String,
    },
    /// The data configuration is inconsistent (e.g. a pipeline without `load_image`).
    #[error("data config: {0}")]
    Config(String),
    /// A sample failed in a loader worker; `file` is the image it was working on.
    #[error("{file}: {message}")]
    Sample { file: String, message: String },
    /// A buffer whose size derives from the input (an image, a batch) could not be allocated.
    #[error("cannot allocate {} for {what}", super::limits::human_bytes(*bytes))]
    Alloc { what: String, bytes: u128 },
    /// The target closure (anchor assignment) failed for an image.
    #[error("{file}: target assignment failed: {message}")]
    Target { file: String, message: String },
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Write {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn parse(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Parse {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn bad_ann(
        path: impl Into<PathBuf>,
        ann_id: impl ToString,
        message: impl Into<String>,
    ) -> Self {
        DataError::BadAnnotation {
            path: path.into(),
            ann_id: ann_id.to_string(),
            message: message.into(),
        }
    }
}

/// What to do with a sample that cannot be used (the recipe's `on_bad_sample`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadSample {
    /// Stop with an error naming the file and annotation (the default).
    #[default]
    Error,
    /// Log a warning, count it, and go on without the sample (or annotation).
    Skip,
}

/// How many samples (or annotations) were skipped: in the current epoch and in all.
/// [`crate::data::Loader::skipped`] gives the training loader's, for the epoch log and the
/// run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCount {
    /// Since the epoch started ([`BadSampleLog::start_epoch`]).
    pub epoch: usize,
    /// Since the log was made.
    pub total: usize,
}

/// Warnings printed per epoch; past this, skips are only counted (one line says so), so a
/// folder of broken images cannot flood the console.
pub const PRINTED_PER_EPOCH: usize = 10;
/// Warning texts kept for [`BadSampleLog::messages`] (the counts go on past it).
const KEPT_MESSAGES: usize = 1000;

/// Warnings and counts of skipped samples/annotations, shared between loader workers.
/// The first [`PRINTED_PER_EPOCH`] of an epoch are printed as they happen (`warning:
/// skipped: ...` on stderr), the rest counted; [`skipped`](Self::skipped) has the counts.
#[derive(Debug, Default)]
pub struct BadSampleLog {
    epoch: AtomicUsize,
    total: AtomicUsize,
    messages: Mutex<Vec<String>>,
}

impl BadSampleLog {
    /// Record one skipped item, printing the warning if this epoch has printed fewer than
    /// [`PRINTED_PER_EPOCH`].
    pub fn warn(&self, err: &DataError) {
        let msg = err.to_string();
        let n = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        if n <= PRINTED_PER_EPOCH {
            crate::errln!("warning: skipped: {msg}");
        } else if n == PRINTED_PER_EPOCH + 1 {
            crate::errln!(
                "warning: more than {PRINTED_PER_EPOCH} items skipped this epoch; the rest are counted, not printed"
            );
        }
        if let Ok(mut m) = self.messages.lock()
            && m.len() < KEPT_MESSAGES
        {
            m.push(msg);
        }
    }
    /// The counts so far.
    pub fn skipped(&self) -> SkipCount {
        SkipCount {
            epoch: self.epoch.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }
    /// Start counting a new epoch (and printing its first warnings).
    pub fn start_epoch(&self) {
        self.epoch.store(0, Ordering::Relaxed);
    }
    /// How many items were skipped in all.
    pub fn count(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
    /// The warnings so far (the first thousand), in the order they were recorded.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
    /// Take this epoch's count and the kept messages, and start a new epoch.
    pub fn take(&self) -> (usize, Vec<String>) {
        let n = self.epoch.swap(0, Ordering::Relaxed);
        let m = self
            .messages
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        (n, m)
    }
}

/// Apply the policy to a fallible item: `Ok(Some)` passes, an error either propagates
/// (`Error`) or is logged and turned into `Ok(None)` (`Skip`).
pub fn apply_policy<T>(policy: OnBadSample, log: &BadSampleLog, r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if policy == OnBadSample::Skip => {
            log.warn(&e);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
