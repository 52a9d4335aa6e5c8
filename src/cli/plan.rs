//! `mmrun plan`: arguments and output only; the work happens in `crate::plan`.

use crate::data::limits::{MAX_BATCH, MAX_SIDE};
use crate::plan::{PlanShape, report};
use crate::recipe::CheckOptions;

/// Arguments of `mmrun plan`.
#[derive(clap::Args)]
pub struct Args {
    /// Recipe files to plan.
    #[arg(required = true)]
    pub inputs: Vec<std::path::PathBuf>,
    /// Override a value: `--set model.bbox_head.num_classes=20`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Images per step, 1 to 1024 (default: the recipe's `data.samples_per_gpu`).
    #[arg(long, value_parser = batch)]
    pub batch: Option<usize>,
    /// Padded input `HxW`, each side 1 to 16384 (default: the recipe's resize scale padded to
    /// its size divisor).
    #[arg(long, value_name = "HxW", value_parser = super::parse_size)]
    pub size: Option<(usize, usize)>,
    /// Output format: text, or one JSON object per recipe (one per line).
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
    /// Also draw the learning rate (and momentum, when scheduled) at every iteration of the
    /// planned run, warmup included, into this PNG (several recipes: one line each); the
    /// train set's annotations are read for its iterations per epoch. With `--format json`
    /// the values are in the recipe's object under `schedule`.
    #[arg(long, value_name = "OUT.png")]
    pub schedule_plot: Option<std::path::PathBuf>,
    /// Iterations per epoch for `--schedule-plot` instead of reading the train set.
    #[arg(long, value_name = "N", value_parser = iters)]
    pub iters_per_epoch: Option<u64>,
    /// The ranks the run will train on, for `--schedule-plot` (iterations per epoch and
    /// `auto_scale_lr` depend on it).
    #[arg(long, value_name = "N", default_value = "1", value_parser = ranks)]
    pub nproc: usize,
}

fn iters(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".into()),
    }
}

fn ranks(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err("expected a whole number from 1 to 4096".into()),
    }
}

fn batch(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_BATCH).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_BATCH}")),
    }
}

/// The recipe's own shape must be within the data loader's limits too (its numbers would
/// overflow the memory plan); the error names the key.
fn check_default(shape: &PlanShape) -> Result<(), String> {
    if shape.batch == 0 || shape.batch > MAX_BATCH {
        return Err(format!(
            "`data.samples_per_gpu` = {} is outside 1..={MAX_BATCH} (or give --batch)",
            shape.batch
        ));
    }
    let (h, w) = shape.hw;
    if h == 0 || w == 0 || h.max(w) > MAX_SIDE {
        return Err(format!(
            "the recipe's input size {h}x{w} (from `data.train.pipeline`) has a side outside \
             1..={MAX_SIDE} (or give --size)"
        ));
    }
    Ok(())
}

pub fn run(args: Args) -> u8 {
    let size = args.size;
    let opts = CheckOptions {
        no_fs: true,
        ..Default::default()
    };
    let mut worst = super::EXIT_OK;
    let mut curves = Vec::new();
    for input in &args.inputs {
        if let Some(why) = super::unreadable_recipe(input) {
            crate::errln!("error: {why}");
            return super::EXIT_CANNOT_RUN;
        }
        let plan = match crate::plan::load(input, &args.set, &opts) {
            Ok((_, plan)) => plan,
            Err(e) => {
                crate::err!("{e}");
                worst = worst.max(super::EXIT_PROBLEMS);
                continue;
            }
        };
        let d = crate::plan::default_shape(&plan.data);
        let shape = PlanShape {
            batch: args.batch.unwrap_or(d.batch),
            hw: size.unwrap_or(d.hw),
        };
        if let Err(e) = check_default(&shape) {
            crate::errln!("error: {}: {e}", input.display());
            worst = worst.max(super::EXIT_PROBLEMS);
            continue;
        }
        let shape = (args.batch.is_some() || size.is_some()).then_some(shape);
        let curve = match args.schedule_plot.is_some().then(|| {
            crate::engine::schedule_curve::of_run(
                &plan.training,
                &plan.data,
                args.iters_per_epoch,
                args.nproc,
            )
        }) {
            Some(Err(e)) => {
                crate::errln!("error: {}: --schedule-plot: {e}", input.display());
                worst = worst.max(super::EXIT_CANNOT_RUN);
                continue;
            }
            Some(Ok(c)) => Some(c),
            None => None,
        };
        match report(&plan, shape) {
            Ok(p) if args.format == super::Format::Json => {
                let mut v = p.to_json();
                v["recipe"] = input.display().to_string().into();
                if let Some(c) = &curve {
                    v["schedule"] = c.to_json();
                }
                crate::outln!("{v}");
            }
            Ok(p) => {
                crate::outln!("plan: {}", input.display());
                crate::out!("{p}");
            }
            Err(e) => {
                crate::errln!("error: {}: {e}", input.display());
                worst = worst.max(super::EXIT_PROBLEMS);
            }
        }
        if let Some(c) = curve {
            let name = input.file_stem().unwrap_or(input.as_os_str());
            curves.push((name.to_string_lossy().into_owned(), c));
        }
    }
    if let Some(out) = &args.schedule_plot
        && !curves.is_empty()
    {
        match crate::engine::schedule_curve::picture(&curves).and_then(|p| p.save_png(out)) {
            Ok(()) if args.format == super::Format::Text => {
                crate::outln!("wrote {}", out.display())
            }
            Ok(()) => {}
            Err(e) => {
                crate::errln!("error: --schedule-plot: {e}");
                worst = worst.max(super::EXIT_CANNOT_RUN);
            }
        }
    }
    worst
}
