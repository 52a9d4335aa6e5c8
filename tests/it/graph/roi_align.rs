//! RoIAlign forward and input gradient against `torchvision.ops.roi_align`, run live: aligned
//! and not, sampling ratios 0 (adaptive) to 3, boxes inside, on the borders, partly and wholly
//! outside the image, degenerate and several per image, within 1e-12 in f64 and 1e-5 in f32;
//! an empty RoI list gives an empty output and a zero gradient; a box naming an image the
//! batch does not have is an error, not a wild read.

use super::harness::{fresh_seed, run, uniform};
use crate::engine::pyref::run_python;
use mmrun::backend::cpu::roi_align::{RoiAlignGeometry, roi_align, roi_align_grad};
use mmrun::engine::ParamSet;
use mmrun::graph::{GraphBuilder, Init};
use mmrun::ir::op::RoiAlignAttrs;
use mmrun::ir::{DType, HostTensor};
use mmrun::util::rng::Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const X: [usize; 4] = [2, 3, 11, 13];
const OUT: [usize; 2] = [7, 5];
const SCALE: f64 = 0.5;

const TORCH: &str = r#"
import json, sys, torch
from torchvision.ops import roi_align
d = json.load(open(sys.argv[1]))
out = []
for dt in (torch.float64, torch.float32):
    x = torch.tensor(d["x"], dtype=dt).reshape(d["xs"]).requires_grad_()
    rois = torch.tensor(d["rois"], dtype=dt).reshape(-1, 5)
    g = torch.tensor(d["g"], dtype=dt)
    res = []
    for c in d["cases"]:
        if x.grad is not None:
            x.grad = None
        y = roi_align(x, rois, output_size=d["out"], spatial_scale=d["scale"],
                      sampling_ratio=c["sampling_ratio"], aligned=c["aligned"])
        (y * g.reshape(y.shape)).sum().backward()
        res.append({"y": y.detach().double().flatten().tolist(),
                    "dx": x.grad.double().flatten().tolist()})
    out.append(res)
print(json.dumps(out))
"#;

/// Boxes `[batch, x1, y1, x2, y2]` in image pixels (the feature map is at `SCALE`): inside,
/// on the borders, partly and wholly outside, a point, an inverted box, two per image.
fn boxes(rng: &mut Rng) -> Vec<f64> {
    let (w, h) = (X[3] as f64 / SCALE, X[2] as f64 / SCALE);
    let mut b = vec![
        [0.0, 3.2, 4.1, 17.5, 15.3],
        [1.0, 0.0, 0.0, w, h],
        [1.0, -6.0, -3.5, 8.2, 9.9],
        [0.0, w - 5.0, h - 4.0, w + 7.0, h + 9.0],
        [1.0, w + 3.0, 2.0, w + 9.0, 8.0],
        [0.0, 7.7, 7.7, 7.7, 7.7],
        [1.0, 12.0, 10.0, 4.0, 3.0],
    ];
    for i in 0..5 {
        let x1 = rng.range_f64(-4.0, w);
        let y1 = rng.range_f64(-4.0, h);
        b.push([
            (i % 2) as f64,
            x1,
            y1,
            x1 + rng.range_f64(0.5, 14.0),
            y1 + rng.range_f64(0.5, 14.0),
        ]);
    }
    b.concat()
}

/// RoIAlign and the gradient of `sum(y · g)` w.r.t. `x`, through a graph and its autodiff.
fn mmrun(
    x: &[f64],
    rois: &[f64],
    g: &[f64],
    attrs: RoiAlignAttrs,
    dt: DType,
) -> (Vec<f64>, Vec<f64>) {
    let k = rois.len() / 5;
    let ys = vec![k, X[1], OUT[0], OUT[1]];
    let mut b = GraphBuilder::new(dt);
    let xn = b.param("x", &X, Init::Constant(0.0)).unwrap();
    let rn = b.input("rois", &[k, 5], dt).unwrap();
    let gn = b.input("g", &ys, dt).unwrap();
    let y = b.roi_align(xn, rn, attrs).unwrap();
    let m = b.mul(y, gn).unwrap();
    let loss = b.sum_all(m).unwrap();
    b.output("y", y).unwrap();
    b.backward(loss).unwrap();
    let graph = b.finish();
    let t = |shape: Vec<usize>, v: &[f64]| HostTensor::f64(shape, v.to_vec()).unwrap().cast(dt);
    let mut params = ParamSet::init(&graph, 0);
    params.set("x", &t(X.to_vec(), x)).unwrap();
    let feeds = BTreeMap::from([
        ("rois".to_string(), t(vec![k, 5], rois)),
        ("g".to_string(), t(ys, g)),
    ]);
    let out = run(&graph, &params, &feeds);
    let f64s = |t: &HostTensor| t.cast(DType::F64).as_f64().unwrap().to_vec();
    (f64s(&out.outputs["y"]), f64s(&out.grads["x"]))
}

