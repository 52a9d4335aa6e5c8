//! Anchors and point priors, mmdetection 2.x semantics.
//!
//! [`AnchorGenerator`] mirrors `mmdet.core.anchor.AnchorGenerator`: base anchors per level
//! from `base_sizes` (default: the level's stride), `ratios` and `scales` (or
//! `octave_base_scale · 2^(i / scales_per_octave)`), centred at `center_offset · base_size`,
//! ordered ratio-major (`scale_major = true`, for each ratio every scale); a level's anchors are
//! the base anchors shifted over the feature grid, ordered per location (row-major y, x), then
//! per base anchor. Arithmetic is `f32` in the same order as mmdetection's tensors, so the
//! anchors agree bit for bit.
//!
//! [`point_grid`] mirrors `MlvlPointGenerator` (FCOS points `(i + offset) · stride`).

use super::boxes::BBox;
use serde::{Deserialize, Serialize};

/// A stride given as one number or as `[w, h]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stride {
    Square(f64),
    Pair([f64; 2]),
}

impl Stride {
    /// `(stride_w, stride_h)`.
    pub fn wh(self) -> (f64, f64) {
        match self {
            Stride::Square(s) => (s, s),
            Stride::Pair([w, h]) => (w, h),
        }
    }
}

/// Config of mmdetection's `AnchorGenerator` (same parameter names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorGeneratorConfig {
    pub strides: Vec<Stride>,
    pub ratios: Vec<f64>,
    pub scales: Option<Vec<f64>>,
    pub base_sizes: Option<Vec<f64>>,
    pub scale_major: bool,
    pub octave_base_scale: Option<f64>,
    pub scales_per_octave: Option<usize>,
    pub center_offset: f64,
}

/// Why an anchor generator config is unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnchorError {
    #[error(
        "anchor_generator: give either `scales` or both `octave_base_scale` and `scales_per_octave`, not both or neither"
    )]
    Scales,
    #[error("anchor_generator: `base_sizes` has {0} entries but `strides` has {1}")]
    BaseSizes(usize, usize),
    #[error("anchor_generator: `center_offset` must be in [0, 1], got {0}")]
    CenterOffset(f64),
    #[error("anchor_generator: `{0}` must be non-empty with positive values")]
    NonPositive(&'static str),
    #[error("anchor_generator: {0} feature map sizes given for {1} levels")]
    Levels(usize, usize),
}

/// A validated anchor generator with its base anchors computed.
#[derive(Clone, Debug)]
pub struct AnchorGenerator {
    strides: Vec<(f64, f64)>,
    base_anchors: Vec<Vec<BBox<f32>>>,
}

