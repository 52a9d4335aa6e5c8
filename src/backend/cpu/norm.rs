//! Batch and group normalisation kernels. Statistics are `[2, S]` (mean, biased variance) per
//! channel (batch norm, S = C) or per (image, group) (group norm, S = N·G). Sums run in f64 in
//! a fixed order, one rayon task per statistic or per plane.

use super::Float;
use crate::ir::op::NormKind;
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

/// Independent f64 accumulators per sum: a single running sum is one long dependency chain
/// (an add's latency per element); lanes let the adds overlap and vectorise.
const LANES: usize = 8;

/// Two f64 sums kept in `LANES` lanes each. Element `i` of a plane goes to lane `i % LANES`
/// (the tail after the last full group to lane 0), and lanes are combined pairwise at the end:
/// a fixed order, so the result depends on the data only.
#[derive(Clone, Copy)]
struct LaneSums {
    a: [f64; LANES],
    b: [f64; LANES],
}

impl LaneSums {
    fn new() -> Self {
        LaneSums {
            a: [0.0; LANES],
            b: [0.0; LANES],
        }
    }

    /// Adds `f(i)` for `i` in `0..len`.
    #[inline]
    fn add_plane(&mut self, len: usize, f: impl Fn(usize) -> (f64, f64)) {
        let full = len - len % LANES;
        for i0 in (0..full).step_by(LANES) {
            for l in 0..LANES {
                let (x, y) = f(i0 + l);
                self.a[l] += x;
                self.b[l] += y;
            }
        }
        for i in full..len {
            let (x, y) = f(i);
            self.a[0] += x;
            self.b[0] += y;
        }
    }

    fn total(&self) -> (f64, f64) {
        fn pairwise(v: [f64; LANES]) -> f64 {
            let q = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
            (q[0] + q[2]) + (q[1] + q[3])
        }
        (pairwise(self.a), pairwise(self.b))
    }
}

/// Per-statistic sums over its planes of `term(index in plane)`, computed in f64, where
/// `plane(statistic, plane)` sets up each plane's `term` (its slices and constants).
fn per_stat<F, G>(geo: &NormGeometry, plane: F) -> Vec<(f64, f64)>
where
    F: Fn(usize, usize) -> G + Sync,
    G: Fn(usize) -> (f64, f64),
{
    (0..geo.stats_len())
        .into_par_iter()
        .map(|s| {
            let mut acc = LaneSums::new();
            for p in geo.planes(s) {
                acc.add_plane(geo.hw, plane(s, p));
            }
            acc.total()
        })
        .collect()
}

/// Mean and biased variance (two passes for accuracy).
pub fn stats<T: Float>(geo: &NormGeometry, x: &[T], out: &mut [T]) {
    let m = geo.count() as f64;
    let plane = |p: usize| &x[p * geo.hw..][..geo.hw];
    let sums = per_stat(geo, |_, p| {
        let xp = plane(p);
        move |i: usize| (xp[i].to_f64(), 0.0)
    });
    let means: Vec<f64> = sums.iter().map(|s| s.0 / m).collect();
    let sq = per_stat(geo, |s, p| {
        let (xp, mean) = (plane(p), means[s]);
        move |i: usize| {
            let d = xp[i].to_f64() - mean;
            (d * d, 0.0)
        }
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
    let r = per_stat(geo, |s, p| {
        let (xp, dyp) = (&x[p * geo.hw..][..geo.hw], &dy[p * geo.hw..][..geo.hw]);
        let (mean, is, gam) = (
            st[s].to_f64(),
            invstd(st[sl + s].to_f64(), eps),
            gamma[p % geo.c].to_f64(),
        );
        let dvar = -0.5 * is * is * is;
        move |i: usize| {
            let g = dyp[i].to_f64() * gam;
            (-g * is, g * (xp[i].to_f64() - mean) * dvar)
        }
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
            let mut acc = LaneSums::new();
            for n in 0..geo.n {
                let p = n * geo.c + c;
                let s = geo.stat_of(p);
                let (mean, is) = (st[s].to_f64(), invstd(st[sl + s].to_f64(), eps));
                let (xp, dyp) = (&x[p * geo.hw..][..geo.hw], &dy[p * geo.hw..][..geo.hw]);
                acc.add_plane(geo.hw, |i| {
                    let d = dyp[i].to_f64();
                    (d * (xp[i].to_f64() - mean) * is, d)
                });
            }
            acc.total()
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
