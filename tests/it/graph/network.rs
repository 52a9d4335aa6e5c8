//! A small conv-bn-relu-pool-conv-head-loss network trains with plain SGD; its memory plan
//! reuses buffers; its step is bit-identical on 1 and 2 threads; train and eval graphs share
//! one parameter store; shape errors are values; the text dump is stable.

use super::harness::{fresh_seed, uniform};
use mmrun::backend::cpu::CpuBackend;
use mmrun::engine::{Executor, ParamSet};
use mmrun::graph::{BnMode, Graph, GraphBuilder, GraphError, Init, Reduction};
use mmrun::ir::op::{Conv2dAttrs, Op};
use mmrun::ir::{DType, HostTensor};
use mmrun::util::rng::Rng;
use std::collections::BTreeMap;

const N: usize = 2;
const HW: usize = 16;
const CLASSES: usize = 3;

fn conv(
    b: &mut GraphBuilder,
    name: &str,
    x: mmrun::graph::NodeId,
    ci: usize,
    co: usize,
    k: usize,
    init_bias: Init,
) -> Result<mmrun::graph::NodeId, GraphError> {
    let w = b.param(
        &format!("{name}.weight"),
        &[co, ci, k, k],
        Init::KaimingNormal {
            fan_out: true,
            a: 0.0,
        },
    )?;
    let bias = b.param(&format!("{name}.bias"), &[co], init_bias)?;
    let pad = k / 2;
    b.conv2d(
        x,
        w,
        Some(bias),
        Conv2dAttrs {
            padding: [pad, pad],
            ..Default::default()
        },
    )
}

/// conv-bn-relu-maxpool-conv-gn-relu, then a classification head (focal loss) and a
/// regression head (smooth L1), reduced the mmdet way with `avg_factor`.
pub(super) fn network(mode: BnMode, with_loss: bool) -> Result<Graph, GraphError> {
    let mut b = GraphBuilder::new(DType::F32);
    let img = b.input("img", &[N, 3, HW, HW], DType::F32)?;
    b.push_scope("backbone");
    let x = conv(&mut b, "conv1", img, 3, 8, 3, Init::Constant(0.0))?;
    let g = b.param("bn1.weight", &[8], Init::Constant(1.0))?;
    let be = b.param("bn1.bias", &[8], Init::Constant(0.0))?;
    let rm = b.buffer("bn1.running_mean", &[8], Init::Constant(0.0))?;
    let rv = b.buffer("bn1.running_var", &[8], Init::Constant(1.0))?;
    let x = b.batch_norm(x, g, be, rm, rv, mode, 1e-5)?;
    let x = b.relu(x)?;
    let x = b.max_pool2d(x, [2, 2], [2, 2], [0, 0])?;
    let x = conv(&mut b, "conv2", x, 8, 8, 3, Init::Constant(0.0))?;
    let g2 = b.param("gn2.weight", &[8], Init::Constant(1.0))?;
    let b2 = b.param("gn2.bias", &[8], Init::Constant(0.0))?;
    let x = b.group_norm(x, 2, g2, b2, 1e-5)?;
    let x = b.relu(x)?;
    b.pop_scope();
    b.push_scope("head");
    let cls = conv(&mut b, "cls", x, 8, CLASSES, 1, Init::PriorProb(0.01))?;
    let reg = conv(&mut b, "reg", x, 8, 4, 1, Init::Constant(0.0))?;
    let a = N * (HW / 2) * (HW / 2);
    let cls = b.permute(cls, &[0, 2, 3, 1])?;
    let cls = b.reshape(cls, &[a, CLASSES])?;
    let reg = b.permute(reg, &[0, 2, 3, 1])?;
    let reg = b.reshape(reg, &[a, 4])?;
    b.output("cls_score", cls)?;
    if with_loss {
        let t = b.input("labels_onehot", &[a, CLASSES], DType::F32)?;
        let bt = b.input("bbox_targets", &[a, 4], DType::F32)?;
        let bw = b.input("bbox_weights", &[a, 4], DType::F32)?;
        let avg = b.input("avg_factor", &[], DType::F32)?;
        let lc = b.sigmoid_focal_loss(cls, t, 0.25, 2.0)?;
        let lc = b.weight_reduce_loss(lc, None, Reduction::Mean, Some(avg))?;
        let lb = b.smooth_l1_loss(reg, bt, 1.0 / 9.0)?;
        let lb = b.weight_reduce_loss(lb, Some(bw), Reduction::Mean, Some(avg))?;
        let loss = b.add(lc, lb)?;
        b.output("loss", loss)?;
        b.backward(loss)?;
    }
    b.pop_scope();
    Ok(b.finish())
}

