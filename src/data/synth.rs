//! The generated shapes dataset (the quickstart's and the tests' data): coloured circles,
//! squares, triangles, ellipses, stars and hexagons at varied sizes, aspect ratios and
//! overlaps on textured backgrounds, written as PNG (or JPEG) plus COCO instances JSON with
//! a train and a val split. Everything derives from the seed: image `i` uses the stream
//! `Rng::stream(seed, i)`, so images are generated in parallel and still reproducible.

use super::error::{DataError, Result};
use super::limits::{self, MAX_SIDE};
use crate::util::rng::Rng;
use rayon::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Class names of the shapes dataset, in label order (COCO category ids are 1-based).
pub const SHAPE_CLASSES: [&str; 6] = ["circle", "square", "triangle", "ellipse", "star", "hexagon"];

/// Image file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SynthFormat {
    #[default]
    Png,
    Jpeg,
}

impl SynthFormat {
    /// The format a name gives (`png`, or `jpeg`/`jpg`); `None` for any other.
    pub fn from_name(name: &str) -> Option<SynthFormat> {
        match name {
            "png" => Some(SynthFormat::Png),
            "jpeg" | "jpg" => Some(SynthFormat::Jpeg),
            _ => None,
        }
    }

    /// The format's name (`png`, `jpeg`), as `data synth --format json` reports it.
    pub fn name(self) -> &'static str {
        match self {
            SynthFormat::Png => "png",
            SynthFormat::Jpeg => "jpeg",
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// Images in total (train + val).
    pub images: usize,
    pub seed: u64,
    /// Fixed `(w, h)`; `None`: each side drawn from `[min_side, max_side]`.
    pub size: Option<(u32, u32)>,
    pub min_side: u32,
    pub max_side: u32,
    /// Share of the images that go to the val split.
    pub val_fraction: f64,
    pub format: SynthFormat,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            images: 300,
            seed: 0,
            size: None,
            min_side: 160,
            max_side: 320,
            val_fraction: 0.2,
            format: SynthFormat::Png,
        }
    }
}

/// Where the generated files are.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    pub train_ann: PathBuf,
    pub val_ann: PathBuf,
    pub train_dir: PathBuf,
    pub val_dir: PathBuf,
    pub train_images: usize,
    pub val_images: usize,
    pub annotations: usize,
}

impl SynthSummary {
    /// The layout under `out` (whether or not it exists yet).
    pub fn layout(out: &Path) -> SynthSummary {
        SynthSummary {
            train_ann: out.join("annotations/instances_train.json"),
            val_ann: out.join("annotations/instances_val.json"),
            train_dir: out.join("train"),
            val_dir: out.join("val"),
            train_images: 0,
            val_images: 0,
            annotations: 0,
        }
    }
}

struct Shape {
    class: usize,
    bbox: [u32; 4],
    area: u64,
}

/// Generate the dataset under `out` (created if needed).
pub fn generate(out: &Path, opts: &SynthOptions) -> Result<SynthSummary> {
    if opts.images == 0 {
        return Err(DataError::Config(
            "synth: --images must be at least 1".into(),
        ));
    }
    let sides = match opts.size {
        Some((w, h)) => [w, h],
        None => [opts.min_side, opts.max_side],
    };
    if let Some(bad) = sides.iter().find(|&&s| s == 0 || s as usize > MAX_SIDE) {
        return Err(DataError::Config(format!(
            "synth: an image side of {bad} px is outside 1..={MAX_SIDE}"
        )));
    }
    let mut sum = SynthSummary::layout(out);
    for d in [&sum.train_dir, &sum.val_dir, &out.join("annotations")] {
        std::fs::create_dir_all(d).map_err(|e| DataError::write(d, e))?;
    }
    let n_val = if opts.images >= 2 {
        ((opts.images as f64 * opts.val_fraction).round() as usize).clamp(1, opts.images - 1)
    } else {
        0
    };
    let n_train = opts.images - n_val;
    let ext = match opts.format {
        SynthFormat::Png => "png",
        SynthFormat::Jpeg => "jpg",
    };
    let made: Vec<(String, u32, u32, Vec<Shape>)> = (0..opts.images)
        .into_par_iter()
        .map(|i| {
            let (w, h, rgb, shapes) = render(opts, i as u64)?;
            let name = format!("{i:06}.{ext}");
            let dir = if i < n_train {
                &sum.train_dir
            } else {
                &sum.val_dir
            };
            let path = dir.join(&name);
            write_image(&path, &rgb, w, h, opts.format)?;
            Ok((name, w, h, shapes))
        })
        .collect::<Result<_>>()?;
    let categories: Vec<_> = SHAPE_CLASSES
        .iter()
        .enumerate()
        .map(|(k, n)| json!({"id": k + 1, "name": n, "supercategory": "shape"}))
        .collect();
    for (split, range, ann_path) in [
        ("train", 0..n_train, &sum.train_ann),
        ("val", n_train..opts.images, &sum.val_ann),
    ] {
        let mut images = vec![];
        let mut anns = vec![];
        for i in range {
            let (name, w, h, shapes) = &made[i];
            images.push(json!({"id": i + 1, "file_name": name, "width": w, "height": h}));
            for s in shapes {
                let [x1, y1, x2, y2] = s.bbox;
                anns.push(json!({
                    "id": anns.len() + 1, "image_id": i + 1, "category_id": s.class + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": s.area, "iscrowd": 0,
                }));
            }
        }
        sum.annotations += anns.len();
        let doc = json!({
            "info": {"description": format!("mmrun shapes ({split}), seed {}", opts.seed)},
            "images": images, "annotations": anns, "categories": categories,
        });
        let bytes =
            serde_json::to_vec(&doc).map_err(|e| DataError::parse(ann_path, e.to_string()))?;
        crate::util::atomic_file::write_atomic(ann_path, &bytes)
            .map_err(|e| DataError::write(ann_path, e))?;
    }
    sum.train_images = n_train;
    sum.val_images = n_val;
    Ok(sum)
}

