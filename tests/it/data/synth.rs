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
