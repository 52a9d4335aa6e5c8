//! f16 loss scaling against `torch.amp.GradScaler`, run live: the scale and growth tracker
//! after every step of a scripted sequence of finite and non-finite gradients, which steps are
//! skipped, the unscaled gradients, and the state after a save and load in the middle.

use super::pyref::run_python;
use mmrun::engine::optim::{LossScaleConfig, LossScaler};
use mmrun::engine::{ParamKind, ParamSet};
use serde_json::{Value, json};

const TORCH: &str = r#"
import json, sys, torch
cases = json.load(open(sys.argv[1]))["cases"]
out = []
x = torch.tensor([1.0, 2.0, 3.0])
for case in cases:
    kw = case["kw"]
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", **kw)
    trace = []
    for i, kind in enumerate(case["steps"]):
        if i == case["reload_at"]:
            state = scaler.state_dict()
            scaler = torch.amp.GradScaler("cpu", **kw)
            scaler.load_state_dict(state)
        opt.zero_grad()
        loss = (p * x).sum() + 1.0
        scaler.scale(loss).backward()
        with torch.no_grad():
            if kind == "inf":
                p.grad[1] = float("inf")
            elif kind == "nan":
                p.grad[0] = float("nan")
        before = p.detach().clone()
        scaler.unscale_(opt)
        grads = [float(g) for g in p.grad]
        scaler.step(opt)
        scaler.update(case["static"])
        trace.append({
            "stepped": not torch.equal(before, p.detach()),
            "grad": grads if kind == "finite" else None,
            "scale": scaler.get_scale(),
            "tracker": int(scaler.state_dict()["_growth_tracker"]),
        })
    out.append(trace)
print(json.dumps(out))
"#;

/// One case: the scaler settings (as a recipe writes `loss_scale`), torch's constructor
/// arguments and `update` argument for them, and the steps.
struct Case {
    recipe: Value,
    torch_kw: Value,
    static_scale: Value,
    steps: Vec<&'static str>,
    reload_at: usize,
}

fn steps(pattern: &str) -> Vec<&'static str> {
    pattern
        .chars()
        .map(|c| match c {
            'f' => "finite",
            'i' => "inf",
            'n' => "nan",
            _ => unreachable!(),
        })
        .collect()
}

fn cases() -> Vec<Case> {
    vec![
        // Torch's defaults: two overflows at the start, then finite steps.
        Case {
            recipe: json!("dynamic"),
            torch_kw: json!({}),
            static_scale: Value::Null,
            steps: steps("iifffnfff"),
            reload_at: 4,
        },
        // A short growth interval: growth, backoff, growth again, across a reload.
        Case {
            recipe: json!({"init_scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3}),
            torch_kw: json!({"init_scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3}),
            static_scale: Value::Null,
            steps: steps("fffffffiffffnffff"),
            reload_at: 8,
        },
        // Other factors: growth ×4, backoff ×0.25, interval 1.
        Case {
            recipe: json!({"init_scale": 3.0e5, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 1}),
            torch_kw: json!({"init_scale": 3.0e5, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 1}),
            static_scale: Value::Null,
            steps: steps("ffiifnfff"),
            reload_at: 5,
        },
        // mmcv's static scale: `GradScaler(init_scale=512)` and `update(512.0)`; non-finite
        // steps are still skipped.
        Case {
            recipe: json!(512.0),
            torch_kw: json!({"init_scale": 512.0}),
            static_scale: json!(512.0),
            steps: steps("ffiffnf"),
            reload_at: 3,
        },
    ]
}

/// mmrun's trace of a case, in torch's shape.
fn mmrun_trace(case: &Case) -> Vec<Value> {
    let config: LossScaleConfig = serde_json::from_value(case.recipe.clone()).unwrap();
    let mut scaler = LossScaler::new(&config).unwrap();
    let x = [1.0f32, 2.0, 3.0];
    let mut params = ParamSet::new();
    params
        .add("p", &[3], ParamKind::Weight, true, vec![0.0; 3])
        .unwrap();
    let mut trace = Vec::new();
    for (i, kind) in case.steps.iter().enumerate() {
        if i == case.reload_at {
            let state = scaler.state_dict();
            scaler = LossScaler::new(&config).unwrap();
            scaler.load_state_dict(&state).unwrap();
        }
        // The backward pass of `(p · x + 1) × scale`: `scale × x`, in f32 as torch computes it.
        let s = scaler.scale() as f32;
        let mut grad: Vec<f32> = x.iter().map(|v| s * v).collect();
        match *kind {
            "inf" => grad[1] = f32::INFINITY,
            "nan" => grad[0] = f32::NAN,
            _ => {}
        }
        params.get_mut("p").unwrap().grad = grad;
        let found_inf = scaler.unscale(&mut params);
        let grads: Vec<f64> = params
            .get("p")
            .unwrap()
            .grad
            .iter()
            .map(|&g| g as f64)
            .collect();
        scaler.update(found_inf);
        trace.push(json!({
            "stepped": !found_inf,
            "grad": (*kind == "finite").then_some(grads),
            "scale": scaler.scale(),
            "tracker": scaler.growth_tracker(),
        }));
    }
    trace
}

#[test]
fn the_loss_scale_trace_equals_torch_grad_scaler_including_skips_and_reloads() {
    let cases = cases();
    let input = json!({
        "cases": cases.iter().map(|c| json!({
            "kw": c.torch_kw,
            "static": c.static_scale,
            "steps": c.steps,
            "reload_at": c.reload_at,
        })).collect::<Vec<_>>()
    });
    let Some(torch) = run_python(TORCH, &input) else {
        return;
    };
    for (k, case) in cases.iter().enumerate() {
        let want = torch[k].as_array().unwrap();
        let got = mmrun_trace(case);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(
                g, w,
                "case {k} ({}) step {i} ({}): mmrun {g} torch {w}",
                case.recipe, case.steps[i]
            );
        }
        // Every case exercises a skip.
        assert!(got.iter().any(|s| s["stepped"] == false), "case {k}");
    }
}

#[test]
fn a_changed_scaler_setting_is_refused_on_load_and_bad_settings_are_named() {
    let dynamic = |interval: u64| {
        LossScaleConfig::Dynamic(mmrun::engine::optim::DynamicScale {
            growth_interval: interval,
            ..Default::default()
        })
    };
    let saved = LossScaler::new(&dynamic(3)).unwrap().state_dict();
    let mut other = LossScaler::new(&dynamic(5)).unwrap();
    let e = other.load_state_dict(&saved).unwrap_err().to_string();
    assert!(e.contains("every 3 steps") && e.contains("5"), "{e}");
    let e = (other.load_state_dict(&json!({"scale": -1.0})).unwrap_err()).to_string();
    assert!(e.contains("-1"), "{e}");
    assert!(LossScaler::new(&LossScaleConfig::Static(0.0)).is_err());
    assert!(LossScaler::new(&dynamic(0)).is_err());
}
