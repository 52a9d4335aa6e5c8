//! Named f32 tensors and their safetensors encoding, and weight loading with a report.

use crate::engine::params::ParamSet;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};

/// A tensor as checkpoints hold it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Named tensors, sorted by name (the order safetensors writes anyway).
pub type Tensors = BTreeMap<String, Tensor>;

/// Every buffer of a parameter set (trainable or not) as tensors.
pub fn params_to_tensors(params: &ParamSet) -> Tensors {
    params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                Tensor {
                    shape: p.shape.clone(),
                    data: p.value.clone(),
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

pub(super) fn decode(bytes: &[u8]) -> Result<Tensors, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = Tensors::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor `{name}` is {:?}; mmrun checkpoints hold f32",
                view.dtype()
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// What `load_from` did: mmcv's missing/unexpected-key report plus shape mismatches (which
/// are skipped rather than loaded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    /// `(name, checkpoint shape, model shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl LoadReport {
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loaded {} tensors", self.loaded.len())?;
        if !self.missing.is_empty() {
            write!(
                f,
                "\nmissing keys in the checkpoint: {}",
                self.missing.join(", ")
            )?;
        }
        if !self.unexpected.is_empty() {
            write!(
                f,
                "\nunexpected keys in the checkpoint: {}",
                self.unexpected.join(", ")
            )?;
        }
        for (n, a, b) in &self.mismatched {
            write!(
                f,
                "\nshape mismatch for {n}: checkpoint {a:?}, model {b:?} (skipped)"
            )?;
        }
        Ok(())
    }
}

/// Copy tensors into the parameters of the same name; report the rest.
pub fn load_weights_into(params: &mut ParamSet, tensors: &Tensors) -> LoadReport {
    let mut r = LoadReport::default();
    for p in params.iter_mut() {
        match tensors.get(&p.name) {
            None => r.missing.push(p.name.clone()),
            Some(t) if t.shape != p.shape => {
                r.mismatched
                    .push((p.name.clone(), t.shape.clone(), p.shape.clone()))
            }
            Some(t) => {
                p.value.copy_from_slice(&t.data);
                r.loaded.push(p.name.clone());
            }
        }
    }
    r.unexpected = tensors
        .keys()
        .filter(|k| params.get(k).is_none())
        .cloned()
        .collect();
    r
}

/// Read a plain `.safetensors` weights file (for `load_from`).
pub fn read_safetensors(path: &std::path::Path) -> Result<Tensors, String> {
    let bytes = crate::util::read::regular_file(path, crate::util::read::UNLIMITED)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}
