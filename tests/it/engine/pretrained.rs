//! `init_cfg = pretrained(...)` end to end through `mmrun exec`: a torchvision ResNet-18
//! saved by PyTorch (`torch.save`, read by the restricted pickle reader) is loaded into the
//! backbone, and with every stage frozen its weights and BN statistics come out of a training
//! step exactly as PyTorch wrote them. A whole-detector checkpoint loads through `prefix`;
//! a file that does not fit, or matches nothing, stops the run before it starts.

use super::pyref::run_python;
use std::process::Command;

const MAKE: &str = r#"
import json, sys, torch, torchvision
out = json.load(open(sys.argv[1]))["dir"]
torch.manual_seed(0)
m = torchvision.models.resnet18()
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 2.0)
        mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.1, 0.1)
sd = m.state_dict()
torch.save(sd, out + "/r18.pth")
torch.save({"meta": {"epoch": 12}, "state_dict": {"backbone." + k: v for k, v in sd.items()}},
           out + "/detector.pth")
keys = ["conv1.weight", "layer4.1.bn2.running_var", "layer3.0.downsample.0.weight", "bn1.bias"]
print(json.dumps({k: sd[k].flatten().tolist() for k in keys}))
"#;

fn exec(wd: &std::path::Path, init: &str, extra: &[&str]) -> (i32, String) {
    let init = format!("model.backbone.init_cfg={init}");
    let mut args = vec![
        "exec",
        "pipelines/quickstart.recipe",
        "--work-dir",
        wd.to_str().unwrap(),
        "--set",
        "model.backbone.base_channels=64",
        "--set",
        "model.neck.in_channels=[128, 256, 512]",
        "--set",
        &init,
    ];
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(&args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_torchvision_backbone_loads_through_the_recipe_and_frozen_stages_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let Some(reference) = run_python(MAKE, &serde_json::json!({ "dir": d })) else {
        return;
    };
    let wd = dir.path().join("wd");
    let (code, text) = exec(
        &wd,
        &format!("pretrained(\"{d}/r18.pth\")"),
        &[
            "--set",
            "model.backbone.frozen_stages=4",
            "--set",
            "model.backbone.norm_eval=true",
            "--set",
            "hooks.checkpoint.every=1 iter",
            "--max-iters",
            "1",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("init_cfg: loaded 100 backbone tensors")
            && text.contains("unexpected in the file: fc.bias, fc.weight"),
        "{text}"
    );
    let ck = mmrun::engine::checkpoint::load_checkpoint(&wd.join("checkpoints/iter_1")).unwrap();
    for (key, want) in reference.as_object().unwrap() {
        let got = &ck.weights[&format!("backbone.{key}")].data;
        let want: Vec<f32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert!(
            got == &want,
            "{key} differs from PyTorch's after a frozen step"
        );
    }

    // A detector checkpoint (`state_dict` + `meta`): the backbone subtree through `prefix`.
    let (code, text) = exec(
        &dir.path().join("wd2"),
        &format!("pretrained {{ checkpoint = \"{d}/detector.pth\", prefix = \"backbone\" }}"),
        &["--dry-run"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("init_cfg: loaded 100 backbone tensors"),
        "{text}"
    );
    assert!(
        text.contains("unexpected in the file: fc.bias, fc.weight"),
        "{text}"
    );
    // Without the prefix nothing matches: an error that says what to write.
    let (code, text) = exec(
        &dir.path().join("wd3"),
        &format!("pretrained(\"{d}/detector.pth\")"),
        &["--dry-run"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("prefix = \"backbone.\""), "{text}");
    // Another width: every mismatched shape stops the run, naming the parameter.
    let (code, text) = exec(
        &dir.path().join("wd4"),
        &format!("pretrained(\"{d}/r18.pth\")"),
        &[
            "--set",
            "model.backbone.base_channels=32",
            "--set",
            "model.neck.in_channels=[64, 128, 256]",
            "--dry-run",
        ],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("does not fit this backbone") && text.contains("backbone.conv1.weight"),
        "{text}"
    );

    // `load_from` reads the same files for the whole model (mmcv's `strict=False`): the
    // detector checkpoint fills the backbone and reports the rest missing; torchvision's
    // names match no parameter of a detector, which stops the run instead of training on.
    let (code, text) = exec(
        &dir.path().join("wd5"),
        "none",
        &[
            "--set",
            &format!("runtime.load_from=\"{d}/detector.pth\""),
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("loaded 100 tensors") && text.contains("missing keys"),
        "{text}"
    );
    let (code, text) = exec(
        &dir.path().join("wd6"),
        "none",
        &[
            "--set",
            &format!("runtime.load_from=\"{d}/r18.pth\""),
            "--dry-run",
        ],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("no tensor of") && text.contains("init_cfg"),
        "{text}"
    );
}
