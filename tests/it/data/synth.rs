//! The generated shapes dataset: deterministic, valid COCO, boxes on the shapes.

use super::small_synth;
use mmrun::data::coco::{ReadOptions, read_coco};
use mmrun::data::synth::SHAPE_CLASSES;
use mmrun::data::{BadSampleLog, Pixels};

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v = vec![];
    for sub in ["train", "val", "annotations"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            v.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    v
}

#[test]
fn same_seed_same_files_other_seed_other_files() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let sa = small_synth(a.path(), 10, 42);
    small_synth(b.path(), 10, 42);
    small_synth(c.path(), 10, 43);
    assert_eq!((sa.train_images, sa.val_images), (8, 2));
    assert_eq!(files(a.path()), files(b.path()));
    assert_ne!(files(a.path()), files(c.path()));
}

#[test]
fn annotations_read_back_and_boxes_sit_on_coloured_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let s = small_synth(dir.path(), 12, 1);
    let opts = ReadOptions {
        img_prefix: s.train_dir.clone(),
        filter_empty_gt: true,
        ..Default::default()
    };
    let ds = read_coco(&s.train_ann, &opts, &BadSampleLog::default()).unwrap();
    assert_eq!(ds.classes, SHAPE_CLASSES.map(String::from).to_vec());
    assert!(ds.len() >= 8, "every training image has shapes");
    let mut sizes = std::collections::BTreeSet::new();
    for r in &ds.records {
        let img = mmrun::data::image::load_image(&r.path).unwrap();
        assert_eq!((img.w as u32, img.h as u32), (r.width, r.height));
        sizes.insert((r.width, r.height));
        let Pixels::U8(d) = &img.pixels else { panic!() };
        for b in &r.boxes {
            assert!(
                b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= r.width as f32 && b[3] <= r.height as f32
            );
            // Shapes are saturated: the box's centre row holds strongly coloured pixels.
            let y = ((b[1] + b[3]) / 2.0) as usize;
            let sat = (b[0] as usize..b[2] as usize).any(|x| {
                let p = &d[(y * img.w + x) * 3..(y * img.w + x) * 3 + 3];
                let (mx, mn) = (
                    *p.iter().max().unwrap() as f32,
                    *p.iter().min().unwrap() as f32,
                );
                mx > 0.0 && (mx - mn) / mx > 0.45
            });
            assert!(
                sat,
                "{}: box {b:?} has no coloured pixel on its centre row",
                r.file_name
            );
        }
    }
    assert!(sizes.len() > 1, "image sizes vary");
}

#[test]
fn cli_synth_writes_the_dataset_and_rejects_a_bad_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(["data", "synth", "--out"])
        .arg(dir.path())
        .args(["--images", "6", "--seed", "2", "--size", "64x48"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 train + 1 val images"));
    let img = mmrun::data::image::load_image(&dir.path().join("train/000000.png")).unwrap();
    assert_eq!((img.w, img.h), (64, 48));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(["data", "synth", "--out"])
        .arg(dir.path())
        .args(["--size", "64by48"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WxH"));
}

/// `mmrun data ARGS…`: exit code, stdout, stderr.
fn data_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let (code, out, err) = crate::bin::mmrun_split(&[&["data"], args].concat());
    (Some(code).filter(|c| *c >= 0), out, err)
}

/// One JSON object alone on stdout.
fn one_object(stdout: &str, stderr: &str) -> serde_json::Value {
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}:\n{stdout}"))
}

#[test]
fn cli_synth_and_inspect_report_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = data_cli(&[
        "synth",
        "--out",
        dir.path().to_str().unwrap(),
        "--images",
        "6",
        "--seed",
        "2",
        "--size",
        "64x48",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v = one_object(&out, &err);
    assert_eq!(v["out"], dir.path().display().to_string());
    assert_eq!((&v["images"], &v["seed"]), (&6.into(), &2.into()));
    assert_eq!(v["image_format"], "png");
    assert_eq!(
        (&v["train"]["images"], &v["val"]["images"]),
        (&5.into(), &1.into())
    );
    assert!(v["seconds"].as_f64().unwrap() >= 0.0);
    let train_ann = dir.path().join("annotations/instances_train.json");
    assert_eq!(v["train"]["ann_file"], train_ann.display().to_string());
    assert_eq!(
        v["val"]["img_dir"],
        dir.path().join("val").display().to_string()
    );

    // inspect on each split: the counts of the COCO files themselves, summed to synth's.
    let mut boxes = 0;
    for split in ["train", "val"] {
        let ann = std::path::PathBuf::from(v[split]["ann_file"].as_str().unwrap());
        let coco: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ann).unwrap()).unwrap();
        let (code, out, err) = data_cli(&["inspect", ann.to_str().unwrap(), "--format", "json"]);
        assert_eq!(code, Some(0), "{err}");
        let i = one_object(&out, &err);
        assert_eq!(i["ann_file"], ann.display().to_string());
        assert_eq!(i["format"], "coco");
        assert_eq!(i["images"], v[split]["images"]);
        let anns = coco["annotations"].as_array().unwrap().len() as u64;
        assert_eq!(i["boxes"].as_u64(), Some(anns), "{i}");
        assert_eq!(i["ignored"], 0);
        let names: Vec<&str> = (i["classes"].as_array().unwrap().iter())
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, SHAPE_CLASSES);
        let per_class: u64 = (i["classes"].as_array().unwrap().iter())
            .map(|c| c["boxes"].as_u64().unwrap())
            .sum();
        assert_eq!(per_class, anns);
        let empty = (coco["images"].as_array().unwrap().iter())
            .filter(|im| {
                !(coco["annotations"].as_array().unwrap().iter()).any(|a| a["image_id"] == im["id"])
            })
            .count();
        assert_eq!(i["images_without_boxes"].as_u64(), Some(empty as u64));
        assert_eq!(i["bad_annotations_skipped"], 0);
        boxes += anns;
    }
    assert_eq!(v["boxes"].as_u64(), Some(boxes));

    // An error stays on stderr, stdout empty, with the text's exit code.
    let missing = dir.path().join("missing.json");
    let (code, out, err) = data_cli(&["inspect", missing.to_str().unwrap(), "--format", "json"]);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert!(err.starts_with("error: "), "{err}");
}

#[test]
fn cli_synth_image_format_jpeg_writes_jpegs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = data_cli(&[
        "synth",
        "--out",
        dir.path().to_str().unwrap(),
        "--images",
        "3",
        "--size",
        "40x32",
        "--image-format",
        "jpeg",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 train + 1 val images"), "{out}");
    for (split, n) in [("train", 2), ("val", 1)] {
        let names: Vec<String> = std::fs::read_dir(dir.path().join(split))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), n, "{names:?}");
        for name in names {
            assert!(name.ends_with(".jpg"), "{name}");
            let bytes = std::fs::read(dir.path().join(split).join(&name)).unwrap();
            assert_eq!(&bytes[..3], [0xff, 0xd8, 0xff], "{name}: not a JPEG");
        }
    }
    // `--format` is the report's format now, not the image's.
    let (code, _, err) = data_cli(&[
        "synth",
        "--out",
        dir.path().to_str().unwrap(),
        "--format",
        "jpeg",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--format") && err.contains("jpeg"), "{err}");
}
