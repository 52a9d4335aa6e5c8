//! Every shipped recipe checks clean, and the RetinaNet recipe carries mmdetection's numbers.

use mmrun::recipe::{self, CheckOptions};
use std::path::{Path, PathBuf};

fn recipes(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            recipes(&p, out);
        } else if p.extension().is_some_and(|e| e == "recipe") {
            out.push(p);
        }
    }
}

fn no_fs() -> CheckOptions {
    CheckOptions {
        no_fs: true,
        ..CheckOptions::default()
    }
}

#[test]
fn every_pipeline_checks_clean() {
    let mut all = Vec::new();
    recipes(Path::new("pipelines"), &mut all);
    assert!(all.len() >= 6);
    for p in all {
        if let Err(e) = recipe::load(&p, &[], &no_fs()) {
            panic!("{}:\n{}", p.display(), e.render());
        }
    }
}

#[test]
fn retinanet_has_mmdetection_numbers() {
    let r = recipe::load(
        Path::new("pipelines/retinanet_r50_fpn_1x_coco.recipe"),
        &[],
        &no_fs(),
    )
    .unwrap();
    let g = |p: &str| r.get(p).cloned().unwrap_or_else(|| panic!("{p}"));
    assert_eq!(g("optimizer.type"), "sgd");
    assert_eq!(g("optimizer.lr"), 0.01);
    assert_eq!(g("optimizer.momentum"), 0.9);
    assert_eq!(g("optimizer.weight_decay"), 0.0001);
    assert_eq!(g("schedule.lr.warmup.type"), "linear");
    assert_eq!(g("schedule.lr.warmup.duration"), "500 iters");
    assert_eq!(g("schedule.lr.warmup.ratio"), 0.001);
    assert_eq!(
        g("schedule.lr.main.at"),
        serde_json::json!(["8 epochs", "11 epochs"])
    );
    assert_eq!(g("run.epochs"), 12);
    assert_eq!(g("data.samples_per_gpu"), 2);
    assert_eq!(g("runtime.devices"), 8);
    assert_eq!(g("model.bbox_head.num_classes"), 80);
    assert_eq!(g("model.bbox_head.anchor_generator.octave_base_scale"), 4.0);
    assert_eq!(g("model.bbox_head.anchor_generator.scales_per_octave"), 3);
    assert_eq!(g("model.bbox_head.loss_cls.alpha"), 0.25);
    assert_eq!(g("model.train_cfg.assigner.neg_iou_thr"), 0.4);
    assert_eq!(g("model.test_cfg.nms.iou_threshold"), 0.5);
    assert_eq!(g("model.test_cfg.max_per_img"), 100);
    assert_eq!(g("runtime.work_dir"), "work_dirs/retinanet_r50_fpn_1x_coco");
    // The span table points at recipe text.
    let loc = r.spans.get("model.neck.in_channels").unwrap();
    let text = &r.files.get(loc.file).unwrap().text[loc.start..loc.end];
    assert_eq!(text, "[256, 512, 1024, 2048]");
    let d = r.diagnostic_at("model.neck.in_channels", "E0501", "shape mismatch", "here");
    assert!(r.render(&[d]).contains("shape mismatch"));
}

/// The schedule objects the registry emits (defaults filled in) are what the `sched`
/// module's config structs accept, for every policy and warmup in the registry.
#[test]
fn every_schedule_policy_builds_in_the_engine() {
    use mmrun::registry::{self, Category};
    use mmrun::schedule::{RunLength, Schedules};
    let run = RunLength::epochs(12, 100);
    for policy in registry::names(Category::Policy) {
        let main = match policy {
            "step" => "step { at = [8 epochs, 11 epochs] }".to_string(),
            "cosine" | "flat_cosine" => format!("{policy} {{ min_lr = 0.0 }}"),
            "cosine_restart" => {
                "cosine_restart { periods = [6 epochs, 6 epochs], min_lr = 0.0 }".to_string()
            }
            "exp" | "inv" => format!("{policy} {{ gamma = 0.9 }}"),
            "one_cycle" => "one_cycle { max_lr = 0.1 }".to_string(),
            "custom" => "custom { expr = \"base_lr * (1 - progress)\" }".to_string(),
            "cyclic" => "cyclic { target_ratio = [10, 0.0001] }".to_string(),
            other => other.to_string(),
        };
        for warmup in registry::names(Category::Warmup) {
            let text = format!(
                "schedule lr {{\n  warmup = {warmup} {{ duration = 100 iters, ratio = 0.1 }}\n  main = {main}\n}}\n"
            );
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("s.recipe");
            std::fs::write(&p, &text).unwrap();
            let r = recipe::load(&p, &[], &no_fs())
                .unwrap_or_else(|e| panic!("{text}\n{}", e.render()));
            let section = r.get("schedule").unwrap();
            if let Err(e) = Schedules::from_config(section, &run, "schedule") {
                panic!("{policy}/{warmup}: {e:?}\n{section:#}");
            }
        }
    }
}
