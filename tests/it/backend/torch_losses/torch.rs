//! The f64 reference (`formulas.rs`) against PyTorch autograd in float64 on the same inputs:
//! the mmdetection loss formulas written with torch ops, gradients by `backward()`. Runs here
//! on the CPU; skipped with a printed reason when python3 or torch is missing.

use std::io::Write;
use std::process::{Command, Stdio};

use mmrun::util::rng::Rng;
use serde_json::{Value, json};

use super::formulas::{self as reference, LossOut, cases};

const SCRIPT: &str = r#"
import json, sys
import torch
import torch.nn.functional as F
torch.set_default_dtype(torch.float64)
d = json.load(sys.stdin)
out = {}
def run(name, fn, x):
    x = torch.tensor(x, requires_grad=True)
    l = fn(x)
    l.backward()
    out[name] = {"loss": l.item(), "grad": x.grad.tolist()}
c = d["cls"]; n, k = c["n_rows"], c["n_cls"]
lab = torch.tensor(c["labels"]); roww = torch.tensor(c["row_w"]).view(-1, 1)
def focal(x):
    x = x.view(n, k)
    t = F.one_hot(lab.clamp(0, k), k + 1)[:, :k].to(x.dtype)
    p = x.sigmoid()
    pt = (1 - p) * t + p * (1 - t)
    fw = (d["alpha"] * t + (1 - d["alpha"]) * (1 - t)) * pt.pow(d["gamma"])
    l = F.binary_cross_entropy_with_logits(x, t, reduction="none") * fw
    return (l * roww).sum() * d["scale"]
run("focal", focal, c["logits"])
ce = d["ce"]; n2, k2 = ce["n_rows"], ce["n_cls"]
lab2 = torch.tensor(ce["labels"]); roww2 = torch.tensor(ce["row_w"])
def cross_entropy(x):
    l = F.cross_entropy(x.view(n2, k2), lab2, reduction="none", ignore_index=d["ignore_index"])
    return (l * roww2).sum() * d["scale"]
run("ce", cross_entropy, ce["logits"])
b = d["bce"]; tb = torch.tensor(b["t"]); wb = torch.tensor(b["w"])
run("bce", lambda x: (F.binary_cross_entropy_with_logits(x, tb, reduction="none") * wb).sum() * d["scale"], b["x"])
r = d["reg"]; tr = torch.tensor(r["t"]); wr = torch.tensor(r["w"])
run("l1", lambda x: ((x - tr).abs() * wr).sum() * d["scale"], r["x"])
beta = d["beta"]
def smooth_l1(x):
    diff = torch.abs(x - tr)
    l = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    return (l * wr).sum() * d["scale"]
