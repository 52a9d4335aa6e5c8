//! The quickstart end to end through the real CLI, shortened: a small generated shapes set,
//! a few epochs of the quickstart's detector at a small input size. The loss must fall, every
//! epoch must produce COCO metrics in [0, 1], val bbox_mAP_50 must rise above a floor, and a
//! run stopped half-way and resumed must end with the same weights as a straight run.

use mmrun::data::synth::{SynthOptions, generate};
use std::path::Path;
use std::process::Command;

pub(crate) use crate::bin::mmrun;

/// The quickstart's pipeline at 64 px (the test's images are 96 px).
const SMALL: &str = "[load_image, load_annotations, resize { scale = [64, 64], keep_ratio = true }, \
    random_flip { prob = 0.5 }, \
    normalize { mean = [127.5, 127.5, 127.5], std = [64.0, 64.0, 64.0], to_rgb = true }, \
    pad { size_divisor = 32 }]";

/// `--set` overrides that point the quickstart at `root` and shorten it.
pub(crate) fn overrides(root: &Path, epochs: u32) -> Vec<String> {
    let r = root.display();
    vec![
        format!("data.train.pipeline={SMALL}"),
        format!(
            "data.val.pipeline={}",
            SMALL.replace("random_flip { prob = 0.5 }, ", "")
        ),
        format!("data.train.ann_file=\"{r}/annotations/instances_train.json\""),
        format!("data.train.img_prefix=\"{r}/train/\""),
        format!("data.val.ann_file=\"{r}/annotations/instances_val.json\""),
        format!("data.val.img_prefix=\"{r}/val/\""),
        "data.samples_per_gpu=4".into(),
        format!("run.epochs={epochs}"),
        "hooks.log.every=1 iters".into(),
        "schedule.lr.warmup.duration=4 iters".into(),
        "hooks.checkpoint.max_keep_ckpts=-1".into(),
        "schedule.lr.main.at=[9 epochs]".into(),
    ]
}

/// [`overrides`] with the learning rate stepped after `step_at` epochs.
pub(crate) fn overrides_stepped(root: &Path, epochs: u32, step_at: u32) -> Vec<String> {
    let mut sets = overrides(root, epochs);
    sets.retain(|s| !s.starts_with("schedule.lr.main.at"));
    sets.push(format!("schedule.lr.main.at=[{step_at} epochs]"));
    sets
}

/// `mmrun test` of the quickstart with `ckpt`, results under `work`, `extra` arguments and
/// `sets`.
pub(crate) fn test_quickstart(
    ckpt: &Path,
    work: &Path,
    extra: &[&str],
    sets: &[String],
) -> (i32, String) {
    let (ckpt, work) = (ckpt.display().to_string(), work.display().to_string());
    let args = ["test", "pipelines/quickstart.recipe", "--checkpoint", &ckpt];
    run_with_sets(&[&args[..], &["--work-dir", &work], extra].concat(), sets)
}

/// `--set` overrides that shorten a quickstart variant (the RPN, the two-stage) on `root`'s
/// shapes set: 64 px, 4 images per batch, 2 epochs, the learning rate stepped after the first.
pub(crate) fn small_variant_sets(root: &Path) -> Vec<String> {
    let r = root.display();
    let small = SMALL.replace("random_flip { prob = 0.5 }, ", "");
    vec![
        format!("data.train.pipeline={small}"),
        format!("data.val.pipeline={small}"),
        format!("data.train.ann_file=\"{r}/annotations/instances_train.json\""),
        format!("data.train.img_prefix=\"{r}/train/\""),
        format!("data.val.ann_file=\"{r}/annotations/instances_val.json\""),
        format!("data.val.img_prefix=\"{r}/val/\""),
        "data.samples_per_gpu=4".into(),
        "run.epochs=2".into(),
        "hooks.log.every=1 iters".into(),
        "schedule.lr.warmup.duration=2 iters".into(),
        "schedule.lr.main.at=[1 epochs]".into(),
    ]
}

