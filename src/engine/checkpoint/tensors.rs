//! Named f32 tensors and their safetensors encoding, and weight loading with a report.

use crate::engine::params::ParamSet;
use crate::model::weights::{
    LoadReport, LoadRule, Matched, SafetensorsDtypes, SafetensorsError, Shapes, decode_safetensors,
    match_weights,
};
use safetensors::{Dtype, tensor::TensorView};
use std::collections::HashMap;

/// A tensor as checkpoints hold it: the same host tensor the weight readers give.
pub type Tensor = crate::model::weights::WeightTensor;

/// Named tensors, sorted by name (the order safetensors writes anyway).
pub type Tensors = crate::model::weights::StateDict;

/// Every buffer of a parameter set (trainable or not) as tensors.
pub fn params_to_tensors(params: &ParamSet) -> Tensors {
    params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                Tensor {
                    shape: p.shape().to_vec(),
                    data: p.values().to_vec(),
                },
            )
        })
        .collect()
}

pub(super) fn encode(
    tensors: &Tensors,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let b: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (k.clone(), t.shape.clone(), b)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("tensor `{k}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, metadata).map_err(|e| e.to_string())
}

pub(super) fn decode(bytes: &[u8]) -> Result<Tensors, SafetensorsError> {
    decode_safetensors(bytes, SafetensorsDtypes::F32Only)
}

/// The names and shapes of a parameter set, as weight matching reads them.
pub fn param_shapes(params: &ParamSet) -> Shapes {
    params
        .iter()
        .map(|p| (p.name.clone(), p.shape().to_vec()))
        .collect()
}

/// Matches `tensors` to `params` by `rule` (names and shapes only; nothing is copied).
pub fn match_params(params: &ParamSet, tensors: &Tensors, rule: &LoadRule) -> Matched {
    let shapes: Shapes = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    match_weights(&shapes, &param_shapes(params), rule)
}

/// Copies the matched tensors into their parameters.
pub fn copy_matched(params: &mut ParamSet, tensors: &Tensors, m: &Matched) {
    for (key, name) in &m.pairs {
        if let (Some(t), Some(p)) = (tensors.get(key), params.get_mut(name)) {
            p.values_mut().copy_from_slice(&t.data);
        }
    }
}

/// Copies `tensors` into `params` by `rule`; what was copied and what was not is the report.
/// The caller decides from the report whether the load was acceptable.
pub fn load_weights_by(params: &mut ParamSet, tensors: &Tensors, rule: &LoadRule) -> LoadReport {
    let m = match_params(params, tensors, rule);
    copy_matched(params, tensors, &m);
    m.report
}

/// Copies tensors into the parameters of the same name (resume: the report says whether the
/// checkpoint was exact).
pub fn load_weights_into(params: &mut ParamSet, tensors: &Tensors) -> LoadReport {
    load_weights_by(params, tensors, &LoadRule::exact())
}
