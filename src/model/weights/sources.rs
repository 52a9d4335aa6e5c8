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
/// `load_from` (which may override any weight).
pub fn sources(config: &Value) -> Vec<Source> {
    let mut out = Vec::new();
    let init = config.pointer("/model/backbone/init_cfg");
    if let Some(s) = init.and_then(|v| source("model.backbone.init_cfg", v, "backbone.")) {
        out.push(s);
    }
    let from = config.pointer("/runtime/load_from");
    if let Some(s) = from.and_then(|v| source("runtime.load_from", v, "")) {
        out.push(s);
    }
    out
}

fn source(key: &'static str, v: &Value, target: &str) -> Option<Source> {
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
            } = serde_json::from_value(v.clone()).ok()?;
            let rule = LoadRule {
                strict,
                skip,
                ..base.with_prefix(prefix.as_deref())
            };
            (checkpoint, rule)
        }
        _ => return None,
    };
    Some(Source {
        key,
        path: path.into(),
        rule,
    })
}