/// `mmrun eval <what…> --gt GT --dt DT --format json`, which must succeed: its JSON report.
pub(super) fn eval_json(what: &[&str], gt: &Path, dt: &Path) -> serde_json::Value {
    let mut args = vec!["eval"];
    args.extend_from_slice(what);
    args.extend(["--gt", gt.to_str().unwrap(), "--dt", dt.to_str().unwrap()]);
    args.extend(["--format", "json"]);
    let (code, out) = mmrun(&args);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `mmrun` with `args`, then `--set` for each of `sets`.
pub(crate) fn run_with_sets(args: &[&str], sets: &[String]) -> (i32, String) {
    let mut a: Vec<&str> = args.to_vec();
    for s in sets {
        a.extend(["--set", s.as_str()]);
    }
    mmrun(&a)
}

pub(crate) fn exec(work: &Path, sets: &[String], extra: &[&str]) -> (i32, String) {
    let mut args: Vec<&str> = vec![
        "exec",
        "pipelines/quickstart.recipe",
        "--work-dir",
        work.to_str().unwrap(),
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    args.extend_from_slice(extra);
    mmrun(&args)
}

/// The largest `|a - b| / max(1, |a|)` over every weight of two checkpoints, and how many
/// tensors differ at all.
pub(crate) fn deviation(a: &Path, b: &Path) -> (f64, usize) {
    let load = |p: &Path| mmrun::engine::checkpoint::load_checkpoint(p).unwrap();
    let (a, b) = (load(a), load(b));
    assert_eq!(a.weights.len(), b.weights.len());
    let mut worst = 0f64;
    let mut differ = 0;
    for (name, ta) in &a.weights {
        let tb = &b.weights[name];
        if ta.data != tb.data {
            differ += 1;
        }
        for (&x, &y) in ta.data.iter().zip(&tb.data) {
            worst = worst.max((x as f64 - y as f64).abs() / (x as f64).abs().max(1.0));
        }
    }
    (worst, differ)
}

pub(crate) fn log_records(work: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(work.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `val` lines of `log.jsonl`.
fn val_records(work: &Path) -> Vec<serde_json::Value> {
    let mut recs = log_records(work);
    recs.retain(|r| r["mode"] == "val");
    recs
}

pub(crate) fn dataset(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("shapes");
    let opts = SynthOptions {
        images: 20,
        seed: 3,
        size: Some((96, 96)),
        val_fraction: 0.2,
        ..Default::default()
    };
    generate(&root, &opts).unwrap();
    root
}

#[test]
fn quickstart_trains_evaluates_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = overrides(&root, 10);

    // Straight run.
    let a = dir.path().join("a");
    let (code, text) = exec(&a, &sets, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("final metrics: bbox_mAP"), "{text}");
    let recs = log_records(&a);
    let losses: Vec<f64> = recs
        .iter()
        .filter(|r| r["mode"] == "train")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 40, "4 iterations × 10 epochs");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&losses[..4]), mean(&losses[losses.len() - 4..]));
    assert!(
        losses.iter().all(|l| l.is_finite()) && last < 0.85 * first,
        "the loss must fall: first epoch {first:.4}, last epoch {last:.4}\n{losses:?}"
    );
    let evals: Vec<&serde_json::Value> = recs.iter().filter(|r| r["mode"] == "val").collect();
    assert_eq!(evals.len(), 10, "one evaluation per epoch");
    for e in &evals {
        for k in ["bbox_mAP", "bbox_mAP_50", "bbox_mAP_75"] {
            let v = e[k].as_f64().unwrap_or(f64::NAN);
            assert!((0.0..=1.0).contains(&v), "{k} = {v} in {e}");
        }
    }
    // The detector must learn, not just run: val bbox_mAP_50 rises from near 0 in epoch 1 to
    // about 0.17–0.23 in the last epochs of this run (16 training images, 40 iterations); the
    // floor leaves room for numerically different but correct kernels.
    let map50: Vec<f64> = evals
        .iter()
        .map(|e| e["bbox_mAP_50"].as_f64().unwrap())
        .collect();
    let late = map50[map50.len() - 3..].iter().copied().fold(0.0, f64::max);
    assert!(
        late >= 0.08 && late > map50[0],
        "val bbox_mAP_50 must rise above 0.08 in the last 3 epochs: {map50:?}"
    );

    // Checkpoints every 3 iterations, stopped after 10 (so the resume point, iteration 9, is
    // in the middle of epoch 3), resumed: the same final weights as the straight run.
    let b = dir.path().join("b");
    let mut sets_b = sets.clone();
    sets_b.push("hooks.checkpoint.every=3 iters".into());
    let (code, text) = exec(&b, &sets_b, &["--max-iters", "10"]);
    assert_eq!(code, 0, "{text}");
    assert!(b.join("checkpoints/iter_9").is_dir(), "{text}");
    let (code, text) = exec(&b, &sets_b, &["--resume", "auto"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        deviation(
            &a.join("checkpoints/epoch_10"),
            &b.join("checkpoints/iter_40")
        ),
        (0.0, 0),
        "resumed weights differ from the straight run's"
    );
}

/// `hooks.eval.metric = voc_map`: the run evaluates VOC mAP over the val records (and may keep
/// the best by it), and its numbers equal `mmrun eval voc` on the results file it wrote
/// against the val annotation file.
#[test]
fn voc_map_evaluation_agrees_with_eval_voc_on_the_written_results() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let mut sets = overrides_stepped(&root, 3, 2);
    sets.push("hooks.eval.metric=\"voc_map\"".into());
    sets.push("hooks.checkpoint.save_best=\"AP50\"".into());
    let work = dir.path().join("w");
    let (code, text) = exec(&work, &sets, &[]);
    assert_eq!(code, 0, "{text}");
    let evals = val_records(&work);
    assert_eq!(evals.len(), 3, "{evals:?}");
    let last = &evals[2];
    assert!(last.get("bbox_mAP").is_none(), "{last}");
    for e in &evals {
        let v = e["AP50"].as_f64().unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&v), "{e}");
    }
    // The best checkpoint by AP50 is kept; `mmrun test` on it writes its results.
    let best: Vec<_> = std::fs::read_dir(work.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("best_AP50_"))
        .collect();
    assert_eq!(best.len(), 1, "{best:?}");
    let ckpt = work.join("checkpoints").join(&best[0]);
    let (code, out) = test_quickstart(&ckpt, &work, &[], &sets);
    assert_eq!(code, 0, "{out}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("results/metrics.json")).unwrap()).unwrap();
    let ap50 = metrics["AP50"].as_f64().unwrap();
    // `--format json`: the same metrics as one object.
    let (code, out) = test_quickstart(&ckpt, &work, &["--format", "json"], &sets);
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{out}"));
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(report["metrics"]["AP50"].as_f64(), Some(ap50), "{report}");
    assert_eq!(report["weights"], "weights");
    assert!(
        evals.iter().any(|e| e["AP50"].as_f64() == Some(ap50)),
        "the best checkpoint's AP50 {ap50} is one of the logged {evals:?}"
    );
    let newest = work.join("results/bbox.json");
    let gt = root.join("annotations/instances_val.json");
    let v = eval_json(&["voc"], &gt, &newest);
    eprintln!(
        "val AP50 per epoch: {:?}; best checkpoint {ap50}; eval voc {v}",
        evals.iter().map(|e| &e["AP50"]).collect::<Vec<_>>()
    );
    assert_eq!(
        v["AP50"].as_f64().unwrap(),
        ap50,
        "mmrun test {metrics} vs eval voc {v}"
    );
}