pub(super) fn feeds(rng: &mut Rng) -> BTreeMap<String, HostTensor> {
    let a = N * (HW / 2) * (HW / 2);
    let mut f = BTreeMap::new();
    let img: Vec<f32> = uniform(rng, N * 3 * HW * HW, -1.0, 1.0)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    f.insert(
        "img".into(),
        HostTensor::f32(vec![N, 3, HW, HW], img).unwrap(),
    );
    let mut onehot = vec![0f32; a * CLASSES];
    let mut bw = vec![0f32; a * 4];
    let mut pos = 0;
    for i in 0..a {
        if rng.uniform_f64() < 0.2 {
            onehot[i * CLASSES + rng.below(CLASSES as u64) as usize] = 1.0;
            bw[i * 4..i * 4 + 4].fill(1.0);
            pos += 1;
        }
    }
    let bt: Vec<f32> = uniform(rng, a * 4, -1.0, 1.0)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    f.insert(
        "labels_onehot".into(),
        HostTensor::f32(vec![a, CLASSES], onehot).unwrap(),
    );
    f.insert(
        "bbox_targets".into(),
        HostTensor::f32(vec![a, 4], bt).unwrap(),
    );
    f.insert(
        "bbox_weights".into(),
        HostTensor::f32(vec![a, 4], bw).unwrap(),
    );
    f.insert(
        "avg_factor".into(),
        HostTensor::scalar(DType::F32, pos.max(1) as f64),
    );
    f
}

#[test]
fn small_network_trains_and_plans_memory() {
    let mut rng = Rng::seed(fresh_seed("small_network_trains_and_plans_memory"));
    let graph = network(BnMode::Train { momentum: 0.1 }, true).unwrap();
    let mut store = ParamSet::init(&graph, rng.next_u64());
    let feeds = feeds(&mut rng);
    let mut ex = Executor::new(graph, CpuBackend);
    let plan = ex.plan().clone();
    eprintln!("{}", plan.summary());
    assert!(
        plan.peak_bytes < plan.total_bytes,
        "reuse must lower the peak: {}",
        plan.summary()
    );
    let mut losses = Vec::new();
    for _ in 0..30 {
        let mut out = ex.run(&store, &feeds).unwrap();
        losses.push(out.scalar("loss").unwrap());
        store.take_run(&mut out).unwrap();
        for p in store.iter_mut().filter(|p| p.trainable) {
            let g = std::mem::take(&mut p.grad);
            for (v, d) in p.values_mut().iter_mut().zip(&g) {
                *v -= 0.05 * d;
            }
            p.grad = g;
        }
    }
    eprintln!("losses: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        losses[29] < 0.7 * losses[0],
        "loss did not decrease: {losses:?}"
    );
    // Train mode moved the BN running statistics away from their initial values.
    assert!(
        store
            .f32("bn1.running_mean")
            .unwrap()
            .iter()
            .any(|&v| v != 0.0)
    );
    // The eval graph runs on the same parameters (same names) and updates no statistics.
    let eval = network(BnMode::Eval, false).unwrap();
    store.check(&eval).unwrap();
    let out = Executor::new(eval, CpuBackend).run(&store, &feeds).unwrap();
    assert_eq!(out.outputs["cls_score"].shape, vec![N * 64, CLASSES]);
    assert!(out.buffers.is_empty() && out.grads.is_empty());
}

