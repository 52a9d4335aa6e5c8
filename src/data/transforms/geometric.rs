//! Geometric transforms: resize (cv2 `INTER_LINEAR` semantics, half-pixel centres), flip,
//! crop and pad. Each moves the boxes exactly as it moves the pixels and records itself in
//! the sample's metadata so predictions can be mapped back.

use crate::data::config::{CropType, FlipDirection, MultiscaleMode};
use crate::data::dataset::BoxXyxy;
use crate::data::error::{DataError, Result};
use crate::data::image::{Image, Pixels};
use crate::data::limits;
use crate::data::sample::{GeomOp, Sample, flip_box};
use crate::util::rng::Rng;

/// Pixel types the geometric kernels work on.
pub(crate) trait Px: Copy + Send + Sync {
    fn to_f(self) -> f32;
    fn from_f(v: f32) -> Self;
}
impl Px for u8 {
    #[inline(always)]
    fn to_f(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn from_f(v: f32) -> Self {
        // Round half up and saturate, like cv2's saturate_cast.
        (v + 0.5).clamp(0.0, 255.0) as u8
    }
}
impl Px for f32 {
    #[inline(always)]
    fn to_f(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f(v: f32) -> Self {
        v
    }
}

/// Source index pairs and weights for one axis (half-pixel centres, edge clamped).
fn axis_weights(src: usize, dst: usize) -> (Vec<usize>, Vec<usize>, Vec<f32>) {
    let scale = src as f64 / dst as f64;
    let mut i0 = Vec::with_capacity(dst);
    let mut i1 = Vec::with_capacity(dst);
    let mut a = Vec::with_capacity(dst);
    for d in 0..dst {
        let f = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
        let lo = (f.floor() as usize).min(src - 1);
        let hi = (lo + 1).min(src - 1);
        i0.push(lo);
        i1.push(hi);
        a.push((f - lo as f64).clamp(0.0, 1.0) as f32);
    }
    (i0, i1, a)
}

/// Bilinear resize of an interleaved 3-channel image to `dw × dh`.
fn resize_px<T: Px>(src: &[T], sh: usize, sw: usize, dh: usize, dw: usize) -> Result<Vec<T>> {
    let what = || format!("an image resized to {dw}x{dh} (w x h)");
    let mut dst = limits::with_capacity(limits::product(&[dh, dw, 3], what)?, what)?;
    let (x0, x1, ax) = axis_weights(sw, dw);
    let (y0, y1, ay) = axis_weights(sh, dh);
    // Horizontally interpolated source rows, computed once each and kept while in use.
    let taps: Vec<(usize, usize, f32)> = (0..dw).map(|x| (x0[x] * 3, x1[x] * 3, ax[x])).collect();
    let hrow = |y: usize, out: &mut Vec<f32>| {
        out.resize(dw * 3, 0.0);
        let row = &src[y * sw * 3..(y + 1) * sw * 3];
        for (o, &(p, q, a)) in out.chunks_exact_mut(3).zip(&taps) {
            let (u, v) = (&row[p..p + 3], &row[q..q + 3]);
            for c in 0..3 {
                let v0 = u[c].to_f();
                o[c] = v0 + (v[c].to_f() - v0) * a;
            }
        }
    };
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    let (mut ya, mut yb) = (usize::MAX, usize::MAX);
    for y in 0..dh {
        let (p, q, a) = (y0[y], y1[y], ay[y]);
        if ya != p {
            if yb == p {
                std::mem::swap(&mut ra, &mut rb);
                std::mem::swap(&mut ya, &mut yb);
            } else {
                hrow(p, &mut ra);
                ya = p;
            }
        }
        if yb != q {
            hrow(q, &mut rb);
            yb = q;
        }
        dst.extend(
            ra.iter()
                .zip(&rb)
                .map(|(&u, &v)| T::from_f(u + (v - u) * a)),
        );
    }
    Ok(dst)
}

/// Resize an image to `dw × dh` (bilinear, half-pixel centres); an output too large to
/// allocate is an error.
pub fn try_resize_image(img: &Image, dh: usize, dw: usize) -> Result<Image> {
    let (h, w) = (img.h, img.w);
    let pixels = match &img.pixels {
        Pixels::U8(d) => Pixels::U8(resize_px(d, h, w, dh, dw)?),
        Pixels::F32(d) => Pixels::F32(resize_px(d, h, w, dh, dw)?),
    };
    Ok(Image {
        h: dh,
        w: dw,
        pixels,
    })
}

/// [`try_resize_image`] for callers with fixed sizes (benchmarks).
///
/// # Panics
/// If the output cannot be allocated.
pub fn resize_image(img: &Image, dh: usize, dw: usize) -> Image {
    try_resize_image(img, dh, dw).unwrap_or_else(|e| panic!("{e}"))
}

fn map_boxes(boxes: &mut [BoxXyxy], f: impl Fn(BoxXyxy) -> BoxXyxy) {
    for b in boxes {
        *b = f(*b);
    }
}

fn clip(b: BoxXyxy, w: f32, h: f32) -> BoxXyxy {
    [
        b[0].clamp(0.0, w),
        b[1].clamp(0.0, h),
        b[2].clamp(0.0, w),
        b[3].clamp(0.0, h),
    ]
}

/// The resize stage with its scale choice resolved at build time.
#[derive(Clone, Debug)]
pub struct ResizeOp {
    pub scales: Vec<[f64; 2]>,
    pub keep_ratio: bool,
    pub mode: MultiscaleMode,
    pub ratio_range: Option<[f64; 2]>,
    pub clip_border: bool,
}

impl ResizeOp {
    /// Draw the target scale (mmdetection's `Resize._random_scale`).
    fn pick_scale(&self, rng: &mut Rng) -> [f64; 2] {
        if let Some([lo, hi]) = self.ratio_range {
            let r = rng.range_f64(lo, hi);
            let s = self.scales[0];
            return [(s[0] * r).trunc(), (s[1] * r).trunc()];
        }
        if self.scales.len() == 1 {
            return self.scales[0];
        }
        match self.mode {
            MultiscaleMode::Value => self.scales[rng.below(self.scales.len() as u64) as usize],
            MultiscaleMode::Range => {
                let long: Vec<f64> = self.scales.iter().map(|s| s[0].max(s[1])).collect();
                let short: Vec<f64> = self.scales.iter().map(|s| s[0].min(s[1])).collect();
                let pick = |v: &[f64], rng: &mut Rng| {
                    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min) as u64;
                    let hi = v.iter().cloned().fold(0.0, f64::max) as u64;
                    (lo + rng.below(hi - lo + 1)) as f64
                };
                let l = pick(&long, rng);
                let s = pick(&short, rng);
                [l, s]
            }
        }
    }