/// The shapes set written in VOC layout (one XML per image, the images under `JPEGImages/`,
/// image-set lists under `ImageSets/Main/`), with its own class names.
fn as_voc(root: &Path) -> std::path::PathBuf {
    let voc = root.join("voc");
    for d in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(voc.join(d)).unwrap();
    }
    for split in ["train", "val"] {
        let ann = root.join(format!("annotations/instances_{split}.json"));
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ann).unwrap()).unwrap();
        let name_of = |cat: &serde_json::Value| {
            doc["categories"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == *cat)
                .unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let mut ids = String::new();
        for img in doc["images"].as_array().unwrap() {
            let file = img["file_name"].as_str().unwrap();
            let id = file.trim_end_matches(".png");
            std::fs::copy(
                root.join(split).join(file),
                voc.join("JPEGImages").join(file),
            )
            .unwrap();
            let mut objects = String::new();
            for a in doc["annotations"].as_array().unwrap() {
                if a["image_id"] != img["id"] {
                    continue;
                }
                let b: Vec<f64> = a["bbox"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                // VOC corners are 1-based and inclusive.
                let (x1, y1) = (b[0].floor() + 1.0, b[1].floor() + 1.0);
                let (x2, y2) = ((b[0] + b[2]).floor() + 1.0, (b[1] + b[3]).floor() + 1.0);
                objects.push_str(&format!(
                    "<object><name>{}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>",
                    name_of(&a["category_id"])
                ));
            }
            std::fs::write(
                voc.join(format!("Annotations/{id}.xml")),
                format!(
                    "<annotation><filename>{file}</filename><size><width>{}</width><height>{}</height><depth>3</depth></size>{objects}</annotation>",
                    img["width"], img["height"]
                ),
            )
            .unwrap();
            ids.push_str(&format!("{id}\n"));
        }
        std::fs::write(voc.join(format!("ImageSets/Main/{split}.txt")), ids).unwrap();
    }
    voc
}

