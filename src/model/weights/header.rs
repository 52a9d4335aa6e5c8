//! Names and shapes of a weights file without its tensor data: what `mmrun check` matches
//! against the planned model. A safetensors file is read up to the end of its JSON header; a
//! `.pth` archive's pickle is read and its views checked against the sizes of their storages
//! in the archive's directory; a checkpoint folder is read through its `model.safetensors`.

use super::{CHECKPOINT_WEIGHTS, Shapes, WeightsError, pth_shapes};
use std::io::Read;
use std::path::Path;

/// safetensors' own bound on the header (100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The names and shapes of the tensors a weights file (or an mmrun checkpoint folder) holds.
pub fn read_shapes(path: &Path) -> Result<Shapes, WeightsError> {
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| WeightsError::Io {
        path: p.clone(),
        source,
    })?;
    if meta.is_dir() {
        return safetensors_shapes(&path.join(CHECKPOINT_WEIGHTS));
    }
    if !meta.is_file() {
        return Err(WeightsError::Format {
            path: p,
            msg: "not a regular file".into(),
        });
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => safetensors_shapes(path),
        _ => pth_shapes(path),
    }
}

/// A safetensors header: `{name: {dtype, shape, data_offsets}, "__metadata__": {…}}`, each
/// entry's byte range checked against its shape and dtype and against the file's length.
fn safetensors_shapes(path: &Path) -> Result<Shapes, WeightsError> {
    let p = path.display().to_string();
    let fmt = |msg: String| WeightsError::Format {
        path: p.clone(),
        msg,
    };
    let io = |source| WeightsError::Io {
        path: p.clone(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| fmt("shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES || n > file_len - 8 {
        return Err(fmt(format!(
            "a safetensors header of {n} bytes in a file of {file_len}"
        )));
    }
    let mut header = Vec::new();
    f.take(n).read_to_end(&mut header).map_err(io)?;
    let entries: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| {
            fmt(format!(
                "the safetensors header is not JSON of tensors: {e}"
            ))
        })?;
    let data_len = file_len - 8 - n;
    let mut out = Shapes::new();
    for (name, e) in entries {
        if name == "__metadata__" {
            continue;
        }
        let bad = || fmt(format!("tensor `{name}`: a malformed header entry"));
        let shape: Vec<usize> = e
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(bad)?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let size = match e.get("dtype").and_then(|d| d.as_str()).ok_or_else(bad)? {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "I8" | "U8" | "BOOL" => 1,
            other => {
                return Err(fmt(format!(
                    "tensor `{name}` has unsupported dtype {other}"
                )));
            }
        };
        let offsets = e
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .filter(|o| o.len() == 2)
            .ok_or_else(bad)?;
        let (start, end) = (offsets[0].as_u64(), offsets[1].as_u64());
        let bytes = shape
            .iter()
            .try_fold(size as u64, |acc, &d| acc.checked_mul(d as u64));
        match (start, end, bytes) {
            (Some(s), Some(e), Some(b)) if s <= e && e <= data_len && e - s == b => {}
            _ => {
                return Err(fmt(format!(
                    "tensor `{name}`: its bytes do not fit its shape {shape:?} or the file \
                     (truncated?)"
                )));
            }
        }
        out.insert(name, shape);
    }
    Ok(out)
}
