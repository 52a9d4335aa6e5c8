//! `init_cfg = pretrained(file, prefix = …)` on the backbone: mmcv's `Pretrained` initialiser.
//! Applied when a run starts from scratch: before `load_from` (which may override any weight)
//! and never on resume (the checkpoint restores every weight).
//!
//! The file is a torchvision or mmcv `.pth` (read by the restricted pickle reader: no code
//! runs) or a safetensors file in f32/f16/bf16. Its keys are the backbone's own
//! (`layer1.0.conv1.weight`, torchvision's names, which mmdetection's ResNet keeps); `prefix`
//! selects and strips a subtree of a whole-detector checkpoint (`prefix = "backbone."`), as
//! mmcv does. Like mmcv (`strict=False`), missing and unexpected keys are reported, not fatal;
//! a shape mismatch, or a file of which nothing matches, stops the run before it starts.

use crate::engine::checkpoint::{Tensor, Tensors};
use crate::engine::runner::Runner;
use serde_json::Value;
use std::path::Path;

/// Loads the backbone's pretrained weights the config names, if any; the note says what was
/// loaded and what was not.
pub fn load_backbone(config: &Value, runner: &mut Runner) -> Result<Option<String>, String> {
    let Some(init) = config
        .pointer("/model/backbone/init_cfg")
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let key = "model.backbone.init_cfg";
    let file = init
        .get("checkpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key}: no checkpoint file"))?;
    // mmcv appends the dot a prefix lacks.
    let prefix = init.get("prefix").and_then(Value::as_str).map(|p| {
        if p.ends_with('.') {
            p.to_string()
        } else {
            format!("{p}.")
        }
    });
    let state = read_weights(Path::new(file)).map_err(|e| format!("{key}: {e}"))?;
    let first_key = state.keys().next().cloned().unwrap_or_default();
    let mut tensors = Tensors::new();
    for (name, t) in state {
        let name = match &prefix {
            Some(p) => match name.strip_prefix(p.as_str()) {
                Some(rest) => rest,
                None => continue,
            },
            None => name.as_str(),
        };
        // A counter PyTorch keeps beside BN statistics; mmrun's BN has no use for it.
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        tensors.insert(format!("backbone.{name}"), t);
    }
    let report = runner.load_weights(&tensors);
    if !report.mismatched.is_empty() {
        let what: Vec<String> = report
            .mismatched
            .iter()
            .map(|(k, file_shape, model_shape)| {
                format!("{k}: file {file_shape:?}, model {model_shape:?}")
            })
            .collect();
        return Err(format!(
            "{key}: {file} does not fit this backbone (a different depth or width?): {}",
            listed(&what)
        ));
    }
    if report.loaded.is_empty() {
        let hint = match &prefix {
            None => "; a whole-detector checkpoint needs `prefix = \"backbone.\"`",
            Some(_) => "",
        };
        return Err(format!(
            "{key}: no tensor of {file} matches a backbone parameter (its keys look like \
             `{first_key}`{}){hint}",
            prefix.map_or_else(String::new, |p| format!(", selected by prefix `{p}`"))
        ));
    }
    let mut note = format!(
        "init_cfg: loaded {} backbone tensors from {file}",
        report.loaded.len()
    );
    let missing: Vec<String> = report
        .missing
        .into_iter()
        .filter(|k| k.starts_with("backbone."))
        .collect();
    if !missing.is_empty() {
        note.push_str(&format!(
            "; missing (left as initialised): {}",
            listed(&missing)
        ));
    }
    if !report.unexpected.is_empty() {
        let unexpected: Vec<String> = report
            .unexpected
            .iter()
            .map(|k| k.trim_start_matches("backbone.").to_string())
            .collect();
        note.push_str(&format!(
            "; unexpected in the file: {}",
            listed(&unexpected)
        ));
    }
    Ok(Some(note))
}

/// A weights file as named tensors: a PyTorch `.pth`/`.pt`/`.bin` zip (a bare state dict or
/// mmcv's `{"state_dict": ..., "meta": ...}`, through the restricted reader) or safetensors in
/// any float dtype, cast to f32; DataParallel's `module.` prefix dropped.
pub fn read_weights(path: &Path) -> Result<Tensors, String> {
    let state = crate::model::weights::load_weights(path).map_err(|e| e.to_string())?;
    Ok(state
        .into_iter()
        .map(|(name, t)| {
            let name = match name.strip_prefix("module.") {
                Some(rest) => rest.to_string(),
                None => name,
            };
            let t = Tensor {
                shape: t.shape,
                data: t.data,
            };
            (name, t)
        })
        .collect())
}

/// The first few names, and how many more.
fn listed(names: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut s = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}
