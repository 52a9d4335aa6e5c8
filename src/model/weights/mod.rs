//! Loading pretrained weights: safetensors files and PyTorch `.pth` zip checkpoints (through a
//! restricted pickle reader that cannot execute code), key mapping onto mmrun's parameter names,
//! and a report of missing / unexpected / mis-shaped keys (strict or not).

pub mod pickle;
mod pth;

pub use pth::load_pth;

use std::collections::BTreeMap;
use std::path::Path;

/// A dense host tensor in `f32` (other float and integer dtypes are converted on load).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Named tensors from a weights file.
pub type StateDict = BTreeMap<String, HostTensor>;

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
    #[error("{path}: strict loading failed: {report}")]
    Strict { path: String, report: LoadReport },
}

/// What loading matched.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Expected parameters not found in the file.
    pub missing: Vec<String>,
    /// Keys in the file (after mapping) that no parameter expects.
    pub unexpected: Vec<String>,
    /// `(name, expected shape, file shape)`.
    pub shape_mismatch: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl LoadReport {
    /// Nothing missing, unexpected or mis-shaped.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shape_mismatch.is_empty()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} loaded", self.loaded.len())?;
        if !self.missing.is_empty() {
            write!(f, "; missing keys: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; unexpected keys: {}", self.unexpected.join(", "))?;
        }
        for (k, e, g) in &self.shape_mismatch {
            write!(f, "; size mismatch for {k}: expected {e:?}, file has {g:?}")?;
        }
        Ok(())
    }
}

/// Read a `.safetensors` file.
pub fn load_safetensors(path: &Path) -> Result<StateDict, WeightsError> {
    let p = path.display().to_string();
    let bytes =
        crate::util::read::regular_file(path, crate::util::read::UNLIMITED).map_err(|source| {
            WeightsError::Io {
                path: p.clone(),
                source,
            }
        })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
        path: p.clone(),
        msg: e.to_string(),
    })?;
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        use safetensors::Dtype as D;
        let d = view.data();
        let data: Vec<f32> = match view.dtype() {
            D::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            D::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            D::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            D::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            D::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            other => {
                return Err(WeightsError::Format {
                    path: p,
                    msg: format!("tensor `{name}` has unsupported dtype {other:?}"),
                });
            }
        };
        out.insert(
            name,
            HostTensor {
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

/// How file keys become parameter names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyMap {
    /// Prefixes stripped from file keys first (e.g. `module.` from DataParallel checkpoints).
    pub strip_prefixes: Vec<String>,
    /// Prefix added after stripping (e.g. `backbone.` for a torchvision ResNet).
    pub add_prefix: String,
    /// File keys ending with one of these are dropped silently (e.g. `num_batches_tracked`).
    pub skip_suffixes: Vec<String>,
}

impl KeyMap {
    /// torchvision ResNet → mmrun backbone: mmdetection's ResNet uses torchvision's names
    /// (`layer1.0.conv1.weight`, `layer1.0.downsample.1.running_var` …), so only the
    /// `backbone.` prefix is added; `num_batches_tracked` buffers have no counterpart; `fc.*`
    /// comes out as unexpected.
    pub fn torchvision_resnet() -> Self {
        Self {
            strip_prefixes: vec!["module.".into()],
            add_prefix: "backbone.".into(),
            skip_suffixes: vec!["num_batches_tracked".into()],
        }
    }

    /// The parameter name for a file key, or `None` to skip it.
    pub fn map(&self, key: &str) -> Option<String> {
        if self.skip_suffixes.iter().any(|s| key.ends_with(s.as_str())) {
            return None;
        }
        let mut k = key;
        for p in &self.strip_prefixes {
            if let Some(rest) = k.strip_prefix(p.as_str()) {
                k = rest;
            }
        }
        Some(format!("{}{}", self.add_prefix, k))
    }
}

/// Match a file's tensors to the `expected` parameters (`name → shape`).
///
/// Returns the tensors to load (only those whose name and shape match) and a report. In strict
/// mode any missing, unexpected or mis-shaped key is an error; otherwise the report says what
/// was left out, as mmcv's `load_checkpoint(strict=False)` warns.
pub fn match_state_dict(
    path: &str,
    file: StateDict,
    expected: &BTreeMap<String, Vec<usize>>,
    map: &KeyMap,
    strict: bool,
) -> Result<(StateDict, LoadReport), WeightsError> {
    let mut report = LoadReport::default();
    let mut out = StateDict::new();
    for (key, t) in file {
        let Some(name) = map.map(&key) else { continue };
        match expected.get(&name) {
            None => report.unexpected.push(name),
            Some(shape) if *shape != t.shape => {
                report
                    .shape_mismatch
                    .push((name, shape.clone(), t.shape.clone()))
            }
            Some(_) => {
                report.loaded.push(name.clone());
                out.insert(name, t);
            }
        }
    }
    report.missing = expected
        .keys()
        .filter(|k| !out.contains_key(*k))
        .cloned()
        .collect();
    if strict && !report.is_clean() {
        return Err(WeightsError::Strict {
            path: path.to_owned(),
            report,
        });
    }
    Ok((out, report))
}

/// Load a weights file into a parameter store for `graph`: keys mapped by `map`, matched
/// against the graph's parameters and buffers (BN running statistics included), values cast to
/// the store's dtype. Returns what was loaded and what was not (an error in strict mode).
pub fn load_into_store(
    path: &Path,
    store: &mut crate::graph::ParamStore,
    graph: &crate::graph::Graph,
    map: &KeyMap,
    strict: bool,
) -> Result<LoadReport, WeightsError> {
    let p = path.display().to_string();
    let file = load_weights(path)?;
    let expected: BTreeMap<String, Vec<usize>> = graph
        .params
        .iter()
        .map(|(k, s)| (k.clone(), s.shape.clone()))
        .collect();
    let (tensors, report) = match_state_dict(&p, file, &expected, map, strict)?;
    for (name, t) in tensors {
        let dtype = graph.params[&name].dtype;
        let v = crate::graph::HostTensor::f32(t.shape, t.data)
            .map_err(|msg| WeightsError::Format {
                path: p.clone(),
                msg: format!("{name}: {msg}"),
            })?
            .cast(dtype);
        store.set(&name, &v).map_err(|msg| WeightsError::Format {
            path: p.clone(),
            msg: format!("{name}: {msg}"),
        })?;
    }
    Ok(report)
}
