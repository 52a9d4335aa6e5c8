//! `mmrun export`: arguments and output only. The file's extension picks what is written:
//! `.safetensors`, the weights renamed and encoded by `crate::model::weights::export`;
//! `.onnx`, the inference network built and translated by `crate::model::onnx`, from the
//! model config the run recorded in its work dir (`config.json`, matched to the checkpoint
//! by its recipe hash) or the recipe `--recipe` names. The checkpoint is read by
//! `crate::engine::checkpoint`.

use crate::data::config::{DataConfig, TransformConfig};
use crate::engine::checkpoint::{CheckpointData, load_checkpoint};
use crate::model::config::DetectorConfig;
use crate::model::weights::export::{Naming, to_safetensors};
use std::path::{Path, PathBuf};

/// Arguments of `mmrun export`.
#[derive(clap::Args)]
pub struct Args {
    /// An mmrun checkpoint folder (`work_dirs/…/checkpoints/epoch_12`).
    pub checkpoint: PathBuf,
    /// The file to write: `….safetensors` (the weights) or `….onnx` (the inference network,
    /// ONNX opset 17; see docs/onnx.md).
    #[arg(long)]
    pub out: PathBuf,
    /// safetensors: whose parameter names to write, mmdetection's whole detector or
    /// torchvision's ResNet (the backbone alone) [default: mmdet].
    #[arg(long, value_enum)]
    pub names: Option<Names>,
    /// Export the EMA weights the checkpoint holds instead of the trained ones.
    #[arg(long)]
    pub ema: bool,
    /// ONNX: the input's `HxW` (default: the padded size of the recipe's test pipeline).
    #[arg(long, value_name = "HxW")]
    pub size: Option<String>,
    /// ONNX: the recipe the checkpoint was trained with (default: the `config.json` its run
    /// wrote in the work dir above the checkpoint).
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// ONNX with `--recipe`: override a value, as `exec --set` does.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Names {
    Mmdet,
    Torchvision,
}

/// Why an export stopped: a message to print, or an exit status whose report is printed.
enum Failed {
    Message(String),
    Printed(u8),
}

impl From<String> for Failed {
    fn from(m: String) -> Self {
        Failed::Message(m)
    }
}

pub fn run(args: Args) -> u8 {
    let result = match args.out.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => safetensors(&args).map_err(Failed::Message),
        Some("onnx") => onnx(&args),
        _ => Err(Failed::Message(format!(
            "--out {}: name the file `….safetensors` (the weights) or `….onnx` (the inference \
             network); the extension picks the format",
            args.out.display()
        ))),
    };
    match result {
        Ok(note) => {
            crate::outln!("{note}");
            super::EXIT_OK
        }
        Err(Failed::Message(e)) => {
            crate::errln!("error: {e}");
            super::EXIT_CANNOT_RUN
        }
        Err(Failed::Printed(code)) => code,
    }
}

/// The checkpoint's weights (its EMA weights with `--ema`).
fn weights(args: &Args) -> Result<(CheckpointData, crate::model::weights::StateDict), String> {
    let mut data = load_checkpoint(&args.checkpoint).map_err(|e| e.to_string())?;
    let weights = match args.ema {
        true => data.ema.take().ok_or_else(|| {
            format!(
                "{}: the checkpoint holds no EMA weights (the run had no `ema` hook)",
                args.checkpoint.display()
            )
        })?,
        false => std::mem::take(&mut data.weights),
    };
    Ok((data, weights))
}

