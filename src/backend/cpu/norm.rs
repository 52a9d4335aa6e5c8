//! Batch and group normalisation kernels. Statistics are `[2, S]` (mean, biased variance) per
//! channel (batch norm, S = C) or per (image, group) (group norm, S = N·G). Sums run in f64 in
//! a fixed order, one rayon task per statistic or per plane.

use super::Float;
use crate::graph::op::NormKind;
use rayon::prelude::*;

/// Which (image, channel) planes share a statistic.
#[derive(Clone, Copy, Debug)]
pub struct NormGeometry {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub kind: NormKind,
}

impl NormGeometry {
    /// Geometry of `x [N,C,H,W]` (trailing dims multiply into `hw`).
    pub fn new(xs: &[usize], kind: NormKind) -> Self {
        NormGeometry {
            n: xs[0],
            c: xs[1],
            hw: xs[2..].iter().product(),
            kind,
        }
    }
    /// Number of statistics.
    pub fn stats_len(&self) -> usize {
        match self.kind {
            NormKind::Batch => self.c,
            NormKind::Group(g) => self.n * g,
        }
    }
    /// Elements per statistic.
    pub fn count(&self) -> usize {
        self.n * self.c * self.hw / self.stats_len()
    }
    /// Statistic of plane `p = n*C + c`.
    pub fn stat_of(&self, p: usize) -> usize {
        match self.kind {
            NormKind::Batch => p % self.c,
            NormKind::Group(g) => (p / self.c) * g + (p % self.c) / (self.c / g),
        }
    }
    /// Planes of statistic `s`, in increasing order.
    pub fn planes(&self, s: usize) -> Vec<usize> {
        match self.kind {
            NormKind::Batch => (0..self.n).map(|n| n * self.c + s).collect(),
            NormKind::Group(g) => {
                let cg = self.c / g;
                let (n, gi) = (s / g, s % g);
                (0..cg).map(|k| n * self.c + gi * cg + k).collect()
            }
        }
    }
}

fn invstd(var: f64, eps: f64) -> f64 {
    1.0 / (var + eps).sqrt()
}

/// Per-statistic sums of `f(plane, index in plane)`, computed in f64.
fn per_stat<F>(geo: &NormGeometry, f: F) -> Vec<(f64, f64)>
where
    F: Fn(usize, usize, usize) -> (f64, f64) + Sync,
{
    (0..geo.stats_len())
        .into_par_iter()
        .map(|s| {
            let mut acc = (0.0, 0.0);
            for p in geo.planes(s) {
                for i in 0..geo.hw {
                    let (a, b) = f(s, p, i);
                    acc.0 += a;
                    acc.1 += b;
                }
            }
            acc
        })
        .collect()
}

/// Mean and biased variance (two passes for accuracy).
pub fn stats<T: Float>(geo: &NormGeometry, x: &[T], out: &mut [T]) {
    let m = geo.count() as f64;
    let sums = per_stat(geo, |_, p, i| (x[p * geo.hw + i].to_f64(), 0.0));
    let means: Vec<f64> = sums.iter().map(|s| s.0 / m).collect();
    let sq = per_stat(geo, |s, p, i| {
        let d = x[p * geo.hw + i].to_f64() - means[s];
        (d * d, 0.0)
    });
    let sl = geo.stats_len();
    for s in 0..sl {
        out[s] = T::from_f64(means[s]);
        out[sl + s] = T::from_f64(sq[s].0 / m);
    }
}

/// `y = (x - mean) * invstd * gamma + beta`.
pub fn apply<T: Float>(
    geo: &NormGeometry,
    x: &[T],
    st: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    y: &mut [T],
) {
    let sl = geo.stats_len();
    y.par_chunks_mut(geo.hw).enumerate().for_each(|(p, out)| {
        let (s, c) = (geo.stat_of(p), p % geo.c);
        let mean = st[s];
        let scale = T::from_f64(invstd(st[sl + s].to_f64(), eps)) * gamma[c];
        let b = beta[c];
        for (o, &v) in out.iter_mut().zip(&x[p * geo.hw..(p + 1) * geo.hw]) {
            *o = (v - mean) * scale + b;
        }
    });
}

/// `dx = dy * gamma * invstd` (statistics held constant).
pub fn apply_grad_x<T: Float>(
    geo: &NormGeometry,
    st: &[T],
    gamma: &[T],
    dy: &[T],
    eps: f64,
    dx: &mut [T],
) {
    let sl = geo.stats_len();
    dx.par_chunks_mut(geo.hw).enumerate().for_each(|(p, out)| {
        let (s, c) = (geo.stat_of(p), p % geo.c);
        let scale = T::from_f64(invstd(st[sl + s].to_f64(), eps)) * gamma[c];
        for (o, &d) in out.iter_mut().zip(&dy[p * geo.hw..(p + 1) * geo.hw]) {
            *o = d * scale;
        }
    });
}

/// Gradient w.r.t. (mean, var): `[2, S]`.
pub fn apply_grad_stats<T: Float>(
    geo: &NormGeometry,
    x: &[T],
    st: &[T],
    gamma: &[T],
    dy: &[T],
    eps: f64,
    out: &mut [T],
) {
    let sl = geo.stats_len();
    let r = per_stat(geo, |s, p, i| {
        let is = invstd(st[sl + s].to_f64(), eps);
        let g = dy[p * geo.hw + i].to_f64() * gamma[p % geo.c].to_f64();
        let xm = x[p * geo.hw + i].to_f64() - st[s].to_f64();
        (-g * is, g * xm * -0.5 * is * is * is)
    });
    for s in 0..sl {
        out[s] = T::from_f64(r[s].0);
        out[sl + s] = T::from_f64(r[s].1);
    }
}

/// Gradient w.r.t. (gamma, beta): `[2, C]`.
pub fn apply_grad_affine<T: Float>(
    geo: &NormGeometry,
    x: &[T],
    st: &[T],
    dy: &[T],
    eps: f64,
    out: &mut [T],
) {
    let sl = geo.stats_len();
    let r: Vec<(f64, f64)> = (0..geo.c)
        .into_par_iter()
        .map(|c| {
            let mut acc = (0.0, 0.0);
            for n in 0..geo.n {
                let p = n * geo.c + c;
                let s = geo.stat_of(p);
                let (mean, is) = (st[s].to_f64(), invstd(st[sl + s].to_f64(), eps));
                for i in 0..geo.hw {
                    let d = dy[p * geo.hw + i].to_f64();
                    acc.0 += d * (x[p * geo.hw + i].to_f64() - mean) * is;
                    acc.1 += d;
                }
            }
            acc
        })
        .collect();
    for c in 0..geo.c {
        out[c] = T::from_f64(r[c].0);
        out[geo.c + c] = T::from_f64(r[c].1);
    }
}

/// Gradient of the statistics w.r.t. `x`: `dmean / M + dvar * 2 (x - mean) / M`.
pub fn stats_grad<T: Float>(geo: &NormGeometry, x: &[T], st: &[T], dst: &[T], dx: &mut [T]) {
    let sl = geo.stats_len();
    let m = geo.count() as f64;
    dx.par_chunks_mut(geo.hw).enumerate().for_each(|(p, out)| {
        let s = geo.stat_of(p);
        let (mean, dm, dv) = (st[s].to_f64(), dst[s].to_f64(), dst[sl + s].to_f64());
        for (o, &v) in out.iter_mut().zip(&x[p * geo.hw..(p + 1) * geo.hw]) {
            *o = T::from_f64(dm / m + dv * 2.0 * (v.to_f64() - mean) / m);
        }
    });
}