fn close(what: &str, ours: &[f64], theirs: &Value, tol: f64) -> f64 {
    let theirs: Vec<f64> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let mut worst = 0f64;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let err = (a - b).abs() / b.abs().max(1.0);
        assert!(err <= tol, "{what}[{i}]: mmrun {a} vs torchvision {b}");
        worst = worst.max(err);
    }
    worst
}

#[test]
fn roi_align_and_its_gradient_equal_torchvision() {
    let mut rng = Rng::seed(fresh_seed("roi_align_and_its_gradient_equal_torchvision"));
    let x = uniform(&mut rng, X.iter().product(), -2.0, 2.0);
    let rois = boxes(&mut rng);
    let k = rois.len() / 5;
    let g = uniform(&mut rng, k * X[1] * OUT[0] * OUT[1], -1.0, 1.0);
    let cases: Vec<(usize, bool)> = [0, 1, 2, 3]
        .into_iter()
        .flat_map(|s| [(s, true), (s, false)])
        .collect();
    let input = json!({
        "x": x, "xs": X, "rois": rois, "g": g, "out": OUT, "scale": SCALE,
        "cases": cases.iter().map(|&(s, a)| json!({"sampling_ratio": s, "aligned": a})).collect::<Vec<_>>(),
    });
    let Some(reference) = run_python(TORCH, &input) else {
        return;
    };
    for (d, (dt, tol)) in [(DType::F64, 1e-12), (DType::F32, 1e-5)]
        .into_iter()
        .enumerate()
    {
        let mut worst = 0f64;
        for (c, &(sampling_ratio, aligned)) in cases.iter().enumerate() {
            let attrs = RoiAlignAttrs {
                output: OUT,
                spatial_scale: SCALE,
                sampling_ratio,
                aligned,
            };
            let (y, dx) = mmrun(&x, &rois, &g, attrs, dt);
            let r = &reference[d][c];
            let what = format!("{dt:?} sampling_ratio {sampling_ratio} aligned {aligned}");
            worst = worst.max(close(&format!("{what} y"), &y, &r["y"], tol));
            worst = worst.max(close(&format!("{what} dx"), &dx, &r["dx"], tol));
        }
        eprintln!("roi_align {dt:?}: worst relative difference from torchvision {worst:.2e}");
    }
}

#[test]
fn an_empty_roi_list_and_a_box_of_a_missing_image() {
    let geo = RoiAlignGeometry {
        input: X,
        output: OUT,
        spatial_scale: SCALE,
        sampling_ratio: 0,
        aligned: true,
    };
    let x = vec![1.0f32; X.iter().product()];
    let mut y: Vec<f32> = Vec::new();
    roi_align(&geo, &x, &[], &mut y).unwrap();
    let mut dx = vec![7.0f32; x.len()];
    roi_align_grad(&geo, &[], &[], &mut dx).unwrap();
    assert!(dx.iter().all(|&v| v == 0.0), "no boxes, no gradient");
    let mut y = vec![0.0f32; X[1] * OUT[0] * OUT[1]];
    for bad in [2.0f32, -1.0, 0.5, f32::NAN] {
        let e = roi_align(&geo, &x, &[bad, 0.0, 0.0, 4.0, 4.0], &mut y).unwrap_err();
        assert!(e.contains("box 0") && e.contains("2 images"), "{e}");
    }
}