fn write(out: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::util::atomic_file::write_atomic(out, bytes)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

fn safetensors(args: &Args) -> Result<String, String> {
    for (given, flag) in [
        (args.size.is_some(), "--size"),
        (args.recipe.is_some(), "--recipe"),
        (!args.set.is_empty(), "--set"),
    ] {
        if given {
            return Err(format!(
                "{flag} applies to ONNX exports (`--out ….onnx`), not to --out {}",
                args.out.display()
            ));
        }
    }
    let (data, weights) = weights(args)?;
    let names = args.names.unwrap_or(Names::Mmdet);
    let naming = match names {
        Names::Mmdet => Naming::Mmdet,
        Names::Torchvision => Naming::Torchvision,
    };
    let metadata = [
        ("format".to_string(), "pt".to_string()),
        ("mmrun_version".into(), env!("CARGO_PKG_VERSION").into()),
        ("epoch".into(), data.state.epoch.to_string()),
        ("iter".into(), data.state.iter.to_string()),
    ]
    .into();
    let bytes = to_safetensors(&weights, naming, metadata)
        .map_err(|e| format!("{}: {e}", args.checkpoint.display()))?;
    write(&args.out, &bytes)?;
    Ok(format!(
        "wrote {} ({}, {} bytes)",
        args.out.display(),
        match names {
            Names::Mmdet => "mmdetection names",
            Names::Torchvision => "torchvision ResNet names",
        },
        bytes.len()
    ))
}

fn onnx(args: &Args) -> Result<String, Failed> {
    if args.names.is_some() {
        return Err(format!(
            "--names applies to safetensors exports; --out {} is an ONNX file, which holds the \
             whole inference network under mmrun's own names",
            args.out.display()
        )
        .into());
    }
    if !args.set.is_empty() && args.recipe.is_none() {
        return Err(Failed::Message("--set needs --recipe".into()));
    }
    let size = (args.size.as_deref())
        .map(|s| super::parse_size(s).map_err(|e| format!("--size {s}: {e}")))
        .transpose()?;
    let (data, weights) = weights(args)?;
    let (model, data_cfg) = match &args.recipe {
        Some(r) => {
            let (_, plan) =
                super::setup::load_recipe(r, &args.set, true).map_err(Failed::Printed)?;
            (plan.model, Some(plan.data))
        }
        None => recorded_config(&args.checkpoint, &data.state.recipe_hash)?,
    };
    let hw = match size {
        Some(hw) => hw,
        None => (data_cfg.as_ref().and_then(test_size)).ok_or_else(|| {
            "--size HxW is needed: the recipe's test pipeline does not fix an input size \
             (no resize with a scale, or no pad)"
                .to_string()
        })?,
    };
    let mut meta = vec![
        (
            "mmrun_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("epoch".into(), data.state.epoch.to_string()),
        ("iter".into(), data.state.iter.to_string()),
        (
            "weights".into(),
            if args.ema { "ema" } else { "model" }.into(),
        ),
    ];
    if let Some(n) = data_cfg.as_ref().and_then(normalize) {
        meta.push(("normalize".into(), n));
    }
    let exported = crate::model::onnx::export_detector(&model, &weights, hw, &meta)
        .map_err(|e| format!("{}: {e}", args.checkpoint.display()))?;
    write(&args.out, &exported.bytes)?;
    let shape = |s: &[usize]| format!("{s:?}");
    let outputs: Vec<String> = (exported.outputs.iter())
        .map(|(n, s)| format!("{n} {}", shape(s)))
        .collect();
    Ok(format!(
        "wrote {} (ONNX opset {}, {} at {}x{}: input `{}` {}; outputs {}; {} bytes)",
        args.out.display(),
        crate::model::onnx::OPSET,
        model.type_name(),
        hw.0,
        hw.1,
        crate::model::onnx::INPUT,
        shape(&exported.input),
        outputs.join(", "),
        exported.bytes.len()
    ))
}

/// `HxW` → `(h, w)`.
/// The model and data sections of the `config.json` the checkpoint's run wrote: in the
/// checkpoint folder's parent (the checkpoints folder) or the one above (the work dir),
/// whichever has the recipe hash the checkpoint recorded.
fn recorded_config(
    ckpt: &Path,
    hash: &str,
) -> Result<(DetectorConfig, Option<DataConfig>), String> {
    let mut seen = Vec::new();
    for dir in ckpt.ancestors().skip(1).take(2) {
        let path = dir.join("config.json");
        if !path.is_file() {
            continue;
        }
        let text = crate::util::read::regular_text(&path, crate::util::read::UNLIMITED)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        if !hash.is_empty() && crate::engine::job::config_hash(&config) != hash {
            seen.push(path.display().to_string());
            continue;
        }
        let model = DetectorConfig::from_value(&config["model"])
            .map_err(|e| format!("{}: model: {e}", path.display()))?;
        let data = serde_json::from_value(config["data"].clone()).ok();
        return Ok((model, data));
    }
    Err(match seen.is_empty() {
        true => format!(
            "{}: no config.json of its run beside it (looked in the two folders above); name \
             the recipe it was trained with: --recipe R.recipe",
            ckpt.display()
        ),
        false => format!(
            "{}: {} was written by another recipe than the checkpoint's (its recipe hash \
             differs); name the recipe it was trained with: --recipe R.recipe",
            ckpt.display(),
            seen.join(" and ")
        ),
    })
}

/// The test pipeline of `data` (the val set's, else the test set's).
fn test_pipeline(data: &DataConfig) -> Option<&[TransformConfig]> {
    let set = data.val.as_ref().or(data.test.as_ref())?;
    Some(&set.params().pipeline)
}

/// The padded input size of the test pipeline: the first (landscape) shape bucket.
fn test_size(data: &DataConfig) -> Option<(usize, usize)> {
    let pipeline = crate::data::Pipeline::new(test_pipeline(data)?).ok()?;
    let [h, w] = *pipeline.bucket_shapes()?.first()?;
    Some((h as usize, w as usize))
}

/// The test pipeline's `normalize`, for the file's metadata.
fn normalize(data: &DataConfig) -> Option<String> {
    test_pipeline(data)?.iter().find_map(|t| match t {
        TransformConfig::Normalize(n) => Some(format!(
            "mean {:?}, std {:?}, to_rgb {}",
            n.mean, n.std, n.to_rgb
        )),
        _ => None,
    })
}
