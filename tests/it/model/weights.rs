//! Weight loading: `.pth` files written by `torch.save` (torchvision ResNet-18, strided and
//! half-precision tensors, mmcv-style checkpoints), safetensors, key mapping and strictness,
//! and refusal of pickles that would run code.

use super::py;
use crate::bin::mmrun;
use mmrun::model::weights::{
    self, LoadRule, Shapes, StateDict, WeightsError, load_pth, match_weights, pth_shapes,
};
use serde_json::json;
use std::collections::BTreeMap;

const SAVE: &str = r#"
import json, sys, os, torch, torchvision
c = json.load(sys.stdin)
torch.manual_seed(0)
sd = torchvision.models.resnet18(weights=None).state_dict()
torch.save(sd, os.path.join(c["dir"], "r18.pth"))
extra = {"t": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),  # strided view
         "h": torch.tensor([1.5, -2.25], dtype=torch.float16),
         "d": torch.tensor([[0.1]], dtype=torch.float64)}
torch.save({"meta": {"epoch": 3, "CLASSES": ("a", "b")}, "state_dict": extra}, os.path.join(c["dir"], "ckpt.pth"))
summary = {k: {"shape": list(v.shape), "sum": float(v.double().sum()), "first": v.flatten()[:3].double().tolist()}
           for k, v in sd.items()}
print(json.dumps(summary))
"#;

#[test]
fn pth_reader_reads_torchvision_resnet18_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let input = json!({"dir": dir.path()});
    let Some(summary) = py::run(&["torch", "torchvision"], SAVE, &input) else {
        return;
    };
    let sd = load_pth(&dir.path().join("r18.pth")).unwrap();
    let want = summary.as_object().unwrap();
    assert_eq!(sd.len(), want.len());
    for (k, w) in want {
        let t = &sd[k];
        let shape: Vec<usize> = py::f64s(&w["shape"])
            .into_iter()
            .map(|v| v as usize)
            .collect();
        assert_eq!(t.shape, shape, "{k}");
        let sum: f64 = t.data.iter().map(|&v| v as f64).sum();
        let ws = w["sum"].as_f64().unwrap();
        assert!(
            (sum - ws).abs() <= 1e-6 * (1.0 + ws.abs()) * t.data.len() as f64,
            "{k}: {sum} vs {ws}"
        );
        let first: Vec<f64> = t.data.iter().take(3).map(|&v| v as f64).collect();
        assert_eq!(first, py::f64s(&w["first"]), "{k}");
    }
    // Header-only: the same names and shapes, no tensor inflated.
    let shapes: Shapes = sd
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    assert_eq!(pth_shapes(&dir.path().join("r18.pth")).unwrap(), shapes);
    // Onto backbone names: fc is unexpected, num_batches_tracked left out, strict holds.
    let model: Shapes = sd
        .iter()
        .filter(|(k, _)| !k.starts_with("fc.") && !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| (format!("backbone.{k}"), t.shape.clone()))
        .collect();
    let rule = LoadRule {
        target: "backbone.".into(),
        ..LoadRule::exact()
    };
    let m = match_weights(&shapes, &model, &rule);
    assert_eq!(m.report.loaded.len(), model.len());
    assert!(m.report.missing.is_empty() && m.report.mismatched.is_empty());
    assert_eq!(m.report.unexpected, vec!["fc.bias", "fc.weight"]);
    assert_eq!(
        m.report.refusal(&rule),
        None,
        "what the file has beyond is never fatal"
    );

    let ck = load_pth(&dir.path().join("ckpt.pth")).unwrap();
    assert_eq!(ck["t"].shape, vec![4, 3]);
    assert_eq!(
        ck["t"].data,
        vec![0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]
    );
    assert_eq!(ck["h"].data, vec![1.5, -2.25]);
    assert_eq!(ck["d"].data, vec![0.1f64 as f32]);
}

const EVIL: &str = r#"
import json, sys, os, torch
c = json.load(sys.stdin)
marker = os.path.join(c["dir"], "pwned")
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + marker,))
torch.save({"w": torch.zeros(2), "x": Evil()}, os.path.join(c["dir"], "evil.pth"))
class Custom:
    pass
