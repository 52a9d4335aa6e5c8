//! The model config structs against the recipe front end: the canonical recipes and every
//! registry component's defaults deserialize into them.

use mmrun::model::config::{DetectorConfig, HeadConfig};
use mmrun::recipe::{CheckOptions, load};
use std::path::Path;

fn model_of(recipe: &str) -> DetectorConfig {
    let opts = CheckOptions {
        no_fs: true,
        ..Default::default()
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(recipe);
    let r = load(&path, &[], &opts).unwrap_or_else(|e| panic!("{e}"));
    DetectorConfig::from_value(&r.config["model"]).unwrap_or_else(|e| panic!("{recipe}: {e}"))
}

#[test]
fn canonical_recipes_deserialize() {
    let m = model_of("retinanet_r50_fpn_1x_coco.recipe");
    let HeadConfig::RetinaHead(h) = &m.parts().bbox_head else {
        panic!("retina head")
    };
    assert_eq!(h.num_classes, 80);
    assert_eq!(h.anchors().octave_base_scale, Some(4.0));
    let m = model_of("fcos_r50_fpn_gn-head_1x_coco.recipe");
    let HeadConfig::FcosHead(h) = &m.parts().bbox_head else {
        panic!("fcos head")
    };
    assert_eq!(h.regress_ranges().len(), 5);
}
