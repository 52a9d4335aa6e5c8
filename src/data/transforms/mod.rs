//! The transform pipeline: a list of stages built from [`TransformConfig`]s, run on one
//! record with an RNG stream that belongs to that sample (so results do not depend on which
//! worker ran it).

mod geometric;
mod photometric;

pub use geometric::{
    CropOp, FlipOp, PadOp, ResizeOp, apply_flip, crop_image, flip_image, pad_image, resize_image,
    try_pad_image, try_resize_image,
};
pub use photometric::{hsv_to_rgb, normalize, photometric_distortion, rgb_to_hsv, try_normalize};

use super::config::{
    ColorType, Directions, LoadAnnotations, LoadImage, Normalize, PhotometricDistortion,
    TransformConfig,
};
use super::dataset::Record;
use super::error::{DataError, Result};
use super::image::{Image, load_image};
use super::limits::MAX_SIDE;
use super::sample::{ImageMeta, Sample};
use crate::util::rng::Rng;

/// One built stage.
#[derive(Clone, Debug)]
pub enum Transform {
    LoadImage(LoadImage),
    LoadAnnotations(LoadAnnotations),
    Resize(ResizeOp),
    Flip(FlipOp),
    Normalize(Normalize),
    Pad(PadOp),
    Photometric(PhotometricDistortion),
    Crop(CropOp),
}

impl Transform {
    /// Build a stage, checking its parameters.
    pub fn build(cfg: &TransformConfig) -> Result<Transform> {
        let bad = |m: String| Err(DataError::Config(m));
        Ok(match cfg {
            TransformConfig::LoadImage(c) => Transform::LoadImage(c.clone()),
            TransformConfig::LoadAnnotations(c) => Transform::LoadAnnotations(c.clone()),
            TransformConfig::Resize(c) => {
                let Some(scales) = c.scale.as_ref().map(|s| s.list()) else {
                    return bad("resize: `scale` is required".into());
                };
                if scales.is_empty() || scales.iter().flatten().any(|v| v.is_nan() || *v <= 0.0) {
                    return bad(format!("resize: scales must be positive, got {scales:?}"));
                }
                if let Some([lo, hi]) = c.ratio_range
                    && (scales.len() != 1 || !(0.0 < lo && lo <= hi && hi.is_finite()))
                {
                    return bad("resize: `ratio_range` needs one scale and 0 < lo <= hi".into());
                }
                // The output's sides are at most the scale's (times the largest ratio).
                let most = scales.iter().flatten().fold(0f64, |a, &v| a.max(v))
                    * c.ratio_range.map_or(1.0, |[_, hi]| hi);
                if most > MAX_SIDE as f64 {
                    return bad(format!(
                        "resize: scale {scales:?}{} reaches {most} px, more than the {MAX_SIDE} px \
                         an image side may have",
                        c.ratio_range
                            .map_or(String::new(), |r| format!(" with ratio_range {r:?}"))
                    ));
                }
                Transform::Resize(ResizeOp {
                    scales,
                    keep_ratio: c.keep_ratio,
                    mode: c.multiscale_mode,
                    ratio_range: c.ratio_range,
                    clip_border: c.bbox_clip_border,
                })
            }
            TransformConfig::RandomFlip(c) => {
                let directions = match &c.direction {
                    Directions::One(d) => vec![*d],
                    Directions::Many(v) => v.clone(),
                };
                if directions.is_empty() || !(0.0..=1.0).contains(&c.prob) {
                    return bad(format!(
                        "random_flip: needs a direction and 0 <= prob <= 1 (prob {})",
                        c.prob
                    ));
                }
                Transform::Flip(FlipOp {
                    prob: c.prob,
                    directions,
                })
            }
            TransformConfig::Normalize(c) => {
                if c.std.contains(&0.0) {
                    return bad("normalize: `std` has a zero".into());
                }
                Transform::Normalize(c.clone())
            }
            TransformConfig::Pad(c) => {
                if c.size.is_some() == c.size_divisor.is_some() {
                    return bad("pad: give exactly one of `size` and `size_divisor`".into());
                }
                if c.size_divisor == Some(0) {
                    return bad("pad: `size_divisor` must be positive".into());
                }
                let most = c
                    .size
                    .map_or(0, |[h, w]| h.max(w))
                    .max(c.size_divisor.unwrap_or(0));
                if most as usize > MAX_SIDE {
                    return bad(format!(
                        "pad: {most} px is more than the {MAX_SIDE} px an image side may have"
                    ));
                }
                Transform::Pad(PadOp {
                    size: c.size,
                    size_divisor: c.size_divisor,
                    pad_val: c.pad_val,
                })
            }
            TransformConfig::PhotometricDistortion(c) => Transform::Photometric(c.clone()),
            TransformConfig::RandomCrop(c) => {
                let [a, b] = c.crop_size;
                let ok = a.is_finite()
                    && b.is_finite()
                    && match c.crop_type {
                        crate::data::config::CropType::Absolute => a >= 1.0 && b >= 1.0,
                        crate::data::config::CropType::AbsoluteRange => a >= 1.0 && a <= b,
                        _ => 0.0 < a && a <= 1.0 && 0.0 < b && b <= 1.0,
                    };
                if !ok {
                    return bad(format!(
                        "random_crop: crop_size {:?} does not fit crop_type {:?}",
                        c.crop_size, c.crop_type
                    ));
                }
                Transform::Crop(CropOp {
                    crop_size: c.crop_size,
                    crop_type: c.crop_type,
                    allow_negative_crop: c.allow_negative_crop,
                    clip_border: c.bbox_clip_border,
                })
            }
        })
    }