torch.save({"w": torch.zeros(2), "c": Custom}, os.path.join(c["dir"], "custom.pth"))
torch.save({"f": os.getcwd}, os.path.join(c["dir"], "func.pth"))
print(json.dumps({"marker": marker}))
"#;

#[test]
fn pth_reader_refuses_code_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(o) = py::run(&["torch"], EVIL, &json!({"dir": dir.path()})) else {
        return;
    };
    let marker = std::path::PathBuf::from(o["marker"].as_str().unwrap());
    for (file, global) in [
        ("evil.pth", "system"),
        ("custom.pth", "__main__.Custom"),
        ("func.pth", "getcwd"),
    ] {
        let err = load_pth(&dir.path().join(file)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WeightsError::Pickle { .. }), "{file}: {msg}");
        assert!(
            msg.contains("refused global") && msg.contains(global),
            "{file}: {msg}"
        );
    }
    assert!(
        !marker.exists(),
        "loading must not execute the pickled call"
    );
}

#[test]
fn safetensors_and_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    let a: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let b: Vec<u8> = [0.5f64, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let h: Vec<u8> = [1.5f32, -0.25]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf: Vec<u8> = [3.0f32, -2.5]
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    use safetensors::{Dtype, tensor::TensorView};
    let views = vec![
        ("a", TensorView::new(Dtype::F32, vec![2, 3], &a).unwrap()),
        ("b", TensorView::new(Dtype::F64, vec![2], &b).unwrap()),
        ("h", TensorView::new(Dtype::F16, vec![2, 1], &h).unwrap()),
        ("bf", TensorView::new(Dtype::BF16, vec![2], &bf).unwrap()),
    ];
    safetensors::tensor::serialize_to_file(views, None, &p).unwrap();
    let sd: StateDict = weights::load_weights(&p).unwrap();
    assert_eq!(sd["a"].shape, vec![2, 3]);
    assert_eq!(sd["a"].data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(sd["b"].data, vec![0.5, -1.0]);
    assert_eq!(
        (sd["h"].shape.clone(), sd["h"].data.clone()),
        (vec![2, 1], vec![1.5, -0.25])
    );
    assert_eq!(sd["bf"].data, vec![3.0, -2.5]);
    // The header alone gives the same names and shapes; a cut file is refused by it.
    let shapes: Shapes = sd
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    assert_eq!(weights::read_shapes(&p).unwrap(), shapes);
    let bytes = std::fs::read(&p).unwrap();
    // The same decoder reads checkpoints, which hold f32 only (resume must be exact).
    use weights::SafetensorsDtypes::F32Only;
    let e = weights::decode_safetensors(&bytes, F32Only)
        .unwrap_err()
        .to_string();
    assert!(e.contains("; mmrun checkpoints hold f32"), "{e}");
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let e = weights::read_shapes(&cut).unwrap_err().to_string();
    assert!(
        e.contains("cut.safetensors") && e.contains("truncated"),
        "{e}"
    );
    // A file that is neither: a clear error naming it.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a zip").unwrap();
    let e = weights::load_weights(&junk).unwrap_err().to_string();
    assert!(
        e.contains("junk.pth") && e.contains("not a PyTorch zip checkpoint"),
        "{e}"
    );
}

/// torchvision's ResNet `arch` in eval mode: either fresh (seeded, with non-trivial BN
/// statistics and affine terms, so loading them matters) and saved to `save` with
/// `torch.save`, or loaded from the safetensors file `load` with `strict=True` (`fc` replaced by
/// `Identity`; any missing or extra key raises). Prints C2–C5 of a seeded 1 × 3 × 64 × 96
/// input, and the keys and dtypes of the safetensors file `det` when given.
const FORWARD: &str = r#"
import json, sys, torch, torchvision
c = json.load(sys.stdin)
m = getattr(torchvision.models, c["arch"])(weights=None)
if "load" in c:
    from safetensors.torch import load_file
    m.fc = torch.nn.Identity()
    m.load_state_dict(load_file(c["load"]), strict=True)
else:
    torch.manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.2, 0.2)
    torch.save(m.state_dict(), c["save"])
m.eval()
x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(2)) * 2 - 1
outs = []
with torch.no_grad():
    y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        y = layer(y); outs.append(y.flatten().tolist())