impl AnchorGenerator {
    /// Validate a config and compute the base anchors of every level.
    pub fn new(cfg: &AnchorGeneratorConfig) -> Result<Self, AnchorError> {
        let positive = |v: &[f64]| !v.is_empty() && v.iter().all(|&x| x > 0.0);
        if cfg.strides.is_empty()
            || !cfg.strides.iter().all(|s| {
                let (w, h) = s.wh();
                w > 0.0 && h > 0.0
            })
        {
            return Err(AnchorError::NonPositive("strides"));
        }
        if !positive(&cfg.ratios) {
            return Err(AnchorError::NonPositive("ratios"));
        }
        if !(0.0..=1.0).contains(&cfg.center_offset) {
            return Err(AnchorError::CenterOffset(cfg.center_offset));
        }
        // mmdetection builds the scales as float64 numpy, then stores them as float32 tensors.
        let scales: Vec<f32> = match (&cfg.scales, cfg.octave_base_scale, cfg.scales_per_octave) {
            (Some(s), None, None) if positive(s) => s.iter().map(|&x| x as f32).collect(),
            (None, Some(base), Some(n)) if n > 0 && base > 0.0 => (0..n)
                .map(|i| (2f64.powf(i as f64 / n as f64) * base) as f32)
                .collect(),
            _ => return Err(AnchorError::Scales),
        };
        let strides: Vec<(f64, f64)> = cfg.strides.iter().map(|s| s.wh()).collect();
        let base_sizes: Vec<f64> = match &cfg.base_sizes {
            Some(b) if b.len() != strides.len() => {
                return Err(AnchorError::BaseSizes(b.len(), strides.len()));
            }
            Some(b) if !positive(b) => return Err(AnchorError::NonPositive("base_sizes")),
            Some(b) => b.clone(),
            None => strides.iter().map(|&(w, h)| w.min(h)).collect(),
        };
        let ratios: Vec<f32> = cfg.ratios.iter().map(|&r| r as f32).collect();
        let base_anchors = base_sizes
            .iter()
            .map(|&bs| {
                base_anchors(
                    bs as f32,
                    &scales,
                    &ratios,
                    cfg.center_offset as f32,
                    cfg.scale_major,
                )
            })
            .collect();
        Ok(Self {
            strides,
            base_anchors,
        })
    }

    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.strides.len()
    }

    /// Anchors per location on each level (`len(ratios) · len(scales)`).
    pub fn num_base_anchors(&self) -> Vec<usize> {
        self.base_anchors.iter().map(Vec::len).collect()
    }

    /// Base anchors of a level (centred at `center_offset · base_size`).
    pub fn base_anchors(&self, level: usize) -> &[BBox<f32>] {
        &self.base_anchors[level]
    }

    /// `(stride_w, stride_h)` of each level.
    pub fn strides(&self) -> &[(f64, f64)] {
        &self.strides
    }

    /// Anchors of every level for feature maps of `(height, width)`; see the module docs for
    /// the order.
    pub fn grid_anchors(
        &self,
        featmap_sizes: &[(usize, usize)],
    ) -> Result<Vec<Vec<BBox<f32>>>, AnchorError> {
        self.check_levels(featmap_sizes)?;
        Ok(featmap_sizes
            .iter()
            .enumerate()
            .map(|(l, &(fh, fw))| {
                let (sw, sh) = self.strides[l];
                let base = &self.base_anchors[l];
                let mut out = Vec::with_capacity(fh * fw * base.len());
                for y in 0..fh {
                    // mmdetection: integer shifts `arange(feat) * stride`, then cast to float32.
                    let shy = (y as f64 * sh) as f32;
                    for x in 0..fw {
                        let shx = (x as f64 * sw) as f32;
                        for b in base {
                            out.push([b[0] + shx, b[1] + shy, b[2] + shx, b[3] + shy]);
                        }
                    }
                }
                out
            })
            .collect())
    }

    /// Valid flags of every level: an anchor is valid when its location lies inside the part of
    /// the feature map that covers the (unpadded-by-the-batch) `pad_shape = (height, width)`,
    /// i.e. `ceil(pad / stride)` rows and columns, as mmdetection's `valid_flags`.
    pub fn valid_flags(
        &self,
        featmap_sizes: &[(usize, usize)],
        pad_shape: (usize, usize),
    ) -> Result<Vec<Vec<bool>>, AnchorError> {
        self.check_levels(featmap_sizes)?;
        Ok(featmap_sizes
            .iter()
            .enumerate()
            .map(|(l, &(fh, fw))| {
                let (sw, sh) = self.strides[l];
                let vh = ((pad_shape.0 as f64 / sh).ceil() as usize).min(fh);
                let vw = ((pad_shape.1 as f64 / sw).ceil() as usize).min(fw);
                let n = self.base_anchors[l].len();
                let mut out = Vec::with_capacity(fh * fw * n);
                for y in 0..fh {
                    for x in 0..fw {
                        out.extend(std::iter::repeat_n(y < vh && x < vw, n));
                    }
                }
                out
            })
            .collect())
    }

    fn check_levels(&self, featmap_sizes: &[(usize, usize)]) -> Result<(), AnchorError> {
        if featmap_sizes.len() != self.strides.len() {
            return Err(AnchorError::Levels(featmap_sizes.len(), self.strides.len()));
        }
        Ok(())
    }
}