    /// Apply a stage that works on an already loaded sample (every stage but the loads).
    pub fn apply(&self, s: &mut Sample, rng: &mut Rng) -> Result<()> {
        match self {
            Transform::LoadImage(_) | Transform::LoadAnnotations(_) => {}
            Transform::Resize(op) => op.apply(s, rng)?,
            Transform::Flip(op) => op.apply(s, rng),
            Transform::Normalize(c) => try_normalize(&mut s.image, c)?,
            Transform::Pad(op) => op.apply(s)?,
            Transform::Photometric(c) => photometric_distortion(&mut s.image, c, rng)?,
            Transform::Crop(op) => op.apply(s, rng)?,
        }
        Ok(())
    }
}

/// A built pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub stages: Vec<Transform>,
}

impl Pipeline {
    /// Build from the config list. The first stage must be `load_image`; `load_annotations`
    /// (if any) must come before any geometric stage so the boxes follow the pixels.
    pub fn new(cfg: &[TransformConfig]) -> Result<Pipeline> {
        let stages = cfg
            .iter()
            .map(Transform::build)
            .collect::<Result<Vec<_>>>()?;
        if !matches!(stages.first(), Some(Transform::LoadImage(_))) {
            return Err(DataError::Config(
                "the pipeline must start with `load_image`".into(),
            ));
        }
        let geometric = |t: &Transform| {
            matches!(
                t,
                Transform::Resize(_) | Transform::Flip(_) | Transform::Crop(_) | Transform::Pad(_)
            )
        };
        if let Some(p) = stages
            .iter()
            .position(|t| matches!(t, Transform::LoadAnnotations(_)))
            && stages[..p].iter().any(geometric)
        {
            return Err(DataError::Config(
                "`load_annotations` must come before geometric transforms".into(),
            ));
        }
        Ok(Pipeline { stages })
    }

    /// The `size_divisor` of the last `pad` stage, if any.
    pub fn size_divisor(&self) -> Option<u32> {
        self.stages.iter().rev().find_map(|t| match t {
            Transform::Pad(p) => p.size_divisor,
            _ => None,
        })
    }

