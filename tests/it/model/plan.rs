//! `mmrun plan` on the canonical RetinaNet recipe: mmdetection's exact parameter count and a
//! planned step memory at batch 2 × 800×1333 (padded to 800×1344).

use std::process::Command;

#[test]
fn plan_prints_retinanet_parameter_count_and_step_memory() {
    let recipe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/retinanet_r50_fpn_1x_coco.recipe"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(["plan", recipe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("batch: 2 x 3 x 800 x 1344"), "{text}");
    assert!(
        text.contains("parameters: 37,968,692 (37,743,348 trainable)"),
        "{text}"
    );
    assert!(text.contains("backbone     23,508,032"), "{text}");
    assert!(text.contains("neck          7,997,440"), "{text}");
    assert!(text.contains("bbox_head     6,463,220"), "{text}");
    assert!(
        text.contains("levels: 100x168 50x84 25x42 13x21 7x11"),
        "{text}"
    );
    assert!(text.contains("priors per image: 201,600"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("train step memory:"))
        .expect("memory line");
    // The step keeps at least the batch's activations of C2 (256 × 200 × 336 × 2 images, f32).
    let mib: f64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(
        mib > 2.0 * 256.0 * 200.0 * 336.0 * 4.0 / 1048576.0,
        "{line}"
    );
}

#[test]
fn plan_reports_a_bad_neck_on_its_config_path() {
    let recipe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/retinanet_r50_fpn_1x_coco.recipe"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args([
            "plan",
            recipe,
            "--set",
            "model.neck.in_channels = [256, 512, 1024, 1024]",
            "--batch",
            "1",
            "--size",
            "256x256",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.neck.in_channels") && err.contains("[256, 512, 1024, 2048]"),
        "{err}"
    );
}

#[test]
fn plan_of_fcos_counts_parameters_and_builds_its_iou_loss_train_step() {
    let recipe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/fcos_r50_fpn_gn-head_1x_coco.recipe"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(["plan", recipe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // ResNet-50 trunk as RetinaNet's; FPN with P6/P7 on the P5 output (256 in, not 2048).
    assert!(text.contains("backbone     23,508,032"), "{text}");
    assert!(text.contains("neck          3,868,672"), "{text}");
    // mmdetection's default IoULoss (-ln IoU) builds on the ln op.
    assert!(!text.contains("not built"), "{text}");
    assert!(text.contains("train step memory:"), "{text}");
    assert!(text.contains("eval forward memory:"), "{text}");
}

/// The planned shape follows the recipe's own pipeline: the quickstart's `scale = [160, 160]`
/// (ratio_range tops at 1.0, padded to 32), and a multi-scale list with a ratio range takes
/// its largest sides times the top ratio.
#[test]
fn plan_uses_the_recipe_resize_scale_and_pad() {
    let plan = |sets: &[&str]| {
        let mut args = vec!["plan", "pipelines/quickstart.recipe"];
        for s in sets {
            args.extend(["--set", s]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = plan(&[]);
    assert!(text.contains("batch: 8 x 3 x 160 x 160"), "{text}");
    let text = plan(&["data.train.pipeline=[load_image, load_annotations, \
         resize { scale = [[300, 100], [250, 200]], ratio_range = [0.5, 1.5], keep_ratio = true }, \
         pad { size_divisor = 32 }]"]);
    // long 300 x 1.5 = 450 → 480, short 200 x 1.5 = 300 → 320.
    assert!(text.contains("batch: 8 x 3 x 320 x 480"), "{text}");
    let text = plan(&["data.train.pipeline=[load_image, load_annotations, \
         resize { scale = [300, 200], keep_ratio = true }, pad { size = [256, 384] }]"]);
    assert!(text.contains("batch: 8 x 3 x 256 x 384"), "{text}");
}
