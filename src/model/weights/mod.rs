//! Weights in: safetensors files, PyTorch `.pth` zip checkpoints (through a restricted pickle
//! reader that cannot execute code) and mmrun checkpoint folders, read whole or as names and
//! shapes only (for `mmrun check`); and the rule that matches them to a model's parameters,
//! with its report ([`matching`]).

pub mod export;
mod header;
pub mod matching;
pub mod pickle;
mod pth;
mod sources;

pub use header::read_shapes;
pub use matching::{LoadReport, LoadRule, Matched, Shapes, match_weights};
pub use pth::{load_pth, pth_shapes};
pub use sources::{LoadFrom, Source, sources};

use std::collections::BTreeMap;
use std::path::Path;

/// A dense host tensor in `f32` (other float and integer dtypes are converted on load).
#[derive(Clone, Debug, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Named tensors from a weights file.
pub type StateDict = BTreeMap<String, WeightTensor>;

/// Why weights could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: String, msg: String },
    #[error("{path}: {source}")]
    Pickle {
        path: String,
        source: pickle::PickleError,
    },
    #[error("{path}: {msg}")]
    Refused { path: String, msg: String },
    /// A safetensors file that does not decode.
    #[error("{path}: {source}")]
    Safetensors {
        path: String,
        #[source]
        source: SafetensorsError,
    },
}

/// Why safetensors bytes could not be decoded; a dtype refused names its tensor.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// Not a safetensors file (its header, its offsets, truncated data).
    #[error(transparent)]
    Parse(#[from] safetensors::SafeTensorError),
    /// A tensor other than f32 where only f32 is read (mmrun's own checkpoints).
    #[error("tensor `{name}` is {dtype:?}; mmrun checkpoints hold f32")]
    NotF32 {
        name: String,
        dtype: safetensors::Dtype,
    },
    /// A tensor of a dtype no weights file needs (bool, u8, …).
    #[error("tensor `{name}` has unsupported dtype {dtype:?}")]
    Unsupported {
        name: String,
        dtype: safetensors::Dtype,
    },
}

/// The file inside an mmrun checkpoint folder that holds the model's weights.
pub const CHECKPOINT_WEIGHTS: &str = "model.safetensors";

/// Read a `.safetensors` file (any float or i64 dtype, converted to f32).
pub fn load_safetensors(path: &Path) -> Result<StateDict, WeightsError> {
    let p = path.display().to_string();
    let bytes =
        crate::util::read::regular_file(path, crate::util::read::UNLIMITED).map_err(|source| {
            WeightsError::Io {
                path: p.clone(),
                source,
            }
        })?;
    decode_safetensors(&bytes, SafetensorsDtypes::Any)
        .map_err(|source| WeightsError::Safetensors { path: p, source })
}

/// Which dtypes [`decode_safetensors`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SafetensorsDtypes {
    /// f32, f64, f16, bf16 and i64, converted to f32 (pretrained weights).
    Any,
    /// f32 only: mmrun's own checkpoints, whose resume must be exact.
    F32Only,
}

/// The tensors of a safetensors file's bytes, as f32; `Err` names the tensor at fault.
pub fn decode_safetensors(
    bytes: &[u8],
    dtypes: SafetensorsDtypes,
) -> Result<StateDict, SafetensorsError> {
    use safetensors::Dtype as D;
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        let d = view.data();
        let data: Vec<f32> = match (view.dtype(), dtypes) {
            (D::F32, _) => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            (dtype, SafetensorsDtypes::F32Only) => {
                return Err(SafetensorsError::NotF32 { name, dtype });
            }
            (D::F64, _) => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            (D::F16, _) => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            (D::BF16, _) => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            (D::I64, _) => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            (dtype, _) => return Err(SafetensorsError::Unsupported { name, dtype }),
        };
        out.insert(
            name,
            WeightTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Read weights by extension: `.safetensors`, or `.pth`/`.pt`/`.bin` through the restricted
/// reader.
pub fn load_weights(path: &Path) -> Result<StateDict, WeightsError> {
    // A FIFO or device would block or never end; a folder is not a weights file.
    let meta = std::fs::metadata(path).map_err(|source| WeightsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if !meta.is_file() {
        return Err(WeightsError::Format {
            path: path.display().to_string(),
            msg: "not a regular file".into(),
        });
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => load_safetensors(path),
        _ => load_pth(path),
    }
}
