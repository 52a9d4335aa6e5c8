//! `init_cfg = pretrained(...)` end to end through `mmrun exec`: a torchvision ResNet-18
//! saved by PyTorch (`torch.save`, read by the restricted pickle reader) is loaded into the
//! backbone, and with every stage frozen its weights and BN statistics come out of a training
//! step exactly as PyTorch wrote them. A whole-detector checkpoint loads through `prefix`;
//! a file that does not fit, or matches nothing, is reported by `check` (from the file's
//! header) and stops `exec` before it starts. `load_from` follows the same rule, strict unless
//! the recipe says `strict = false`, with `skip` for a classifier of other classes.

use super::pyref::run_python;
use crate::bin::mmrun as run;

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
torch.save({**sd, "conv1.weight": torch.zeros(64, 3, 3, 3)}, out + "/r18_conv3.pth")
torch.save({"meta": {"epoch": 12}, "state_dict": {"backbone." + k: v for k, v in sd.items()}},
           out + "/detector.pth")
keys = ["conv1.weight", "layer4.1.bn2.running_var", "layer3.0.downsample.0.weight", "bn1.bias"]
print(json.dumps({k: sd[k].flatten().tolist() for k in keys}))
"#;

fn exec(wd: &std::path::Path, init: &str, extra: &[&str]) -> (i32, String) {
    let wd = ["--work-dir", wd.to_str().unwrap()];
    with_init(
        &[&["exec", "pipelines/quickstart.recipe"], &wd[..]].concat(),
        init,
        extra,
    )
}

/// `mmrun check` on the same recipe: no work dir, nothing run; one JSON line per diagnostic.
fn check(init: &str, extra: &[&str]) -> (i32, String) {
    let json = ["check", "pipelines/quickstart.recipe", "--format", "json"];
    with_init(&json, init, extra)
}

