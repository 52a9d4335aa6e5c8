//! Every op's gradient in f64 against central finite differences, on random shapes and values
//! drawn fresh each run.

use super::harness::{fresh_seed, run, uniform};
use mmrun::engine::ParamSet;
use mmrun::graph::{BnMode, GraphBuilder, GraphError, Init, NodeId, Reduction};
use mmrun::ir::op::{Conv2dAttrs, IouKind};
use mmrun::ir::{DType, HostTensor};
use mmrun::util::rng::Rng;
use std::collections::BTreeMap;

type Build<'a> = &'a dyn Fn(&mut GraphBuilder, &[NodeId]) -> Result<NodeId, GraphError>;

/// Checks d(sum(build(params) * w))/d(params) against central differences.
fn gradcheck(
    name: &str,
    rng: &mut Rng,
    params: &[(&str, Vec<usize>, Vec<f64>)],
    feeds: &BTreeMap<String, HostTensor>,
    build: Build<'_>,
) {
    let make = |with_grad: bool| {
        let mut b = GraphBuilder::new(DType::F64);
        let ids: Vec<NodeId> = params
            .iter()
            .map(|(n, s, _)| b.param(n, s, Init::Constant(0.0)).unwrap())
            .collect();
        for (k, t) in feeds {
            b.input(k, &t.shape, t.dtype()).unwrap();
        }
        let y = build(&mut b, &ids).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ys = b.shape(y).to_vec();
        let w = b.input("__w", &ys, DType::F64).unwrap();
        let m = b.mul(y, w).unwrap();
        let loss = b.sum_all(m).unwrap();
        b.output("loss", loss).unwrap();
        if with_grad {
            b.backward(loss).unwrap();
        }
        (b.finish(), ys)
    };
    let (step, ys) = make(true);
    let (fwd, _) = make(false);
    let mut feeds = feeds.clone();
    let n: usize = ys.iter().product();
    feeds.insert(
        "__w".into(),
        HostTensor::f64(ys, uniform(rng, n, 0.5, 1.5)).unwrap(),
    );
    let mut store = ParamSet::init(&step, 0);
    for (n, s, v) in params {
        store
            .set(n, &HostTensor::f64(s.clone(), v.clone()).unwrap())
            .unwrap();
    }
    let out = run(&step, &store, &feeds);
    let h = 1e-6;
    for (pname, shape, vals) in params {
        let g = (out.grads.get(*pname))
            .unwrap_or_else(|| panic!("{name}: no grad for {pname}"))
            .as_f64()
            .unwrap()
            .to_vec();
        let count = vals.len().min(16);
        for _ in 0..count {
            let i = rng.below(vals.len() as u64) as usize;
            let eval = |delta: f64| {
                let mut v = vals.clone();
                v[i] += delta;
                let mut s = store.clone();
                s.set(pname, &HostTensor::f64(shape.clone(), v).unwrap())
                    .unwrap();
                run(&fwd, &s, &feeds).scalar("loss").unwrap()
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            let err = (g[i] - numeric).abs();
            assert!(
                err <= 1e-6 * (1.0 + numeric.abs()),
                "{name}: d/d{pname}[{i}] autodiff {} vs finite difference {numeric} (shape {shape:?})",
                g[i]
            );
        }
    }
}

fn dims(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    lo + rng.below((hi - lo + 1) as u64) as usize
}

fn rand_param(
    rng: &mut Rng,
    name: &'static str,
    shape: Vec<usize>,
    lo: f64,
    hi: f64,
) -> (&'static str, Vec<usize>, Vec<f64>) {
    let n = shape.iter().product();
    (name, shape, uniform(rng, n, lo, hi))
}

#[test]
fn gradcheck_elementwise_and_broadcast() {
    let mut rng = Rng::seed(fresh_seed("gradcheck_elementwise_and_broadcast"));
    let (a, b, c) = (
        dims(&mut rng, 1, 3),
        dims(&mut rng, 2, 4),
        dims(&mut rng, 1, 5),
    );
    let x = rand_param(&mut rng, "x", vec![a, b, c], -2.0, 2.0);
    let y = rand_param(&mut rng, "y", vec![b, 1], 0.5, 2.0);
    let none = BTreeMap::new();
    gradcheck(
        "relu",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.relu(p[0]),
    );
    gradcheck(
        "sigmoid",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.sigmoid(p[0]),
    );
    gradcheck("exp", &mut rng, std::slice::from_ref(&x), &none, &|g, p| {
        g.exp(p[0])
    });
    // ln on strictly positive inputs (y is drawn from [0.5, 2]).
    gradcheck("log", &mut rng, std::slice::from_ref(&y), &none, &|g, p| {
        g.log(p[0])
    });
    gradcheck(
        "scale+add_scalar",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| {
            let s = g.scale(p[0], -1.7)?;
            g.add_scalar(s, 0.3)
        },
    );
    gradcheck(
        "clamp",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.clamp(p[0], -1.0, 1.0),
    );
    gradcheck("add", &mut rng, &[x.clone(), y.clone()], &none, &|g, p| {
        g.add(p[0], p[1])
    });
    gradcheck("sub", &mut rng, &[x.clone(), y.clone()], &none, &|g, p| {
        g.sub(p[1], p[0])
    });
    gradcheck("mul", &mut rng, &[x.clone(), y.clone()], &none, &|g, p| {
        g.mul(p[0], p[1])
    });
    gradcheck("div", &mut rng, &[x.clone(), y.clone()], &none, &|g, p| {
        g.div(p[0], p[1])
    });
    gradcheck(
        "broadcast_to",
        &mut rng,
        std::slice::from_ref(&y),
        &none,
        &|g, p| g.broadcast_to(p[0], &[a, b, c]),
    );
}

#[test]
fn gradcheck_reduce_and_layout() {
    let mut rng = Rng::seed(fresh_seed("gradcheck_reduce_and_layout"));
    let (a, b, c) = (
        dims(&mut rng, 2, 3),
        dims(&mut rng, 2, 4),
        dims(&mut rng, 2, 5),
    );
    let x = rand_param(&mut rng, "x", vec![a, b, c], -2.0, 2.0);
    let z = rand_param(&mut rng, "z", vec![a, 2, c], -2.0, 2.0);
    let none = BTreeMap::new();
    gradcheck("sum", &mut rng, std::slice::from_ref(&x), &none, &|g, p| {
        g.sum(p[0], &[0, 2], false)
    });
    gradcheck(
        "sum_keepdim",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.sum(p[0], &[1], true),
    );
    gradcheck(
        "mean",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.mean(p[0], &[2], false),
    );
    gradcheck(
        "mean_all",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.mean_all(p[0]),
    );
    gradcheck(
        "reshape",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.reshape(p[0], &[a * b, c]),
    );
    gradcheck(
        "permute",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.permute(p[0], &[2, 0, 1]),
    );
    gradcheck(
        "slice",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.slice(p[0], 1, 1, b),
    );
    gradcheck(
        "concat",
        &mut rng,
        &[x.clone(), z.clone()],
        &none,
        &|g, p| g.concat(&[p[0], p[1], p[0]], 1),
    );
}

#[test]
fn gradcheck_matmul() {
    let mut rng = Rng::seed(fresh_seed("gradcheck_matmul"));
    let (m, k, n, bt) = (
        dims(&mut rng, 1, 5),
        dims(&mut rng, 1, 6),
        dims(&mut rng, 1, 5),
        dims(&mut rng, 1, 3),
    );
    let none = BTreeMap::new();
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let sa = if ta { vec![k, m] } else { vec![m, k] };
        let sb = if tb { vec![n, k] } else { vec![k, n] };
        let a = rand_param(&mut rng, "a", sa.clone(), -1.0, 1.0);
        let b = rand_param(&mut rng, "b", sb.clone(), -1.0, 1.0);
        gradcheck("matmul", &mut rng, &[a, b], &none, &|g, p| {
            g.matmul_t(p[0], p[1], ta, tb)
        });
        let a3 = rand_param(&mut rng, "a", [vec![bt], sa].concat(), -1.0, 1.0);
        let b3 = rand_param(&mut rng, "b", [vec![bt], sb].concat(), -1.0, 1.0);
        gradcheck("batched matmul", &mut rng, &[a3, b3], &none, &|g, p| {
            g.matmul_t(p[0], p[1], ta, tb)
        });
    }
}

