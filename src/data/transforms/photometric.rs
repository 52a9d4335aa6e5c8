//! Photometric transforms: normalize and mmdetection's `PhotoMetricDistortion`. Both leave
//! the geometry and the boxes alone and turn the pixels into f32.

use crate::data::config::{Normalize, PhotometricDistortion};
use crate::data::error::Result;
use crate::data::image::{Image, Pixels};
use crate::data::limits;
use crate::util::rng::Rng;

/// `(x - mean) / std` per channel into f32; `to_rgb == false` also reorders RGB → BGR so
/// that `mean`/`std` given in BGR order (caffe-style weights) apply to the right channel.
/// An output too large to allocate is an error.
pub fn try_normalize(img: &mut Image, cfg: &Normalize) -> Result<()> {
    let order: [usize; 3] = if cfg.to_rgb { [0, 1, 2] } else { [2, 1, 0] };
    let inv = [1.0 / cfg.std[0], 1.0 / cfg.std[1], 1.0 / cfg.std[2]];
    let m = cfg.mean;
    let n = img.h * img.w;
    let what = || format!("a normalized {}x{} image", img.w, img.h);
    let mut out = limits::zeroed(n * 3, 0f32, what)?;
    macro_rules! go {
        ($d:expr) => {
            for (o, p) in out.chunks_exact_mut(3).zip($d.chunks_exact(3)) {
                o[0] = (p[order[0]] as f32 - m[0]) * inv[0];
                o[1] = (p[order[1]] as f32 - m[1]) * inv[1];
                o[2] = (p[order[2]] as f32 - m[2]) * inv[2];
            }
        };
    }
    match &img.pixels {
        Pixels::U8(d) => go!(d),
        Pixels::F32(d) => go!(d),
    }
    img.pixels = Pixels::F32(out);
    Ok(())
}

/// [`try_normalize`] for callers with fixed sizes (benchmarks).
///
/// # Panics
/// If the output cannot be allocated.
pub fn normalize(img: &mut Image, cfg: &Normalize) {
    try_normalize(img, cfg).unwrap_or_else(|e| panic!("{e}"))
}

/// RGB (any scale) → HSV with H in degrees `[0, 360)`, S in `[0, 1]`, V on the input scale
/// (OpenCV's float conversion).
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> [f32; 3] {
    let v = r.max(g).max(b);
    let mn = r.min(g).min(b);
    let d = v - mn;
    let s = if v > 0.0 { d / v } else { 0.0 };
    let mut h = if d == 0.0 {
        0.0
    } else if v == r {
        60.0 * (g - b) / d
    } else if v == g {
        120.0 + 60.0 * (b - r) / d
    } else {
        240.0 + 60.0 * (r - g) / d
    };
    if h < 0.0 {
        h += 360.0;
    }
    [h, s, v]
}

/// HSV → RGB, the inverse of [`rgb_to_hsv`].
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = (h / 60.0).rem_euclid(6.0);
    let i = h.floor();
    let f = h - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i as i32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Apply mmdetection's photometric distortion with draws from `rng` (same order of draws
/// and of operations as `PhotoMetricDistortion.__call__`).
pub fn photometric_distortion(
    img: &mut Image,
    cfg: &PhotometricDistortion,
    rng: &mut Rng,
) -> Result<()> {
    img.try_make_f32()?;
    let Pixels::F32(d) = &mut img.pixels else {
        return Ok(());
    };
    let coin = |rng: &mut Rng| rng.below(2) == 1;
    if coin(rng) {
        let delta = rng.range_f64(-cfg.brightness_delta as f64, cfg.brightness_delta as f64) as f32;
        d.iter_mut().for_each(|v| *v += delta);
    }
    let contrast_first = rng.below(2) == 1;
    let contrast = |d: &mut [f32], rng: &mut Rng| {
        if coin(rng) {
            let [lo, hi] = cfg.contrast_range;
            let a = rng.range_f64(lo as f64, hi as f64) as f32;
            d.iter_mut().for_each(|v| *v *= a);
        }
    };
    if contrast_first {
        contrast(d, rng);
    }
    let sat = coin(rng).then(|| {
        let [lo, hi] = cfg.saturation_range;
        rng.range_f64(lo as f64, hi as f64) as f32
    });
    let hue = coin(rng).then(|| rng.range_f64(-cfg.hue_delta as f64, cfg.hue_delta as f64) as f32);
    if sat.is_some() || hue.is_some() {
        for p in d.chunks_exact_mut(3) {
            let [mut h, mut s, v] = rgb_to_hsv(p[0], p[1], p[2]);
            if let Some(a) = sat {
                s *= a;
            }
            if let Some(dh) = hue {
                h += dh;
                if h > 360.0 {
                    h -= 360.0;
                }
                if h < 0.0 {
                    h += 360.0;
                }
            }
            p.copy_from_slice(&hsv_to_rgb(h, s, v));
        }
    }
    if !contrast_first {
        contrast(d, rng);
    }
    if coin(rng) {
        let mut perm = [0usize, 1, 2];
        rng.shuffle(&mut perm);
        for p in d.chunks_exact_mut(3) {
            let q = [p[perm[0]], p[perm[1]], p[perm[2]]];
            p.copy_from_slice(&q);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_round_trips() {
        let mut rng = Rng::seed(3);
        for _ in 0..1000 {
            let c = [
                rng.uniform_f32() * 255.0,
                rng.uniform_f32() * 255.0,
                rng.uniform_f32() * 255.0,
            ];
            let [h, s, v] = rgb_to_hsv(c[0], c[1], c[2]);
            let back = hsv_to_rgb(h, s, v);
            for k in 0..3 {
                assert!((back[k] - c[k]).abs() < 1e-3, "{c:?} -> {back:?}");
            }
        }
        // Pure colours land on OpenCV's hues.
        assert_eq!(rgb_to_hsv(255.0, 0.0, 0.0)[0], 0.0);
        assert_eq!(rgb_to_hsv(0.0, 255.0, 0.0)[0], 120.0);
        assert_eq!(rgb_to_hsv(0.0, 0.0, 255.0)[0], 240.0);
    }

    #[test]
    fn normalize_reorders_for_bgr_means() {
        let mut img = Image::from_u8(1, 1, vec![10, 20, 30]);
        let cfg = Normalize {
            mean: [30.0, 20.0, 10.0],
            std: [1.0, 2.0, 5.0],
            to_rgb: false,
        };
        normalize(&mut img, &cfg);
        assert_eq!(img.pixels, Pixels::F32(vec![0.0, 0.0, 0.0]));
    }
}
