//! The weights files a checked recipe names and the rule each is loaded by:
//! `model.backbone.init_cfg = pretrained(…)` and `runtime.load_from` (a path, or
//! `pretrained { … }` for a prefix, `strict` or `skip`). Read by `exec` to load them and by
//! `check` to match their headers, so both apply the same rule.

use super::LoadRule;
use crate::model::config::InitConfig;
use serde_json::Value;
use std::path::PathBuf;

/// A weights file a recipe names.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The recipe key that names it (for messages and diagnostics).
    pub key: &'static str,
    pub path: PathBuf,
    pub rule: LoadRule,
}

/// The recipe's weights files in the order they are applied: the backbone's `init_cfg`, then
/// `load_from` (which may override any weight). A value that names weights but cannot be read
/// as such is an error, never skipped: a named file is loaded or the run does not start.
pub fn sources(config: &Value) -> Result<Vec<Source>, String> {
    let named = [
        (
            "model.backbone.init_cfg",
            "/model/backbone/init_cfg",
            "backbone.",
        ),
        ("runtime.load_from", "/runtime/load_from", ""),
    ];
    let mut out = Vec::new();
    for (key, pointer, target) in named {
        match config.pointer(pointer) {
            None | Some(Value::Null) => {}
            Some(v) => out.push(source(key, v, target)?),
        }
    }
    Ok(out)
}

fn source(key: &'static str, v: &Value, target: &str) -> Result<Source, String> {
    let base = LoadRule {
        target: target.to_string(),
        ..LoadRule::exact()
    };
    let (path, rule) = match v {
        Value::String(path) => (path.clone(), base),
        Value::Object(_) => {
            let InitConfig::Pretrained {
                checkpoint,
                prefix,
                strict,
                skip,
            } = serde_json::from_value(v.clone()).map_err(|e| format!("{key}: {e}"))?;
            let rule = LoadRule {
                strict,
                skip,
                ..base.with_prefix(prefix.as_deref())
            };
            (checkpoint, rule)
        }
        other => {
            return Err(format!(
                "{key}: not a weights file or `pretrained {{ … }}`: {other}"
            ));
        }
    };
    Ok(Source {
        key,
        path: path.into(),
        rule,
    })
}
