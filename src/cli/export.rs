//! `mmrun export`: arguments and output only; the tensors are renamed and encoded by
//! `crate::model::weights::export`, the checkpoint read by `crate::engine::checkpoint`.

use crate::model::weights::export::{Naming, to_safetensors};
use std::path::PathBuf;

/// Arguments of `mmrun export`.
#[derive(clap::Args)]
pub struct Args {
    /// An mmrun checkpoint folder (`work_dirs/…/checkpoints/epoch_12`).
    pub checkpoint: PathBuf,
    /// The file to write (`.safetensors`).
    #[arg(long)]
    pub out: PathBuf,
    /// Whose parameter names to write: mmdetection's whole detector, or torchvision's ResNet
    /// (the backbone alone).
    #[arg(long, value_enum, default_value = "mmdet")]
    pub names: Names,
    /// Export the EMA weights the checkpoint holds instead of the trained ones.
    #[arg(long)]
    pub ema: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Names {
    Mmdet,
    Torchvision,
}

pub fn run(args: Args) -> u8 {
    match export(&args) {
        Ok(note) => {
            crate::outln!("{note}");
            super::EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            super::EXIT_CANNOT_RUN
        }
    }
}

fn export(args: &Args) -> Result<String, String> {
    if args.out.extension().is_none_or(|e| e != "safetensors") {
        return Err(format!(
            "--out {}: this build writes safetensors; name the file `….safetensors`",
            args.out.display()
        ));
    }
    let data =
        crate::engine::checkpoint::load_checkpoint(&args.checkpoint).map_err(|e| e.to_string())?;
    let weights = if args.ema {
        data.ema.ok_or_else(|| {
            format!(
                "{}: the checkpoint holds no EMA weights (the run had no `ema` hook)",
                args.checkpoint.display()
            )
        })?
    } else {
        data.weights
    };
    let naming = match args.names {
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
    crate::util::atomic_file::write_atomic(&args.out, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    Ok(format!(
        "wrote {} ({}, {} bytes)",
        args.out.display(),
        match args.names {
            Names::Mmdet => "mmdetection names",
            Names::Torchvision => "torchvision ResNet names",
        },
        bytes.len()
    ))
}
