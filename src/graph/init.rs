//! Parameter initialisers (PyTorch/mmcv formulas), drawn from a seeded RNG stream per
//! parameter name, so that a parameter's initial value depends only on the seed and its name —
//! not on how many parameters were created before it, nor on threads.

use crate::util::rng::Rng;
use serde::{Deserialize, Serialize};

/// How a parameter or buffer starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    Constant(f64),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        lo: f64,
        hi: f64,
    },
    /// `N(0, gain / sqrt(fan))`, gain `sqrt(2 / (1 + a²))` (mmcv `kaiming_init`, relu: a = 0).
    KaimingNormal {
        fan_out: bool,
        a: f64,
    },
    /// `U(-b, b)`, `b = gain * sqrt(3 / fan)` (PyTorch's default conv init uses a = √5, fan_in).
    KaimingUniform {
        fan_out: bool,
        a: f64,
    },
    /// `U(-b, b)`, `b = gain * sqrt(6 / (fan_in + fan_out))`.
    XavierUniform {
        gain: f64,
    },
    /// `N(0, gain * sqrt(2 / (fan_in + fan_out)))`.
    XavierNormal {
        gain: f64,
    },
    /// Constant bias `-ln((1 - p) / p)` so that the initial sigmoid output is `p` (focal-loss
    /// classification heads, mmcv `bias_init_with_prob`).
    PriorProb(f64),
}

/// `(fan_in, fan_out)` of a weight shape as PyTorch computes them.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        _ => {
            let receptive: usize = shape[2..].iter().product();
            (shape[1] * receptive, shape[0] * receptive)
        }
    }
}

fn name_hash(name: &str) -> u64 {
    // FNV-1a: stable across platforms and Rust versions (unlike `DefaultHasher`).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Init {
    /// Values for a parameter `name` of `shape`, from `seed`.
    pub fn sample(&self, name: &str, shape: &[usize], seed: u64) -> Vec<f64> {
        let n: usize = shape.iter().product();
        let mut rng = Rng::stream(seed, name_hash(name));
        let (fi, fo) = fans(shape);
        let gain = |a: f64| (2.0 / (1.0 + a * a)).sqrt();
        match *self {
            Init::Constant(v) => vec![v; n],
            Init::PriorProb(p) => vec![-((1.0 - p) / p).ln(); n],
            Init::Normal { mean, std } => (0..n).map(|_| mean + std * rng.normal_f64()).collect(),
            Init::Uniform { lo, hi } => (0..n).map(|_| rng.range_f64(lo, hi)).collect(),
            Init::KaimingNormal { fan_out, a } => {
                let std = gain(a) / ((if fan_out { fo } else { fi }) as f64).sqrt();
                (0..n).map(|_| std * rng.normal_f64()).collect()
            }
            Init::KaimingUniform { fan_out, a } => {
                let b = gain(a) * (3.0 / (if fan_out { fo } else { fi }) as f64).sqrt();
                (0..n).map(|_| rng.range_f64(-b, b)).collect()
            }
            Init::XavierUniform { gain } => {
                let b = gain * (6.0 / (fi + fo) as f64).sqrt();
                (0..n).map(|_| rng.range_f64(-b, b)).collect()
            }
            Init::XavierNormal { gain } => {
                let std = gain * (2.0 / (fi + fo) as f64).sqrt();
                (0..n).map(|_| std * rng.normal_f64()).collect()
            }
        }
    }
}
