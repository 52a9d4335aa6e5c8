//! `coco_json` (COCO annotation loader): the committed corpus, byte mutations of it and
//! generated instance files of random images, annotations and categories never panic, every
//! error names the file, and a strict read neither drops nor invents annotations.

use super::{committed_inputs, config, corpus, edits, mutate, save_seeds, write_seeds};
use mmrun::data::synth::{SynthFormat, SynthOptions, generate};
use mmrun::data::{BadSampleLog, ReadOptions, read_coco};
use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "../../../fuzz/harness/coco_json.rs"]
mod harness;

/// Hand-made seeds: the valid corners (crowd, ignore, degenerate boxes, a box on the
/// border, categories out of id order) and one of each kind of bad annotation.
fn handmade() -> Vec<(&'static str, Value)> {
    let images = json!([
        {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
        {"id": 7, "file_name": "b.jpg", "width": 30, "height": 40}
    ]);
    let cats = json!([{"id": 5, "name": "square"}, {"id": 3, "name": "circle"}]);
    let doc = |anns: Value| json!({"images": images, "annotations": anns, "categories": cats});
    vec![
        (
            "valid.json",
            doc(json!([
                {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 8], "area": 80, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 5, "bbox": [5.5, 5, 20, 20.25], "iscrowd": 1},
                {"id": 3, "image_id": 7, "category_id": 5, "bbox": [-0.5, 0, 30.5, 40], "ignore": 1},
                {"id": 4, "image_id": 7, "category_id": 3, "bbox": [3, 3, 0.5, 5], "area": 2},
                {"id": 5, "image_id": 7, "category_id": 3, "bbox": [3, 3, 5, 5], "area": 0}
            ])),
        ),
        (
            "no_annotations.json",
            json!({"images": images, "categories": cats}),
        ),
        (
            "unknown_image.json",
            doc(json!([{"id": 9, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2]}])),
        ),
        (
            "unknown_category.json",
            doc(json!([{"id": 9, "image_id": 1, "category_id": 4, "bbox": [1, 1, 2, 2]}])),
        ),
        (
            "box_outside.json",
            doc(json!([{"id": 9, "image_id": 1, "category_id": 3, "bbox": [35, 1, 10, 2]}])),
        ),
        (
            "negative_size.json",
            doc(json!([{"id": 9, "image_id": 1, "category_id": 3, "bbox": [5, 5, -2, 2]}])),
        ),
        (
            "image_twice.json",
            json!({"images": [images[0], images[0]], "annotations": [], "categories": cats}),
        ),
        ("wrong_type.json", json!({"images": {}, "categories": []})),
    ]
}

fn regenerate_seeds() {
    let mut seeds: Vec<(&str, Vec<u8>)> = handmade()
        .into_iter()
        .map(|(n, v)| (n, serde_json::to_vec_pretty(&v).unwrap()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        images: 3,
        seed: 1,
        min_side: 24,
        max_side: 40,
        format: SynthFormat::Png,
        ..Default::default()
    };
    let sum = generate(dir.path(), &opts).unwrap();
    seeds.push(("synth_train.json", std::fs::read(&sum.train_ann).unwrap()));
    seeds.push(("synth_val.json", std::fs::read(&sum.val_ann).unwrap()));
    save_seeds("coco_json", &seeds);
}

#[test]
fn corpus_replays_without_panic() {
    if write_seeds() {
        regenerate_seeds();
    }
    let mut strict_ok = 0;
    for (path, bytes) in committed_inputs("coco_json") {
        eprintln!("{}", path.display());
        harness::run(&bytes);
        strict_ok += usize::from(
            read_coco(&path, &ReadOptions::default(), &BadSampleLog::default()).is_ok(),
        );
    }
    // The seeds reach the success path, not only the error paths.
    assert!(strict_ok >= 3, "only {strict_ok} seeds read without error");
}

/// A number for a bbox or area: ordinary, on the border, huge, tiny, negative.
fn num() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-5i32..70).prop_map(Value::from),
        3 => (-5.0f64..70.0).prop_map(Value::from),
        1 => prop::sample::select(vec![0.0, -0.0, 0.5, 1.0, 1e308, -1e308, 5e-324, 4294967296.0])
            .prop_map(Value::from),
    ]
}

fn instance_file() -> impl Strategy<Value = Value> {
    // Image ids are the position in the list, or (one in ten) the one before: a repeat.
    let image = (
        0u32..64,
        0u32..64,
        "[a-z]{0,3}\\.(png|jpg)",
        prop::bool::weighted(0.1),
    );
    let ann = (
        0u64..20,
        0u64..5,
        0u64..5,
        prop::collection::vec(num(), 4),
        prop::option::of(num()),
        0u8..3,
        0u8..3,
    )
        .prop_map(|(id, image_id, category_id, bbox, area, iscrowd, ignore)| {
            let mut a = json!({"id": id, "image_id": image_id, "category_id": category_id,
                "bbox": bbox, "iscrowd": iscrowd, "ignore": ignore});
            if let Some(area) = area {
                a["area"] = area;
            }
            a
        });
    let cat = (
        0u64..5,
        prop::sample::select(vec!["circle", "square", "star", ""]),
    )
        .prop_map(|(id, name)| json!({"id": id, "name": name}));
    (
        prop::collection::vec(image, 0..5),
        prop::collection::vec(ann, 0..12),
        prop::collection::vec(cat, 0..5),
    )
        .prop_map(|(images, anns, cats)| {
            let images: Vec<Value> = images
                .into_iter()
                .enumerate()
                .map(|(i, (w, h, f, repeat))| {
                    let id = if repeat { i.saturating_sub(1) } else { i };
                    json!({"id": id, "file_name": f, "width": w, "height": h})
                })
                .collect();
            json!({"images": images, "annotations": anns, "categories": cats})
        })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn mutated_corpus_never_panics(pick in any::<prop::sample::Index>(), e in edits()) {
        let seeds = corpus("coco_json");
        let (_, seed) = &seeds[pick.index(seeds.len())];
        harness::run(&mutate(seed, &e));
    }

    #[test]
    fn generated_instance_files_hold(doc in instance_file()) {
        harness::run(&serde_json::to_vec(&doc).unwrap());
    }
}
