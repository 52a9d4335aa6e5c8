//! The errors of `viz`: why a picture could not be made ([`PictureError`]: refused before
//! drawing, failed while drawing — plotters' own error kept as text, its type being the
//! drawing backend's — or failed to reach its file), and why a run's log could not be read or
//! turned into curves ([`TrainLogError`]).

use std::path::PathBuf;

/// Why a picture could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// No charts were asked for.
    #[error("nothing to plot")]
    NothingToPlot,
    /// A chart whose series hold no points.
    #[error("`{chart}` has no values to plot")]
    NoValues {
        /// The chart's title (the log key).
        chart: String,
    },
    /// A confusion matrix with more classes than a legible picture can hold.
    #[error(
        "{classes} classes are too many to draw (at most {max}); the table and `--format json` hold the matrix"
    )]
    TooManyClasses {
        /// Classes in the matrix (background not counted).
        classes: usize,
        /// The most classes drawn.
        max: usize,
    },
    /// A confusion matrix whose cells do not match its labels.
    #[error("a {labels}-label confusion matrix needs {labels}×{labels} cells")]
    MatrixShape {
        /// Labels given (the classes and background).
        labels: usize,
    },
    /// plotters could not draw (`what`: "the confusion matrix", "the `loss` chart", "the text
    /// `person`", …).
    #[error("cannot draw {what}: {message}")]
    Draw {
        /// What was being drawn.
        what: String,
        /// plotters' error.
        message: String,
    },
    /// The font could not measure a text.
    #[error("cannot measure the text `{text}`: {message}")]
    Measure {
        /// The text measured.
        text: String,
        /// The font's error.
        message: String,
    },
    /// The picture could not be encoded as PNG.
    #[error("cannot encode {}: {source}", path.display())]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    /// The folder of the picture (or of several) could not be made.
    #[error("cannot {verb} {}: {source}", dir.display())]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// "make" for a picture's own folder, "create" for an `--out` folder.
        verb: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The PNG file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PictureError {
    /// A plotters failure while drawing `what`.
    pub(crate) fn draw(what: impl Into<String>, e: impl std::fmt::Display) -> PictureError {
        PictureError::Draw {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

/// Why a run's log could not be read or plotted. Each names the file (and line) or the key.
#[derive(Debug, thiserror::Error)]
pub enum TrainLogError {
    /// The log file could not be read (missing, not a regular file, an I/O error).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The `log.jsonl` file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line that is not JSON.
    #[error("{}:{line}: not JSON ({source})", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// A JSON line that is not a log record (no `mode`, `epoch` or `iter`).
    #[error("{}:{line}: {missing}", path.display())]
    NotRecord {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What the record lacks.
        missing: &'static str,
    },
    /// A log without a single record.
    #[error("{} has no log records", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A key asked for that the log has no values of.
    #[error("{} has no key `{key}`; its keys: {}", path.display(), keys.join(", "))]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key asked for.
        key: String,
        /// The keys the log has.
        keys: Vec<String>,
    },
    /// Epochs asked for as the x axis of an iteration-based run's log.
    #[error(
        "{} is from an iteration-based run (its `iter` counts across epochs): plot it with `--x iter`",
        path.display()
    )]
    IterationBased {
        /// The file.
        path: PathBuf,
    },
    /// No logs were given.
    #[error("no runs to plot")]
    NoRuns,
    /// No keys were asked for and the log has none of the default ones.
    #[error(
        "{} has neither `loss` nor a mAP metric: name the keys with --keys (its keys: {})",
        path.display(),
        keys.join(", ")
    )]
    NoDefaultKeys {
        /// The first run's file.
        path: PathBuf,
        /// The keys it has.
        keys: Vec<String>,
    },
}
