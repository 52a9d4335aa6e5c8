//! Loss forward/backward against PyTorch/torchvision reference values (`torchref_f64.json`):
//! outputs with none/mean/sum reduction and the gradients of `sum(loss * grad_out)`, mean and
//! sum, in f64 (within 1e-10) and f32 (within 1e-5 relative). The directory comes from
//! `MMRUN_TORCHREF` (default `<crate>/tests/oracles/torchref`), so any directory of the
//! same layout can be checked.

use super::harness::run;
use mmrun::engine::ParamSet;
use mmrun::graph::{GraphBuilder, GraphError, Init, NodeId};
use mmrun::ir::op::IouKind;
use mmrun::ir::{DType, HostTensor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The stored oracle (checked in: a missing file fails, never skips).
fn load() -> Value {
    let dir = std::env::var("MMRUN_TORCHREF")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/torchref")
        });
    let path = dir.join("torchref_f64.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("torchref json parses")
}

/// `{shape, dtype, data}` → shape and f64 values.
fn arr(v: &Value) -> (Vec<usize>, Vec<f64>) {
    let shape = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect();
    (shape, data)
}

/// How a case's loss is built from its inputs.
type LossFn =
    Box<dyn Fn(&mut GraphBuilder, &BTreeMap<String, NodeId>) -> Result<NodeId, GraphError>>;

