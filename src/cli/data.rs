//! `mmrun data`: arguments and output only; the work happens in `crate::data` (and, for
//! `browse`, `crate::engine::detector::pictures`).

use crate::data::{self, synth};
use std::path::PathBuf;

/// Arguments of `mmrun data`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Generate the shapes detection dataset (PNG + COCO JSON, train and val splits).
    Synth {
        /// Output folder (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Number of images in total (train + val), 1 to 1,000,000.
        #[arg(long, default_value_t = 300, value_parser = image_count)]
        images: usize,
        /// Seed: the same seed gives the same files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fixed image size `WxH` (each side 1 to 16384); by default each side is drawn
        /// from 160..=320.
        #[arg(long, value_parser = parse_size)]
        size: Option<(u32, u32)>,
        /// Image format.
        #[arg(long, default_value = "png", value_parser = ["png", "jpeg"])]
        format: String,
    },
    /// Read an annotation file and report what the loader would see.
    Inspect {
        /// COCO instances JSON, or a VOC image-set list with `--voc`.
        ann_file: PathBuf,
        /// Folder the images are relative to (VOC: the year folder); default: none.
        #[arg(long)]
        img_prefix: Option<PathBuf>,
        /// Read Pascal VOC instead of COCO.
        #[arg(long)]
        voc: bool,
        /// Skip bad annotations (counting them) instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Draw the training images as the model sees them (after the recipe's training
    /// pipeline: resize, flip, crop…, normalization undone) with their boxes and class
    /// names: one PNG per image, named after it (mmdetection's `browse_dataset.py`).
    Browse {
        /// The recipe whose `data.train` to draw.
        recipe: PathBuf,
        /// Output folder (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// How many images, the first in the annotation file's order.
        #[arg(long, default_value_t = 20, value_parser = image_count)]
        count: usize,
        /// Override a value: `--set data.train.ann_file="..."`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
}

/// The most images `data synth` writes in one run.
const MAX_IMAGES: usize = 1_000_000;

/// `WxH`, each side in `1..=MAX_SIDE` (clap names the argument and the value on error).
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let side = |v: &str| v.trim().parse::<u32>().ok();
    let Some((Some(w), Some(h))) = s.split_once(['x', 'X']).map(|(w, h)| (side(w), side(h))) else {
        return Err("expected WxH with whole numbers, e.g. 320x240".into());
    };
    let max = data::limits::MAX_SIDE;
    if w == 0 || h == 0 || w as usize > max || h as usize > max {
        return Err(format!("each side must be 1 to {max} pixels"));
    }
    Ok((w, h))
}

fn image_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_IMAGES).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_IMAGES}")),
    }
}

/// `mmrun data browse`: the folder is made first, so a bad `--out` is refused before any
/// image is read.
fn browse(recipe: &std::path::Path, out: &std::path::Path, count: usize, set: &[String]) -> u8 {
    let plan = match super::exec::load_recipe(recipe, set, true) {
        Ok((_, plan)) => plan,
        Err(code) => return code,
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        crate::errln!("error: --out {}: {e}", out.display());
        return super::EXIT_CANNOT_RUN;
    }
    super::exec::ensure_shapes_data(&plan);
    let seed = plan.training.runtime.seed;
    match crate::engine::detector::pictures::browse(&plan.data, seed, count, out) {
        Ok(files) => {
            crate::outln!("wrote {} pictures to {}", files.len(), out.display());
            super::EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            super::EXIT_CANNOT_RUN
        }
    }
}

pub fn run(args: Args) -> u8 {
    match args.command {
        Command::Browse {
            recipe,
            out,
            count,
            set,
        } => browse(&recipe, &out, count, &set),
        Command::Synth {
            out,
            images,
            seed,
            size,
            format,
        } => {
            let opts = synth::SynthOptions {
                images,
                seed,
                size,
                format: if format == "jpeg" {
                    synth::SynthFormat::Jpeg
                } else {
                    synth::SynthFormat::Png
                },
                ..Default::default()
            };
            let t = std::time::Instant::now();
            match synth::generate(&out, &opts) {
                Ok(s) => {
                    crate::outln!(
                        "wrote {} train + {} val images, {} boxes, in {:.2} s",
                        s.train_images,
                        s.val_images,
                        s.annotations,
                        t.elapsed().as_secs_f64()
                    );
                    crate::outln!(
                        "  train: {} ({})",
                        s.train_ann.display(),
                        s.train_dir.display()
                    );
                    crate::outln!("  val:   {} ({})", s.val_ann.display(), s.val_dir.display());
                    super::EXIT_OK
                }
                Err(e) => {
                    crate::errln!("error: {e}");
                    super::EXIT_CANNOT_RUN
                }
            }
        }
        Command::Inspect {
            ann_file,
            img_prefix,
            voc,
            skip_bad,
        } => {
            let opts = data::ReadOptions {
                img_prefix: img_prefix.unwrap_or_default(),
                filter_empty_gt: false,
                test_mode: true,
                on_bad_sample: if skip_bad {
                    data::OnBadSample::Skip
                } else {
                    data::OnBadSample::Error
                },
                ..Default::default()
            };
            let log = data::BadSampleLog::default();
            let r = if voc {
                data::read_voc(&ann_file, &opts, &log)
            } else {
                data::read_coco(&ann_file, &opts, &log)
            };
            match r {
                Ok(ds) => {
                    let boxes: usize = ds.records.iter().map(|r| r.boxes.len()).sum();
                    let ignored: usize = ds.records.iter().map(|r| r.ignored.len()).sum();
                    let empty = ds.records.iter().filter(|r| r.boxes.is_empty()).count();
                    crate::outln!(
                        "{}: {} images ({} without boxes), {} boxes, {} ignored, {} classes",
                        ann_file.display(),
                        ds.len(),
                        empty,
                        boxes,
                        ignored,
                        ds.classes.len()
                    );
                    let mut per = vec![0usize; ds.classes.len()];
                    for l in ds.records.iter().flat_map(|r| &r.labels) {
                        per[*l as usize] += 1;
                    }
                    for (c, n) in ds.classes.iter().zip(per) {
                        crate::outln!("  {c}: {n}");
                    }
                    if log.count() > 0 {
                        crate::outln!("{} bad annotations skipped", log.count());
                        return super::EXIT_PROBLEMS;
                    }
                    super::EXIT_OK
                }
                Err(e) => {
                    crate::errln!("error: {e}");
                    super::EXIT_PROBLEMS
                }
            }
        }
    }
}