    /// The output `(h, w)` for an `h × w` input at `scale` (mmcv `imrescale` / `imresize`).
    pub fn output_size(&self, h: usize, w: usize, scale: [f64; 2]) -> (usize, usize) {
        if self.keep_ratio {
            let (long, short) = (scale[0].max(scale[1]), scale[0].min(scale[1]));
            let (il, is) = (h.max(w) as f64, h.min(w) as f64);
            let f = (long / il).min(short / is);
            (
                ((h as f64 * f + 0.5) as usize).max(1),
                ((w as f64 * f + 0.5) as usize).max(1),
            )
        } else {
            ((scale[1] as usize).max(1), (scale[0] as usize).max(1))
        }
    }

    pub fn apply(&self, s: &mut Sample, rng: &mut Rng) -> Result<()> {
        let scale = self.pick_scale(rng);
        let (h, w) = (s.image.h, s.image.w);
        let (nh, nw) = self.output_size(h, w, scale);
        s.image = try_resize_image(&s.image, nh, nw)?;
        let (sx, sy) = (nw as f32 / w as f32, nh as f32 / h as f32);
        let (fw, fh) = (nw as f32, nh as f32);
        let clip_border = self.clip_border;
        let f = |b: BoxXyxy| {
            let r = [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy];
            if clip_border { clip(r, fw, fh) } else { r }
        };
        map_boxes(&mut s.boxes, f);
        map_boxes(&mut s.ignored, f);
        s.meta.img_shape = [nh, nw, 3];
        s.meta.pad_shape = [nh, nw, 3];
        s.meta.scale_factor = [sx, sy, sx, sy];
        s.meta.geometry.push(GeomOp::Scale { sx, sy });
        Ok(())
    }
}

/// Mirror an image.
pub fn flip_image(img: &mut Image, direction: FlipDirection) {
    fn go<T: Copy>(d: &mut [T], h: usize, w: usize, dir: FlipDirection) {
        let row = w * 3;
        if matches!(dir, FlipDirection::Horizontal | FlipDirection::Diagonal) {
            for r in d.chunks_exact_mut(row) {
                for x in 0..w / 2 {
                    for c in 0..3 {
                        r.swap(x * 3 + c, (w - 1 - x) * 3 + c);
                    }
                }
            }
        }
        if matches!(dir, FlipDirection::Vertical | FlipDirection::Diagonal) {
            for y in 0..h / 2 {
                let (top, bottom) = d.split_at_mut((h - 1 - y) * row);
                top[y * row..(y + 1) * row].swap_with_slice(&mut bottom[..row]);
            }
        }
    }
    let (h, w) = (img.h, img.w);
    match &mut img.pixels {
        Pixels::U8(d) => go(d, h, w, direction),
        Pixels::F32(d) => go(d, h, w, direction),
    }
}

/// The flip stage: each direction with probability `prob / directions`.
#[derive(Clone, Debug)]
pub struct FlipOp {
    pub prob: f64,
    pub directions: Vec<FlipDirection>,
}

impl FlipOp {
    pub fn apply(&self, s: &mut Sample, rng: &mut Rng) {
        let u = rng.uniform_f64();
        let each = self.prob / self.directions.len() as f64;
        let Some(&dir) = self
            .directions
            .iter()
            .enumerate()
            .find(|(i, _)| u < each * (*i as f64 + 1.0))
            .map(|(_, d)| d)
        else {
            return;
        };
        apply_flip(s, dir);
    }
}

/// Flip a sample's image and boxes (deterministic; used by the flip stage and tests).
pub fn apply_flip(s: &mut Sample, dir: FlipDirection) {
    flip_image(&mut s.image, dir);
    let (w, h) = (s.image.w as f32, s.image.h as f32);
    map_boxes(&mut s.boxes, |b| flip_box(b, dir, w, h));
    map_boxes(&mut s.ignored, |b| flip_box(b, dir, w, h));
    // Two flips in a row compose; metadata records the net state like mmdetection's.
    s.meta.flip_direction = match (s.meta.flip_direction, s.meta.flip) {
        (Some(d), true) if d == dir => None,
        _ => Some(dir),
    };
    s.meta.flip = s.meta.flip_direction.is_some();
    s.meta.geometry.push(GeomOp::Flip {
        direction: dir,
        w,
        h,
    });
}

/// Cut the window `[y, y + ch) × [x, x + cw)` out of an image (which must hold it).
pub fn crop_image(img: &Image, y: usize, x: usize, ch: usize, cw: usize) -> Result<Image> {
    fn go<T: Copy>(d: &[T], w: usize, y: usize, x: usize, ch: usize, cw: usize) -> Result<Vec<T>> {
        let what = || format!("an image cropped to {cw}x{ch} (w x h)");
        let mut out = limits::with_capacity(ch * cw * 3, what)?;
        for r in y..y + ch {
            out.extend_from_slice(&d[(r * w + x) * 3..(r * w + x + cw) * 3]);
        }
        Ok(out)
    }
    let pixels = match &img.pixels {
        Pixels::U8(d) => Pixels::U8(go(d, img.w, y, x, ch, cw)?),
        Pixels::F32(d) => Pixels::F32(go(d, img.w, y, x, ch, cw)?),
    };
    Ok(Image {
        h: ch,
        w: cw,
        pixels,
    })
}

/// The random-crop stage (mmdetection's `RandomCrop`).
#[derive(Clone, Debug)]
pub struct CropOp {
    pub crop_size: [f64; 2],
    pub crop_type: CropType,
    pub allow_negative_crop: bool,
    pub clip_border: bool,
}

/// How many windows are drawn before a crop without boxes falls back to the whole image
/// (mmdetection instead drops the sample and draws another image).
const CROP_TRIES: usize = 10;

impl CropOp {
    fn crop_hw(&self, h: usize, w: usize, rng: &mut Rng) -> (usize, usize) {
        let [a, b] = self.crop_size;
        let round = |v: f64| ((v + 0.5) as usize).max(1);
        match self.crop_type {
            CropType::Absolute => ((a as usize).clamp(1, h), (b as usize).clamp(1, w)),
            CropType::AbsoluteRange => {
                let pick = |n: usize, rng: &mut Rng| {
                    let lo = (a as usize).min(n).max(1);
                    let hi = (b as usize).min(n).max(lo);
                    lo + rng.below((hi - lo + 1) as u64) as usize
                };
                (pick(h, rng), pick(w, rng))
            }
            CropType::Relative => (round(h as f64 * a).min(h), round(w as f64 * b).min(w)),
            CropType::RelativeRange => {
                let fh = a + rng.uniform_f64() * (1.0 - a);
                let fw = b + rng.uniform_f64() * (1.0 - b);
                (round(h as f64 * fh).min(h), round(w as f64 * fw).min(w))
            }
        }
    }

