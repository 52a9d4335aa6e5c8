//! `mmrun export … --out m.onnx` end to end: a detector trained a few iterations through the
//! CLI, exported, run in onnxruntime, and compared with mmrun's own eval graph (what
//! `mmrun test` runs before decoding) on the same input; every op the exporter translates
//! checked the same way on a small graph; and the refusals (wrong extension, Faster R-CNN,
//! options of the other format).
//!
//! Tolerance: `|onnx − mmrun| ≤ 1e-4 · max(1, |mmrun|)` per element (absolute below 1,
//! relative above: FCOS's `exp` boxes can be large).

use crate::engine::detector::{dataset, mmrun, small_variant_sets};
use mmrun::backend::Device;
use mmrun::engine::ParamSet;
use mmrun::engine::checkpoint::{load_checkpoint, load_weights_into, params_to_tensors};
use mmrun::graph::{BnMode, GraphBuilder, Init};
use mmrun::ir::op::Conv2dAttrs;
use mmrun::ir::{DType, HostTensor};
use mmrun::model::config::DetectorConfig;
use mmrun::model::net::{Detector, GraphMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOLERANCE: f32 = 1e-4;

/// Whether python3 can import onnxruntime and numpy (else the test skips, or fails under
/// `MMRUN_REQUIRE_REFERENCES`).
fn onnxruntime(test: &str) -> bool {
    let out = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output();
    let why = match out {
        Ok(o) if o.status.success() => return true,
        Ok(o) => format!(
            "onnxruntime is not installed (pip install onnxruntime): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("python3 cannot run ({e})"),
    };
    crate::support::skip_without_reference(test, &why);
    false
}

/// Runs `model` in onnxruntime (CPU) on `input` fed as `feed`: every output by name.
fn ort_run(
    dir: &Path,
    model: &Path,
    feeds: &[(&str, &[usize], &[f32])],
) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut spec = Vec::new();
    for (i, (name, shape, data)) in feeds.iter().enumerate() {
        let f = dir.join(format!("feed{i}.bin"));
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&f, bytes).unwrap();
        spec.push(serde_json::json!({"name": name, "shape": shape, "file": f}));
    }
    let script = r#"
import json, sys, numpy as np, onnxruntime as ort
model, feeds, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = {f["name"]: np.fromfile(f["file"], dtype="<f4").reshape(f["shape"]) for f in feeds}
res = []
for i, (o, v) in enumerate(zip(s.get_outputs(), s.run(None, x))):
    p = f"{out}/out{i}.bin"
    np.ascontiguousarray(v, dtype="<f4").tofile(p)
    res.append({"name": o.name, "shape": list(v.shape), "file": p})
print(json.dumps(res))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(model)
        .arg(serde_json::Value::from(spec).to_string())
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "onnxruntime could not run {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .map(|o| {
            let bytes = std::fs::read(o["file"].as_str().unwrap()).unwrap();
            let data = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let shape = serde_json::from_value(o["shape"].clone()).unwrap();
            (o["name"].as_str().unwrap().to_string(), (shape, data))
        })
        .collect()
}

/// The largest `|a − b|` between onnxruntime's and mmrun's outputs, after checking names,
/// shapes and the tolerance.
fn compare(
    ort: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    ours: &BTreeMap<String, HostTensor>,
) -> f32 {
    assert_eq!(
        ort.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "output names"
    );
    let mut worst = 0f32;
    for (name, (shape, got)) in ort {
        let want = &ours[name];
        assert_eq!(shape, &want.shape, "{name}: shape");
        let want = want.as_f32().unwrap();
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            let d = (a - b).abs();
            assert!(
                d <= TOLERANCE * b.abs().max(1.0),
                "{name}[{i}]: onnxruntime {a}, mmrun {b}"
            );
            worst = worst.max(d);
        }
    }
    worst
}

