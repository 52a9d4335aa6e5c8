//! Drawn boxes where a user meets them, through the binary: `mmrun data browse` (the training
//! images after the pipeline, boxes at their transformed places), `mmrun test --show-dir`
//! (ground truth beside predictions, metrics unchanged) and the pictures a run's TensorBoard
//! log holds after each evaluation.

use super::detector::{dataset, exec, mmrun, small_variant_sets};
use mmrun::engine::hooks::tensorboard::{decode_images, decode_records};
use mmrun::viz::class_colour;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The quickstart's classes, in its label order.
const CLASSES: [&str; 6] = ["circle", "square", "triangle", "ellipse", "star", "hexagon"];

fn decode_png(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("not a PNG: {e}"))
        .to_rgb8()
}

fn pngs_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    v.sort();
    v
}

/// `(label, [x1, y1, x2, y2])` of each non-crowd box of each image, by file stem.
fn gt_by_stem(ann: &Path) -> HashMap<String, Vec<(usize, [f64; 4])>> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(ann).unwrap()).unwrap();
    let label: HashMap<u64, usize> = (v["categories"].as_array().unwrap().iter())
        .map(|c| {
            let name = c["name"].as_str().unwrap();
            let l = CLASSES.iter().position(|n| *n == name).unwrap();
            (c["id"].as_u64().unwrap(), l)
        })
        .collect();
    let stem_of: HashMap<u64, String> = (v["images"].as_array().unwrap().iter())
        .map(|i| {
            let f = Path::new(i["file_name"].as_str().unwrap());
            let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
            (i["id"].as_u64().unwrap(), stem)
        })
        .collect();
    let mut out: HashMap<String, Vec<(usize, [f64; 4])>> = HashMap::new();
    for a in v["annotations"].as_array().unwrap() {
        if a["iscrowd"].as_u64() == Some(1) {
            continue;
        }
        let b: Vec<f64> = (a["bbox"].as_array().unwrap().iter())
            .map(|x| x.as_f64().unwrap())
            .collect();
        out.entry(stem_of[&a["image_id"].as_u64().unwrap()].clone())
            .or_default()
            .push((
                label[&a["category_id"].as_u64().unwrap()],
                [b[0], b[1], b[0] + b[2], b[1] + b[3]],
            ));
    }
    out
}

fn train_sets(root: &Path, pipeline: &str) -> Vec<String> {
    let r = root.display();
    vec![
        format!("data.train.ann_file=\"{r}/annotations/instances_train.json\""),
        format!("data.train.img_prefix=\"{r}/train/\""),
        format!("data.val.ann_file=\"{r}/annotations/instances_val.json\""),
        format!("data.val.img_prefix=\"{r}/val/\""),
        format!("data.train.pipeline={pipeline}"),
    ]
}

fn with_sets(mut args: Vec<String>, sets: &[String]) -> Vec<String> {
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    args
}

