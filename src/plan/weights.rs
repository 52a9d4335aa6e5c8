//! The weights files a recipe names, checked against the model it builds before anything runs:
//! names and shapes come from each file's header (no tensor data is read) and are matched to
//! the planned model's parameters by the rule `exec` loads them with
//! ([`crate::model::weights::match_weights`]), so a file `check` passes loads, and a wrong,
//! truncated or mis-shaped one is E0417 on the key that names it.

use super::PlanError;
use crate::graph::DType;
use crate::model::net::GraphMode;
use crate::model::weights::{Shapes, match_weights, read_shapes, sources};
use crate::recipe::{CheckedRecipe, Diagnostic, Outcome};

/// Adds the weights diagnostics of a recipe that passed the recipe checks; one with errors
/// no longer counts as checked. File checks are skipped with `no_fs`, as `check --no-fs` says.
pub fn with_weights_checked(mut out: Outcome, no_fs: bool) -> Outcome {
    let Some(r) = &out.recipe else { return out };
    if no_fs {
        return out;
    }
    let found = check_weights(r);
    if found.is_empty() {
        return out;
    }
    let failed = found.iter().any(Diagnostic::is_error);
    out.diagnostics.0.extend(found);
    out.diagnostics.sort();
    if failed {
        out.recipe = None;
    } else if let Some(r) = &mut out.recipe {
        r.warnings = out.diagnostics.clone();
    }
    out
}

/// E0417 for each weights file that its rule would refuse, or that cannot be read as weights.
pub fn check_weights(r: &CheckedRecipe) -> Vec<Diagnostic> {
    let at = |key: &str| r.spans.get(key).or_else(|| r.spans.nearest(key));
    let named = match sources(&r.config) {
        Ok(n) => n,
        Err(why) => {
            let key = why.split(':').next().unwrap_or_default().to_string();
            return vec![Diagnostic::error("E0417", why).with_label_opt(at(&key), "here")];
        }
    };
    if named.is_empty() {
        return Vec::new();
    }
    let model = match model_shapes(r) {
        Ok(m) => m,
        // The model itself is reported by `plan`/`exec`; no weights verdict without it.
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for s in named {
        let why = match read_shapes(&s.path) {
            Err(e) => Some(format!(
                "`{}` is not a weights file mmrun reads: {e}",
                s.path.display()
            )),
            Ok(file) => match_weights(&file, &model, &s.rule)
                .report
                .refusal(&s.rule)
                .map(|why| format!("`{}`: {why}", s.path.display())),
        };
        if let Some(why) = why {
            out.push(
                Diagnostic::error("E0417", why)
                    .with_label_opt(at(s.key), "these weights do not load into this model"),
            );
        }
    }
    out
}

/// Every parameter and buffer of the recipe's detector, from its eval graph (the train graph
/// holds the same parameters).
fn model_shapes(r: &CheckedRecipe) -> Result<Shapes, PlanError> {
    let built = super::detector(r)?
        .build(GraphMode::Eval, 1, super::default_shape(r).hw, DType::F32)
        .map_err(|e| PlanError(e.to_string()))?;
    Ok(built
        .graph
        .params
        .iter()
        .map(|(k, s)| (k.clone(), s.shape.clone()))
        .collect())
}