    /// The padded shapes `[h, w]` this pipeline's output can need, when they are bounded:
    /// for a keep-ratio resize to `(long, short)` followed by `pad { size_divisor }`,
    /// landscape `[short, long]`, portrait `[long, short]` and, for batches that mix both,
    /// `[long, long]` (each rounded up to the divisor; `ratio_range` widens the scale);
    /// for a fixed resize, its own shape; a fixed `pad { size }` wins. `None` when nothing
    /// bounds the size (no resize and no fixed pad): batches are then padded to their own
    /// maximum.
    pub fn bucket_shapes(&self) -> Option<Vec<[u32; 2]>> {
        if let Some([h, w]) = self.stages.iter().rev().find_map(|t| match t {
            Transform::Pad(p) => p.size,
            _ => None,
        }) {
            return Some(vec![[h, w]]);
        }
        let r = self.stages.iter().rev().find_map(|t| match t {
            Transform::Resize(r) => Some(r),
            _ => None,
        })?;
        let grow = r.ratio_range.map_or(1.0, |[_, hi]| hi);
        let d = self.size_divisor().unwrap_or(1).max(1) as f64;
        let up = |v: f64| ((v.trunc() / d).ceil() * d) as u32;
        if r.keep_ratio {
            // Each output fits inside (longest long edge, longest short edge) of the scales.
            let long = r.scales.iter().map(|s| s[0].max(s[1])).fold(0.0, f64::max);
            let short = r.scales.iter().map(|s| s[0].min(s[1])).fold(0.0, f64::max);
            let (l, s) = (up(long * grow), up(short * grow));
            let mut out = vec![[s, l], [l, s], [l, l]];
            out.dedup();
            return Some(out);
        }
        let mut out: Vec<[u32; 2]> = vec![];
        for s in &r.scales {
            let b = [up(s[1] * grow), up(s[0] * grow)];
            if !out.contains(&b) {
                out.push(b);
            }
        }
        Some(out)
    }

    /// Read, decode and transform one record.
    pub fn run(&self, rec: &Record, rng: &mut Rng) -> Result<Sample> {
        let image = load_image(&rec.path)?;
        self.run_on(rec, image, rng)
    }

    /// Read, decode and transform one record, but leave a trailing `normalize` (followed
    /// only by zero-valued `pad`s) to the caller, which can fuse it into collation: the
    /// pads only record `pad_shape`. Returns the normalize to apply, if deferred. The
    /// numbers are the same as [`run`](Self::run)'s.
    pub fn run_deferred(&self, rec: &Record, rng: &mut Rng) -> Result<(Sample, Option<Normalize>)> {
        let image = load_image(&rec.path)?;
        let tail = self.deferred_tail();
        let s = self.run_stages(rec, image, rng, tail)?;
        let norm = tail.and_then(|k| match &self.stages[k] {
            Transform::Normalize(n) => Some(n.clone()),
            _ => None,
        });
        Ok((s, norm))
    }

    /// Index of a trailing `normalize` followed only by `pad`s with `pad_val == 0`.
    fn deferred_tail(&self) -> Option<usize> {
        let k = self
            .stages
            .iter()
            .rposition(|t| !matches!(t, Transform::Pad(p) if p.pad_val == 0.0))?;
        matches!(self.stages[k], Transform::Normalize(_)).then_some(k)
    }

    /// Transform a record whose image is already decoded. Checks the decoded size against
    /// the annotation file's so boxes cannot silently land on the wrong pixels.
    pub fn run_on(&self, rec: &Record, image: Image, rng: &mut Rng) -> Result<Sample> {
        self.run_stages(rec, image, rng, None)
    }

