//! `mmrun bench data`: images/s of decode + the RetinaNet training pipeline (load, resize
//! to 1333×800 keeping the ratio, flip 0.5, normalize, pad to 32, collate) on generated
//! 640×480 JPEGs, against PyTorch's DataLoader with torchvision transforms v2 doing the same
//! steps on the same files, measured in the same run. Both sides use the same worker count
//! and batch size; both clocks start at the first batch (worker start-up excluded).

use crate::data::loader::{Loader, LoaderOptions, TargetFn};
use crate::data::synth::{SynthFormat, SynthOptions, generate};
use crate::data::{
    BadSampleLog, BatchSampler, OnBadSample, Pipeline, SamplerConfig, TransformConfig,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `mmrun bench data`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of 640×480 JPEGs to generate and load.
    #[arg(long, default_value_t = 160)]
    images: usize,
    /// Loader workers (threads here, processes in PyTorch).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Epochs over the files; the best epoch of each side is reported.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Also print a one-thread breakdown of the time per stage.
    #[arg(long)]
    stages: bool,
    /// Python interpreter with torch and torchvision.
    #[arg(long, default_value = "python3")]
    python: String,
}

const PY: &str = r#"
import json, math, sys, time
import torch
from torch.utils.data import DataLoader, Dataset
import torchvision
from torchvision.io import read_file, decode_jpeg
from torchvision.transforms import v2
import torch.nn.functional as F

ann, prefix, workers, batch, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
files = [prefix + "/" + im["file_name"] for im in json.load(open(ann))["images"]]
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]

class Ds(Dataset):
    def __init__(self):
        self.flip = v2.RandomHorizontalFlip(0.5)
        self.norm = v2.Compose([v2.ToDtype(torch.float32, scale=False), v2.Normalize(MEAN, STD)])
    def __len__(self):
        return len(files)
    def __getitem__(self, i):
        img = decode_jpeg(read_file(files[i]))  # uint8 CHW, RGB
        h, w = img.shape[1:]
        f = min(1333 / max(h, w), 800 / min(h, w))  # mmcv.imrescale
        nh, nw = int(h * f + 0.5), int(w * f + 0.5)
        img = v2.functional.resize(img, [nh, nw], antialias=True)
        img = self.norm(self.flip(img))
        ph, pw = math.ceil(nh / 32) * 32, math.ceil(nw / 32) * 32
        return F.pad(img, (0, pw - nw, 0, ph - nh))

def collate(items):
    H = max(t.shape[1] for t in items); W = max(t.shape[2] for t in items)
    out = torch.zeros(len(items), 3, H, W)
    for k, t in enumerate(items):
        out[k, :, : t.shape[1], : t.shape[2]] = t
    return out

torch.set_num_threads(1)
best = 0.0
for e in range(epochs):
    dl = DataLoader(Ds(), batch_size=batch, num_workers=workers, collate_fn=collate, shuffle=False, prefetch_factor=2 if workers else None)
    it = iter(dl)
    first = next(it)
    t0 = time.perf_counter(); n = 0
    for b in it:
        n += b.shape[0]
    best = max(best, n / (time.perf_counter() - t0))
print(json.dumps({"images_per_s": best, "torch": torch.__version__, "torchvision": torchvision.__version__}))
"#;

