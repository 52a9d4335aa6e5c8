//! `mmrun data`: arguments and output only; the work happens in `crate::data` (and, for
//! `browse`, `crate::engine::detector::pictures`).
//!
//! `--format json` (each subcommand) prints one JSON object on stdout with the facts the text
//! gives; errors stay on stderr, with nothing on stdout and the same exit codes, as in
//! `plan` and `eval`.

use super::Format;
use crate::data::{self, synth};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Arguments of `mmrun data`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Generate the shapes detection dataset (PNG or JPEG images + COCO JSON, train and val
    /// splits).
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
        /// Image file format.
        #[arg(long, default_value = "png", value_parser = ["png", "jpeg", "jpg"])]
        image_format: String,
        /// Output format: text, or one JSON object (counts, folders, annotation files).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
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
        /// Output format: text, or one JSON object (counts, classes, skipped annotations).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
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
        /// Output format: text, or one JSON object (the pictures written).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
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
fn browse(recipe: &Path, out: &Path, count: usize, set: &[String], format: Format) -> u8 {
    let plan = match super::setup::load_recipe(recipe, set, true) {
        Ok((_, plan)) => plan,
        Err(code) => return code,
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        crate::errln!("error: --out {}: {e}", out.display());
        return super::EXIT_CANNOT_RUN;
    }
    super::setup::ensure_shapes_data(&plan);
    let seed = plan.training.runtime.seed;
    match crate::engine::detector::pictures::browse(&plan.data, seed, count, out) {
        Ok(files) => {
            match format {
                Format::Text => {
                    crate::outln!("wrote {} pictures to {}", files.len(), out.display())
                }
                Format::Json => crate::outln!(
                    "{}",
                    json!({
                        "recipe": recipe.display().to_string(),
                        "out": out.display().to_string(),
                        "count": files.len(),
                        "pictures": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                    })
                ),
            }
            super::EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            super::EXIT_CANNOT_RUN
        }
    }
}

/// `mmrun data synth`.
fn synth(out: &Path, opts: &synth::SynthOptions, format: Format) -> u8 {
    let t = std::time::Instant::now();
    let s = match synth::generate(out, opts) {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    let seconds = t.elapsed().as_secs_f64();
    match format {
        Format::Text => {
            crate::outln!(
                "wrote {} train + {} val images, {} boxes, in {seconds:.2} s",
                s.train_images,
                s.val_images,
                s.annotations,
            );
            crate::outln!(
                "  train: {} ({})",
                s.train_ann.display(),
                s.train_dir.display()
            );
            crate::outln!("  val:   {} ({})", s.val_ann.display(), s.val_dir.display());
        }
        Format::Json => {
            let split = |ann: &Path, dir: &Path, images: usize| {
                json!({
                    "images": images,
                    "ann_file": ann.display().to_string(),
                    "img_dir": dir.display().to_string(),
                })
            };
            crate::outln!(
                "{}",
                json!({
                    "out": out.display().to_string(),
                    "seed": opts.seed,
                    "image_format": opts.format.name(),
                    "images": s.train_images + s.val_images,
                    "boxes": s.annotations,
                    "seconds": seconds,
                    "train": split(&s.train_ann, &s.train_dir, s.train_images),
                    "val": split(&s.val_ann, &s.val_dir, s.val_images),
                })
            );
        }
    }
    super::EXIT_OK
}

/// `mmrun data inspect`.
fn inspect(ann_file: &Path, opts: &data::ReadOptions, voc: bool, format: Format) -> u8 {
    let log = data::BadSampleLog::default();
    let r = if voc {
        data::read_voc(ann_file, opts, &log)
    } else {
        data::read_coco(ann_file, opts, &log)
    };
    let ds = match r {
        Ok(ds) => ds,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_PROBLEMS;
        }
    };
    let counts = ds.counts();
    let skipped = log.count();
    match format {
        Format::Text => {
            crate::outln!(
                "{}: {} images ({} without boxes), {} boxes, {} ignored, {} classes",
                ann_file.display(),
                counts.images,
                counts.images_without_boxes,
                counts.boxes,
                counts.ignored,
                counts.classes.len()
            );
            for c in &counts.classes {
                crate::outln!("  {}: {}", c.name, c.boxes);
            }
            if skipped > 0 {
                crate::outln!("{skipped} bad annotations skipped");
            }
        }
        Format::Json => {
            let v = json!({
                "ann_file": ann_file.display().to_string(),
                "format": if voc { "voc" } else { "coco" },
                "images": counts.images,
                "images_without_boxes": counts.images_without_boxes,
                "boxes": counts.boxes,
                "ignored": counts.ignored,
                "classes": counts.classes,
                "bad_annotations_skipped": skipped,
                "bad_annotations": log.messages(),
            });
            crate::outln!("{v}");
        }
    }
    if skipped > 0 {
        return super::EXIT_PROBLEMS;
    }
    super::EXIT_OK
}

pub fn run(args: Args) -> u8 {
    match args.command {
        Command::Browse {
            recipe,
            out,
            count,
            set,
            format,
        } => browse(&recipe, &out, count, &set, format),
        Command::Synth {
            out,
            images,
            seed,
            size,
            image_format,
            format,
        } => {
            let opts = synth::SynthOptions {
                images,
                seed,
                size,
                // clap admits only the names `from_name` knows.
                format: synth::SynthFormat::from_name(&image_format).unwrap_or_default(),
                ..Default::default()
            };
            synth(&out, &opts, format)
        }
        Command::Inspect {
            ann_file,
            img_prefix,
            voc,
            skip_bad,
            format,
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
            inspect(&ann_file, &opts, voc, format)
        }
    }
}
