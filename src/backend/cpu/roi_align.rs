//! RoIAlign and its input gradient (torchvision's `roi_align`, the kernel of mmcv's
//! `RoIAlign` with `pool_mode = avg`): each output bin averages bilinear samples on a regular
//! grid inside the box, with torchvision's sampling and border rules, in the order its CPU
//! kernel adds them, so f32 results agree to rounding and f64 to the last bits.
//!
//! The gradient scatters into the input plane by plane (`(n, c)`), each plane visiting the
//! boxes in order: bits do not depend on the thread count.

use super::float::Float;
use rayon::prelude::*;

/// RoIAlign's attributes (torchvision's arguments).
#[derive(Clone, Copy, Debug)]
pub struct RoiAlignGeometry {
    /// `[N, C, H, W]` of the feature map.
    pub input: [usize; 4],
    /// Output bins `[ph, pw]`.
    pub output: [usize; 2],
    pub spatial_scale: f64,
    /// Samples per bin along each axis; 0: `ceil(box size / bins)`, per box.
    pub sampling_ratio: usize,
    /// Pixel centres at +0.5 (`aligned = True`, Detectron2's and mmdetection's setting).
    pub aligned: bool,
}

/// One bilinear sample: the four neighbours' flat offsets in a plane and their weights.
#[derive(Clone, Copy, Default)]
struct Sample<T> {
    at: [usize; 4],
    w: [T; 4],
}

/// The samples of one box, bin by bin (`ph`, `pw`, then `iy`, `ix`), and the count each
/// bin's sum is divided by (torchvision divides; it does not multiply by a reciprocal).
struct BoxSamples<T> {
    samples: Vec<Option<Sample<T>>>,
    per_bin: usize,
    count: T,
}

impl RoiAlignGeometry {
    /// The batch image a box `[batch, x1, y1, x2, y2]` reads, or why it cannot.
    fn image_of<T: Float>(&self, roi: &[T], k: usize) -> Result<usize, String> {
        let b = roi[0].to_f64();
        if !(b >= 0.0 && b.fract() == 0.0 && (b as usize) < self.input[0]) {
            return Err(format!(
                "roi_align: box {k} names batch image {b}, but the batch has {} images",
                self.input[0]
            ));
        }
        Ok(b as usize)
    }

    /// torchvision's `pre_calc` for one box.
    fn samples<T: Float>(&self, roi: &[T]) -> BoxSamples<T> {
        let [_, _, h, w] = self.input;
        let [ph, pw] = self.output;
        let scale = T::from_f64(self.spatial_scale);
        let offset = T::from_f64(if self.aligned { 0.5 } else { 0.0 });
        let (x0, y0) = (roi[1] * scale - offset, roi[2] * scale - offset);
        let (x1, y1) = (roi[3] * scale - offset, roi[4] * scale - offset);
        let (mut rw, mut rh) = (x1 - x0, y1 - y0);
        if !self.aligned {
            // Malformed boxes are forced to 1×1.
            rw = rw.max(T::ONE);
            rh = rh.max(T::ONE);
        }
        let (bin_h, bin_w) = (rh / T::from_f64(ph as f64), rw / T::from_f64(pw as f64));
        let grid = |size: T, bins: usize| match self.sampling_ratio {
            0 => (size / T::from_f64(bins as f64)).to_f64().ceil().max(0.0) as usize,
            s => s,
        };
        let (gh, gw) = (grid(rh, ph), grid(rw, pw));
        let count = T::from_f64((gh * gw).max(1) as f64);
        let mut samples = Vec::with_capacity(ph * pw * gh * gw);
        for p in 0..ph {
            for q in 0..pw {
                for iy in 0..gh {
                    let y = y0
                        + T::from_f64(p as f64) * bin_h
                        + T::from_f64(iy as f64 + 0.5) * bin_h / T::from_f64(gh as f64);
                    for ix in 0..gw {
                        let x = x0
                            + T::from_f64(q as f64) * bin_w
                            + T::from_f64(ix as f64 + 0.5) * bin_w / T::from_f64(gw as f64);
                        samples.push(bilinear(y, x, h, w));
                    }
                }
            }
        }
        BoxSamples {
            samples,
            per_bin: gh * gw,
            count,
        }
    }
}

