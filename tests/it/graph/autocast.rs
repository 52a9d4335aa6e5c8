//! Mixed precision against torch's autocast on the CPU, run live: a convolution with bias and
//! a matrix product under `set_autocast(bf16 | f16)`, forward and backward (the gradients of
//! the f32 inputs come back through the casts, as torch's do) within an ulp of the exact
//! result on the half-rounded operands (f64, by torch), as close to `torch.autocast("cpu",
//! dtype)` as torch is to that exact result, and measurably not the f32 result.

use super::harness::run;
use crate::engine::pyref::run_python;
use mmrun::engine::ParamSet;
use mmrun::graph::{Graph, GraphBuilder};
use mmrun::ir::op::Conv2dAttrs;
use mmrun::ir::{DType, HostTensor};
use mmrun::util::rng::Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const X: [usize; 4] = [2, 3, 9, 9];
const W: [usize; 4] = [4, 3, 3, 3];
const Y: [usize; 4] = [2, 4, 9, 9];
const A: [usize; 2] = [5, 7];
const B: [usize; 2] = [7, 6];
const M: [usize; 2] = [5, 6];

const TORCH: &str = r#"
import json, sys, torch
d = json.load(open(sys.argv[1]))
def t(k, shape):
    return torch.tensor(d[k], dtype=torch.float32).reshape(shape).requires_grad_()
def run(dt, autocast):
    # autocast: torch's mixed precision; else the exact result (f64 on half-rounded operands).
    x, w, b = t("x", [2, 3, 9, 9]), t("w", [4, 3, 3, 3]), t("b", [4])
    a, m = t("a", [5, 7]), t("m", [7, 6])
    leaves = [x, w, b, a, m]
    if not autocast:
        leaves = [v.detach().to(dt).double().requires_grad_() for v in leaves]
    x, w, b, a, m = leaves
    gy = torch.tensor(d["gy"]).reshape([2, 4, 9, 9])
    gp = torch.tensor(d["gp"]).reshape([5, 6])
    with torch.autocast("cpu", dtype=dt, enabled=autocast):
        y = torch.nn.functional.conv2d(x, w, b, padding=1)
        p = a @ m
    if autocast:
        assert y.dtype == dt and p.dtype == dt
        ((y.float() * gy).sum() + (p.float() * gp).sum()).backward()
    else:
        # The upstream gradients reach the half op rounded to half, as autocast's casts do.
        ((y * gy.to(dt).double()).sum() + (p * gp.to(dt).double()).sum()).backward()
    flat = lambda v: [float(e) for e in v.detach().double().reshape(-1)]
    return {"y": flat(y), "p": flat(p), "x": flat(x.grad), "w": flat(w.grad),
            "b": flat(b.grad), "a": flat(a.grad), "m": flat(m.grad)}
out = {}
for name, dt in [("bf16", torch.bfloat16), ("f16", torch.float16)]:
    out[name] = {"torch": run(dt, True), "exact": run(dt, False)}
print(json.dumps(out))
"#;

/// `sum(conv(x, w, b) · gy) + sum((a @ m) · gp)` with every operand a trainable parameter,
/// built under `autocast`.
fn graph(autocast: Option<DType>) -> Graph {
    let mut g = GraphBuilder::new(DType::F32);
    g.set_autocast(autocast).unwrap();
    let zero = mmrun::graph::Init::Constant(0.0);
    let x = g.param("x", &X, zero.clone()).unwrap();
    let w = g.param("w", &W, zero.clone()).unwrap();
    let b = g.param("b", &[4], zero.clone()).unwrap();
    let a = g.param("a", &A, zero.clone()).unwrap();
    let m = g.param("m", &B, zero).unwrap();
    let attrs = Conv2dAttrs {
        padding: [1, 1],
        ..Default::default()
    };
    let y = g.conv2d(x, w, Some(b), attrs).unwrap();
    let p = g.matmul(a, m).unwrap();
    let gy = g.input("gy", &Y, DType::F32).unwrap();
    let gp = g.input("gp", &M, DType::F32).unwrap();
    let ly = g.mul(y, gy).unwrap();
    let ly = g.sum_all(ly).unwrap();
    let lp = g.mul(p, gp).unwrap();
    let lp = g.sum_all(lp).unwrap();
    let loss = g.add(ly, lp).unwrap();
    g.output("y", y).unwrap();
    g.output("p", p).unwrap();
    g.backward(loss).unwrap();
    g.finish()
}