/// mmdetection's `gen_single_level_base_anchors`, in float32 in the same operation order.
fn base_anchors(
    base_size: f32,
    scales: &[f32],
    ratios: &[f32],
    center_offset: f32,
    scale_major: bool,
) -> Vec<BBox<f32>> {
    let (w, h) = (base_size, base_size);
    let xc = center_offset * w;
    let yc = center_offset * h;
    let one = |r: f32, s: f32| {
        let hr = r.sqrt();
        let wr = 1.0 / hr;
        let ws = w * wr * s;
        let hs = h * hr * s;
        [xc - 0.5 * ws, yc - 0.5 * hs, xc + 0.5 * ws, yc + 0.5 * hs]
    };
    let mut out = Vec::with_capacity(scales.len() * ratios.len());
    if scale_major {
        for &r in ratios {
            for &s in scales {
                out.push(one(r, s));
            }
        }
    } else {
        for &s in scales {
            for &r in ratios {
                out.push(one(r, s));
            }
        }
    }
    out
}

/// FCOS points of each level for feature maps of `(height, width)`:
/// `((x + offset) · stride_w, (y + offset) · stride_h)`, row-major, as `MlvlPointGenerator`.
pub fn point_grid(
    strides: &[(f64, f64)],
    featmap_sizes: &[(usize, usize)],
    offset: f64,
) -> Vec<Vec<[f32; 2]>> {
    strides
        .iter()
        .zip(featmap_sizes)
        .map(|(&(sw, sh), &(fh, fw))| {
            let mut out = Vec::with_capacity(fh * fw);
            for y in 0..fh {
                for x in 0..fw {
                    out.push([
                        ((x as f64 + offset) * sw) as f32,
                        ((y as f64 + offset) * sh) as f32,
                    ]);
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retina_cfg() -> AnchorGeneratorConfig {
        AnchorGeneratorConfig {
            strides: [8.0, 16.0, 32.0, 64.0, 128.0].map(Stride::Square).to_vec(),
            ratios: vec![0.5, 1.0, 2.0],
            scales: None,
            base_sizes: None,
            scale_major: true,
            octave_base_scale: Some(4.0),
            scales_per_octave: Some(3),
            center_offset: 0.0,
        }
    }

    #[test]
    fn retina_base_anchor_ratio_one_scale_one_is_square() {
        let g = AnchorGenerator::new(&retina_cfg()).unwrap();
        assert_eq!(g.num_base_anchors(), vec![9; 5]);
        // ratio 1 (index 1), first scale 4 · 2^0: a 32×32 box at stride 8 centred at 0.
        assert_eq!(g.base_anchors(0)[3], [-16.0, -16.0, 16.0, 16.0]);
    }

    #[test]
    fn bad_configs_are_errors() {
        let mut c = retina_cfg();
        c.scales = Some(vec![1.0]);
        assert_eq!(AnchorGenerator::new(&c).unwrap_err(), AnchorError::Scales);
        let mut c = retina_cfg();
        c.base_sizes = Some(vec![8.0]);
        assert_eq!(
            AnchorGenerator::new(&c).unwrap_err(),
            AnchorError::BaseSizes(1, 5)
        );
    }

    #[test]
    fn valid_flags_cover_ceil_of_pad_shape() {
        let g = AnchorGenerator::new(&retina_cfg()).unwrap();
        let sizes = [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1)];
        let v = g.valid_flags(&sizes, (17, 9)).unwrap();
        // level 0: ceil(17/8)=3 rows, ceil(9/8)=2 columns valid.
        let valid_locs: usize = v[0].iter().filter(|&&f| f).count() / 9;
        assert_eq!(valid_locs, 6);
        assert!(v[0][0] && !v[0][2 * 9]);
    }
}
