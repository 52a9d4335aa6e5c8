//! The weights files a recipe names and the rule each is loaded by:
//! `model.backbone.init_cfg = pretrained(…)` and `runtime.load_from` (a path, or
//! `pretrained { … }` for a prefix, `strict` or `skip`). `plan` makes them from the typed
//! recipe; `exec` loads them and `check` matches their headers, so both apply the same rule.

use super::LoadRule;
use crate::model::config::InitConfig;
use serde::Deserialize;
use std::path::PathBuf;

/// A weights file a recipe names.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The recipe key that names it (for messages and diagnostics).
    pub key: &'static str,
    pub path: PathBuf,
    pub rule: LoadRule,
}

/// `runtime.load_from`: a weights file, or `pretrained { … }` with a rule.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum LoadFrom {
    File(String),
    Pretrained(InitConfig),
}

/// The recipe's weights files in the order they are applied: the backbone's `init_cfg`, then
/// `load_from` (which may override any weight).
pub fn sources(backbone_init: Option<&InitConfig>, load_from: Option<&LoadFrom>) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(init) = backbone_init {
        out.push(pretrained("model.backbone.init_cfg", init, "backbone."));
    }
    match load_from {
        None => {}
        Some(LoadFrom::File(path)) => out.push(Source {
            key: "runtime.load_from",
            path: path.into(),
            rule: LoadRule::exact(),
        }),
        Some(LoadFrom::Pretrained(init)) => out.push(pretrained("runtime.load_from", init, "")),
    }
    out
}

fn pretrained(key: &'static str, init: &InitConfig, target: &str) -> Source {
    let InitConfig::Pretrained {
        checkpoint,
        prefix,
        strict,
        skip,
    } = init;
    let base = LoadRule {
        target: target.to_string(),
        ..LoadRule::exact()
    };
    Source {
        key,
        path: checkpoint.into(),
        rule: LoadRule {
            strict: *strict,
            skip: skip.clone(),
            ..base.with_prefix(prefix.as_deref())
        },
    }
}
