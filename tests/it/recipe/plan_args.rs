//! `mmrun plan`'s numbers are checked, from the command line and from the recipe: a batch of
//! 0 or 10^11 images, a side of 0 or 10^5 pixels are errors naming the argument or key (a
//! huge batch used to overflow the memory plan and panic).

fn plan(args: &[&str]) -> (i32, String) {
    crate::bin::mmrun(&[&["plan", "pipelines/quickstart.recipe"][..], args].concat())
}

#[test]
fn batch_and_size_arguments_are_checked() {
    for (args, needles) in [
        (&["--batch", "0"][..], &["--batch", "'0'"][..]),
        (&["--batch", "100000000000"], &["--batch", "1024"]),
        (&["--size", "100000x100000"], &["--size", "16384"]),
        (&["--size", "0x64"], &["--size", "'0x64'"]),
        (&["--size", "64"], &["--size", "HxW"]),
    ] {
        let (code, text) = plan(args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        for n in needles {
            assert!(text.contains(n), "{args:?}: `{n}` not in {text}");
        }
    }
    let (code, text) = plan(&["--batch", "3", "--size", "64x96"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("batch: 3 x 3 x 64 x 96"), "{text}");
}

#[test]
fn the_recipes_own_batch_size_is_checked() {
    let (code, text) = plan(&["--set", "data.samples_per_gpu=100000000000"]);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        text.contains("data.samples_per_gpu") && text.contains("100000000000"),
        "{text}"
    );
}

/// `--format json`: one object per recipe with the figures the text prints.
#[test]
fn plan_reports_as_json() {
    let (code, text) = plan(&["--batch", "2", "--size", "128x96"]);
    assert_eq!(code, 0, "{text}");
    let (code, out) = plan(&["--batch", "2", "--size", "128x96", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["recipe"], "pipelines/quickstart.recipe");
    assert_eq!(v["detector"], "fcos");
    assert_eq!(
        (v["batch"].as_u64(), &v["input_hw"]),
        (Some(2), &serde_json::json!([128, 96]))
    );
    let params = v["params"].as_u64().unwrap();
    assert!(
        text.contains(&mmrun::plan::thousands(params as usize)),
        "{params} not in\n{text}"
    );
    let parts: u64 = (v["parts"].as_array().unwrap().iter())
        .map(|p| p["params"].as_u64().unwrap())
        .sum();
    assert_eq!(parts, params);
    assert!(v["train"]["peak_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["train"]["nodes"].as_u64().unwrap() > 100, "{v}");
}

/// FLOPs as mmdetection's `get_flops` counts them: its documentation's example, RetinaNet
/// R-50-FPN at input (3, 1280, 800), reports "Flops: 239.32 GFLOPs, Params: 37.74 M"
/// (docs/en/useful_tools.md, mmdetection 2.x; mmcv's counter, a multiply-add counted once,
/// trainable parameters).
#[test]
fn plan_flops_match_mmdetection_get_flops() {
    let (code, out) = crate::bin::mmrun(&[
        "plan",
        "pipelines/retinanet_r50_fpn_1x_coco.recipe",
        "--batch",
        "1",
        "--size",
        "1280x800",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let gflops = v["flops_per_image"].as_f64().unwrap() / 1e9;
    assert!(
        (gflops / 239.32 - 1.0).abs() < 0.01,
        "{gflops:.2} GFLOPs, mmdetection's get_flops: 239.32"
    );
    let params_m = v["trainable"].as_f64().unwrap() / 1e6;
    assert!(
        (params_m - 37.74).abs() < 0.005,
        "{params_m:.2} M parameters"
    );
    // Per image: the same at batch 2.
    let (_, out2) = crate::bin::mmrun(&[
        "plan",
        "pipelines/retinanet_r50_fpn_1x_coco.recipe",
        "--batch",
        "2",
        "--size",
        "1280x800",
        "--format",
        "json",
    ]);
    let v2: serde_json::Value = serde_json::from_str(out2.trim()).unwrap();
    assert_eq!(v2["flops_per_image"], v["flops_per_image"]);
}