    pub fn apply(&self, s: &mut Sample, rng: &mut Rng) -> Result<()> {
        let (h, w) = (s.image.h, s.image.w);
        for _ in 0..CROP_TRIES {
            let (ch, cw) = self.crop_hw(h, w, rng);
            let oy = rng.below((h - ch + 1) as u64) as usize;
            let ox = rng.below((w - cw + 1) as u64) as usize;
            let (fx, fy, fw, fh) = (ox as f32, oy as f32, cw as f32, ch as f32);
            let shift = |b: BoxXyxy| {
                let r = [b[0] - fx, b[1] - fy, b[2] - fx, b[3] - fy];
                if self.clip_border { clip(r, fw, fh) } else { r }
            };
            let valid = |b: &BoxXyxy| b[2] > b[0] && b[3] > b[1];
            let boxes: Vec<BoxXyxy> = s.boxes.iter().map(|&b| shift(b)).collect();
            if !self.allow_negative_crop && !s.boxes.is_empty() && !boxes.iter().any(valid) {
                continue;
            }
            let keep: Vec<bool> = boxes.iter().map(valid).collect();
            s.boxes = boxes
                .into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(b, _)| b)
                .collect();
            s.labels = s
                .labels
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(l, _)| *l)
                .collect();
            s.ignored = s.ignored.iter().map(|&b| shift(b)).filter(valid).collect();
            s.image = crop_image(&s.image, oy, ox, ch, cw)?;
            s.meta.img_shape = [ch, cw, 3];
            s.meta.pad_shape = [ch, cw, 3];
            s.meta.geometry.push(GeomOp::Shift { x: fx, y: fy });
            return Ok(());
        }
        Ok(())
    }
}

