//! Bad data: each case is a clear error naming the file and annotation id, or, with
//! `on_bad_sample = skip`, a warning and a count.

use mmrun::data::coco::{ReadOptions, read_coco};
use mmrun::data::loader::{Loader, LoaderOptions, TargetFn};
use mmrun::data::voc::read_voc;
use mmrun::data::{
    BadSampleLog, BatchSampler, DataError, Dataset, OnBadSample, Pipeline, SamplerConfig,
    TransformConfig,
};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn write_png(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 100]));
    img.save(path).unwrap();
}

/// Images `a.png` (40x30) and `b.png` (30x40), a corrupt `c.png` and a missing `d.png`.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("a.png"), 40, 30);
    write_png(&dir.path().join("b.png"), 30, 40);
    std::fs::write(
        dir.path().join("c.png"),
        b"\x89PNG\r\n\x1a\nnot really a png",
    )
    .unwrap();
    dir
}

fn coco(extra_anns: serde_json::Value) -> serde_json::Value {
    let mut anns = vec![
        json!({"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 8], "area": 80, "iscrowd": 0}),
        json!({"id": 2, "image_id": 1, "category_id": 5, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 1}),
        json!({"id": 3, "image_id": 2, "category_id": 5, "bbox": [0, 0, 30, 40], "area": 1200, "iscrowd": 0, "ignore": 1}),
        json!({"id": 4, "image_id": 2, "category_id": 3, "bbox": [3, 3, 5, 5], "area": 25, "iscrowd": 0}),
        json!({"id": 5, "image_id": 3, "category_id": 3, "bbox": [3, 3, 5, 5], "area": 25}),
        json!({"id": 6, "image_id": 4, "category_id": 3, "bbox": [3, 3, 5, 5], "area": 25}),
    ];
    anns.extend(extra_anns.as_array().unwrap().iter().cloned());
    json!({
        "images": [
            {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 30, "height": 40},
            {"id": 3, "file_name": "c.png", "width": 40, "height": 30},
            {"id": 4, "file_name": "d.png", "width": 40, "height": 30},
            {"id": 5, "file_name": "empty.png", "width": 40, "height": 30}
        ],
        "annotations": anns,
        "categories": [{"id": 5, "name": "square"}, {"id": 3, "name": "circle"}]
    })
}

fn read(
    dir: &Path,
    doc: serde_json::Value,
    policy: OnBadSample,
    classes: Option<&[&str]>,
) -> (Result<Dataset, DataError>, BadSampleLog) {
    let path = dir.join("ann.json");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let opts = ReadOptions {
        img_prefix: dir.to_path_buf(),
        classes: classes.map(|c| c.iter().map(|s| s.to_string()).collect()),
        filter_empty_gt: true,
        on_bad_sample: policy,
        ..Default::default()
    };
    let log = BadSampleLog::default();
    (read_coco(&path, &opts, &log), log)
}

#[test]
fn coco_reads_labels_in_category_id_order_with_crowd_and_ignore_as_ignored() {
    let dir = folder();
    let (ds, log) = read(dir.path(), coco(json!([])), OnBadSample::Error, None);
    let ds = ds.unwrap();
    assert_eq!(log.count(), 0);
    assert_eq!(ds.classes, ["circle", "square"]);
    assert_eq!(ds.cat_ids, [3, 5]);
    assert_eq!(ds.len(), 4, "the image without annotations is filtered");
    let a = &ds.records[0];
    assert_eq!(a.boxes, vec![[1.0, 2.0, 11.0, 10.0]]);
    assert_eq!(a.labels, vec![0]);
    assert_eq!(a.ignored, vec![[5.0, 5.0, 25.0, 25.0]]);
    assert_eq!(ds.records[1].ignored.len(), 1);
    // A class subset relabels in the config's order.
    let (ds, _) = read(
        dir.path(),
        coco(json!([])),
        OnBadSample::Error,
        Some(&["square"]),
    );
    let ds = ds.unwrap();
    assert_eq!(
        (ds.classes.clone(), ds.cat_ids.clone()),
        (vec!["square".to_string()], vec![5])
    );
    assert_eq!(
        ds.len(),
        2,
        "images with only unselected classes are filtered"
    );
}

fn expect_error(extra: serde_json::Value, needles: &[&str]) {
    let dir = folder();
    let (r, _) = read(dir.path(), coco(extra.clone()), OnBadSample::Error, None);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("ann.json"), "names the file: {e}");
    for n in needles {
        assert!(e.contains(n), "`{n}` missing from: {e}");
    }
    let (r, log) = read(dir.path(), coco(extra), OnBadSample::Skip, None);
    let ds = r.unwrap();
    assert_eq!(log.count(), 1);
    assert!(log.messages()[0].contains(needles[0]));
    let boxes: usize = ds
        .records
        .iter()
        .map(|r| r.boxes.len() + r.ignored.len())
        .sum();
    assert_eq!(boxes, 6, "the bad annotation is dropped, the others kept");
}

#[test]
fn box_outside_the_image_names_file_and_annotation() {
    expect_error(
        json!([{"id": 77, "image_id": 1, "category_id": 3, "bbox": [35, 2, 10, 8], "area": 80}]),
        &["annotation 77", "outside", "a.png"],
    );
}

#[test]
fn negative_width_names_file_and_annotation() {
    expect_error(
        json!([{"id": 78, "image_id": 1, "category_id": 3, "bbox": [20, 2, -10, 8], "area": 80}]),
        &["annotation 78", "negative"],
    );
}

#[test]
fn annotation_for_an_unknown_image_names_it() {
    expect_error(
        json!([{"id": 79, "image_id": 99, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4}]),
        &["annotation 79", "image_id 99"],
    );
}

#[test]
fn annotation_with_an_unknown_category_names_it() {
    expect_error(
        json!([{"id": 80, "image_id": 1, "category_id": 42, "bbox": [1, 1, 2, 2], "area": 4}]),
        &["annotation 80", "category_id 42"],
    );
}

#[test]
fn unknown_class_name_lists_the_names_that_exist() {
    let dir = folder();
    let (r, _) = read(
        dir.path(),
        coco(json!([])),
        OnBadSample::Skip,
        Some(&["circle", "sqare"]),
    );
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("`sqare`") && e.contains("`circle`, `square`") && e.contains("ann.json"),
        "{e}"
    );
}

