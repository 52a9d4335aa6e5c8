//! The data section deserializes from the recipe's JSON tree with mmdetection's names, and
//! unknown keys are errors.

use crate::support::{TRANSFORMS, section, typed};
use mmrun::data::config::{FlipDirection, Scales};
use mmrun::data::{
    DataConfig, DatasetConfig, OnBadSample, Pipeline, SamplerConfig, TransformConfig,
};
use mmrun::registry::Ty;
use serde_json::json;

/// A `data` section written as a recipe would, typed (the registry fills what it leaves out).
fn data(v: serde_json::Value) -> Result<DataConfig, serde_json::Error> {
    typed(section("data"), v)
}

fn retinanet_data() -> serde_json::Value {
    json!({
        "samples_per_gpu": 2, "workers_per_gpu": 2,
        "sampler": {"type": "group_sampler"}, "on_bad_sample": "skip",
        "shape_buckets": [[800, 1344], [1344, 800]],
        "train": {"type": "coco_dataset", "ann_file": "a.json", "img_prefix": "img/",
            "filter_empty_gt": true, "min_size": 32, "classes": ["circle"],
            "pipeline": [
                {"type": "load_image"},
                {"type": "load_annotations", "with_bbox": true},
                {"type": "photometric_distortion", "brightness_delta": 32, "contrast_range": [0.5, 1.5],
                 "saturation_range": [0.5, 1.5], "hue_delta": 18},
                {"type": "random_crop", "crop_size": [0.5, 0.5], "crop_type": "relative_range", "allow_negative_crop": false},
                {"type": "resize", "scale": [[1333, 640], [1333, 800]], "multiscale_mode": "range", "keep_ratio": true},
                {"type": "random_flip", "prob": 0.5, "direction": ["horizontal", "vertical"]},
                {"type": "normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "to_rgb": true},
                {"type": "pad", "size_divisor": 32}
            ]},
        "val": {"type": "voc_dataset", "ann_file": "VOC2007/ImageSets/Main/test.txt", "img_prefix": "VOC2007/",
            "pipeline": [{"type": "load_image"}, {"type": "resize", "scale": [1000, 600]}], "test_mode": true}
    })
}

#[test]
fn mmdetection_style_data_section_deserializes_and_builds() {
    let cfg: DataConfig = data(retinanet_data()).unwrap();
    assert_eq!(cfg.sampler, SamplerConfig::GroupSampler { shuffle: true });
    assert_eq!(cfg.on_bad_sample, OnBadSample::Skip);
    let Some(DatasetConfig::CocoDataset(p)) = &cfg.train else {
        panic!("{:?}", cfg.train)
    };
    assert_eq!(p.classes.as_deref(), Some(&["circle".to_string()][..]));
    let TransformConfig::Resize(r) = &p.pipeline[4] else {
        panic!()
    };
    assert_eq!(
        r.scale,
        Some(Scales::Many(vec![[1333.0, 640.0], [1333.0, 800.0]]))
    );
    let TransformConfig::RandomFlip(f) = &p.pipeline[5] else {
        panic!()
    };
    assert_eq!(f.prob, 0.5);
    assert!(
        matches!(&f.direction, mmrun::data::config::Directions::Many(d) if d[1] == FlipDirection::Vertical)
    );
    let pipe = Pipeline::new(&p.pipeline).unwrap();
    assert_eq!(pipe.size_divisor(), Some(32));
    assert!(matches!(cfg.val, Some(DatasetConfig::VocDataset(_))));
    // Round trip through JSON.
    let back: DataConfig = serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn unknown_keys_and_types_are_errors_that_name_them() {
    let mut v = retinanet_data();
    v["train"]["pipeline"][4]["keep_ration"] = json!(true);
    let e = data(v).unwrap_err().to_string();
    assert!(e.contains("keep_ration"), "{e}");
    let mut v = retinanet_data();
    v["train"]["pipeline"][0]["type"] = json!("load_imag");
    let e = data(v).unwrap_err().to_string();
    assert!(e.contains("load_imag"), "{e}");
    let mut v = retinanet_data();
    v["sampler"] = json!({"type": "group_sampler", "shuffle": true, "seed": 1});
    assert!(data(v).is_err());
}

#[test]
fn inconsistent_pipelines_are_config_errors() {
    let build = |v: serde_json::Value| {
        Pipeline::new(&typed::<Vec<TransformConfig>>(&TRANSFORMS, v).unwrap())
    };
    let e = build(json!([{"type": "resize", "scale": [10, 10]}]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("load_image"), "{e}");
    let e =
        build(json!([{"type": "load_image"}, {"type": "pad", "size": [8, 8], "size_divisor": 32}]))
            .unwrap_err()
            .to_string();
    assert!(e.contains("exactly one"), "{e}");
    let e = build(json!([{"type": "load_image"}, {"type": "resize", "scale": [10, 10]}, {"type": "load_annotations"}])).unwrap_err().to_string();
    assert!(e.contains("before geometric"), "{e}");
    let e = build(
        json!([{"type": "load_image"}, {"type": "normalize", "mean": [0, 0, 0], "std": [1, 0, 1]}]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("zero"), "{e}");
}

/// Required parameters the registry leaves out of its defaults, filled with typical values.
fn required(name: &str) -> serde_json::Value {
    match name {
        "coco_dataset" | "shapes_dataset" | "voc_dataset" => {
            json!({"ann_file": "a.json", "img_prefix": "img/", "pipeline": [{"type": "load_image"}]})
        }
        "resize" => json!({"img_scale": [1333, 800]}),
        "normalize" => json!({"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}),
        "random_crop" => json!({"crop_size": [384, 600]}),
        // Both default to null; the pipeline needs exactly one.
        "pad" => json!({"size_divisor": 32}),
        _ => json!({}),
    }
}

fn with_required(c: &mmrun::registry::Component) -> serde_json::Value {
    let mut v = mmrun::registry::instance_defaults(c);
    if let (Some(m), serde_json::Value::Object(r)) = (v.as_object_mut(), required(c.name)) {
        m.extend(r);
    }
    v
}

/// The registry (what recipes are checked against) and these structs cannot drift: every
/// data component's defaults, plus typical required values, deserialize here.
#[test]
fn every_registry_data_component_deserializes_into_the_data_config() {
    use mmrun::registry::{Category, components};
    let mut seen = 0;
    for c in components() {
        let v = mmrun::registry::complete(&Ty::Comp(c.category), &with_required(c));
        let r = match c.category {
            Category::Transform => serde_json::from_value::<TransformConfig>(v.clone()).map(|t| {
                Pipeline::new(&[
                    typed(
                        &Ty::Comp(Category::Transform),
                        json!({"type": "load_image"}),
                    )
                    .unwrap(),
                    t,
                ])
                .unwrap();
            }),
            Category::Dataset => serde_json::from_value::<DatasetConfig>(v.clone()).map(drop),
            Category::DataSampler => serde_json::from_value::<SamplerConfig>(v.clone()).map(drop),
            _ => continue,
        };
        seen += 1;
        assert!(
            r.is_ok(),
            "registry component `{}` ({v}) does not deserialize: {}",
            c.name,
            r.unwrap_err()
        );
    }
    assert!(seen >= 10, "{seen} data components");
    // The section itself, with its defaults.
    let cfg = data(json!({})).unwrap();
    assert_eq!(cfg.sampler, SamplerConfig::GroupSampler { shuffle: true });
}