/// Generate under `out` unless both annotation files are already there.
/// Images `mmrun exec` generates when a recipe's shapes dataset is missing (1,200 train):
/// with the 240 images of earlier versions the quickstart's detector memorised the training
/// split and val mAP stalled near 0.4.
pub const FIRST_RUN_IMAGES: usize = 1500;

/// Where to generate the shapes dataset `data.train` names, when it is a `shapes_dataset`
/// whose annotation file does not exist yet: `<root>/annotations/<file>.json` → `<root>`.
pub fn missing_shapes_root(data: &crate::data::config::DataConfig) -> Option<std::path::PathBuf> {
    let Some(crate::data::config::DatasetConfig::ShapesDataset(train)) = &data.train else {
        return None;
    };
    let ann = Path::new(&train.ann_file);
    if ann.is_file() {
        return None;
    }
    ann.parent()?.parent().map(Path::to_path_buf)
}

pub fn generate_if_missing(out: &Path, opts: &SynthOptions) -> Result<SynthSummary> {
    let sum = SynthSummary::layout(out);
    if sum.train_ann.is_file() && sum.val_ann.is_file() {
        return Ok(sum);
    }
    generate(out, opts)
}

fn write_image(path: &Path, rgb: &[u8], w: u32, h: u32, format: SynthFormat) -> Result<()> {
    use image::ImageEncoder;
    let mut buf = limits::with_capacity(rgb.len() / 2, || {
        format!("{}: the encoded {w}x{h} image", path.display())
    })?;
    let r = match format {
        SynthFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut buf,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Sub,
        )
        .write_image(rgb, w, h, image::ExtendedColorType::Rgb8),
        SynthFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90)
            .write_image(rgb, w, h, image::ExtendedColorType::Rgb8),
    };
    r.map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        message: format!("encoding failed: {e}"),
    })?;
    std::fs::write(path, &buf).map_err(|e| DataError::write(path, e))
}

fn hsv(h: f64, s: f64, v: f64) -> [f64; 3] {
    let c = super::transforms::hsv_to_rgb(h as f32, s as f32, v as f32 * 255.0);
    [c[0] as f64, c[1] as f64, c[2] as f64]
}

/// Polygon vertices (relative to the centre) for the polygonal classes.
fn polygon(class: usize, rx: f64, ry: f64, rot: f64) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> = match class {
        2 => (0..3)
            .map(|k| {
                let a = rot + k as f64 * std::f64::consts::TAU / 3.0;
                (rx * a.cos(), ry * a.sin())
            })
            .collect(),
        4 => (0..10)
            .map(|k| {
                let a = rot + k as f64 * std::f64::consts::PI / 5.0;
                let r = if k % 2 == 0 { 1.0 } else { 0.45 };
                (rx * r * a.cos(), ry * r * a.sin())
            })
            .collect(),
        _ => (0..6)
            .map(|k| {
                let a = rot + k as f64 * std::f64::consts::PI / 3.0;
                (rx * a.cos(), ry * a.sin())
            })
            .collect(),
    };
    pts
}