#[test]
fn malformed_json_names_file_and_line() {
    let dir = folder();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{\"images\": [\n  {\"id\": 1,}\n]}").unwrap();
    let e = read_coco(&path, &ReadOptions::default(), &BadSampleLog::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.json") && e.contains("line 2"), "{e}");
}

fn loader(ds: Dataset, policy: OnBadSample, indices_first: bool) -> Loader<()> {
    let pipeline: Vec<TransformConfig> = crate::support::typed(
        &crate::support::TRANSFORMS,
        json!([
            {"type": "load_image"}, {"type": "load_annotations"},
            {"type": "resize", "scale": [64, 48]}, {"type": "pad", "size_divisor": 8}
        ]),
    )
    .unwrap();
    let groups = ds.aspect_groups();
    let cfg = if indices_first {
        SamplerConfig::SequentialSampler {}
    } else {
        SamplerConfig::RandomSampler { shuffle: true }
    };
    let sampler = BatchSampler::new(&cfg, groups, 1, 0, 1, 0).unwrap();
    let target: TargetFn<()> = Arc::new(|_, _| Ok(()));
    let opts = LoaderOptions {
        workers: 2,
        prefetch: 2,
        seed: 0,
        on_bad_sample: policy,
        buckets: vec![],
        size_divisor: Some(8),
    };
    Loader::new(
        Arc::new(ds),
        Arc::new(Pipeline::new(&pipeline).unwrap()),
        sampler,
        target,
        opts,
    )
}

#[test]
fn missing_and_corrupt_images_are_errors_naming_the_file_or_skipped_with_a_count() {
    let dir = folder();
    let ds = read(dir.path(), coco(json!([])), OnBadSample::Error, None)
        .0
        .unwrap();
    // Sequential: a.png, b.png, c.png (corrupt), d.png (missing).
    let mut l = loader(ds.clone(), OnBadSample::Error, true);
    assert!(l.next_batch().unwrap().is_ok());
    assert!(l.next_batch().unwrap().is_ok());
    let e = l.next_batch().unwrap().unwrap_err().to_string();
    assert!(e.contains("c.png") && e.contains("corrupt"), "{e}");
    l.restore(mmrun::data::SamplerState { epoch: 0, batch: 3 });
    let e = l.next_batch().unwrap().unwrap_err().to_string();
    assert!(e.contains("d.png") && e.contains("cannot read"), "{e}");

    let mut l = loader(ds, OnBadSample::Skip, true);
    let mut files = vec![];
    while let Some(b) = l.next_batch() {
        files.push(b.unwrap().metas[0].file_name.clone());
    }
    assert_eq!(files.len(), 4, "a bad image is replaced, batches stay full");
    assert!(
        files.iter().all(|f| f == "a.png" || f == "b.png"),
        "{files:?}"
    );
    assert!(l.bad_samples().count() >= 2, "each failure is counted");
    let msgs = l.bad_samples().messages();
    assert!(
        msgs.iter().any(|m| m.contains("c.png")) && msgs.iter().any(|m| m.contains("d.png")),
        "{msgs:?}"
    );
}

#[test]
fn image_size_disagreeing_with_the_annotation_file_is_an_error() {
    let dir = folder();
    let mut doc = coco(json!([]));
    doc["images"][0]["width"] = json!(41);
    let ds = read(dir.path(), doc, OnBadSample::Error, None).0.unwrap();
    let mut l = loader(ds, OnBadSample::Error, true);
    let e = l.next_batch().unwrap().unwrap_err().to_string();
    assert!(e.contains("a.png") && e.contains("41x30"), "{e}");
}

fn voc_folder(objects: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("ImageSets/Main/train.txt"), "000001\n000002\n").unwrap();
    let xml = |objs: &str| {
        format!(
            "<annotation><filename>x.jpg</filename><size><width>50</width><height>40</height><depth>3</depth></size>{objs}</annotation>"
        )
    };
    std::fs::write(root.join("Annotations/000001.xml"), xml(
        "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>21</xmax><ymax>31</ymax></bndbox></object>\
         <object><name>cat</name><difficult>1</difficult><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>",
    )).unwrap();
    std::fs::write(root.join("Annotations/000002.xml"), xml(objects)).unwrap();
    dir
}

