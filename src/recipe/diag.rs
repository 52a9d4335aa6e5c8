//! Diagnostics: a code, a message, labelled spans, help. Collected, never thrown one at a
//! time. Rendering goes through miette (human) or serde (`--format json`).

use crate::syntax::Span;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Index of a file in [`Files`].
pub type FileId = usize;

/// A place in the recipe text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Loc {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Loc {
    pub fn new(file: FileId, span: Span) -> Self {
        Loc {
            file,
            start: span.start,
            end: span.end,
        }
    }
    pub fn span(&self) -> Span {
        Span::new(self.start, self.end)
    }
}

/// One source file the check read.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as given or as resolved from an import.
    pub path: PathBuf,
    pub text: Arc<str>,
}

/// Every source file of a check, addressed by [`FileId`].
#[derive(Clone, Debug, Default)]
pub struct Files {
    pub files: Vec<SourceFile>,
}

impl Files {
    pub fn add(&mut self, path: PathBuf, text: impl Into<Arc<str>>) -> FileId {
        self.files.push(SourceFile {
            path,
            text: text.into(),
        });
        self.files.len() - 1
    }
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id)
    }
    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files.iter().position(|f| f.path == path)
    }
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, file: FileId, offset: usize) -> (usize, usize) {
        let Some(f) = self.get(file) else {
            return (1, 1);
        };
        let offset = offset.min(f.text.len());
        let before = &f.text[..floor_char_boundary(&f.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// How bad a diagnostic is. Only errors make `check` fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A labelled span.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub loc: Loc,
    pub message: String,
}

/// One finding. Build with [`Diagnostic::error`] and the `with_*` methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// `E0302`; see `mmrun explain` and [`super::codes`].
    pub code: &'static str,
    pub severity: Severity,
    /// Lowercase, no full stop.
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }
    /// Adds a label (the first one added is the primary one).
    pub fn with_label(mut self, loc: Loc, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            loc,
            message: message.into(),
        });
        self
    }
    /// Adds a label if the place is known.
    pub fn with_label_opt(self, loc: Option<Loc>, message: impl Into<String>) -> Self {
        match loc {
            Some(l) => self.with_label(l, message),
            None => self,
        }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Sets the help if there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Everything a check found, in the order found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    /// Sorts by file and position (stable for equal places), so output order does not depend
    /// on the order passes ran in.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| {
            d.labels
                .first()
                .map_or((usize::MAX, 0, 0), |l| (l.loc.file, l.loc.start, l.loc.end))
        });
    }
}

/// The machine-readable form of one diagnostic (`--format json`).
#[derive(Clone, Debug, Serialize)]
pub struct JsonDiagnostic {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub end_line: Option<usize>,
    pub end_column: Option<usize>,
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    pub labels: Vec<JsonLabel>,
}

/// A secondary place of a JSON diagnostic.
#[derive(Clone, Debug, Serialize)]
pub struct JsonLabel {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// The `--format json` object.
    pub fn to_json(&self, files: &Files) -> JsonDiagnostic {
        let name = |id: FileId| {
            files
                .get(id)
                .map_or_else(String::new, |f| f.path.display().to_string())
        };
        let first = self.labels.first();
        let (line, column) = first.map_or((None, None), |l| {
            let (a, b) = files.line_col(l.loc.file, l.loc.start);
            (Some(a), Some(b))
        });
        let (end_line, end_column) = first.map_or((None, None), |l| {
            let (a, b) = files.line_col(l.loc.file, l.loc.end);
            (Some(a), Some(b))
        });
        JsonDiagnostic {
            file: first.map(|l| name(l.loc.file)),
            line,
            column,
            end_line,
            end_column,
            code: self.code,
            severity: self.severity,
            message: self.message.clone(),
            help: self.help.clone(),
            labels: self
                .labels
                .iter()
                .map(|l| {
                    let (line, column) = files.line_col(l.loc.file, l.loc.start);
                    JsonLabel {
                        file: name(l.loc.file),
                        line,
                        column,
                        message: l.message.clone(),
                    }
                })
                .collect(),
        }
    }
}