#[test]
fn gradcheck_conv2d() {
    let mut rng = Rng::seed(fresh_seed("gradcheck_conv2d"));
    let none = BTreeMap::new();
    for (k, stride, pad, dil, groups, bias) in [
        (3, 1, 1, 1, 1, true),
        (3, 2, 1, 1, 2, false),
        (1, 1, 0, 1, 1, true),
        (3, 1, 2, 2, 1, false),
        (5, 2, 2, 1, 1, true),
        (1, 2, 0, 1, 1, false),
    ] {
        let (n, cg, cog) = (
            dims(&mut rng, 1, 2),
            dims(&mut rng, 1, 3),
            dims(&mut rng, 1, 3),
        );
        let (h, w) = (dims(&mut rng, 5, 8), dims(&mut rng, 5, 8));
        let x = rand_param(&mut rng, "x", vec![n, cg * groups, h, w], -1.0, 1.0);
        let wt = rand_param(&mut rng, "w", vec![cog * groups, cg, k, k], -1.0, 1.0);
        let b = rand_param(&mut rng, "b", vec![cog * groups], -1.0, 1.0);
        let attrs = Conv2dAttrs {
            stride: [stride; 2],
            padding: [pad; 2],
            dilation: [dil; 2],
            groups,
        };
        let mut ps = vec![x, wt];
        if bias {
            ps.push(b);
        }
        gradcheck("conv2d", &mut rng, &ps, &none, &|g, p| {
            g.conv2d(p[0], p[1], p.get(2).copied(), attrs)
        });
    }
}