#[test]
fn step_is_bit_identical_on_one_and_two_threads() {
    let mut rng = Rng::seed(fresh_seed("step_is_bit_identical_on_one_and_two_threads"));
    let graph = network(BnMode::Train { momentum: 0.1 }, true).unwrap();
    let seed = rng.next_u64();
    let feeds = feeds(&mut rng);
    let step = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let store = ParamSet::init(&graph, seed);
            let out = Executor::new(graph.clone(), CpuBackend)
                .run(&store, &feeds)
                .unwrap();
            let grads: Vec<Vec<f32>> = (out.grads.values())
                .map(|g| g.as_f32().unwrap().to_vec())
                .collect();
            (
                out.scalar("loss").unwrap().to_bits(),
                grads,
                out.buffers["bn1.running_var"].as_f32().unwrap().to_vec(),
            )
        })
    };
    let (a, b) = (step(1), step(2));
    assert_eq!(a.0, b.0, "loss differs between thread counts");
    assert!(a.1 == b.1, "gradients differ between thread counts");
    assert!(a.2 == b.2, "running stats differ between thread counts");
}

#[test]
fn init_is_seeded_and_shared_params_accumulate() {
    let g = network(BnMode::Train { momentum: 0.1 }, true).unwrap();
    let (a, b, c) = (
        ParamSet::init(&g, 7),
        ParamSet::init(&g, 7),
        ParamSet::init(&g, 8),
    );
    assert_eq!(
        a.f32("backbone.conv1.weight"),
        None,
        "scopes do not rename parameters"
    );
    assert_eq!(a.f32("conv1.weight"), b.f32("conv1.weight"));
    assert_ne!(a.f32("conv1.weight"), c.f32("conv1.weight"));
    let bias = a.f32("cls.bias").unwrap()[0] as f64;
    assert!(
        (1.0 / (1.0 + (-bias).exp()) - 0.01).abs() < 1e-6,
        "prior-prob bias gives sigmoid 0.01"
    );
    assert_eq!(a.trainable_numel(), g.num_trainable());
    // A parameter used twice gets one gradient, the sum of both uses.
    let mut bl = GraphBuilder::new(DType::F64);
    let p = bl.param("shared", &[3], Init::Constant(2.0)).unwrap();
    let p2 = bl.param("shared", &[3], Init::Constant(2.0)).unwrap();
    assert_eq!(p, p2);
    let y = bl.mul(p, p2).unwrap();
    let s = bl.sum_all(y).unwrap();
    bl.backward(s).unwrap();
    let gr = bl.finish();
    let st = ParamSet::init(&gr, 0);
    let out = Executor::new(gr, CpuBackend)
        .run(&st, &BTreeMap::new())
        .unwrap();
    assert_eq!(out.grads["shared"].as_f64().unwrap(), &[4.0, 4.0, 4.0]);
}

#[test]
fn shape_errors_are_values_with_scope() {
    let mut b = GraphBuilder::new(DType::F32);
    let x = b.input("x", &[1, 3, 8, 8], DType::F32).unwrap();
    let w = b.param("w", &[4, 5, 3, 3], Init::Constant(0.0)).unwrap();
    b.push_scope("neck.lateral_convs.0");
    let err = b.conv2d(x, w, None, Conv2dAttrs::default()).unwrap_err();
    assert_eq!(err.op(), Some("conv2d"));
    assert_eq!(err.scope(), Some("neck.lateral_convs.0"));
    let msg = err.to_string();
    assert!(
        msg.contains("[1,3,8,8]") && msg.contains("[4,5,3,3]"),
        "{msg}"
    );
    let y = b.input("y", &[2, 3], DType::F32).unwrap();
    assert!(b.add(x, y).is_err());
    assert!(b.reshape(y, &[7]).is_err());
    assert!(b.param("w", &[4, 3, 3, 3], Init::Constant(0.0)).is_err());
}