out = {"x": x.flatten().tolist(), "outs": outs}
if "det" in c:
    from safetensors.torch import load_file
    det = load_file(c["det"])
    out["det_keys"] = sorted(det)
    out["det_dtypes"] = sorted({str(v.dtype) for v in det.values()})
print(json.dumps(out))
"#;

/// A torchvision ResNet-50 saved by PyTorch, named by the R-50 RetinaNet recipe's
/// `init_cfg`: the recipe's own rule (from `model::weights::sources`) loads it into mmrun's
/// ResNet-50, which then gives torchvision's C2–C5, and the recipe's `frozen_stages = 1`
/// leaves the stem and `layer1` untrainable.
#[test]
fn a_torchvision_resnet50_named_by_the_r50_recipe_gives_torchvisions_features() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r50.pth");
    let input = json!({"arch": "resnet50", "save": file});
    let Some(o) = py::run(&["torch", "torchvision"], FORWARD, &input) else {
        return;
    };
    let init = format!("model.backbone.init_cfg=pretrained(\"{}\")", file.display());
    let (_, plan) = mmrun::plan::load(
        std::path::Path::new("pipelines/retinanet_r50_fpn_1x_coco.recipe"),
        &[init],
        &mmrun::recipe::CheckOptions {
            no_fs: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sources = &plan.training.weights;
    assert_eq!(sources.len(), 1);
    let mmrun::model::config::BackboneConfig::Resnet(backbone) = plan.model.backbone();
    assert_eq!((backbone.depth, backbone.frozen_stages), (50, 1));
    let (got, report, frozen) = resnet_features(backbone, &file, &sources[0].rule, &o["x"]);
    assert!(report.missing.is_empty(), "{report}");
    // 320 entries: 265 parameters and BN statistics, 53 `num_batches_tracked`, `fc`.
    assert_eq!(report.loaded.len(), 265, "{report}");
    assert_eq!(report.unexpected, vec!["fc.bias", "fc.weight"]);
    assert_features_match(&got, &o["outs"]);
    assert!(frozen.contains(&"backbone.conv1.weight".to_string()));
    assert!(frozen.contains(&"backbone.layer1.2.conv3.weight".to_string()));
    assert!(
        !frozen.iter().any(|n| n.starts_with("backbone.layer2.")),
        "{frozen:?}"
    );
}

/// mmrun's ResNet (`cfg`, eval mode) with weights from `file` by `rule`: C2–C5 of input `x`
/// (1 × 3 × 64 × 96, flat), the load report, and the parameters (not buffers) left
/// untrainable.
fn resnet_features(
    cfg: &mmrun::model::config::ResNetConfig,
    file: &std::path::Path,
    rule: &LoadRule,
    x: &serde_json::Value,
) -> (Vec<Vec<f32>>, weights::LoadReport, Vec<String>) {
    use mmrun::backend::cpu::CpuBackend;
    use mmrun::engine::{Executor, ParamSet};
    use mmrun::graph::GraphBuilder;
    use mmrun::ir::{DType, HostTensor};
    use mmrun::model::net::{Layers, build_resnet};
    let mut b = GraphBuilder::new(DType::F32);
    let input = b.input("img", &[1, 3, 64, 96], DType::F32).unwrap();
    let mut cfg = cfg.clone();
    cfg.out_indices = vec![0, 1, 2, 3];
    let outs = build_resnet(
        &mut Layers {
            b: &mut b,
            train: false,
            ranks: 1,
        },
        &cfg,
        input,
    )
    .unwrap();
    for (i, &y) in outs.iter().enumerate() {
        b.output(&format!("c{}", i + 2), y).unwrap();
    }
    let graph = b.finish();
    let frozen = graph
        .params
        .iter()
        .filter(|(_, s)| !s.trainable && !s.buffer)
        .map(|(k, _)| k.clone())
        .collect();
    let mut store = ParamSet::init(&graph, 0);
    // As a run loads its initial weights: matched by the rule, refused as a whole or copied.
    let tensors = weights::load_weights(file).unwrap();
    let m = mmrun::engine::checkpoint::match_params(&store, &tensors, rule);
    assert_eq!(m.report.refusal(rule), None);
    mmrun::engine::checkpoint::copy_matched(&mut store, &tensors, &m);
    let report = m.report;
    let img: Vec<f32> = py::f64s(x).into_iter().map(|v| v as f32).collect();
    let mut feeds = BTreeMap::new();
    feeds.insert(
        "img".to_string(),
        HostTensor::f32(vec![1, 3, 64, 96], img).unwrap(),
    );
    let got = Executor::new(graph, CpuBackend)
        .run(&store, &feeds)
        .unwrap();
    let feats = (0..4)
        .map(|i| {
            got.outputs[&format!("c{}", i + 2)]
                .as_f32()
                .unwrap()
                .to_vec()
        })
        .collect();
    (feats, report, frozen)
}

/// Each stage within 1e-4 of PyTorch's (f32), relative to the stage's largest value once
/// that exceeds 1: a ResNet-50's C4 and C5 reach several hundred, where f32 sums in another
/// order differ by ~1e-3 (2.5e-6 of the value).
fn assert_features_match(got: &[Vec<f32>], want: &serde_json::Value) {
    for (i, g) in got.iter().enumerate() {
        let want = py::f64s(&want[i]);
        assert_eq!(g.len(), want.len(), "stage {i}");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let worst = g
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst / scale < 1e-4,
            "stage {i}: max abs difference {worst} at values up to {scale}"
        );
    }
}

