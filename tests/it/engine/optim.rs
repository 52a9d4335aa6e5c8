//! Optimizer updates against torch.optim on the same numbers.

use super::pyref::run_python;
use mmrun::engine::optim::{CustomKey, Optimizer, OptimizerConfig, Paramwise, clip_grad_norm};
use mmrun::engine::params::{ParamKind, ParamSet};
use serde_json::json;

const SPECS: &[(&str, usize, ParamKind, bool)] = &[
    ("backbone.conv.weight", 6, ParamKind::Weight, true),
    ("backbone.conv.bias", 3, ParamKind::Bias, true),
    ("neck.bn.weight", 3, ParamKind::Norm, true),
    ("head.cls.weight", 4, ParamKind::Weight, true),
    ("head.cls.bias", 2, ParamKind::Bias, true),
    ("frozen.weight", 2, ParamKind::Weight, false),
];

fn make_params() -> ParamSet {
    let mut s = ParamSet::new();
    for (k, &(name, n, kind, trainable)) in SPECS.iter().enumerate() {
        let v = (0..n).map(|i| ((k * 7 + i) as f32 * 0.37).sin()).collect();
        s.add(name, &[n], kind, trainable, v).unwrap();
    }
    s
}

fn grads(step: usize) -> Vec<Vec<f32>> {
    SPECS
        .iter()
        .enumerate()
        .map(|(k, &(_, n, _, _))| {
            (0..n)
                .map(|i| ((k * 5 + i * 3 + step * 11) as f32 * 0.61).cos() * 0.8)
                .collect()
        })
        .collect()
}

fn paramwise() -> Paramwise {
    let mut pw = Paramwise {
        bias_lr_mult: 2.0,
        bias_decay_mult: 0.0,
        norm_decay_mult: 0.5,
        ..Default::default()
    };
    pw.custom_keys.insert(
        "backbone.conv.weight".into(),
        CustomKey {
            lr_mult: 0.1,
            decay_mult: 2.0,
        },
    );
    pw
}

const LRS: [f64; 5] = [0.1, 0.1, 0.05, 0.05, 0.01];
const CLIP: f64 = 1.5;

/// Run 5 steps (lr changes at step 2 and 4, gradient clipping by norm) in Rust; return the
/// final values and the norms clipping saw.
/// Final values, the norms clipping saw, and each trainable parameter's multipliers.
type RustRun = (Vec<Vec<f32>>, Vec<f64>, Vec<(f64, f64)>);

fn run_rust(config: OptimizerConfig) -> RustRun {
    let mut params = make_params();
    let mut opt = Optimizer::new(config, &params).unwrap();
    let mults = SPECS
        .iter()
        .filter(|s| s.3)
        .map(|s| opt.multipliers(&params, s.0).unwrap())
        .collect();
    assert!(opt.multipliers(&params, "frozen.weight").is_none());
    let mut norms = Vec::new();
    for (step, lr) in LRS.iter().enumerate() {
        for (p, g) in params.iter_mut().zip(grads(step)) {
            if p.trainable {
                p.grad = g;
            }
        }
        norms.push(clip_grad_norm(&mut params, CLIP));
        opt.set_lr(*lr);
        opt.step(&mut params);
    }
    let state = opt.state_tensors(&params);
    assert!(
        !state.keys().any(|k| k.starts_with("frozen")),
        "frozen parameter got state"
    );
    (
        params.iter().map(|p| p.values().to_vec()).collect(),
        norms,
        mults,
    )
}

const TORCH: &str = r#"
import json, sys, torch
torch.set_num_threads(1)
out = []
for inp in json.load(open(sys.argv[1])):
    params = [torch.tensor(v, dtype=torch.float32, requires_grad=t) for v, t in zip(inp["values"], inp["trainable"])]
    groups = []
    for p, t, (lm, dm) in zip(params, inp["trainable"], inp["mults"]):
        if t:
            groups.append({"params": [p], "lr": inp["lrs"][0] * lm, "weight_decay": inp["wd"] * dm, "lm": lm})
    if inp["type"] == "sgd":
        opt = torch.optim.SGD(groups, lr=inp["lrs"][0], momentum=inp["momentum"], nesterov=inp["nesterov"], foreach=False)
    else:
        opt = torch.optim.AdamW(groups, lr=inp["lrs"][0], betas=tuple(inp["betas"]), eps=inp["eps"], foreach=False)
    norms = []
    for step, lr in enumerate(inp["lrs"]):
        for p, g, t in zip(params, inp["grads"][step], inp["trainable"]):
            if t:
                p.grad = torch.tensor(g, dtype=torch.float32)
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for p in params if p.requires_grad], inp["clip"])))
        for g in opt.param_groups:
            g["lr"] = lr * g["lm"]
        opt.step()
    out.append({"values": [p.detach().tolist() for p in params], "norms": norms})
print(json.dumps(out))
"#;

