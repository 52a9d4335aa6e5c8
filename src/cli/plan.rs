//! `mmrun plan`: arguments and output only; the work happens in `crate::plan`.

use crate::plan::{PlanShape, plan};
use crate::recipe::{self, CheckOptions};

/// Arguments of `mmrun plan`.
#[derive(clap::Args)]
pub struct Args {
    /// Recipe files to plan.
    #[arg(required = true)]
    pub inputs: Vec<std::path::PathBuf>,
    /// Override a value: `--set model.bbox_head.num_classes=20`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Images per step (default: the recipe's `data.samples_per_gpu`).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Padded input `HxW` (default: the recipe's resize scale padded to its size divisor).
    #[arg(long, value_name = "HxW")]
    pub size: Option<String>,
}

fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (h, w) = s.split_once(['x', 'X'])?;
    let (h, w) = (h.trim().parse().ok()?, w.trim().parse().ok()?);
    (h > 0 && w > 0).then_some((h, w))
}

pub fn run(args: Args) -> u8 {
    let size = match args.size.as_deref().map(parse_size) {
        Some(None) => {
            crate::errln!("error: --size must look like 800x1344");
            return super::EXIT_CANNOT_RUN;
        }
        Some(Some(s)) => Some(s),
        None => None,
    };
    let opts = CheckOptions {
        no_fs: true,
        ..Default::default()
    };
    let mut worst = super::EXIT_OK;
    for input in &args.inputs {
        if !input.is_file() {
            crate::errln!("error: cannot read `{}`: no such file", input.display());
            return super::EXIT_CANNOT_RUN;
        }
        let r = match recipe::load(input, &args.set, &opts) {
            Ok(r) => r,
            Err(e) => {
                crate::err!("{e}");
                worst = worst.max(super::EXIT_PROBLEMS);
                continue;
            }
        };
        let shape = match (args.batch, size) {
            (None, None) => None,
            (b, s) => {
                let d = crate::plan::default_shape(&r);
                Some(PlanShape {
                    batch: b.unwrap_or(d.batch),
                    hw: s.unwrap_or(d.hw),
                })
            }
        };
        match plan(&r, shape) {
            Ok(p) => {
                crate::outln!("plan: {}", input.display());
                crate::out!("{p}");
            }
            Err(e) => {
                crate::errln!("error: {}: {e}", input.display());
                worst = worst.max(super::EXIT_PROBLEMS);
            }
        }
    }
    worst
}