fn case_spec(name: &str, params: &Value) -> Option<(Vec<&'static str>, Vec<&'static str>, LossFn)> {
    let p = |k: &str| params[k].as_f64().unwrap();
    Some(match name {
        n if n.starts_with("sigmoid_focal_loss") => {
            let (a, g) = (p("alpha"), p("gamma"));
            (
                vec!["inputs"],
                vec!["targets"],
                Box::new(move |b, m| b.sigmoid_focal_loss(m["inputs"], m["targets"], a, g)),
            )
        }
        n if n.starts_with("smooth_l1") => {
            let beta = p("beta");
            (
                vec!["input", "target"],
                vec![],
                Box::new(move |b, m| b.smooth_l1_loss(m["input"], m["target"], beta)),
            )
        }
        "l1" => (
            vec!["input", "target"],
            vec![],
            Box::new(|b, m| b.l1_loss(m["input"], m["target"])),
        ),
        "generalized_box_iou_loss" | "distance_box_iou_loss" | "complete_box_iou_loss" => {
            let kind = match name {
                "generalized_box_iou_loss" => IouKind::GIoU,
                "distance_box_iou_loss" => IouKind::DIoU,
                _ => IouKind::CIoU,
            };
            let eps = p("eps");
            (
                vec!["boxes1", "boxes2"],
                vec![],
                Box::new(move |b, m| b.iou_loss(m["boxes1"], m["boxes2"], kind, eps)),
            )
        }
        n if n.starts_with("cross_entropy") => {
            let ls = params
                .get("label_smoothing")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
            let ii = params
                .get("ignore_index")
                .and_then(|v| v.as_i64())
                .unwrap_or(-100);
            (
                vec!["input"],
                vec!["target"],
                Box::new(move |b, m| b.cross_entropy(m["input"], m["target"], ii, ls)),
            )
        }
        "bce_with_logits" => (
            vec!["input"],
            vec!["target"],
            Box::new(|b, m| b.bce_with_logits(m["input"], m["target"])),
        ),
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Objective {
    WeightedNone,
    Mean,
    Sum,
}

fn check(name: &str, what: &str, got: &[f64], want: &[f64], dtype: DType, worst: &mut f64) {
    assert_eq!(got.len(), want.len(), "{name} {what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // f64: absolute 1e-10 on O(1) values, relative above 1; f32: 1e-5 relative (with the
        // same floor, since f32 cannot resolve values far below the array's scale).
        let tol = if dtype == DType::F64 { 1e-10 } else { 1e-5 };
        let err = (g - w).abs() / w.abs().max(1.0);
        *worst = worst.max(err);
        assert!(
            err <= tol,
            "{name} {what} [{i}] ({dtype}): got {g}, torch {w}, error {err:e}"
        );
    }
}

fn run_case(name: &str, case: &Value, dtype: DType) -> f64 {
    let (diff, fixed, loss_fn) = case_spec(name, &case["params"])
        .unwrap_or_else(|| panic!("torchref case `{name}` is not covered"));
    let sfx = if dtype == DType::F64 { "" } else { "_f32" };
    let inputs = &case["inputs"];
    // torch's mean over a cross-entropy with ignored rows divides by the rows kept.
    let ignore = case["params"].get("ignore_index").and_then(|v| v.as_i64());
    let mean_count = match (ignore, fixed.first()) {
        (Some(ii), Some(t)) => arr(&inputs[*t])
            .1
            .iter()
            .filter(|&&v| v as i64 != ii)
            .count(),
        _ => arr(&case["outputs"]["loss_none"]).1.len(),
    };
    let mut worst: f64 = 0.0;
    for obj in [Objective::WeightedNone, Objective::Mean, Objective::Sum] {
        let mut b = GraphBuilder::new(dtype);
        let mut ids = BTreeMap::new();
        let mut feeds = BTreeMap::new();
        let mut values = Vec::new();
        for k in &diff {
            let (s, d) = arr(&inputs[*k]);
            ids.insert(k.to_string(), b.param(k, &s, Init::Constant(0.0)).unwrap());
            values.push((k.to_string(), HostTensor::f64(s, d).unwrap().cast(dtype)));
        }
        for k in &fixed {
            let (s, d) = arr(&inputs[*k]);
            let is_label = inputs[*k]["dtype"].as_str().unwrap().starts_with("int");
            let t = if is_label {
                HostTensor::i32(s.clone(), d.iter().map(|&v| v as i32).collect()).unwrap()
            } else {
                HostTensor::f64(s.clone(), d).unwrap().cast(dtype)
            };
            ids.insert(k.to_string(), b.input(k, &s, t.dtype()).unwrap());
            feeds.insert(k.to_string(), t);
        }
        let loss = loss_fn(&mut b, &ids).unwrap();
        b.output("none", loss).unwrap();
        let s = b.sum_all(loss).unwrap();
        b.output("sum", s).unwrap();
        let m = b.scale(s, 1.0 / mean_count as f64).unwrap();
        b.output("mean", m).unwrap();
        let objective = match obj {
            Objective::WeightedNone => {
                let (gs, gd) = arr(&inputs["grad_out"]);
                let w = b.input("grad_out", &gs, dtype).unwrap();
                feeds.insert(
                    "grad_out".into(),
                    HostTensor::f64(gs, gd).unwrap().cast(dtype),
                );
                let wl = b.mul(loss, w).unwrap();
                b.sum_all(wl).unwrap()
            }
            Objective::Mean => m,
            Objective::Sum => s,
        };
        b.backward(objective).unwrap();
        let g = b.finish();
        let mut store = ParamSet::init(&g, 0);
        for (k, v) in &values {
            store.set(k, v).unwrap();
        }
        let out = run(&g, &store, &feeds);
        if obj == Objective::WeightedNone {
            for red in ["none", "mean", "sum"] {
                let want = arr(&case[format!("outputs{sfx}")][format!("loss_{red}")]).1;
                check(
                    name,
                    &format!("loss_{red}"),
                    &out.outputs[red].to_f64_vec(),
                    &want,
                    dtype,
                    &mut worst,
                );
            }
        }
        let tag = match obj {
            Objective::WeightedNone => "weighted_none",
            Objective::Mean => "mean",
            Objective::Sum => "sum",
        };
        for k in &diff {
            let want = arr(&case[format!("grads{sfx}")][format!("d_{k}__{tag}")]).1;
            check(
                name,
                &format!("d_{k}__{tag}"),
                &out.grads[*k].to_f64_vec(),
                &want,
                dtype,
                &mut worst,
            );
        }
    }
    worst
}

fn run_all(dtype: DType) {
    let json = load();
    let cases = json["losses"].as_object().expect("losses section");
    assert!(!cases.is_empty());
    for (name, case) in cases {
        let worst = run_case(name, case, dtype);
        eprintln!("torchref {name} ({dtype}): worst error {worst:e}");
    }
}

#[test]
fn torchref_losses_f64() {
    run_all(DType::F64);
}

#[test]
fn torchref_losses_f32() {
    run_all(DType::F32);
}
