//! The recipe's detector as a [`Task`] (model graph + data loaders + evaluator), the one
//! place where `mmrun exec`/`mmrun test` turn `model` and `data` sections into something the
//! runner can drive.

use crate::engine::params::ParamSet;
use crate::engine::task::Task;

/// Build the task and its parameters from a checked config tree.
pub fn build_task(config: &serde_json::Value) -> Result<(Box<dyn Task>, ParamSet), String> {
    let Some(model) = config.get("model").filter(|m| !m.is_null()) else {
        return Err("the recipe has no `model` section: there is nothing to train".into());
    };
    if config.get("data").is_none_or(|d| d.is_null()) {
        return Err("the recipe has no `data` section: there is nothing to train on".into());
    }
    let ty = model.get("type").and_then(|t| t.as_str()).unwrap_or("?");
    Err(format!(
        "this build cannot construct the `{ty}` detector for training yet: the detector \
         networks are not connected to the runner (engine::detector)"
    ))
}