/// One unit in the last place of `mag` in a format with `bits` of precision.
fn ulp(mag: f64, bits: i32) -> f64 {
    2f64.powi(mag.log2().floor() as i32 - (bits - 1))
}

#[test]
fn autocast_convolution_and_matmul_match_torch_autocast_on_the_cpu() {
    let mut rng = Rng::seed(crate::support::fresh_seed("autocast_matches_torch"));
    let mut data = serde_json::Map::new();
    let mut tensors = BTreeMap::new();
    for (k, shape) in [
        ("x", &X[..]),
        ("w", &W[..]),
        ("b", &[4][..]),
        ("a", &A[..]),
        ("m", &B[..]),
        ("gy", &Y[..]),
        ("gp", &M[..]),
    ] {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.range_f64(-2.0, 2.0) as f32).collect();
        data.insert(k.into(), json!(v));
        tensors.insert(k, HostTensor::f32(shape.to_vec(), v).unwrap());
    }
    let Some(torch) = run_python(TORCH, &Value::Object(data)) else {
        return;
    };
    let outputs = |autocast| {
        let g = graph(autocast);
        let mut params = ParamSet::init(&g, 0);
        for k in ["x", "w", "b", "a", "m"] {
            params.set(k, &tensors[k]).unwrap();
        }
        let feeds: BTreeMap<String, HostTensor> = ["gy", "gp"]
            .iter()
            .map(|k| (k.to_string(), tensors[k].clone()))
            .collect();
        let out = run(&g, &params, &feeds);
        let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for k in ["y", "p"] {
            let t = &out.outputs[k];
            assert_eq!(
                t.data.dtype(),
                DType::F32,
                "autocast outputs come back as f32"
            );
            all.insert(
                k.into(),
                (0..t.numel()).map(|i| t.data.get_f64(i)).collect(),
            );
        }
        for k in ["x", "w", "b", "a", "m"] {
            let t = &out.grads[k];
            all.insert(
                k.into(),
                (0..t.numel()).map(|i| t.data.get_f64(i)).collect(),
            );
        }
        all
    };
    let f32_run = outputs(None);
    for (name, dtype, bits, floor) in [
        ("bf16", DType::BF16, 8, 1e-30),
        ("f16", DType::F16, 11, 1e-6),
    ] {
        let ours = outputs(Some(dtype));
        for (k, got) in &ours {
            let values = |which: &str| -> Vec<f64> {
                (torch[name][which][k].as_array().unwrap().iter())
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            };
            let (exact, theirs) = (values("exact"), values("torch"));
            assert_eq!(got.len(), exact.len(), "{name} {k}");
            let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, ((&g, &e), &t)) in got.iter().zip(&exact).zip(&theirs).enumerate() {
                // f32 accumulation, one rounding to half: within an ulp of the exact value.
                let tol = ulp(e.abs().max(g.abs()), bits) + 1e-6 * scale + floor;
                assert!(
                    (g - e).abs() <= tol,
                    "{name} {k}[{i}]: mmrun {g}, exact {e}, torch {t}"
                );
                // And as close to torch as torch is to the exact value, give or take an ulp.
                assert!(
                    (g - t).abs() <= (t - e).abs() + tol,
                    "{name} {k}[{i}]: mmrun {g}, torch {t}, exact {e}"
                );
            }
            // Rounded to half precision, not f32 arithmetic relabelled.
            let moved = got
                .iter()
                .zip(&f32_run[k])
                .any(|(&h, &s)| (h - s).abs() > 1e-5 * s.abs().max(1.0));
            assert!(moved, "{name} {k} equals the f32 result");
        }
    }
}
