//! Box coders, mmdetection 2.x semantics: `delta_xywh` (`DeltaXYWHBBoxCoder`) and
//! `distance_point` (`DistancePointBBoxCoder`, FCOS).

use super::{BBox, Real};
use serde::{Deserialize, Serialize};

/// mmdetection's default `wh_ratio_clip`: predicted log-scale changes are clamped to
/// `±|ln(16/1000)|` (torchvision's `bbox_xform_clip`).
pub const DEFAULT_WH_RATIO_CLIP: f64 = 16.0 / 1000.0;

fn default_stds() -> [f64; 4] {
    [1.0; 4]
}
fn default_ctr_clamp() -> f64 {
    32.0
}

/// `delta_xywh` coder: `(dx, dy, dw, dh) = ((gx-px)/pw, (gy-py)/ph, ln(gw/pw), ln(gh/ph))`,
/// normalised as `(d - target_means) / target_stds`.
///
/// torchvision's `BoxCoder(weights)` is the case `target_means = 0`, `target_stds = 1/weights`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaXYWHBBoxCoder {
    pub target_means: [f64; 4],
    pub target_stds: [f64; 4],
    /// Clip decoded boxes to the image (when a shape is given to `decode`).
    pub clip_border: bool,
    /// Clamp the decoded centre shift to `±ctr_clamp` pixels (and `dw`, `dh` only from above),
    /// as mmdetection's `add_ctr_clamp`.
    pub add_ctr_clamp: bool,
    pub ctr_clamp: f64,
}

impl Default for DeltaXYWHBBoxCoder {
    fn default() -> Self {
        Self {
            target_means: [0.0; 4],
            target_stds: default_stds(),
            clip_border: true,
            add_ctr_clamp: false,
            ctr_clamp: default_ctr_clamp(),
        }
    }
}

impl DeltaXYWHBBoxCoder {
    /// Regression target of `gt` relative to `proposal` (mmdetection `bbox2delta`).
    pub fn encode<T: Real>(&self, proposal: &BBox<T>, gt: &BBox<T>) -> [T; 4] {
        let half = T::from_f64(0.5);
        let px = (proposal[0] + proposal[2]) * half;
        let py = (proposal[1] + proposal[3]) * half;
        let pw = proposal[2] - proposal[0];
        let ph = proposal[3] - proposal[1];
        let gx = (gt[0] + gt[2]) * half;
        let gy = (gt[1] + gt[3]) * half;
        let gw = gt[2] - gt[0];
        let gh = gt[3] - gt[1];
        let d = [
            (gx - px) / pw,
            (gy - py) / ph,
            (gw / pw).ln(),
            (gh / ph).ln(),
        ];
        std::array::from_fn(|k| {
            (d[k] - T::from_f64(self.target_means[k])) / T::from_f64(self.target_stds[k])
        })
    }

    /// Box from `delta` applied to `anchor` (mmdetection `delta2bbox`). `max_shape` is the
    /// image `(height, width)` to clip to when `clip_border` is set; `wh_ratio_clip` bounds
    /// the scale change (see [`DEFAULT_WH_RATIO_CLIP`]).
    pub fn decode<T: Real>(
        &self,
        anchor: &BBox<T>,
        delta: &[T; 4],
        max_shape: Option<(T, T)>,
        wh_ratio_clip: f64,
    ) -> BBox<T> {
        let half = T::from_f64(0.5);
        let d: [T; 4] = std::array::from_fn(|k| {
            delta[k] * T::from_f64(self.target_stds[k]) + T::from_f64(self.target_means[k])
        });
        let px = (anchor[0] + anchor[2]) * half;
        let py = (anchor[1] + anchor[3]) * half;
        let pw = anchor[2] - anchor[0];
        let ph = anchor[3] - anchor[1];
        let mut dxw = pw * d[0];
        let mut dyh = ph * d[1];
        let max_ratio = T::from_f64(wh_ratio_clip.ln().abs());
        let (dw, dh) = if self.add_ctr_clamp {
            let c = T::from_f64(self.ctr_clamp);
            dxw = dxw.clamp_to(-c, c);
            dyh = dyh.clamp_to(-c, c);
            (d[2].min(max_ratio), d[3].min(max_ratio))
        } else {
            (
                d[2].clamp_to(-max_ratio, max_ratio),
                d[3].clamp_to(-max_ratio, max_ratio),
            )
        };
        let gx = px + dxw;
        let gy = py + dyh;
        let gw = pw * dw.exp();
        let gh = ph * dh.exp();
        let mut b = [
            gx - gw * half,
            gy - gh * half,
            gx + gw * half,
            gy + gh * half,
        ];
        if let (true, Some((h, w))) = (self.clip_border, max_shape) {
            super::clip_box(&mut b, h, w);
        }
        b
    }
}

