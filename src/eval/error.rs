//! Errors of the evaluators: every one names the file (or "input") and what is wrong.

use std::path::PathBuf;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not the JSON expected (syntax, or a field of the wrong type).
    #[error("{origin}: malformed JSON: {message}")]
    Json { origin: String, message: String },
    /// The input parsed but holds values the metric cannot accept. All problems found are
    /// listed (the first few, then a count).
    #[error("{origin}: {}", render_problems(problems))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
    /// Evaluation parameters that cannot work (e.g. no IoU thresholds).
    #[error("invalid evaluation parameters: {0}")]
    Params(String),
}

/// At most this many problems are spelled out; the rest are counted.
const SHOWN_PROBLEMS: usize = 10;

fn render_problems(problems: &[String]) -> String {
    let mut s = String::new();
    for (i, p) in problems.iter().take(SHOWN_PROBLEMS).enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        s.push_str(p);
    }
    if problems.len() > SHOWN_PROBLEMS {
        s.push_str(&format!(
            "; and {} more problems",
            problems.len() - SHOWN_PROBLEMS
        ));
    }
    s
}

impl EvalError {
    /// Replace the origin of a JSON/validation error (e.g. "input" by the file name).
    pub fn with_origin(self, new_origin: &str) -> Self {
        match self {
            EvalError::Json { message, .. } => EvalError::Json {
                origin: new_origin.to_string(),
                message,
            },
            EvalError::Invalid { problems, .. } => EvalError::Invalid {
                origin: new_origin.to_string(),
                problems,
            },
            other => other,
        }
    }
}