    fn run_stages(
        &self,
        rec: &Record,
        mut image: Image,
        rng: &mut Rng,
        deferred: Option<usize>,
    ) -> Result<Sample> {
        if (image.w as u32, image.h as u32) != (rec.width, rec.height) {
            return Err(DataError::Sample {
                file: rec.path.display().to_string(),
                message: format!(
                    "image is {}x{} but the annotation file says {}x{} (w x h)",
                    image.w, image.h, rec.width, rec.height
                ),
            });
        }
        let mut s = Sample {
            meta: ImageMeta::new(rec.id, &rec.file_name, image.h, image.w),
            image: Image::from_u8(0, 0, vec![]),
            boxes: vec![],
            labels: vec![],
            ignored: vec![],
        };
        for (k, t) in self.stages.iter().enumerate() {
            if deferred.is_some_and(|d| k >= d) {
                if let Transform::Pad(p) = t {
                    p.apply_meta(&mut s)?;
                }
                continue;
            }
            match t {
                Transform::LoadImage(c) => {
                    if c.color_type == ColorType::Grayscale {
                        to_grayscale(&mut image);
                    }
                    if c.to_float32 {
                        image.try_make_f32()?;
                    }
                    s.image = std::mem::replace(&mut image, Image::from_u8(0, 0, vec![]));
                }
                Transform::LoadAnnotations(c) => {
                    if c.with_bbox {
                        s.boxes = rec.boxes.clone();
                        s.ignored = rec.ignored.clone();
                        if c.with_label {
                            s.labels = rec.labels.clone();
                        }
                    }
                }
                other => other.apply(&mut s, rng)?,
            }
        }
        Ok(s)
    }
}

/// Replace each pixel by its luminance (OpenCV's `0.299 R + 0.587 G + 0.114 B`) in all three
/// channels, so the rest of the pipeline still sees three channels.
fn to_grayscale(img: &mut Image) {
    if let super::image::Pixels::U8(d) = &mut img.pixels {
        for p in d.chunks_exact_mut(3) {
            let y = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            p.fill((y + 0.5).min(255.0) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe(v: serde_json::Value) -> Pipeline {
        use crate::registry::{Category, Ty, complete};
        let v = complete(&Ty::List(&Ty::Comp(Category::Transform)), &v);
        Pipeline::new(&serde_json::from_value::<Vec<TransformConfig>>(v).unwrap()).unwrap()
    }

    #[test]
    fn bucket_shapes_bound_every_output() {
        let p = pipe(serde_json::json!([{"type": "load_image"},
            {"type": "resize", "img_scale": [1333, 800], "keep_ratio": true},
            {"type": "pad", "size_divisor": 32}]));
        assert_eq!(
            p.bucket_shapes(),
            Some(vec![[800, 1344], [1344, 800], [1344, 1344]])
        );
        let p = pipe(serde_json::json!([{"type": "load_image"},
            {"type": "resize", "img_scale": [[1333, 640], [1333, 800]], "keep_ratio": true},
            {"type": "pad", "size_divisor": 32}]));
        assert_eq!(
            p.bucket_shapes(),
            Some(vec![[800, 1344], [1344, 800], [1344, 1344]])
        );
        let p = pipe(serde_json::json!([{"type": "load_image"},
            {"type": "resize", "img_scale": [300, 200], "keep_ratio": false}]));
        assert_eq!(p.bucket_shapes(), Some(vec![[200, 300]]));
        let p =
            pipe(serde_json::json!([{"type": "load_image"}, {"type": "pad", "size": [64, 96]}]));
        assert_eq!(p.bucket_shapes(), Some(vec![[64, 96]]));
        assert_eq!(
            pipe(serde_json::json!([{"type": "load_image"}])).bucket_shapes(),
            None
        );
        // Every keep-ratio output fits a bucket.
        let p = pipe(serde_json::json!([{"type": "load_image"},
            {"type": "resize", "img_scale": [1333, 800], "keep_ratio": true, "ratio_range": [0.5, 1.5]},
            {"type": "pad", "size_divisor": 32}]));
        let b = p.bucket_shapes().unwrap();
        let Transform::Resize(r) = &p.stages[1] else {
            panic!()
        };
        for (h, w) in [(480, 640), (640, 480), (500, 500), (100, 1000), (1000, 90)] {
            let (oh, ow) = r.output_size(h, w, [1333.0 * 1.5, 800.0 * 1.5]);
            let (ph, pw) = (oh.div_ceil(32) * 32, ow.div_ceil(32) * 32);
            assert!(
                b.iter()
                    .any(|&[bh, bw]| bh as usize >= ph && bw as usize >= pw),
                "{ph}x{pw} in {b:?}"
            );
        }
    }
}