#[test]
fn voc_reads_boxes_zero_based_with_difficult_ignored() {
    let dir = voc_folder("");
    let opts = ReadOptions {
        img_prefix: dir.path().into(),
        filter_empty_gt: true,
        ..Default::default()
    };
    let ds = read_voc(
        &dir.path().join("ImageSets/Main/train.txt"),
        &opts,
        &BadSampleLog::default(),
    )
    .unwrap();
    assert_eq!(ds.classes.len(), 20);
    assert_eq!(ds.len(), 1, "the image without objects is filtered");
    let r = &ds.records[0];
    assert_eq!(r.boxes, vec![[0.0, 1.0, 20.0, 30.0]]);
    assert_eq!(r.labels, vec![11]); // dog
    assert_eq!(r.ignored, vec![[4.0, 4.0, 9.0, 9.0]]);
    assert_eq!(r.path, dir.path().join("JPEGImages/x.jpg"));
}

#[test]
fn voc_bad_objects_name_file_and_object() {
    for (obj, needle) in [
        (
            "<object><name>dgo</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>",
            "unknown category `dgo`",
        ),
        (
            "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>95</xmax><ymax>5</ymax></bndbox></object>",
            "outside",
        ),
        (
            "<object><name>dog</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>",
            "negative",
        ),
    ] {
        let dir = voc_folder(obj);
        let list = dir.path().join("ImageSets/Main/train.txt");
        let mut opts = ReadOptions {
            img_prefix: dir.path().into(),
            ..Default::default()
        };
        let e = read_voc(&list, &opts, &BadSampleLog::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("000002.xml") && e.contains("object 0") && e.contains(needle),
            "{e}"
        );
        opts.on_bad_sample = OnBadSample::Skip;
        let log = BadSampleLog::default();
        assert_eq!(
            read_voc(&list, &opts, &log).unwrap().len(),
            2,
            "only the object is dropped"
        );
        assert_eq!(log.count(), 1);
    }
    let dir = voc_folder("<object><name>dog</name>");
    let e = read_voc(
        &dir.path().join("ImageSets/Main/train.txt"),
        &ReadOptions {
            img_prefix: dir.path().into(),
            ..Default::default()
        },
        &BadSampleLog::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("000002.xml") && e.contains("line 1") && e.contains("'object'"),
        "{e}"
    );
}