#[test]
fn text_dump_is_stable() {
    let mut b = GraphBuilder::new(DType::F32);
    let x = b.input("x", &[1, 2, 4, 4], DType::F32).unwrap();
    b.push_scope("stem");
    let w = b
        .param("conv.weight", &[3, 2, 3, 3], Init::Constant(0.1))
        .unwrap();
    let y = b
        .conv2d(
            x,
            w,
            None,
            Conv2dAttrs {
                stride: [2, 2],
                padding: [1, 1],
                ..Default::default()
            },
        )
        .unwrap();
    let y = b.relu(y).unwrap();
    b.pop_scope();
    let s = b.sum_all(y).unwrap();
    b.output("loss", s).unwrap();
    b.backward(s).unwrap();
    let dump = b.finish().dump();
    let expected = "\
graph: 10 nodes, 1 params (54 elements, 54 trainable), 1 inputs
%0 = input \"x\" : f32[1,2,4,4]
%1 = param \"conv.weight\" : f32[3,2,3,3]  @stem
%2 = conv2d(%0, %1) stride=[2, 2] pad=[1, 1] dil=[1, 1] groups=1 : f32[1,3,2,2]  @stem
%3 = relu(%2) : f32[1,3,2,2]  @stem
%4 = sum(%3) axes=[0, 1, 2, 3] keepdim=false : f32[]
%5 = fill 1 : f32[]  @backward
%6 = reshape(%5) : f32[1,1,1,1]  @backward
%7 = broadcast_to(%6) : f32[1,3,2,2]  @backward
%8 = relu_grad(%3, %7) : f32[1,3,2,2]  @backward
%9 = conv2d_grad_weight(%0, %8) stride=[2, 2] pad=[1, 1] dil=[1, 1] groups=1 : f32[3,2,3,3]  @backward
output loss = %4
grad conv.weight = %9
";
    assert!(dump.starts_with(expected), "dump changed:\n{dump}");
    assert!(dump.contains("memory: "), "{dump}");
}

/// `run_resident` (parameters kept on the backend, gradients read there) computes exactly what
/// `run` does, and keeps every parameter buffer for the next run.
#[test]
fn resident_run_matches_the_plain_run() {
    let mut rng = Rng::seed(fresh_seed("resident_run_matches_the_plain_run"));
    let graph = network(BnMode::Train { momentum: 0.1 }, true).unwrap();
    let seed = rng.next_u64();
    let feeds = feeds(&mut rng);
    let plain = ParamSet::init(&graph, seed);
    let want = Executor::new(graph.clone(), CpuBackend)
        .run(&plain, &feeds)
        .unwrap();
    let store = ParamSet::init(&graph, seed);
    let mut ex = Executor::new(graph, CpuBackend);
    let mut resident = BTreeMap::new();
    for _ in 0..2 {
        let got = ex
            .run_resident(&store, &mut resident, &feeds, None)
            .unwrap();
        assert_eq!(
            got.scalar("loss").unwrap().to_bits(),
            want.scalar("loss").unwrap().to_bits()
        );
        assert!(got.grads.is_empty(), "gradients stay on the backend");
        assert_eq!(got.buffers, want.buffers);
    }
    let read = ex
        .plan()
        .schedule
        .iter()
        .filter_map(|id| match &ex.graph().nodes[id.0].op {
            Op::Param { name } => Some(name.as_str()),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(
        resident.len(),
        read,
        "every parameter the graph reads stays resident"
    );
    assert!(
        ex.download_grads().unwrap() == want.grads,
        "gradients differ from the plain run"
    );
}

/// A graph (they deserialize) with two nodes of one parameter name reads the current value
/// through both, step after step, as the parameters change between steps.
#[test]
fn two_nodes_of_one_parameter_both_read_its_current_value() {
    let mut b = GraphBuilder::new(DType::F32);
    let x = b.input("x", &[4], DType::F32).unwrap();
    let w = b.param("w", &[4], Init::Constant(1.0)).unwrap();
    let v = b.param("v", &[4], Init::Constant(1.0)).unwrap();
    let (wx, vx) = (b.mul(w, x).unwrap(), b.mul(v, x).unwrap());
    let (a, c) = (b.sum_all(wx).unwrap(), b.sum_all(vx).unwrap());
    b.output("a", a).unwrap();
    b.output("c", c).unwrap();
    let mut g = b.finish();
    // Node `v` becomes a second node of `w`.
    g.nodes[v.0].op = Op::Param { name: "w".into() };
    g.params.remove("v");
    let mut store = ParamSet::init(&g, 0);
    let mut ex = Executor::new(g, CpuBackend);
    let feeds = BTreeMap::from([(
        "x".to_string(),
        HostTensor::f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
    )]);
    for step in 1..=3 {
        let value = HostTensor::f32(vec![4], vec![step as f32; 4]).unwrap();
        store.set("w", &value).unwrap();
        let out = ex.run(&store, &feeds).unwrap();
        let want = 10.0 * step as f64;
        assert_eq!(out.scalar("a"), Some(want), "step {step}");
        assert_eq!(out.scalar("c"), Some(want), "step {step}");
    }
}
