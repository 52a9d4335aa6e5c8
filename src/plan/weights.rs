//! The weights files a recipe names, checked against the model it plans before anything runs:
//! names and shapes come from each file's header (no tensor data is read) and are matched to
//! the planned model's parameters by the rule `exec` loads them with
//! ([`crate::model::weights::match_weights`]), so a file `check` passes loads, and a wrong,
//! truncated or mis-shaped one is E0417 on the key that names it.

use super::{Plan, PlanError, default_shape};
use crate::ir::DType;
use crate::model::net::{Detector, GraphMode};
use crate::model::weights::{Shapes, match_weights, read_shapes};
use crate::recipe::{CheckedRecipe, Diagnostic};

/// E0417 for each weights file of the plan that its rule would refuse, or that cannot be read
/// as weights; labelled on the recipe `r` the plan was made from.
pub fn check_weights(r: &CheckedRecipe, plan: &Plan) -> Vec<Diagnostic> {
    let named = &plan.training.weights;
    if named.is_empty() {
        return Vec::new();
    }
    let model = match model_shapes(plan) {
        Ok(m) => m,
        // The plan built this model; no weights verdict without it.
        Err(_) => return Vec::new(),
    };
    let at = |key: &str| r.spans.get(key).or_else(|| r.spans.nearest(key));
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

/// Every parameter and buffer of the planned detector, from its eval graph (the train graph
/// holds the same parameters).
fn model_shapes(plan: &Plan) -> Result<Shapes, PlanError> {
    let built = Detector::new(plan.model.clone())
        .map_err(|e| PlanError(e.to_string()))?
        .build(GraphMode::Eval, 1, default_shape(&plan.data).hw, DType::F32)
        .map_err(|e| PlanError(e.to_string()))?;
    Ok(built
        .graph
        .params
        .iter()
        .map(|(k, s)| (k.clone(), s.shape.clone()))
        .collect())
}