fn rust_pipeline() -> Pipeline {
    use crate::registry::{Category, Ty, complete};
    let written = serde_json::json!([
        {"type": "load_image"},
        {"type": "load_annotations"},
        {"type": "resize", "scale": [1333, 800], "keep_ratio": true},
        {"type": "random_flip", "prob": 0.5},
        {"type": "normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "to_rgb": true},
        {"type": "pad", "size_divisor": 32}
    ]);
    let v: Vec<TransformConfig> = (serde_json::from_value(complete(
        &Ty::List(&Ty::Comp(Category::Transform)),
        &written,
    )))
    .expect("a fixed, valid pipeline");
    Pipeline::new(&v).expect("a fixed, valid pipeline")
}

fn rust_images_per_s(ann: &Path, prefix: &Path, a: &Args) -> Result<f64, String> {
    let opts = crate::data::ReadOptions {
        img_prefix: prefix.to_path_buf(),
        test_mode: true,
        ..Default::default()
    };
    let ds =
        crate::data::read_coco(ann, &opts, &BadSampleLog::default()).map_err(|e| e.to_string())?;
    let ds = Arc::new(ds);
    let pipeline = Arc::new(rust_pipeline());
    let mut best: f64 = 0.0;
    for epoch in 0..a.epochs {
        let sampler = BatchSampler::new(
            &SamplerConfig::SequentialSampler {},
            ds.aspect_groups(),
            a.batch,
            0,
            1,
            0,
        )
        .map_err(|e| e.to_string())?;
        let target: TargetFn<()> = Arc::new(|_, _| Ok(()));
        let lo = LoaderOptions {
            workers: a.workers,
            prefetch: 2,
            seed: epoch as u64,
            on_bad_sample: OnBadSample::Error,
            buckets: vec![],
            size_divisor: Some(32),
        };
        let mut loader = Loader::new(ds.clone(), pipeline.clone(), sampler, target, lo);
        loader
            .next_batch()
            .ok_or("no batch")?
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut n = 0;
        while let Some(b) = loader.next_batch() {
            n += b.map_err(|e| e.to_string())?.shape[0];
        }
        best = best.max(n as f64 / t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn torch_images_per_s(ann: &Path, prefix: &Path, a: &Args) -> Result<(f64, String), String> {
    let out = std::process::Command::new(&a.python)
        .arg("-c")
        .arg(PY)
        .arg(ann)
        .arg(prefix)
        .arg(a.workers.to_string())
        .arg(a.batch.to_string())
        .arg(a.epochs.to_string())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", a.python))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        return Err(format!("the PyTorch side failed: {last}"));
    }
    let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii())
        .map_err(|e| format!("unreadable PyTorch output: {e}"))?;
    let ips = v["images_per_s"]
        .as_f64()
        .ok_or("no images_per_s in the PyTorch output")?;
    let ver = format!(
        "torch {}, torchvision {}",
        v["torch"].as_str().unwrap_or("?"),
        v["torchvision"].as_str().unwrap_or("?")
    );
    Ok((ips, ver))
}

/// Milliseconds per image of each stage, on one thread, over up to 20 images.
fn stage_breakdown(ann: &Path, prefix: &Path, report: &mut super::Report) -> Result<(), String> {
    use crate::data::transforms as t;
    let opts = crate::data::ReadOptions {
        img_prefix: prefix.to_path_buf(),
        test_mode: true,
        ..Default::default()
    };
    let ds =
        crate::data::read_coco(ann, &opts, &BadSampleLog::default()).map_err(|e| e.to_string())?;
    let norm = crate::data::config::Normalize {
        mean: [123.675, 116.28, 103.53],
        std: [58.395, 57.12, 57.375],
        to_rgb: true,
    };
    let mut ms = [0f64; 6];
    let n = ds.len().min(20);
    for r in &ds.records[..n] {
        let mut clock = Instant::now();
        let mut lap = |k: usize| {
            ms[k] += clock.elapsed().as_secs_f64() * 1e3;
            clock = Instant::now();
        };
        let img = crate::data::image::load_image(&r.path).map_err(|e| e.to_string())?;
        lap(0);
        let mut img = t::resize_image(&img, 800, 1067);
        lap(1);
        t::flip_image(&mut img, crate::data::config::FlipDirection::Horizontal);
        lap(2);
        let mut f = img.clone();
        t::normalize(&mut f, &norm);
        lap(3);
        let p = t::pad_image(&f, 800, 1088, 0.0);
        lap(4);
        let mut chw = vec![0f32; 3 * 800 * 1088];
        for (i, v) in p.to_f32_vec().into_iter().enumerate() {
            chw[(i % 3) * 800 * 1088 + i / 3] = v;
        }
        std::hint::black_box(&chw);
        lap(5);
    }
    let names = ["decode", "resize", "flip", "normalize", "pad", "to CHW"];
    let parts: Vec<String> = names
        .iter()
        .zip(ms)
        .map(|(k, v)| format!("{k} {:.2}", v / n as f64))
        .collect();
    report.line(format_args!(
        "  one thread, ms/image (unfused stages): {}",
        parts.join(", ")
    ));
    let stages: serde_json::Map<String, serde_json::Value> = (names.iter())
        .zip(ms)
        .map(|(k, v)| (k.to_string(), (v / n as f64).into()))
        .collect();
    report.result("one_thread_stage_ms_per_image", stages);
    Ok(())
}

pub fn run(a: Args, report: &mut super::Report) -> super::Outcome {
    report.setting("images", a.images);
    report.setting("image_size", [640, 480]);
    report.setting("workers", a.workers);
    report.setting("batch", a.batch);
    report.setting("epochs", a.epochs);
    if a.images < a.batch * 2 || a.batch == 0 || a.epochs == 0 {
        report.error("need --images >= 2 x --batch, and --batch, --epochs > 0");
        return super::Outcome::CannotRun;
    }
    report.header(Some(&a.python));
    let dir = std::env::temp_dir().join(format!("mmrun-bench-data-{}", std::process::id()));
    let opts = SynthOptions {
        images: a.images + 1,
        seed: 0,
        size: Some((640, 480)),
        val_fraction: 0.0,
        format: SynthFormat::Jpeg,
        ..Default::default()
    };
    let sum = match generate(&dir, &opts) {
        Ok(s) => s,
        Err(e) => {
            report.error(e);
            return super::Outcome::CannotRun;
        }
    };
    report.line(format_args!(
        "data pipeline: {} JPEGs 640x480 -> load, resize 1333x800 keep_ratio, flip 0.5, normalize, pad 32, collate; batch {}, {} workers",
        sum.train_images,
        a.batch,
        a.workers
    ));
    report.setting("jpegs_loaded", sum.train_images);
    if a.stages
        && let Err(e) = stage_breakdown(&sum.train_ann, &sum.train_dir, report)
    {
        // The throughput below is still measured; only the per-stage table is missing.
        report.warning(format!("warning: no stage breakdown: {e}"));
    }
    let code = match rust_images_per_s(&sum.train_ann, &sum.train_dir, &a) {
        Err(e) => {
            report.error(e);
            super::Outcome::CannotRun
        }
        Ok(ours) => {
            report.line(format_args!("  mmrun:   {ours:8.1} images/s"));
            report.result("mmrun_images_per_s", ours);
            match torch_images_per_s(&sum.train_ann, &sum.train_dir, &a) {
                Ok((theirs, ver)) => {
                    report.line(format_args!(
                        "  pytorch: {theirs:8.1} images/s ({ver}, DataLoader + transforms v2)"
                    ));
                    report.line(format_args!(
                        "  ratio:   {:.2}x (target >= 1.5x)",
                        ours / theirs
                    ));
                    report.result("pytorch_images_per_s", theirs);
                    report.result("pytorch_version", ver);
                    report.ratio("mmrun_vs_pytorch", ours / theirs);
                }
                Err(e) => {
                    report.line(format_args!("  pytorch: skipped ({e})"));
                    report.result("pytorch_skipped", e);
                }
            }
            super::Outcome::Done
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    code
}