/// One optimizer case: its config, the Python-side settings, a label.
type Case = (OptimizerConfig, serde_json::Value, &'static str);

fn input(mults: Vec<(f64, f64)>, extra: &serde_json::Value) -> serde_json::Value {
    let mut it = mults.into_iter();
    let mults_all: Vec<(f64, f64)> = SPECS
        .iter()
        .map(|s| if s.3 { it.next().unwrap() } else { (1.0, 1.0) })
        .collect();
    let mut input = json!({
        "values": make_params().iter().map(|p| p.values().to_vec()).collect::<Vec<_>>(),
        "trainable": SPECS.iter().map(|s| s.3).collect::<Vec<_>>(),
        "mults": mults_all,
        "grads": (0..LRS.len()).map(grads).collect::<Vec<_>>(),
        "lrs": LRS,
        "clip": CLIP,
    });
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    input
}

#[test]
fn sgd_and_adamw_with_paramwise_and_clipping_match_torch() {
    let mut cases: Vec<Case> = Vec::new();
    for nesterov in [false, true] {
        cases.push((
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.0,
                weight_decay: 1e-2,
                nesterov,
                paramwise: paramwise(),
            },
            json!({"type": "sgd", "momentum": 0.9, "nesterov": nesterov, "wd": 1e-2}),
            if nesterov { "sgd nesterov" } else { "sgd" },
        ));
    }
    cases.push((
        OptimizerConfig::Adamw {
            lr: 0.1,
            betas: [0.9, 0.99],
            eps: 1e-8,
            weight_decay: 0.05,
            amsgrad: false,
            paramwise: paramwise(),
        },
        json!({"type": "adamw", "betas": [0.9, 0.99], "eps": 1e-8, "wd": 0.05}),
        "adamw",
    ));
    let results: Vec<_> = cases.iter().map(|c| run_rust(c.0.clone())).collect();
    let inputs: Vec<_> = cases
        .iter()
        .zip(&results)
        .map(|(c, r)| input(r.2.clone(), &c.1))
        .collect();
    let Some(out) = run_python(TORCH, &json!(inputs)) else {
        return;
    };
    for ((case, (values, norms, _)), want) in
        cases.iter().zip(&results).zip(out.as_array().unwrap())
    {
        let label = case.2;
        let want_values: Vec<Vec<f32>> = serde_json::from_value(want["values"].clone()).unwrap();
        let want_norms: Vec<f64> = serde_json::from_value(want["norms"].clone()).unwrap();
        for (a, b) in norms.iter().zip(&want_norms) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{label}: grad norm {a} vs torch {b}"
            );
        }
        for ((got, want), spec) in values.iter().zip(&want_values).zip(SPECS) {
            for (a, b) in got.iter().zip(want) {
                assert!(
                    (a - b).abs() <= 2e-6 * b.abs().max(1.0),
                    "{label} {}: {a} vs torch {b}",
                    spec.0
                );
            }
        }
    }
}

#[test]
fn paramwise_multipliers_follow_mmcv_rules() {
    let params = make_params();
    let opt = Optimizer::new(
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            paramwise: paramwise(),
        },
        &params,
    )
    .unwrap();
    let m = |n| opt.multipliers(&params, n).unwrap();
    assert_eq!(m("backbone.conv.weight"), (0.1, 2.0)); // custom key
    assert_eq!(m("backbone.conv.bias"), (2.0, 0.0)); // bias rules
    assert_eq!(m("neck.bn.weight"), (1.0, 0.5)); // norm rule
    assert_eq!(m("head.cls.weight"), (1.0, 1.0));
}

#[test]
fn recipe_json_deserializes_and_bad_values_are_refused() {
    let optimizer = mmrun::registry::Ty::Comp(mmrun::registry::Category::Optimizer);
    let c: OptimizerConfig = crate::support::typed(
        &optimizer,
        json!({
            "type": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
            "paramwise_cfg": {"bias_lr_mult": 2.0, "custom_keys": {"backbone": {"lr_mult": 0.1}}}
        }),
    )
    .unwrap();
    assert_eq!(c.lr(), 0.01);
    let e = serde_json::from_value::<OptimizerConfig>(
        json!({"type": "sgd", "lr": 0.1, "momentun": 0.9}),
    );
    assert!(e.unwrap_err().to_string().contains("momentun"));
    let bad = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: true,
        paramwise: Paramwise::default(),
    };
    let err = Optimizer::new(bad, &make_params()).unwrap_err().to_string();
    assert!(err.contains("nesterov"), "{err}");
}

/// The optimizer works on f32 parameters: a set of another dtype (a gradient check's) is
/// refused by name when the optimizer is made, not met later in an update.
#[test]
fn a_parameter_set_that_is_not_f32_is_refused() {
    use mmrun::graph::{GraphBuilder, Init};
    use mmrun::ir::DType;
    let mut b = GraphBuilder::new(DType::F64);
    b.param("w", &[2], Init::Constant(1.0)).unwrap();
    let params = ParamSet::init(&b.finish(), 0);
    let sgd = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        paramwise: Default::default(),
    };
    let e = Optimizer::new(sgd, &params).unwrap_err().to_string();
    assert!(e.contains("`w` is f64"), "{e}");
}
