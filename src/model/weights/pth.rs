//! PyTorch zip checkpoints (`torch.save`, format since 1.6): `<name>/data.pkl` read by the
//! restricted pickle reader, tensor bytes from `<name>/data/<key>`.

use super::pickle::{self, StorageDtype, TensorRef, Value};
use super::{Shapes, StateDict, WeightTensor, WeightsError};
use std::io::Read;
use std::path::Path;

/// The most bytes a `.pth` may inflate to (pickle and tensor data together): 8 GiB, three
/// times the largest detector checkpoints in common use.
pub const MAX_DECOMPRESSED_BYTES: u64 = 8 << 30;

/// An opened `torch.save` archive: entries are read against one inflation budget.
struct Archive {
    zip: zip::ZipArchive<std::fs::File>,
    /// The folder inside the archive (`archive/` or the file stem).
    root: String,
    /// Bytes that may still be inflated: a zip entry may inflate a thousandfold.
    budget: u64,
    path: String,
}

impl Archive {
    fn open(path: &Path) -> Result<Self, WeightsError> {
        let p = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| WeightsError::Io {
            path: p.clone(),
            source,
        })?;
        let zip = zip::ZipArchive::new(file).map_err(|e| WeightsError::Format {
            path: p.clone(),
            msg: format!(
                "not a PyTorch zip checkpoint ({e}); legacy (pre-1.6) and plain pickle files \
                 are not read"
            ),
        })?;
        Ok(Self {
            zip,
            root: String::new(),
            budget: MAX_DECOMPRESSED_BYTES,
            path: p,
        })
    }

    fn fmt(&self, msg: String) -> WeightsError {
        WeightsError::Format {
            path: self.path.clone(),
            msg,
        }
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>, WeightsError> {
        let f = self.zip.by_name(name).map_err(|e| WeightsError::Format {
            path: self.path.clone(),
            msg: format!("archive entry `{name}`: {e}"),
        })?;
        let mut buf = Vec::new();
        let n = f
            .take(self.budget + 1)
            .read_to_end(&mut buf)
            .map_err(|source| WeightsError::Io {
                path: self.path.clone(),
                source,
            })? as u64;
        if n > self.budget {
            return Err(self.fmt(format!(
                "the archive inflates past {} GiB (at `{name}`)",
                MAX_DECOMPRESSED_BYTES >> 30
            )));
        }
        self.budget -= n;
        Ok(buf)
    }

    /// Elements a storage entry holds, from the archive's directory (nothing inflated).
    fn storage_len(&mut self, t: &TensorRef) -> Result<usize, WeightsError> {
        let name = format!("{}data/{}", self.root, t.storage_key);
        let path = &self.path;
        let size = self
            .zip
            .by_name(&name)
            .map_err(|e| WeightsError::Format {
                path: path.clone(),
                msg: format!("archive entry `{name}`: {e}"),
            })?
            .size();
        Ok(usize::try_from(size).unwrap_or(usize::MAX) / t.dtype.size())
    }

    /// The state dict's tensor records from `data.pkl` (mmcv checkpoints: the dict under
    /// `state_dict`), in file order; no tensor data is read.
    fn records(&mut self) -> Result<Vec<(String, TensorRef)>, WeightsError> {
        let pkl_name = self
            .zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .find(|n| n.ends_with("/data.pkl") || n == "data.pkl")
            .ok_or_else(|| self.fmt("no data.pkl in the archive".into()))?;
        self.root = pkl_name.trim_end_matches("data.pkl").to_owned();
        let pkl = self.read(&pkl_name)?;
        let top = pickle::load(&pkl).map_err(|source| WeightsError::Pickle {
            path: self.path.clone(),
            source,
        })?;
        let Value::Dict(mut items) = top else {
            return Err(self.fmt("the pickled object is not a dict of tensors".into()));
        };
        // mmcv/mmdetection checkpoints: {"meta": ..., "state_dict": {...}, ...}.
        if let Some(pos) = items.iter().position(
            |(k, v)| matches!((k, v), (Value::Str(s), Value::Dict(_)) if s == "state_dict"),
        ) && let Value::Dict(sd) = items.swap_remove(pos).1
        {
            items = sd;
        }
        let mut out = Vec::new();
        for (k, v) in items {
            let Value::Str(name) = k else {
                return Err(self.fmt("a state dict key is not a string".into()));
            };
            // Plain values next to tensors (e.g. an `_extra_state` number) carry no weights.
            if let Value::Tensor(t) = v {
                out.push((name, t));
            }
        }
        Ok(out)
    }
}

