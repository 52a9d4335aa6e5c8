//! The elementwise fusion pass (`graph::fuse_elementwise`) as the executor applies it for the
//! CPU backend: which nodes join a chain and which stay alone, and a train step of a small
//! network whose outputs, gradients and running statistics are the same bits fused and
//! unfused (`Executor::unfused`).

use super::harness::fresh_seed;
use super::network::{feeds, network};
use mmrun::backend::cpu::{CpuBackend, fused};
use mmrun::engine::{Executor, ParamSet};
use mmrun::graph::{BnMode, Graph, GraphBuilder, Init, fuse_elementwise};
use mmrun::ir::op::Op;
use mmrun::ir::{DType, HostTensor};
use mmrun::util::rng::Rng;
use std::collections::BTreeMap;

/// Fusion is on in the test binary (the `jit` feature, `MMRUN_CPU_FUSE` unset): otherwise the
/// tests below would compare the unfused path with itself.
fn fusion_on() {
    if std::env::var(fused::ENV).is_err() && cfg!(feature = "jit") {
        assert!(fused::enabled(), "{}", fused::describe());
    }
}

fn fused_nodes(g: &Graph) -> Vec<String> {
    let plan = mmrun::graph::MemoryPlan::new(g);
    (plan.schedule.iter())
        .filter_map(|id| match &g.nodes[id.0].op {
            Op::Fused(f) => Some(f.describe()),
            _ => None,
        })
        .collect()
}

/// `x + w` → relu (read twice) → `0.5·r`, squared, summed; `r + bias` with a broadcast bias;
/// the sum of `x + w` is an output of its own.
fn small_graph() -> Graph {
    let mut b = GraphBuilder::new(DType::F32);
    let x = b.input("x", &[2, 3, 4], DType::F32).unwrap();
    let w = b.param("w", &[2, 3, 4], Init::Constant(0.25)).unwrap();
    let bias = b.param("bias", &[4], Init::Constant(-0.5)).unwrap();
    let a = b.add(x, w).unwrap();
    let r = b.relu(a).unwrap();
    let s = b.scale(r, 0.5).unwrap();
    let q = b.mul(s, s).unwrap();
    let t = b.add(r, bias).unwrap();
    let q = b.sum(q, &[0, 1, 2], false).unwrap();
    let t = b.sum(t, &[0, 1, 2], false).unwrap();
    let loss = b.add(q, t).unwrap();
    b.output("loss", loss).unwrap();
    b.output("a", a).unwrap();
    b.finish()
}

#[test]
fn chains_join_only_single_consumer_same_shape_nodes() {
    let g = fuse_elementwise(small_graph(), fused::fusable);
    // `a` is an output and `r` has two consumers: both stay. `relu(a)` alone is no chain;
    // `scale` and `mul` (reading `s` twice, one consumer) fuse; the broadcast add stays alone;
    // the scalar adds of the loss are chains of one.
    let want = if fused::enabled() {
        vec!["v1 = Scale(0.5)[v0]; v2 = Mul[v1, v1]".to_string()]
    } else {
        vec![]
    };
    assert_eq!(fused_nodes(&g), want);
    let none = fuse_elementwise(small_graph(), |_, _| false);
    assert_eq!(none, small_graph(), "nothing fusable, nothing changed");
}

#[test]
fn a_fused_step_is_the_same_bits_as_the_ops_one_by_one() {
    fusion_on();
    let mut rng = Rng::seed(fresh_seed(
        "a_fused_step_is_the_same_bits_as_the_ops_one_by_one",
    ));
    let graph = network(BnMode::Train { momentum: 0.1 }, true).unwrap();
    let store = ParamSet::init(&graph, rng.next_u64());
    let feeds = feeds(&mut rng);
    let mut fused_ex = Executor::new(graph.clone(), CpuBackend);
    let mut plain_ex = Executor::unfused(graph, CpuBackend);
    let chains = fused_nodes(fused_ex.graph());
    if fused::enabled() {
        // relu_grad after the add of two gradient paths, at least.
        assert!(!chains.is_empty(), "no chain fused in the step graph");
        eprintln!("fused chains: {chains:#?}");
    }
    assert!(fused_nodes(plain_ex.graph()).is_empty());
    let got = fused_ex.run(&store, &feeds).unwrap();
    let want = plain_ex.run(&store, &feeds).unwrap();
    let bits = |m: &BTreeMap<String, HostTensor>| -> Vec<(String, Vec<u64>)> {
        (m.iter())
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.to_f64_vec().iter().map(|v| v.to_bits()).collect(),
                )
            })
            .collect()
    };
    assert_eq!(bits(&got.outputs), bits(&want.outputs), "outputs");
    assert_eq!(bits(&got.grads), bits(&want.grads), "gradients");
    assert_eq!(
        bits(&got.buffers),
        bits(&want.buffers),
        "running statistics"
    );
    assert!(fused_ex.plan().schedule.len() <= plain_ex.plan().schedule.len());
}