/// torchvision's `bilinear_interpolate` weights at `(y, x)`; `None` outside `[-1, size]`.
fn bilinear<T: Float>(mut y: T, mut x: T, h: usize, w: usize) -> Option<Sample<T>> {
    let (hf, wf) = (T::from_f64(h as f64), T::from_f64(w as f64));
    let neg1 = -T::ONE;
    if y < neg1 || y > hf || x < neg1 || x > wf {
        return None;
    }
    if y <= T::ZERO {
        y = T::ZERO;
    }
    if x <= T::ZERO {
        x = T::ZERO;
    }
    let corner = |v: &mut T, size: usize| -> (usize, usize) {
        let low = v.to_f64() as usize;
        if low >= size - 1 {
            *v = T::from_f64((size - 1) as f64);
            (size - 1, size - 1)
        } else {
            (low, low + 1)
        }
    };
    let (yl, yh) = corner(&mut y, h);
    let (xl, xh) = corner(&mut x, w);
    let ly = y - T::from_f64(yl as f64);
    let lx = x - T::from_f64(xl as f64);
    let (hy, hx) = (T::ONE - ly, T::ONE - lx);
    Some(Sample {
        at: [yl * w + xl, yl * w + xh, yh * w + xl, yh * w + xh],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    })
}

/// Each box's batch image and samples.
fn prepare<T: Float>(
    g: &RoiAlignGeometry,
    rois: &[T],
) -> Result<(Vec<usize>, Vec<BoxSamples<T>>), String> {
    let k = rois.len() / 5;
    let images: Vec<usize> = (0..k)
        .map(|i| g.image_of(&rois[i * 5..i * 5 + 5], i))
        .collect::<Result<_, _>>()?;
    let boxes = (0..k)
        .into_par_iter()
        .map(|i| g.samples(&rois[i * 5..i * 5 + 5]))
        .collect();
    Ok((images, boxes))
}

/// `y [K, C, ph, pw]` from `x [N, C, H, W]` and `rois [K, 5]`.
pub fn roi_align<T: Float>(
    g: &RoiAlignGeometry,
    x: &[T],
    rois: &[T],
    y: &mut [T],
) -> Result<(), String> {
    let [_, c, h, w] = g.input;
    let bins = g.output[0] * g.output[1];
    let (images, boxes) = prepare(g, rois)?;
    y[..boxes.len() * c * bins]
        .par_chunks_mut(bins)
        .enumerate()
        .for_each(|(kc, out)| {
            let (i, ch) = (kc / c, kc % c);
            let plane = &x[(images[i] * c + ch) * h * w..][..h * w];
            let b = &boxes[i];
            for (bin, o) in out.iter_mut().enumerate() {
                let mut acc = T::ZERO;
                for s in b.samples[bin * b.per_bin..(bin + 1) * b.per_bin]
                    .iter()
                    .flatten()
                {
                    acc += s.w[0] * plane[s.at[0]]
                        + s.w[1] * plane[s.at[1]]
                        + s.w[2] * plane[s.at[2]]
                        + s.w[3] * plane[s.at[3]];
                }
                *o = acc / b.count;
            }
        });
    Ok(())
}

/// `dx [N, C, H, W]` from `rois [K, 5]` and `dy [K, C, ph, pw]`.
pub fn roi_align_grad<T: Float>(
    g: &RoiAlignGeometry,
    rois: &[T],
    dy: &[T],
    dx: &mut [T],
) -> Result<(), String> {
    let [n, c, h, w] = g.input;
    let bins = g.output[0] * g.output[1];
    let (images, boxes) = prepare(g, rois)?;
    dx[..n * c * h * w]
        .par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(nc, plane)| {
            plane.fill(T::ZERO);
            let (img, ch) = (nc / c, nc % c);
            for (i, b) in boxes.iter().enumerate().filter(|(i, _)| images[*i] == img) {
                let g = &dy[(i * c + ch) * bins..][..bins];
                for (bin, &gb) in g.iter().enumerate() {
                    for s in b.samples[bin * b.per_bin..(bin + 1) * b.per_bin]
                        .iter()
                        .flatten()
                    {
                        for (&at, &wt) in s.at.iter().zip(&s.w) {
                            plane[at] += gb * wt / b.count;
                        }
                    }
                }
            }
        });
    Ok(())
}