/// A deterministic input in the range normalised images take.
fn input(n: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// The quickstart's data on a 20-image shapes set at 64 px, one epoch of 4 steps.
fn train(dir: &Path, recipe: &str, work: &str) -> PathBuf {
    let root = dir.join("shapes");
    if !root.exists() {
        dataset(dir);
    }
    let sets = small_variant_sets(&root);
    let w = dir.join(work);
    let mut args = vec!["exec", recipe, "--work-dir", w.to_str().unwrap()];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    args.extend(["--max-iters", "4"]);
    let (code, text) = mmrun(&args);
    assert_eq!(code, 0, "{text}");
    w.join("checkpoints/epoch_1")
}

/// mmrun's eval graph for the checkpoint's detector at `hw`, run on the CPU backend with
/// the checkpoint's weights: the raw outputs `mmrun test` decodes.
fn mmrun_forward(ckpt: &Path, hw: (usize, usize), x: &[f32]) -> BTreeMap<String, HostTensor> {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("../../config.json")).unwrap())
            .unwrap();
    let cfg = DetectorConfig::from_value(&config["model"]).unwrap();
    let built = (Detector::new(cfg).unwrap())
        .build(GraphMode::Eval, 1, hw, DType::F32)
        .unwrap();
    let mut params = ParamSet::init(&built.graph, 0);
    let report = load_weights_into(&mut params, &load_checkpoint(ckpt).unwrap().weights);
    assert!(report.missing.is_empty() && report.mismatched.is_empty());
    let mut exec = mmrun::engine::executor_on(&Device::Cpu, built.graph);
    let img = HostTensor::f32(vec![1, 3, hw.0, hw.1], x.to_vec()).unwrap();
    let feeds = BTreeMap::from([("img".to_string(), img)]);
    exec.run(&params, &feeds).unwrap().outputs
}

/// Exports `ckpt` (with `extra` arguments), runs it in onnxruntime and in mmrun at `hw`:
/// the largest difference.
fn export_and_compare(dir: &Path, ckpt: &Path, hw: (usize, usize), extra: &[&str]) -> f32 {
    let model = dir.join(format!("m{}x{}.onnx", hw.0, hw.1));
    let mut args = vec![
        "export",
        ckpt.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, text) = mmrun(&args);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ONNX opset 17"), "{text}");
    let x = input(3 * hw.0 * hw.1);
    let ort = ort_run(dir, &model, &[("input", &[1, 3, hw.0, hw.1], &x)]);
    compare(&ort, &mmrun_forward(ckpt, hw, &x))
}

