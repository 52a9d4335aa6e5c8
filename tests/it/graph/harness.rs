//! Shared helpers: a fresh seed per run (printed, so a failure can be replayed with
//! `MMRUN_SEED`), random tensors, and running a graph on the CPU backend.

use mmrun::backend::cpu::CpuBackend;
use mmrun::engine::{Executor, ParamSet, RunOutputs};
use mmrun::graph::Graph;
use mmrun::ir::HostTensor;
use mmrun::util::rng::Rng;
use std::collections::BTreeMap;

pub use crate::support::fresh_seed;

/// Uniform values in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.range_f64(lo, hi)).collect()
}

/// Runs `graph` once with `feeds`.
pub fn run(graph: &Graph, params: &ParamSet, feeds: &BTreeMap<String, HostTensor>) -> RunOutputs {
    let mut ex = Executor::new(graph.clone(), CpuBackend);
    ex.run(params, feeds).expect("graph runs")
}