/// `distance_point` coder (FCOS): a box as distances `(left, top, right, bottom)` from a point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistancePointBBoxCoder {
    pub clip_border: bool,
}

impl Default for DistancePointBBoxCoder {
    fn default() -> Self {
        Self { clip_border: true }
    }
}

impl DistancePointBBoxCoder {
    /// Distances from `point` to the sides of `gt` (mmdetection `bbox2distance`); with
    /// `max_dis`, clamped to `[0, max_dis - eps]`.
    pub fn encode<T: Real>(
        &self,
        point: [T; 2],
        gt: &BBox<T>,
        max_dis: Option<T>,
        eps: T,
    ) -> [T; 4] {
        let d = [
            point[0] - gt[0],
            point[1] - gt[1],
            gt[2] - point[0],
            gt[3] - point[1],
        ];
        match max_dis {
            Some(m) => d.map(|v| v.clamp_to(T::ZERO, m - eps)),
            None => d,
        }
    }

    /// Box from distances (mmdetection `distance2bbox`), clipped to `(height, width)` when
    /// `clip_border` is set and a shape is given.
    pub fn decode<T: Real>(
        &self,
        point: [T; 2],
        distance: &[T; 4],
        max_shape: Option<(T, T)>,
    ) -> BBox<T> {
        let mut b = [
            point[0] - distance[0],
            point[1] - distance[1],
            point[0] + distance[2],
            point[1] + distance[3],
        ];
        if let (true, Some((h, w))) = (self.clip_border, max_shape) {
            super::clip_box(&mut b, h, w);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_roundtrip_with_means_and_stds() {
        let c = DeltaXYWHBBoxCoder {
            target_means: [0.1, -0.2, 0.0, 0.05],
            target_stds: [0.1, 0.1, 0.2, 0.2],
            ..Default::default()
        };
        let a = [10.0, 20.0, 50.0, 40.0];
        let g = [12.0, 18.0, 60.0, 45.0];
        let d = c.encode(&a, &g);
        let back = c.decode(&a, &d, None, DEFAULT_WH_RATIO_CLIP);
        for k in 0..4 {
            assert!((back[k] - g[k]).abs() < 1e-12, "{back:?}");
        }
    }

    #[test]
    fn delta_decode_clamps_both_sides_and_clips() {
        let c = DeltaXYWHBBoxCoder::default();
        let a = [0.0, 0.0, 10.0, 10.0];
        // dw = -10 clamps to ln(16/1000): width 10 * 0.016 = 0.16.
        let b = c.decode(&a, &[0.0, 0.0, -10.0, 0.0], None, DEFAULT_WH_RATIO_CLIP);
        assert!(((b[2] - b[0]) - 0.16).abs() < 1e-12);
        let b = c.decode(
            &a,
            &[0.0, 0.0, 1.0, 1.0],
            Some((8.0, 9.0)),
            DEFAULT_WH_RATIO_CLIP,
        );
        assert_eq!([b[0], b[1], b[2], b[3]], [0.0, 0.0, 9.0, 8.0]);
    }

    #[test]
    fn distance_roundtrip_and_clamp() {
        let c = DistancePointBBoxCoder::default();
        let p = [5.0, 6.0];
        let g = [1.0, 2.0, 30.0, 7.0];
        let d = c.encode(p, &g, None, 0.1);
        assert_eq!(d, [4.0, 4.0, 25.0, 1.0]);
        assert_eq!(c.decode(p, &d, None), g);
        assert_eq!(c.encode(p, &g, Some(10.0), 0.1), [4.0, 4.0, 9.9, 1.0]);
    }
}