/// `mmrun CMD` on the quickstart at torchvision's width, with `init` as the backbone's init_cfg.
fn with_init(cmd: &[&str], init: &str, extra: &[&str]) -> (i32, String) {
    let init = format!("model.backbone.init_cfg={init}");
    let mut args = cmd.to_vec();
    args.extend([
        "--set",
        "model.backbone.base_channels=64",
        "--set",
        "model.neck.in_channels=[128, 256, 512]",
        "--set",
        &init,
    ]);
    args.extend(extra);
    run(&args)
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
        text.contains("init_cfg: ")
            && text.contains("r18.pth: loaded 100 tensors")
            && text.contains("unexpected keys in the file: fc.bias, fc.weight"),
        "{text}"
    );
    // The load report is in the run's log too.
    let log = std::fs::read_to_string(wd.join("log.txt")).unwrap();
    assert!(log.contains("r18.pth: loaded 100 tensors"), "{log}");
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
        text.contains("detector.pth: loaded 100 tensors")
            && text.contains("unexpected keys in the file: backbone.fc.bias, backbone.fc.weight"),
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
    // Another width: `check` finds every mismatched shape from the file's header, and `exec`
    // stops before any data is read, naming the parameter and both shapes.
    let narrow = [
        "--set",
        "model.backbone.base_channels=32",
        "--set",
        "model.neck.in_channels=[64, 128, 256]",
    ];
    let r18 = format!("pretrained(\"{d}/r18.pth\")");
    let (code, text) = check(&r18, &narrow);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("E0417")
            && text.contains("backbone.bn1.bias: file [64], model [32]")
            && text.contains("nothing in the file fits"),
        "{text}"
    );
    let (code, text) = exec(
        &dir.path().join("wd4"),
        &r18,
        &[&narrow[..], &["--dry-run"]].concat(),
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("E0417") && text.contains("nothing was run"),
        "{text}"
    );
    // Files that are not weights: `check` names the file and says why, from the header alone.
    let text_file = dir.path().join("notes.pth");
    std::fs::write(&text_file, "these are not weights\n").unwrap();
    let r18_bytes = std::fs::read(dir.path().join("r18.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &r18_bytes[..r18_bytes.len() / 2]).unwrap();
    for (file, why) in [
        (&text_file, "not a PyTorch zip checkpoint"),
        (&cut, "not a PyTorch zip checkpoint"),
    ] {
        let (code, text) = check(&format!("pretrained(\"{}\")", file.display()), &[]);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("E0417") && text.contains(file.to_str().unwrap()) && text.contains(why),
            "{text}"
        );
    }
    // One tensor of another shape: refused as written; `strict = false` is mmcv's
    // Pretrained: what does not fit is reported and left as initialised.
    let (code, text) = check(&format!("pretrained(\"{d}/r18_conv3.pth\")"), &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("set `strict = false`"), "{text}");
    let lax = format!("pretrained {{ checkpoint = \"{d}/r18_conv3.pth\", strict = false }}");
    let (code, text) = exec(&dir.path().join("wd4b"), &lax, &["--dry-run"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("shape mismatch, not loaded: backbone.conv1.weight"),
        "{text}"
    );

    // `load_from` reads the same files for the whole model, strict unless told: the detector
    // checkpoint holds only a backbone, so `check` and `exec` refuse it and name what lacks;
    // with `strict = false` it fills the backbone and reports the rest missing. torchvision's
    // names match no parameter of a detector: refused, with where backbone weights go.
    let from = |f: &str| format!("runtime.load_from={f}");
    let (code, text) = check("none", &["--set", &from(&format!("\"{d}/detector.pth\""))]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("the file lacks 33 of the model's parameters: bbox_head."),
        "{text}"
    );
    let lax = format!("pretrained {{ checkpoint = \"{d}/detector.pth\", strict = false }}");
    let (code, text) = exec(
        &dir.path().join("wd5"),
        "none",
        &["--set", &from(&lax), "--dry-run"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("loaded 100 tensors") && text.contains("missing keys in the file"),
        "{text}"
    );
    let (code, text) = exec(
        &dir.path().join("wd6"),
        "none",
        &["--set", &from(&format!("\"{d}/r18.pth\"")), "--dry-run"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("no tensor of the file") && text.contains("init_cfg"),
        "{text}"
    );
}

/// `pipelines/finetune.recipe` from a quickstart checkpoint (6 classes) to 3 classes: `skip`
/// leaves the classifier as initialised and everything else loads strictly; without the skip,
/// `check` names the classifier and both shapes from the checkpoint's header.
#[test]
fn the_finetune_recipe_skips_the_classifier_and_check_sees_why_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let wd = dir.path().join("wd");
    let (code, text) = run(&[
        "exec",
        "pipelines/quickstart.recipe",
        "--work-dir",
        wd.to_str().unwrap(),
        "--set",
        "hooks.checkpoint.every=1 iter",
        "--max-iters",
        "1",
    ]);
    assert_eq!(code, 0, "{text}");
    let from = format!(
        "runtime.load_from.checkpoint=\"{}\"",
        wd.join("checkpoints/iter_1").display()
    );
    let finetune = ["pipelines/finetune.recipe", "--set", &from];
    let (code, text) = run(&[&["check"][..], &finetune].concat());
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(&[
        &["check"][..],
        &finetune,
        &["--set", "runtime.load_from.skip=[]", "--format", "json"],
    ]
    .concat());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("E0417")
            && text.contains("bbox_head.conv_cls.bias: file [6], model [3]")
            && text.contains("list them in `skip`"),
        "{text}"
    );
    let wd2 = dir.path().join("wd2");
    let (code, text) = run(&[
        &["exec"][..],
        &finetune,
        &["--work-dir", wd2.to_str().unwrap(), "--dry-run"],
    ]
    .concat());
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("skipped as asked: bbox_head.conv_cls.bias, bbox_head.conv_cls.weight")
            && !text.contains("missing")
            && !text.contains("unexpected"),
        "{text}"
    );
}