#[test]
fn gradcheck_pool_and_upsample() {
    let mut rng = Rng::seed(fresh_seed("gradcheck_pool_and_upsample"));
    let none = BTreeMap::new();
    let (n, c, h, w) = (
        dims(&mut rng, 1, 2),
        dims(&mut rng, 1, 3),
        dims(&mut rng, 4, 9),
        dims(&mut rng, 4, 9),
    );
    let x = rand_param(&mut rng, "x", vec![n, c, h, w], -1.0, 1.0);
    gradcheck(
        "max_pool2d 3/2/1",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.max_pool2d(p[0], [3, 3], [2, 2], [1, 1]),
    );
    gradcheck(
        "max_pool2d 2/2/0",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.max_pool2d(p[0], [2, 2], [2, 2], [0, 0]),
    );
    gradcheck(
        "upsample x2",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.upsample_nearest(p[0], [2 * h, 2 * w]),
    );
    gradcheck(
        "upsample odd",
        &mut rng,
        std::slice::from_ref(&x),
        &none,
        &|g, p| g.upsample_nearest(p[0], [h + 3, 2 * w - 1]),
    );
    // RoIAlign: random boxes (some past the borders) on random images of the batch.
    let k = 4;
    let mut rois = Vec::new();
    for _ in 0..k {
        let (x1, y1) = (rng.range_f64(-2.0, w as f64), rng.range_f64(-2.0, h as f64));
        let b = rng.below(n as u64) as f64;
        rois.extend([
            b,
            x1,
            y1,
            x1 + rng.range_f64(0.5, 6.0),
            y1 + rng.range_f64(0.5, 6.0),
        ]);
    }
    let feeds = BTreeMap::from([(
        "rois".to_string(),
        HostTensor::f64(vec![k, 5], rois).unwrap(),
    )]);
    for (sampling_ratio, aligned) in [(0, true), (2, false)] {
        let attrs = mmrun::ir::op::RoiAlignAttrs {
            output: [3, 2],
            spatial_scale: 1.0,
            sampling_ratio,
            aligned,
        };
        gradcheck(
            &format!("roi_align {sampling_ratio} {aligned}"),
            &mut rng,
            std::slice::from_ref(&x),
            &feeds,
            &move |g, p| {
                let rois = g.graph().inputs["rois"];
                g.roi_align(p[0], rois, attrs)
            },
        );
    }
}

#[test]
fn gradcheck_norms() {
    let mut rng = Rng::seed(fresh_seed("gradcheck_norms"));
    let none = BTreeMap::new();
    let (n, g, cg, h, w) = (
        dims(&mut rng, 1, 3),
        dims(&mut rng, 1, 3),
        dims(&mut rng, 1, 3),
        dims(&mut rng, 2, 4),
        dims(&mut rng, 2, 4),
    );
    let c = g * cg;
    let n = if n * h * w < 2 { 2 } else { n };
    let x = rand_param(&mut rng, "x", vec![n, c, h, w], -2.0, 2.0);
    let gamma = rand_param(&mut rng, "gamma", vec![c], 0.5, 1.5);
    let beta = rand_param(&mut rng, "beta", vec![c], -1.0, 1.0);
    let ps = [x, gamma, beta];
    // SyncTrain in one process: the statistics go through the combination over ranks (an
    // identity average here), whose own gradient is checked.
    let sync = BnMode::SyncTrain {
        momentum: 0.1,
        ranks: 2,
    };
    for mode in [BnMode::Train { momentum: 0.1 }, sync, BnMode::Eval] {
        gradcheck("batch_norm", &mut rng, &ps, &none, &|b, p| {
            let rm = b.buffer("rm", &[c], Init::Constant(0.3))?;
            let rv = b.buffer("rv", &[c], Init::Constant(1.7))?;
            b.batch_norm(p[0], p[1], p[2], rm, rv, mode, 1e-5)
        });
    }
    gradcheck("group_norm", &mut rng, &ps, &none, &|b, p| {
        b.group_norm(p[0], g, p[1], p[2], 1e-5)
    });
}