/// Read a `.pth` state dict (or a checkpoint dict holding one under `state_dict`).
pub fn load_pth(path: &Path) -> Result<StateDict, WeightsError> {
    let mut zip = Archive::open(path)?;
    let mut storages: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let mut out = StateDict::new();
    for (name, t) in zip.records()? {
        if !storages.contains_key(&t.storage_key) {
            let bytes = zip.read(&format!("{}data/{}", zip.root, t.storage_key))?;
            storages.insert(t.storage_key.clone(), bytes);
        }
        let bytes = &storages[&t.storage_key];
        let data = gather(&t, bytes).map_err(|m| zip.fmt(format!("tensor `{name}`: {m}")))?;
        out.insert(
            name,
            WeightTensor {
                shape: t.shape.clone(),
                data,
            },
        );
    }
    Ok(out)
}

/// The names and shapes of a `.pth` state dict, read from its pickle and the archive's
/// directory alone: each view is checked against its storage's size, no tensor is inflated.
pub fn pth_shapes(path: &Path) -> Result<Shapes, WeightsError> {
    let mut zip = Archive::open(path)?;
    let mut out = Shapes::new();
    for (name, t) in zip.records()? {
        let len = zip.storage_len(&t)?;
        view_len(&t, len).map_err(|m| zip.fmt(format!("tensor `{name}`: {m}")))?;
        out.insert(name, t.shape);
    }
    Ok(out)
}

/// Why a tensor's view does not fit its storage (the file is malformed or hostile).
#[derive(Debug, thiserror::Error)]
enum ViewError {
    /// Its element count or last offset overflows.
    #[error("shape {shape:?} with strides {stride:?} overflows")]
    Overflow {
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
    /// More elements than the storage holds.
    #[error("a view of {numel} elements over a storage of {storage}")]
    TooMany { numel: usize, storage: usize },
    /// An element past the storage's end.
    #[error("view reaches element {index} of a storage of {storage}")]
    OutOfStorage { index: usize, storage: usize },
}

/// Elements of a view over a storage of `numel_storage` elements, when it fits in it.
fn view_len(t: &TensorRef, numel_storage: usize) -> Result<usize, ViewError> {
    let too_big = || ViewError::Overflow {
        shape: t.shape.clone(),
        stride: t.stride.clone(),
    };
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |n, &s| n.checked_mul(s))
        .ok_or_else(too_big)?;
    if numel == 0 {
        return Ok(0);
    }
    // A view may repeat elements (stride 0), but a weights file never needs more elements than
    // its storage holds: a 627-byte file must not become a gigabyte.
    if numel > numel_storage {
        return Err(ViewError::TooMany {
            numel,
            storage: numel_storage,
        });
    }
    let max_index = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&s, &st)| {
            (s - 1).checked_mul(st).and_then(|x| acc.checked_add(x))
        })
        .ok_or_else(too_big)?;
    if max_index >= numel_storage {
        return Err(ViewError::OutOfStorage {
            index: max_index,
            storage: numel_storage,
        });
    }
    Ok(numel)
}

/// Elements of a strided view of a storage, converted to `f32`.
fn gather(t: &TensorRef, bytes: &[u8]) -> Result<Vec<f32>, ViewError> {
    let es = t.dtype.size();
    let numel = view_len(t, bytes.len() / es)?;
    let elem = |i: usize| -> f32 {
        let b = &bytes[i * es..(i + 1) * es];
        match t.dtype {
            StorageDtype::F32 => f32::from_le_bytes(b.try_into().unwrap()),
            StorageDtype::F64 => f64::from_le_bytes(b.try_into().unwrap()) as f32,
            StorageDtype::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            StorageDtype::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            StorageDtype::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f32,
            StorageDtype::I32 => i32::from_le_bytes(b.try_into().unwrap()) as f32,
            StorageDtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            StorageDtype::I8 => b[0] as i8 as f32,
            StorageDtype::U8 | StorageDtype::Bool => b[0] as f32,
        }
    };
    let mut out = Vec::with_capacity(numel);
    let mut idx = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let off = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        out.push(elem(off));
        // Row-major increment.
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < t.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}