#[test]
fn skipped_samples_are_counted_per_epoch_and_in_total() {
    let dir = folder();
    let ds = read(dir.path(), coco(json!([])), OnBadSample::Error, None)
        .0
        .unwrap();
    let mut l = loader(ds, OnBadSample::Skip, true);
    assert_eq!(l.skipped(), mmrun::data::SkipCount::default());
    let epoch = |l: &mut Loader<()>| {
        let mut n = 0;
        while let Some(b) = l.next_batch() {
            b.unwrap();
            n += 1;
        }
        n
    };
    assert_eq!(epoch(&mut l), 4);
    let first = l.skipped();
    // c.png and d.png at least (a replacement drawn for one may be the other).
    assert!(first.epoch >= 2 && first.total == first.epoch, "{first:?}");
    l.set_epoch(1);
    assert_eq!(l.skipped().epoch, 0, "a new epoch counts from 0");
    assert_eq!(l.skipped().total, first.total);
    epoch(&mut l);
    let second = l.skipped();
    assert!(second.epoch >= 2, "{second:?}");
    assert_eq!(second.total, first.total + second.epoch);
}

#[test]
fn skip_warnings_do_not_flood_the_console() {
    let dir = folder();
    let extra: Vec<_> = (0..50)
        .map(|k| json!({"id": 100 + k, "image_id": 99, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4}))
        .collect();
    let path = dir.path().join("ann.json");
    std::fs::write(&path, coco(json!(extra)).to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(["data", "inspect", "--skip-bad"])
        .arg(&path)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("50 bad annotations skipped"), "{stdout}");
    let warnings = stderr.lines().filter(|l| l.starts_with("warning:")).count();
    assert_eq!(
        warnings,
        mmrun::data::error::PRINTED_PER_EPOCH + 1,
        "the first ones, then one line saying the rest are counted:\n{stderr}"
    );
    assert!(stderr.contains("counted, not printed"), "{stderr}");
}

/// A dataset in VOC layout with its own classes (mmdetection's `classes`): any names, labels
/// in the listed order, objects of other classes left out; a class listed twice is refused.
#[test]
fn voc_with_the_recipes_own_classes() {
    let dir = voc_folder(
        "<object><name>widget</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>\
         <object><name>gadget</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>",
    );
    let list = dir.path().join("ImageSets/Main/train.txt");
    let classes = |names: &[&str]| ReadOptions {
        img_prefix: dir.path().into(),
        classes: Some(names.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let ds = read_voc(
        &list,
        &classes(&["gadget", "dog", "widget"]),
        &BadSampleLog::default(),
    )
    .unwrap();
    assert_eq!(ds.classes, vec!["gadget", "dog", "widget"]);
    // Image 1: its dog (label 1) kept, its cat (not listed) left out; image 2: both objects.
    assert_eq!(ds.records[0].labels, vec![1]);
    assert!(ds.records[0].ignored.is_empty());
    assert_eq!(ds.records[1].labels, vec![2, 0]);
    assert_eq!(ds.records[1].boxes[1], [1.0, 1.0, 8.0, 8.0]);
    // Without `classes`, a name VOC does not have is an error that says what to do.
    let e = read_voc(
        &list,
        &ReadOptions {
            img_prefix: dir.path().into(),
            ..Default::default()
        },
        &BadSampleLog::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`widget`") && e.contains("`classes`"), "{e}");
    let e = read_voc(
        &list,
        &classes(&["dog", "cat", "dog"]),
        &BadSampleLog::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`dog` is listed twice"), "{e}");
}