#[test]
fn onnx_export_of_the_quickstart_fcos_matches_mmrun_in_onnxruntime() {
    if !onnxruntime("onnx_export_of_the_quickstart_fcos") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ckpt = train(dir.path(), "pipelines/quickstart.recipe", "fcos");
    // The default size: the 64 px test pipeline padded to 32 (every resize is 2×).
    let d = export_and_compare(dir.path(), &ckpt, (64, 64), &[]);
    eprintln!("fcos 64x64: max |onnxruntime - mmrun| = {d:e}");
    // 176 px: levels 22, 11 and 6, so the FPN also resizes 6 → 11 (the gathered path).
    let d = export_and_compare(dir.path(), &ckpt, (176, 176), &["--size", "176x176"]);
    eprintln!("fcos 176x176: max |onnxruntime - mmrun| = {d:e}");
    // A checkpoint away from its run's config.json exports with the recipe named, at the
    // recipe's own test size (176 px padded to 32).
    let copy = move_checkpoint(dir.path(), &ckpt);
    let out = dir.path().join("r.onnx");
    let (code, text) = mmrun(&[
        "export",
        copy.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--recipe",
        "pipelines/quickstart.recipe",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fcos at 192x192"), "{text}");
}

/// A copy of checkpoint `ckpt` in a folder of its own, away from its run's work dir.
fn move_checkpoint(dir: &Path, ckpt: &Path) -> PathBuf {
    let copy = dir.join("moved/epoch_1");
    std::fs::create_dir_all(&copy).unwrap();
    for f in std::fs::read_dir(ckpt).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
    }
    copy
}

#[test]
fn onnx_export_of_a_retinanet_matches_mmrun_in_onnxruntime() {
    if !onnxruntime("onnx_export_of_a_retinanet") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The quickstart with a small RetinaNet: batch norm in eval mode, an extra level made
    // by a stride-2 conv on the input, three anchors per location.
    let recipe = dir.path().join("retina.recipe");
    let text = format!(
        "import \"{}/pipelines/quickstart.recipe\"\n{}",
        env!("CARGO_MANIFEST_DIR"),
        r#"
model := retinanet {
  backbone = resnet { depth = 18, base_channels = 16, out_indices = [1, 2, 3], frozen_stages = 1, norm_eval = true }
  neck = fpn { in_channels = [32, 64, 128], out_channels = 32, add_extra_convs = on_input, num_outs = 4 }
  bbox_head = retina_head {
    num_classes = 6
    in_channels = 32
    stacked_convs = 2
    feat_channels = 32
    anchor_generator = anchor_generator {
      octave_base_scale = 4
      scales_per_octave = 1
      ratios = [0.5, 1.0, 2.0]
      strides = [8, 16, 32, 64]
    }
  }
  train_cfg = { assigner = max_iou { pos_iou_thr = 0.5, neg_iou_thr = 0.4, min_pos_iou = 0 } }
  test_cfg = { nms_pre = 1000, score_thr = 0.05, nms = nms { iou_threshold = 0.5 }, max_per_img = 100 }
}
"#
    );
    std::fs::write(&recipe, text).unwrap();
    let ckpt = train(dir.path(), recipe.to_str().unwrap(), "retina");
    let d = export_and_compare(dir.path(), &ckpt, (64, 96), &["--size", "64x96"]);
    eprintln!("retinanet 64x96: max |onnxruntime - mmrun| = {d:e}");
}

/// Every op the exporter translates, on a small graph with random weights: onnxruntime and
/// mmrun's CPU backend agree.
#[test]
fn onnx_translation_of_each_op_matches_the_cpu_backend() {
    if !onnxruntime("onnx_translation_of_each_op") {
        return;
    }
    let mut b = GraphBuilder::new(DType::F32);
    let x = b.input("x", &[2, 4, 7, 6], DType::F32).unwrap();
    let p =
        |b: &mut GraphBuilder, n: &str, s: &[usize]| b.param(n, s, Init::Constant(0.0)).unwrap();
    let (w, bias) = (p(&mut b, "w", &[6, 4, 3, 3]), p(&mut b, "bias", &[6]));
    let attrs = Conv2dAttrs {
        stride: [2, 1],
        padding: [1, 2],
        dilation: [1, 2],
        groups: 1,
    };
    let y = b.conv2d(x, w, Some(bias), attrs).unwrap(); // [2, 6, 4, 6]
    let wg = p(&mut b, "wg", &[6, 2, 1, 1]);
    let grouped = Conv2dAttrs {
        groups: 3,
        ..Default::default()
    };
    let y = b.conv2d(y, wg, None, grouped).unwrap();
    let (g, be) = (p(&mut b, "gn.weight", &[6]), p(&mut b, "gn.bias", &[6]));
    let y = b.group_norm(y, 3, g, be, 1e-5).unwrap();
    let (g, be) = (p(&mut b, "bn.weight", &[6]), p(&mut b, "bn.bias", &[6]));
    let rm = b
        .buffer("bn.running_mean", &[6], Init::Constant(0.0))
        .unwrap();
    let rv = b
        .buffer("bn.running_var", &[6], Init::Constant(1.0))
        .unwrap();
    let y = b.batch_norm(y, g, be, rm, rv, BnMode::Eval, 1e-3).unwrap();
    let y = b.relu(y).unwrap();
    let pooled = b.max_pool2d(y, [3, 3], [2, 2], [1, 1]).unwrap(); // [2, 6, 2, 3]
    let up2 = b.upsample_nearest(pooled, [4, 6]).unwrap();
    let up = b.upsample_nearest(pooled, [5, 7]).unwrap();
    let s = b.sigmoid(up).unwrap();
    let s = b.scale(s, 1.5).unwrap();
    let s = b.add_scalar(s, 0.25).unwrap();
    let e = b.exp(s).unwrap();
    let l = b.log(e).unwrap();
    let c = b.clamp(l, 0.5, 1.5).unwrap();
    let scale = p(&mut b, "scale", &[]);
    let m = b.mul(up2, scale).unwrap(); // [2, 6, 4, 6]
    let fill = b.fill(&[6, 1, 1], 2.0);
    let m = b.div(m, fill).unwrap();
    let m = b.sub(m, up2).unwrap();
    let t = b.permute(m, &[0, 2, 3, 1]).unwrap(); // [2, 4, 6, 6]
    let t = b.reshape(t, &[2, 24, 6]).unwrap();
    let t = b.slice(t, 1, 3, 20).unwrap(); // [2, 17, 6]
    let k = p(&mut b, "k", &[2, 5, 6]);
    let mm = b.matmul_t(t, k, false, true).unwrap(); // [2, 17, 5]
    let mt = b.matmul_t(t, t, true, false).unwrap(); // [2, 6, 6]
    let sum = b.sum(mm, &[1], true).unwrap(); // [2, 1, 5]
    let wide = b.broadcast_to(sum, &[2, 3, 5]).unwrap();
    let cat = b.concat(&[wide, mm], 1).unwrap(); // [2, 20, 5]
    for (name, v) in [
        ("clamped", c),
        ("cat", cat),
        ("gram", mt),
        ("pooled", pooled),
    ] {
        b.output(name, v).unwrap();
    }
    let graph = b.finish();

    // Random weights; the running variance positive.
    let mut params = ParamSet::init(&graph, 0);
    for (k, prm) in params.iter_mut().enumerate() {
        // Each parameter its own values: the stream shifted by its index.
        let var = prm.name.ends_with("running_var");
        let vals = input(prm.numel() + k);
        for (v, r) in prm.values_mut().iter_mut().zip(&vals[k..]) {
            *v = if var { r.abs() + 0.5 } else { *r * 0.5 };
        }
    }
    let weights = params_to_tensors(&params);
    let bytes =
        mmrun::model::onnx::export_graph(&graph, &weights, &[("x", "x")], "ops", &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ops.onnx");
    std::fs::write(&model, bytes).unwrap();
    let x = input(2 * 4 * 7 * 6);
    let ort = ort_run(dir.path(), &model, &[("x", &[2, 4, 7, 6], &x)]);
    let mut exec = mmrun::engine::executor_on(&Device::Cpu, graph);
    let feeds = BTreeMap::from([(
        "x".to_string(),
        HostTensor::f32(vec![2, 4, 7, 6], x).unwrap(),
    )]);
    let ours = exec.run(&params, &feeds).unwrap().outputs;
    let d = compare(&ort, &ours);
    eprintln!("ops: max |onnxruntime - mmrun| = {d:e}");
}

/// Ops with no inference meaning are refused by name, not written.
#[test]
fn onnx_translation_refuses_training_ops_by_name() {
    let mut b = GraphBuilder::new(DType::F32);
    let x = b.input("x", &[2, 3, 4, 4], DType::F32).unwrap();
    let g = b.param("bn.weight", &[3], Init::Constant(1.0)).unwrap();
    let be = b.param("bn.bias", &[3], Init::Constant(0.0)).unwrap();
    let rm = b
        .buffer("bn.running_mean", &[3], Init::Constant(0.0))
        .unwrap();
    let rv = b
        .buffer("bn.running_var", &[3], Init::Constant(1.0))
        .unwrap();
    let mode = BnMode::Train { momentum: 0.1 };
    let y = b.batch_norm(x, g, be, rm, rv, mode, 1e-5).unwrap();
    b.output("y", y).unwrap();
    let graph = b.finish();
    let weights = params_to_tensors(&ParamSet::init(&graph, 0));
    let e = mmrun::model::onnx::export_graph(&graph, &weights, &[("x", "x")], "", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("norm_apply") && e.contains("batch statistics"),
        "{e}"
    );
}

#[test]
fn onnx_export_refuses_faster_rcnn_other_extensions_and_safetensors_options() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = train(dir.path(), "pipelines/quickstart_two_stage.recipe", "two");
    let c = ckpt.to_str().unwrap();
    let out = dir.path().join("m.onnx");
    let o = out.to_str().unwrap();

    let (code, text) = mmrun(&["export", c, "--out", o]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("faster_rcnn cannot be exported") && text.contains(c),
        "{text}"
    );
    assert!(!out.exists());

    let bad = dir.path().join("m.pt");
    let (code, text) = mmrun(&["export", c, "--out", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--out") && text.contains("m.pt") && text.contains(".onnx"),
        "{text}"
    );

    let (code, text) = mmrun(&["export", c, "--out", o, "--names", "torchvision"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--names applies to safetensors"), "{text}");

    let st = dir.path().join("w.safetensors");
    let (code, text) = mmrun(&[
        "export",
        c,
        "--out",
        st.to_str().unwrap(),
        "--size",
        "64x64",
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--size applies to ONNX"), "{text}");

    let (code, text) = mmrun(&["export", c, "--out", o, "--size", "64by64"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--size 64by64"), "{text}");
    // Bounded as the data loader bounds an image side: no allocation of a huge input.
    let (code, text) = mmrun(&["export", c, "--out", o, "--size", "100000x100000"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--size 100000x100000: each side must be 1 to"),
        "{text}"
    );

    // A checkpoint moved away from its run's config.json needs --recipe.
    let copy = move_checkpoint(dir.path(), &ckpt);
    let (code, text) = mmrun(&["export", copy.to_str().unwrap(), "--out", o]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("no config.json") && text.contains("--recipe"),
        "{text}"
    );
}