fn run(args: &[String]) -> (i32, String) {
    mmrun(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The shapes set's 96 px images resized to 128 px (a scale of 4/3), normalized caffe-style
/// (BGR order): browse must put each ground-truth box, in its class colour, where the resize
/// moved it, and undo the normalization (the picture's mean colour is the source image's).
#[test]
fn browse_draws_training_images_after_the_pipeline_with_their_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let pipeline = "[load_image, load_annotations, resize { scale = [128, 128], keep_ratio = true }, \
        normalize { mean = [103.5, 116.3, 123.7], std = [57.4, 57.1, 58.4], to_rgb = false }, \
        pad { size_divisor = 32 }]";
    let out = dir.path().join("browse");
    let args: Vec<String> = ["data", "browse", "pipelines/quickstart.recipe", "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string(), "--count".into(), "3".into()])
        .collect();
    let (code, text) = run(&with_sets(args, &train_sets(&root, pipeline)));
    assert_eq!(code, 0, "{text}");
    let files = pngs_in(&out);
    assert_eq!(files.len(), 3, "{files:?}\n{text}");

    let gt = gt_by_stem(&root.join("annotations/instances_train.json"));
    let scale = 128.0 / 96.0;
    let (mut hits, mut samples) = (0, 0);
    for f in &files {
        let pic = decode_png(&std::fs::read(f).unwrap());
        assert_eq!(pic.dimensions(), (128, 128), "{}", f.display());
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        let source = image::open(root.join("train").join(format!("{stem}.png")))
            .unwrap()
            .to_rgb8();
        let mean = |im: &image::RgbImage, c: usize| {
            im.pixels().map(|p| p[c] as f64).sum::<f64>() / (im.width() * im.height()) as f64
        };
        for c in 0..3 {
            let (a, b) = (mean(&pic, c), mean(&source, c));
            assert!((a - b).abs() < 25.0, "channel {c}: {a} vs {b} in {stem}");
        }
        let boxes = &gt[&stem];
        assert!(!boxes.is_empty(), "{stem} has no boxes");
        for &(label, b) in boxes {
            let want = class_colour(label);
            let [x1, y1, x2, y2] = b.map(|v| v * scale);
            let ym = ((y1 + y2) / 2.0) as u32;
            // One pixel inside each vertical edge: on the 2 px outline however it rounds.
            for x in [x1.floor() as u32 + 1, (x2.ceil() as u32).saturating_sub(2)] {
                samples += 1;
                hits += usize::from(pic.get_pixel(x.min(127), ym.min(127)).0 == want);
            }
        }
    }
    // Another box's outline or tag may cover a sample; nearly all must show their colour.
    assert!(
        samples >= 6 && hits * 10 >= samples * 8,
        "{hits} of {samples} edge pixels in the class colour"
    );

    // The quickstart's own pipeline (random scale jitter and flip, padded to 160 px): every
    // picture shows the colour of each class it has boxes of.
    let out = dir.path().join("quickstart");
    let mut sets = train_sets(&root, "[]");
    sets.pop();
    let args: Vec<String> = ["data", "browse", "pipelines/quickstart.recipe", "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string(), "--count".into(), "3".into()])
        .collect();
    let (code, text) = run(&with_sets(args, &sets));
    assert_eq!(code, 0, "{text}");
    let files = pngs_in(&out);
    assert_eq!(files.len(), 3, "{files:?}\n{text}");
    for f in &files {
        let pic = decode_png(&std::fs::read(f).unwrap());
        assert_eq!(pic.dimensions(), (160, 160), "{}", f.display());
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        for &(label, _) in &gt[&stem] {
            let want = class_colour(label);
            let n = pic.pixels().filter(|p| p.0 == want).count();
            assert!(n > 20, "{stem}: {n} pixels of {}'s colour", CLASSES[label]);
        }
    }
}

/// `data browse --format json`: one object on stdout naming each picture written.
#[test]
fn browse_reports_its_pictures_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let out = dir.path().join("browse");
    let mut sets = train_sets(&root, "[]");
    sets.pop();
    let args: Vec<String> = ["data", "browse", "pipelines/quickstart.recipe", "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string(), "--count".into(), "2".into()])
        .chain(["--format".into(), "json".into()])
        .collect();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(with_sets(args, &sets))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["out"], out.display().to_string());
    assert_eq!(v["count"], 2);
    let mut pictures: Vec<PathBuf> = (v["pictures"].as_array().unwrap().iter())
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    pictures.sort();
    assert_eq!(pictures, pngs_in(&out));
}

/// A checkpoint of a short run (one epoch of 4 iterations) on the shapes set, with
/// TensorBoard logging: the run's work dir and the `--set`s it used.
fn short_run(dir: &Path) -> (PathBuf, Vec<String>) {
    let root = dataset(dir);
    let mut sets = small_variant_sets(&root);
    sets.push("hooks.log.to=[text, json, tensorboard]".into());
    let work = dir.join("work");
    let (code, text) = exec(&work, &sets, &["--max-iters", "4"]);
    assert_eq!(code, 0, "{text}");
    (work, sets)
}

fn test_args(work: &Path, sets: &[String], extra: &[&str]) -> Vec<String> {
    let ck = work.join("checkpoints/epoch_1");
    let mut args: Vec<String> = vec![
        "test".into(),
        "pipelines/quickstart.recipe".into(),
        "--checkpoint".into(),
        ck.display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    with_sets(args, sets)
}

#[test]
fn test_show_dir_draws_each_val_image_beside_its_predictions_and_keeps_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (work, sets) = short_run(dir.path());
    let plain_dir = dir.path().join("plain");
    let plain = test_args(&work, &sets, &["--work-dir", plain_dir.to_str().unwrap()]);
    let (code, text) = run(&plain);
    assert_eq!(code, 0, "{text}");
    let json = |t: &str| -> Value {
        let line = t
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("{t}"));
        serde_json::from_str(line).unwrap()
    };
    let plain_metrics = json(&text)["metrics"].clone();

    let show = dir.path().join("show");
    let shown_dir = dir.path().join("shown");
    let args = test_args(
        &work,
        &sets,
        &[
            "--work-dir",
            shown_dir.to_str().unwrap(),
            "--show-dir",
            show.to_str().unwrap(),
            "--score-thr",
            "0.05",
        ],
    );
    let (code, text) = run(&args);
    assert_eq!(code, 0, "{text}");
    let report = json(&text);
    assert_eq!(
        report["metrics"], plain_metrics,
        "--show-dir changed the metrics"
    );
    let ann = dir.path().join("shapes/annotations/instances_val.json");
    let gt = gt_by_stem(&ann);
    let val: Value = serde_json::from_str(&std::fs::read_to_string(&ann).unwrap()).unwrap();
    let images = val["images"].as_array().unwrap();
    let files = pngs_in(&show);
    assert_eq!(files.len(), images.len(), "{files:?}");
    let (mut hits, mut samples) = (0, 0);
    assert_eq!(report["pictures"]["count"], images.len());
    for im in images {
        let stem = Path::new(im["file_name"].as_str().unwrap())
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let pic = decode_png(&std::fs::read(show.join(format!("{stem}.png"))).unwrap());
        let (w, h) = (
            im["width"].as_u64().unwrap() as u32,
            im["height"].as_u64().unwrap() as u32,
        );
        assert_eq!(pic.width(), 2 * w, "{stem}: side by side");
        let band = pic.height() - h;
        assert!(band > 0, "{stem}: a caption band above the pictures");
        // The left half is the ground truth: each box's left edge in its class colour.
        for &(label, [x1, y1, _, y2]) in gt.get(&stem).into_iter().flatten() {
            let (x, y) = (x1.floor() as u32 + 1, ((y1 + y2) / 2.0) as u32 + band);
            samples += 1;
            hits += usize::from(pic.get_pixel(x, y.min(pic.height() - 1)).0 == class_colour(label));
        }
    }
    assert!(
        samples >= 4 && hits * 10 >= samples * 8,
        "{hits} of {samples} ground-truth edge pixels in the class colour"
    );

    // A score threshold outside [0, 1] and a folder that cannot be made: refused, exit 2.
    let (code, text) = run(&test_args(
        &work,
        &sets,
        &["--show-dir", show.to_str().unwrap(), "--score-thr", "1.5"],
    ));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--score-thr"), "{text}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("pictures");
    let (code, text) = run(&test_args(
        &work,
        &sets,
        &["--show-dir", under_file.to_str().unwrap()],
    ));
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--show-dir") && text.contains("a-file"),
        "{text}"
    );
}