run("smooth_l1", smooth_l1, r["x"])
g = d["giou"]; tg = torch.tensor(g["t"]).view(-1, 4); wg = torch.tensor(g["w"])
def giou(x):
    p = x.view(-1, 4)
    area1 = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    area2 = (tg[:, 2] - tg[:, 0]) * (tg[:, 3] - tg[:, 1])
    lt = torch.max(p[:, :2], tg[:, :2]); rb = torch.min(p[:, 2:], tg[:, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[:, 0] * wh[:, 1]
    union = area1 + area2 - overlap
    elt = torch.min(p[:, :2], tg[:, :2]); erb = torch.max(p[:, 2:], tg[:, 2:])
    eps = union.new_tensor([d["eps"]])
    union = torch.max(union, eps)
    ious = overlap / union
    ewh = (erb - elt).clamp(min=0)
    earea = torch.max(ewh[:, 0] * ewh[:, 1], eps)
    gious = ious - (earea - union) / earea
    return ((1 - gious) * wg).sum() * d["scale"]
run("giou", giou, g["x"])
json.dump(out, sys.stdout)
"#;

fn torch(input: &Value) -> Result<Value, String> {
    let probe = Command::new("python3")
        .args(["-c", "import torch"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(_) => return Err("torch is not importable by python3".into()),
        Err(e) => return Err(format!("python3 not runnable: {e}")),
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    assert!(
        out.status.success(),
        "torch script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout).expect("json from torch"))
}

fn compare(name: &str, ours: &LossOut, theirs: &Value) {
    let loss = theirs["loss"].as_f64().expect("loss");
    let tol = |a: f64| 1e-9 * (1.0 + a.abs());
    assert!(
        (ours.loss - loss).abs() <= tol(loss),
        "{name}: loss {} vs torch {loss}",
        ours.loss
    );
    let grad: Vec<f64> = theirs["grad"]
        .as_array()
        .expect("grad")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    assert_eq!(grad.len(), ours.grad.len(), "{name}: gradient length");
    for (i, (a, b)) in ours.grad.iter().zip(&grad).enumerate() {
        assert!(
            (a - b).abs() <= tol(*b),
            "{name}: grad[{i}] {a} vs torch {b}"
        );
    }
}

#[test]
fn f64_reference_matches_torch_autograd() {
    let mut rng = Rng::seed(0x5eed_c0da);
    let (gamma, alpha, scale, beta, eps, ignore) = (2.0, 0.25, 0.37, 0.11, 1e-6, -100);
    let cls = cases::cls(&mut rng, 37, 9, None);
    let ce = cases::cls(&mut rng, 29, 11, Some(ignore));
    let bce = cases::pointwise(&mut rng, 101, true);
    let reg = cases::pointwise(&mut rng, 97, false);
    let boxes = cases::boxes(&mut rng, 53);
    // Labels equal to n_cls mean background for focal; for CE they are out of range in
    // torch, so map them to ignore_index there.
    let ce_labels: Vec<i32> = ce
        .labels
        .iter()
        .map(|&l| if l == ce.n_cls as i32 { ignore } else { l })
        .collect();
    let input = json!({
        "gamma": gamma, "alpha": alpha, "scale": scale, "beta": beta, "eps": eps,
        "ignore_index": ignore,
        "cls": {"n_rows": cls.n_rows, "n_cls": cls.n_cls, "logits": cls.logits,
                "labels": cls.labels, "row_w": cls.row_w},
        "ce": {"n_rows": ce.n_rows, "n_cls": ce.n_cls, "logits": ce.logits,
               "labels": ce_labels, "row_w": ce.row_w},
        "bce": {"x": bce.x, "t": bce.t, "w": bce.w},
        "reg": {"x": reg.x, "t": reg.t, "w": reg.w},
        "giou": {"x": boxes.x, "t": boxes.t, "w": boxes.w},
    });
    let out = match torch(&input) {
        Ok(v) => v,
        Err(why) => {
            crate::support::skip_without_reference("torch losses", &why);
            return;
        }
    };
    compare(
        "focal",
        &reference::focal(
            &cls.logits,
            &cls.labels,
            Some(&cls.row_w),
            cls.n_cls,
            gamma,
            alpha,
            scale,
        ),
        &out["focal"],
    );
    compare(
        "ce",
        &reference::cross_entropy(
            &ce.logits,
            &ce_labels,
            Some(&ce.row_w),
            ce.n_cls,
            ignore,
            scale,
        ),
        &out["ce"],
    );
    compare(
        "bce",
        &reference::bce(&bce.x, &bce.t, Some(&bce.w), scale),
        &out["bce"],
    );
    compare(
        "l1",
        &reference::l1(&reg.x, &reg.t, Some(&reg.w), scale),
        &out["l1"],
    );
    compare(
        "smooth_l1",
        &reference::smooth_l1(&reg.x, &reg.t, Some(&reg.w), beta, scale),
        &out["smooth_l1"],
    );
    compare(
        "giou",
        &reference::giou(&boxes.x, &boxes.t, Some(&boxes.w), eps, scale),
        &out["giou"],
    );
}