/// Pad an image bottom/right to `ph × pw` with `val`; an output too large to allocate is an
/// error.
pub fn try_pad_image(img: &Image, ph: usize, pw: usize, val: f32) -> Result<Image> {
    fn go<T: Copy>(d: &[T], h: usize, w: usize, ph: usize, pw: usize, v: T) -> Result<Vec<T>> {
        let what = || format!("an image padded to {pw}x{ph} (w x h)");
        let mut out = limits::with_capacity(limits::product(&[ph, pw, 3], what)?, what)?;
        for r in 0..h {
            out.extend_from_slice(&d[r * w * 3..(r + 1) * w * 3]);
            out.resize(out.len() + (pw - w) * 3, v);
        }
        out.resize(ph * pw * 3, v);
        Ok(out)
    }
    let pixels = match &img.pixels {
        Pixels::U8(d) => Pixels::U8(go(d, img.h, img.w, ph, pw, u8::from_f(val))?),
        Pixels::F32(d) => Pixels::F32(go(d, img.h, img.w, ph, pw, val)?),
    };
    Ok(Image {
        h: ph,
        w: pw,
        pixels,
    })
}

/// [`try_pad_image`] for callers with fixed sizes (benchmarks).
///
/// # Panics
/// If the output cannot be allocated.
pub fn pad_image(img: &Image, ph: usize, pw: usize, val: f32) -> Image {
    try_pad_image(img, ph, pw, val).unwrap_or_else(|e| panic!("{e}"))
}

/// The pad stage.
#[derive(Clone, Debug)]
pub struct PadOp {
    pub size: Option<[u32; 2]>,
    pub size_divisor: Option<u32>,
    pub pad_val: f32,
}

impl PadOp {
    /// Pad the image and record `pad_shape`.
    pub fn apply(&self, s: &mut Sample) -> Result<()> {
        let (ph, pw) = self.apply_meta(s)?;
        if (ph, pw) != (s.image.h, s.image.w) {
            s.image = try_pad_image(&s.image, ph, pw, self.pad_val)?;
        }
        Ok(())
    }

    /// Record `pad_shape` (checking it holds the image) without copying pixels: for the
    /// loader, whose collation pads with zeros anyway.
    pub fn apply_meta(&self, s: &mut Sample) -> Result<(usize, usize)> {
        let (h, w) = (s.image.h, s.image.w);
        let (ph, pw) = match (self.size, self.size_divisor) {
            (Some([ph, pw]), _) => (ph as usize, pw as usize),
            (None, Some(d)) => {
                let d = d.max(1) as usize;
                (h.div_ceil(d) * d, w.div_ceil(d) * d)
            }
            (None, None) => (h, w),
        };
        if ph < h || pw < w {
            return Err(DataError::Sample {
                file: s.meta.file_name.clone(),
                message: format!(
                    "pad: image {h}x{w} (h x w) is larger than the pad size {ph}x{pw}"
                ),
            });
        }
        s.meta.pad_shape = [ph, pw, 3];
        Ok((ph, pw))
    }
}