#[test]
fn gradcheck_losses() {
    let mut rng = Rng::seed(fresh_seed("gradcheck_losses"));
    let (n, k) = (dims(&mut rng, 2, 6), dims(&mut rng, 2, 5));
    let logits = rand_param(&mut rng, "x", vec![n, k], -4.0, 4.0);
    let onehot: Vec<f64> = (0..n * k)
        .map(|_| if rng.uniform_f64() < 0.3 { 1.0 } else { 0.0 })
        .collect();
    let mut feeds = BTreeMap::new();
    feeds.insert(
        "t".to_string(),
        HostTensor::f64(vec![n, k], onehot).unwrap(),
    );
    let mut labels: Vec<i32> = (0..n).map(|_| rng.below(k as u64) as i32).collect();
    labels[0] = -100;
    feeds.insert(
        "labels".to_string(),
        HostTensor::i32(vec![n], labels).unwrap(),
    );
    feeds.insert(
        "avg".to_string(),
        HostTensor::f64(vec![1], vec![3.5]).unwrap(),
    );
    let ps = [logits];
    for (alpha, gamma) in [(0.25, 2.0), (-1.0, 1.5), (0.25, 0.0)] {
        gradcheck("sigmoid_focal_loss", &mut rng, &ps, &feeds, &|b, p| {
            let t = b.graph().inputs["t"];
            b.sigmoid_focal_loss(p[0], t, alpha, gamma)
        });
    }
    gradcheck("bce_with_logits", &mut rng, &ps, &feeds, &|b, p| {
        let t = b.graph().inputs["t"];
        b.bce_with_logits(p[0], t)
    });
    for smoothing in [0.0, 0.1] {
        gradcheck("cross_entropy", &mut rng, &ps, &feeds, &|b, p| {
            let l = b.graph().inputs["labels"];
            b.cross_entropy(p[0], l, -100, smoothing)
        });
    }
    gradcheck(
        "weight_reduce_loss avg_factor",
        &mut rng,
        &ps,
        &feeds,
        &|b, p| {
            let t = b.graph().inputs["t"];
            let l = b.bce_with_logits(p[0], t)?;
            let w = b.graph().inputs["t"];
            let avg = b.graph().inputs["avg"];
            let wl = b.weight_reduce_loss(l, Some(w), Reduction::Mean, Some(avg))?;
            b.reshape(wl, &[1])
        },
    );
    let a = rand_param(&mut rng, "a", vec![n, 4], -2.0, 2.0);
    let t = rand_param(&mut rng, "t", vec![n, 4], -2.0, 2.0);
    let none = BTreeMap::new();
    gradcheck("l1", &mut rng, &[a.clone(), t.clone()], &none, &|b, p| {
        b.l1_loss(p[0], p[1])
    });
    for beta in [1.0, 1.0 / 9.0] {
        gradcheck(
            "smooth_l1",
            &mut rng,
            &[a.clone(), t.clone()],
            &none,
            &|b, p| b.smooth_l1_loss(p[0], p[1], beta),
        );
    }
    let boxes = |rng: &mut Rng| -> Vec<f64> {
        (0..n)
            .flat_map(|_| {
                let (x, y) = (rng.range_f64(0.0, 20.0), rng.range_f64(0.0, 20.0));
                let (w, h) = (rng.range_f64(2.0, 15.0), rng.range_f64(2.0, 15.0));
                [x, y, x + w, y + h]
            })
            .collect()
    };
    let bp = ("p", vec![n, 4], boxes(&mut rng));
    let bt = ("g", vec![n, 4], boxes(&mut rng));
    // CIoU treats its α as a constant (as torchvision does), so finite differences do not
    // apply to it; its gradient is checked against torchvision in `torchref`.
    for kind in [IouKind::IoU, IouKind::GIoU, IouKind::DIoU] {
        gradcheck(
            "iou_loss",
            &mut rng,
            &[bp.clone(), bt.clone()],
            &none,
            &|b, p| b.iou_loss(p[0], p[1], kind, 1e-7),
        );
    }
}