fn inside_polygon(p: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = p.len() - 1;
    for i in 0..p.len() {
        let (xi, yi) = p[i];
        let (xj, yj) = p[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Render image `i`: its size, RGB bytes and shapes.
fn render(opts: &SynthOptions, i: u64) -> Result<(u32, u32, Vec<u8>, Vec<Shape>)> {
    let mut rng = Rng::stream(opts.seed, i);
    let (w, h) = opts.size.unwrap_or_else(|| {
        let span = (opts.max_side.max(opts.min_side) - opts.min_side) as u64 + 1;
        (
            opts.min_side + rng.below(span) as u32,
            opts.min_side + rng.below(span) as u32,
        )
    });
    let (wu, hu) = (w as usize, h as usize);
    let mut img = limits::zeroed(wu * hu * 3, 0u8, || format!("a {w}x{h} image"))?;
    // Background: a two-colour gradient, stripes and noise, all muted.
    let hue = rng.range_f64(0.0, 360.0);
    let c0 = hsv(hue, rng.range_f64(0.05, 0.35), rng.range_f64(0.35, 0.8));
    let c1 = hsv(
        (hue + rng.range_f64(30.0, 120.0)) % 360.0,
        rng.range_f64(0.05, 0.35),
        rng.range_f64(0.35, 0.8),
    );
    let ang = rng.range_f64(0.0, std::f64::consts::TAU);
    let (ca, sa) = (ang.cos(), ang.sin());
    let freq = rng.range_f64(0.05, 0.4);
    let sang = rng.range_f64(0.0, std::f64::consts::TAU);
    let (cs, ss) = (sang.cos() * freq, sang.sin() * freq);
    let amp = rng.range_f64(4.0, 18.0);
    let noise = rng.range_f64(2.0, 12.0);
    let diag = (wu * wu + hu * hu) as f64;
    let diag = diag.sqrt();
    let mut nstate = rng.next_u64() | 1;
    for y in 0..hu {
        for x in 0..wu {
            let (fx, fy) = (x as f64, y as f64);
            let t = ((fx * ca + fy * sa) / diag + 0.5).clamp(0.0, 1.0);
            let stripe = amp * (fx * cs + fy * ss).sin();
            // xorshift: cheap per-pixel noise, derived from the image's stream.
            nstate ^= nstate << 13;
            nstate ^= nstate >> 7;
            nstate ^= nstate << 17;
            let nz = ((nstate >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 2.0 * noise;
            let o = (y * wu + x) * 3;
            for c in 0..3 {
                let v = c0[c] * (1.0 - t) + c1[c] * t + stripe + nz;
                img[o + c] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    let count = 1 + rng.below(6) as usize;
    let mut shapes: Vec<Shape> = vec![];
    let side = w.min(h) as f64;
    for _ in 0..count {
        for _try in 0..20 {
            let class = rng.below(SHAPE_CLASSES.len() as u64) as usize;
            let r = rng.range_f64(0.06, 0.3) * side;
            let (rx, ry) = match class {
                3 => {
                    let a = rng.range_f64(0.35, 1.0);
                    if rng.below(2) == 0 {
                        (r, r * a)
                    } else {
                        (r * a, r)
                    }
                }
                _ => (r, r),
            };
            let cx = rng.range_f64(rx, w as f64 - rx);
            let cy = rng.range_f64(ry, h as f64 - ry);
            let rot = rng.range_f64(0.0, std::f64::consts::TAU);
            let poly = matches!(class, 2 | 4 | 5).then(|| polygon(class, rx, ry, rot));
            let inside = |x: f64, y: f64| -> bool {
                let (dx, dy) = (x - cx, y - cy);
                match class {
                    0 => dx * dx + dy * dy <= r * r,
                    1 => dx.abs() <= r && dy.abs() <= r,
                    3 => (dx / rx).powi(2) + (dy / ry).powi(2) <= 1.0,
                    _ => inside_polygon(poly.as_deref().unwrap_or(&[]), dx, dy),
                }
            };
            let x0 = (cx - rx).floor().max(0.0) as usize;
            let x1 = ((cx + rx).ceil() as usize).min(wu);
            let y0 = (cy - ry).floor().max(0.0) as usize;
            let y1 = ((cy + ry).ceil() as usize).min(hu);
            let mut px = vec![];
            let (mut bx0, mut by0, mut bx1, mut by1) = (u32::MAX, u32::MAX, 0, 0);
            for y in y0..y1 {
                for x in x0..x1 {
                    if inside(x as f64 + 0.5, y as f64 + 0.5) {
                        px.push((x, y));
                        bx0 = bx0.min(x as u32);
                        by0 = by0.min(y as u32);
                        bx1 = bx1.max(x as u32 + 1);
                        by1 = by1.max(y as u32 + 1);
                    }
                }
            }
            if px.len() < 16 {
                continue;
            }
            let b = [bx0, by0, bx1, by1];
            // Overlap allowed, but no shape may hide most of an earlier one.
            let covers = shapes.iter().any(|s| {
                let iw = b[2].min(s.bbox[2]).saturating_sub(b[0].max(s.bbox[0])) as f64;
                let ih = b[3].min(s.bbox[3]).saturating_sub(b[1].max(s.bbox[1])) as f64;
                let sa = ((s.bbox[2] - s.bbox[0]) * (s.bbox[3] - s.bbox[1])) as f64;
                iw * ih > 0.4 * sa
            });
            if covers {
                continue;
            }
            let col = hsv(
                rng.range_f64(0.0, 360.0),
                rng.range_f64(0.6, 1.0),
                rng.range_f64(0.55, 1.0),
            );
            let shade = rng.range_f64(-0.25, 0.25);
            for &(x, y) in &px {
                let t = 1.0 + shade * ((y as f64 - cy) / ry.max(1.0));
                let o = (y * wu + x) * 3;
                for c in 0..3 {
                    img[o + c] = (col[c] * t).clamp(0.0, 255.0) as u8;
                }
            }
            shapes.push(Shape {
                class,
                bbox: b,
                area: px.len() as u64,
            });
            break;
        }
    }
    Ok((w, h, img, shapes))
}