#[test]
fn tensorboard_log_holds_pictures_of_val_images_after_each_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let (work, _) = short_run(dir.path());
    let tb = event_file(&work.join("tf_logs"));
    let records = decode_records(&std::fs::read(&tb).unwrap()).unwrap();
    let images: Vec<_> = records
        .iter()
        .flat_map(|r| decode_images(r).unwrap())
        .collect();
    // One evaluation (epoch 1) of 4 val images: a picture of each.
    assert_eq!(
        images.len(),
        4,
        "{:?}",
        images.iter().map(|i| &i.tag).collect::<Vec<_>>()
    );
    for im in &images {
        assert!(im.tag.starts_with("val/"), "{}", im.tag);
        let pic = decode_png(&im.png);
        assert_eq!(pic.dimensions(), (im.width, im.height), "{}", im.tag);
        assert_eq!(
            im.width,
            2 * 96,
            "{}: ground truth beside predictions",
            im.tag
        );
    }
}

/// The one event file in a `tf_logs` folder.
fn event_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn browse_refuses_an_out_folder_it_cannot_make() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("browse");
    let (code, text) = mmrun(&[
        "data",
        "browse",
        "pipelines/quickstart.recipe",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--out") && text.contains("a-file"), "{text}");
    let (code, text) = mmrun(&[
        "data",
        "browse",
        "pipelines/quickstart.recipe",
        "--out",
        dir.path().to_str().unwrap(),
        "--count",
        "0",
    ]);
    assert_eq!(code, 2, "{text}");
}
