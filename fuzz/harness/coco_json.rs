//! `coco_json`: bytes as a COCO instances file, read by `read_coco` under several option
//! sets. Properties: no panic; every error and every skip warning names the file; a read
//! dataset is consistent (labels in range, boxes finite and inside their image, filters
//! applied); and a strict read silently accepts nothing: each annotation of the file refers
//! to an existing image and category, and each one that is not degenerate becomes exactly
//! one box (crowd/ignore ones an ignored box).
//!
//! Shared by the cargo-fuzz target and `tests/it/fuzz/coco_json.rs`.

use mmrun::data::{BadSampleLog, Dataset, OnBadSample, ReadOptions, read_coco};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;

/// The option sets each input is read under: strict defaults; a training set with filters
/// and `skip`; a class subset in test mode.
fn option_sets() -> Vec<ReadOptions> {
    vec![
        ReadOptions::default(),
        ReadOptions {
            img_prefix: PathBuf::from("images"),
            filter_empty_gt: true,
            min_size: 32,
            on_bad_sample: OnBadSample::Skip,
            ..ReadOptions::default()
        },
        ReadOptions {
            classes: Some(vec!["square".into(), "circle".into()]),
            test_mode: true,
            filter_empty_gt: true,
            min_size: 1000,
            ..ReadOptions::default()
        },
    ]
}

/// Run one input; panics (the finding) when a property does not hold.
pub fn run(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ann = dir.path().join("instances_fuzz.json");
    std::fs::write(&ann, data).expect("write the annotation file");
    let name = ann.display().to_string();
    for opts in option_sets() {
        let log = BadSampleLog::default();
        let read = read_coco(&ann, &opts, &log);
        for m in log.messages() {
            assert!(
                m.contains(&name),
                "a skip warning does not name the file: {m}"
            );
        }
        match read {
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains(&name), "the error does not name the file: {m}");
            }
            Ok(ds) => {
                check_dataset(&ds, &opts);
                if opts.on_bad_sample == OnBadSample::Error {
                    assert_eq!(log.count(), 0, "a strict read skipped something");
                }
                if opts.classes.is_none() && !opts.filter_empty_gt && opts.min_size == 0 {
                    check_nothing_dropped(data, &ds);
                }
            }
        }
    }
}

fn check_dataset(ds: &Dataset, opts: &ReadOptions) {
    assert_eq!(ds.classes.len(), ds.cat_ids.len());
    if let Some(wanted) = &opts.classes {
        assert_eq!(&ds.classes, wanted);
    }
    let n = ds.classes.len() as u32;
    let mut ids = HashSet::new();
    for r in &ds.records {
        assert!(ids.insert(r.id), "image id {} twice in the dataset", r.id);
        assert_eq!(r.path, opts.img_prefix.join(&r.file_name));
        assert_eq!(r.boxes.len(), r.labels.len());
        assert_eq!(r.ignored.len(), r.ignored_labels.len());
        assert!(r.labels.iter().chain(&r.ignored_labels).all(|&l| l < n));
        let (w, h) = (r.width as f32, r.height as f32);
        for b in r.boxes.iter().chain(&r.ignored) {
            assert!(b.iter().all(|v| v.is_finite()), "box {b:?} not finite");
            assert!(
                0.0 <= b[0]
                    && b[0] <= b[2]
                    && b[2] <= w
                    && 0.0 <= b[1]
                    && b[1] <= b[3]
                    && b[3] <= h,
                "box {b:?} not inside the {w}x{h} image {}",
                r.id
            );
        }
        if !opts.test_mode {
            assert!(r.width.min(r.height) >= opts.min_size);
            if opts.filter_empty_gt {
                assert!(!(r.boxes.is_empty() && r.ignored.is_empty()));
            }
        }
    }
    assert_eq!(ds.aspect_groups().len(), ds.len());
}

/// A strict, unfiltered read of every class: compare with the file read as plain JSON.
fn check_nothing_dropped(data: &[u8], ds: &Dataset) {
    // serde_json does not validate what it skips (fields mmrun ignores, such as
    // `supercategory` or `segmentation`): invalid UTF-8 in their strings and numbers out of
    // f64 range pass. Such a file reads but does not parse as a `Value`; nothing to compare.
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ids = |key: &str| -> HashSet<u64> {
        doc[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["id"].as_u64()).collect())
            .unwrap_or_default()
    };
    let (images, cats) = (ids("images"), ids("categories"));
    assert_eq!(ds.len(), doc["images"].as_array().map_or(0, Vec::len));
    let (mut boxes, mut ignored) = (0, 0);
    for a in doc["annotations"].as_array().into_iter().flatten() {
        let image = a["image_id"].as_u64().unwrap_or(u64::MAX);
        let cat = a["category_id"].as_u64().unwrap_or(u64::MAX);
        assert!(
            images.contains(&image),
            "annotation {} of a missing image accepted",
            a["id"]
        );
        assert!(
            cats.contains(&cat),
            "annotation {} of a missing category accepted",
            a["id"]
        );
        let side = |i: usize| a["bbox"][i].as_f64().unwrap_or(f64::NAN);
        let area_ok = a["area"].as_f64().is_none_or(|v| v > 0.0);
        if !(side(2) >= 1.0 && side(3) >= 1.0 && area_ok) {
            continue; // degenerate: dropped, as mmdetection does
        }
        let flag = |k: &str| a[k].as_u64().unwrap_or(0) != 0;
        if flag("iscrowd") || flag("ignore") {
            ignored += 1;
        } else {
            boxes += 1;
        }
    }
    let count = |f: fn(&mmrun::data::Record) -> usize| ds.records.iter().map(f).sum::<usize>();
    assert_eq!(count(|r| r.boxes.len()), boxes, "boxes lost or invented");
    assert_eq!(
        count(|r| r.ignored.len()),
        ignored,
        "ignored boxes lost or invented"
    );
}
