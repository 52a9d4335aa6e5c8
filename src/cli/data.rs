//! `mmrun data`: arguments and output only; the work happens in `crate::data`.

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
        /// Number of images in total (train + val).
        #[arg(long, default_value_t = 300)]
        images: usize,
        /// Seed: the same seed gives the same files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fixed image size `WxH`; by default each side is drawn from 160..=320.
        #[arg(long)]
        size: Option<String>,
        /// Image format.
        #[arg(long, default_value = "png", value_parser = ["png", "jpeg"])]
        format: String,
    },
    /// Read an annotation file and report what the loader would see.
    Inspect {
        /// COCO instances JSON, or a VOC image-set list with `--voc`.
        ann_file: PathBuf,
        /// Folder the images are relative to (VOC: the year folder).
        #[arg(long, default_value = "")]
        img_prefix: PathBuf,
        /// Read Pascal VOC instead of COCO.
        #[arg(long)]
        voc: bool,
        /// Skip bad annotations (counting them) instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
    },
}

fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once(['x', 'X'])?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

pub fn run(args: Args) -> u8 {
    match args.command {
        Command::Synth {
            out,
            images,
            seed,
            size,
            format,
        } => {
            let size = match size.as_deref().map(|s| (s, parse_size(s))) {
                None => None,
                Some((_, Some(wh))) => Some(wh),
                Some((s, None)) => {
                    crate::errln!("error: --size must be WxH with positive integers, got `{s}`");
                    return super::EXIT_CANNOT_RUN;
                }
            };
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
                img_prefix,
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