/// `mmrun export`: a trained mmrun ResNet-18 backbone written with torchvision's names loads
/// into torchvision's ResNet with `strict=True` and gives mmrun's features; the mmdetection-named
/// file holds the whole detector and loads back through `load_from` with nothing missing.
#[test]
fn exported_weights_load_into_torchvision_strictly_and_give_the_same_features() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wd = d.join("wd");
    let width = [
        "--set",
        "model.backbone.base_channels=64",
        "--set",
        "model.neck.in_channels=[128, 256, 512]",
    ];
    let quick = [
        "pipelines/quickstart.recipe",
        "--work-dir",
        wd.to_str().unwrap(),
    ];
    let (code, text) = mmrun(
        &[
            &["exec"][..],
            &quick,
            &width,
            &["--set", "hooks.checkpoint.every=1 iter", "--max-iters", "1"],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{text}");
    let ckpt = wd.join("checkpoints/iter_1");
    let (tv, det) = (d.join("tv.safetensors"), d.join("det.safetensors"));
    let c = ckpt.to_str().unwrap();
    let (code, text) = mmrun(&[
        "export",
        c,
        "--out",
        tv.to_str().unwrap(),
        "--names",
        "torchvision",
    ]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = mmrun(&["export", c, "--out", det.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    // What cannot be exported says why.
    let (code, text) = mmrun(&["export", c, "--out", "x.pth"]);
    assert!(code == 2 && text.contains("safetensors"), "{text}");
    let (code, text) = mmrun(&["export", c, "--out", "x.safetensors", "--ema"]);
    assert!(code == 2 && text.contains("no EMA weights"), "{text}");
    let (code, text) = mmrun(&["export", d.to_str().unwrap(), "--out", "x.safetensors"]);
    assert!(code == 2 && text.contains("MANIFEST"), "{text}");

    let Some(o) = py::run(
        &["torch", "torchvision", "safetensors"],
        FORWARD,
        &json!({"arch": "resnet18", "load": tv, "det": det}),
    ) else {
        return;
    };
    let r18: mmrun::model::config::ResNetConfig = crate::support::typed_params(
        mmrun::registry::Category::Backbone,
        "resnet",
        json!({"depth": 18}),
    );
    let (got, report, _) = resnet_features(
        &r18,
        &ckpt.join("model.safetensors"),
        &LoadRule::exact(),
        &o["x"],
    );
    assert!(report.missing.is_empty(), "{report}");
    assert_features_match(&got, &o["outs"]);

    let keys: Vec<&str> = o["det_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"backbone.layer4.1.bn2.num_batches_tracked"),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("bbox_head."))
            && keys.iter().any(|k| k.starts_with("neck."))
    );
    assert_eq!(o["det_dtypes"], json!(["torch.float32", "torch.int64"]));
    let from = format!("runtime.load_from=\"{}\"", det.display());
    let wd2 = d.join("wd2");
    let (code, text) = mmrun(
        &[
            &[
                "exec",
                "pipelines/quickstart.recipe",
                "--work-dir",
                wd2.to_str().unwrap(),
            ][..],
            &width,
            &["--set", &from, "--dry-run"],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("loaded ") && !text.contains("missing"),
        "{text}"
    );
}

/// A `.pth` archive holding `pkl` as its pickle and `data` as storage `0`.
fn pth_with(dir: &std::path::Path, name: &str, pkl: &[u8], data: &[u8]) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pkl).unwrap();
    z.start_file("archive/data/0", opts).unwrap();
    z.write_all(data).unwrap();
    z.finish().unwrap();
    path
}

/// A pickle of `{"w": tensor}` over float storage `0`, with the size and stride tuples given
/// as pickled integers.
fn one_tensor_pickle(size: &[&[u8]], stride: &[&[u8]]) -> Vec<u8> {
    let mut p = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    p.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ");
    p.extend(b"K\x00(");
    for s in size {
        p.extend(*s);
    }
    p.extend(b"t(");
    for s in stride {
        p.extend(*s);
    }
    p.extend(b"ttRu.");
    p
}

/// The hostile inputs the [weights] review found, each refused with an error: no panic, no
/// stack overflow, bounded memory (this test runs on a 2 MiB test-thread stack).
#[test]
fn hostile_pickles_and_views_are_refused_with_bounded_memory_and_stack() {
    use mmrun::model::weights::pickle;
    // A length field of 2^64 - 1 (SHORT_BINUNICODE8).
    let mut p = b"\x80\x04\x8d".to_vec();
    p.extend(u64::MAX.to_le_bytes());
    assert!(pickle::load(&p).is_err());
    // A million nested lists (2 MB).
    let n = 1_000_000;
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    let e = pickle::load(&p).unwrap_err().to_string();
    assert!(e.contains("nested deeper"), "{e}");
    // A memo bomb: a list of two copies of the memoized list, memoized again, 64 times.
    let mut p = b"\x80\x02]q\x00".to_vec();
    for _ in 0..64 {
        p.extend(b"(h\x00h\x00lq\x00");
    }
    p.push(b'.');
    assert!(p.len() < 1000);
    let e = pickle::load(&p).unwrap_err().to_string();
    assert!(e.contains("memo bomb"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let storage = [0u8; 16]; // four floats
    let long = |v: u64| {
        let mut b = vec![0x8a, 8];
        b.extend(v.to_le_bytes());
        b
    };
    let cases = [
        // shape [2^32 + 1], stride [2^32]
        (
            "wide.pth",
            vec![long((1 << 32) + 1)],
            vec![long(1 << 32)],
            "over a storage of 4",
        ),
        // shape [2^62, 8]: the element count overflows
        (
            "overflow.pth",
            vec![long(1 << 62), b"K\x08".to_vec()],
            vec![b"K\x00".to_vec(), b"K\x00".to_vec()],
            "overflows",
        ),
        // shape [2^28], stride [0]: a gigabyte from 16 bytes
        (
            "stride0.pth",
            vec![long(1 << 28)],
            vec![b"K\x00".to_vec()],
            "over a storage of 4",
        ),
        // shape [4], stride [2^62]: past the end of the storage
        (
            "far.pth",
            vec![b"K\x04".to_vec()],
            vec![long(1 << 62)],
            "view reaches element",
        ),
    ];
    for (name, size, stride, why) in cases {
        let size: Vec<&[u8]> = size.iter().map(Vec::as_slice).collect();
        let stride: Vec<&[u8]> = stride.iter().map(Vec::as_slice).collect();
        let path = pth_with(
            dir.path(),
            name,
            &one_tensor_pickle(&size, &stride),
            &storage,
        );
        let e = load_pth(&path).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(why), "{name}: {e}");
    }
    // The same pickle with a sane view loads: the cases fail for their view, not their form.
    let ok = pth_with(
        dir.path(),
        "ok.pth",
        &one_tensor_pickle(&[b"K\x04"], &[b"K\x01"]),
        &storage,
    );
    assert_eq!(load_pth(&ok).unwrap()["w"].data, vec![0.0; 4]);
}