/// A dataset in VOC layout with the recipe's own classes trains and evaluates through `exec`
/// (mmdetection's `VOCDataset(classes=...)`).
#[test]
fn a_voc_layout_dataset_with_its_own_classes_trains() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let voc = as_voc(&root);
    let v = voc.display();
    let mut sets = overrides(&root, 2);
    sets.retain(|s| !s.starts_with("data.") && !s.starts_with("schedule.lr.main.at"));
    let classes = r#"["circle", "square", "triangle", "ellipse", "star", "hexagon"]"#;
    let small = SMALL.replace("random_flip { prob = 0.5 }, ", "");
    for split in ["train", "val"] {
        sets.push(format!(
            "data.{split}=voc_dataset {{ ann_file = \"{v}/ImageSets/Main/{split}.txt\", img_prefix = \"{v}/\", classes = {classes}, pipeline = {small}{} }}",
            if split == "val" { ", test_mode = true" } else { "" }
        ));
    }
    sets.push("data.samples_per_gpu=4".into());
    sets.push("schedule.lr.main.at=[1 epochs]".into());
    sets.push("hooks.eval.metric=\"voc_map\"".into());
    sets.push("hooks.checkpoint.save_best=\"mAP\"".into());
    let work = dir.path().join("w");
    let (code, text) = exec(&work, &sets, &[]);
    assert_eq!(code, 0, "{text}");
    let evals = val_records(&work);
    assert_eq!(evals.len(), 2, "{text}");
    assert!(
        (0.0..=1.0).contains(&evals[1]["AP50"].as_f64().unwrap()),
        "{:?}",
        evals[1]
    );
}

#[test]
fn exec_format_json_puts_only_json_lines_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("work");
    let mut args: Vec<String> = ["exec", "pipelines/quickstart.recipe", "--format", "json"]
        .map(String::from)
        .into();
    args.extend(["--work-dir".into(), work.display().to_string()]);
    // One epoch (4 steps) and its evaluation.
    for s in overrides(&root, 10) {
        args.extend(["--set".into(), s]);
    }
    args.extend(["--max-iters".into(), "4".into()]);
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let modes: Vec<&str> = lines.iter().map(|v| v["mode"].as_str().unwrap()).collect();
    assert_eq!(
        modes,
        ["train", "train", "train", "train", "val", "summary"]
    );
    // The records are log.jsonl's; the people's lines went to stderr.
    assert_eq!(lines[..5], log_records(&work)[..]);
    assert!(stderr.contains("Epoch [1][4/4]"), "{stderr}");
    let summary = &lines[5];
    assert_eq!(summary["iters"], 4);
    assert!(summary["final_metrics"]["bbox_mAP"].is_f64(), "{summary}");
    assert!(
        summary["last_checkpoint"]
            .as_str()
            .unwrap()
            .ends_with("epoch_1")
    );
}
