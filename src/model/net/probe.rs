//! The shapes a detector's parts produce, found by building their graphs (nothing runs).
//! `plan` compares them between parts, so the channels and strides that must agree from
//! backbone through neck to head are read off the builders that make the train graph, not
//! recomputed by formulas of their own.

use super::layers::Layers;
use super::{build_fpn, build_resnet};
use crate::graph::{GraphBuilder, NodeId};
use crate::ir::DType;
use crate::model::config::{BackboneConfig, ModelConfigError, NeckConfig};

/// The backbone's own settings, before anything is built: the error names the setting
/// (`backbone.out_indices`).
pub fn check_backbone(backbone: &BackboneConfig) -> Result<(), ModelConfigError> {
    let BackboneConfig::Resnet(bb) = backbone;
    super::resnet::validate(bb).map_err(|e| e.under("backbone"))
}

/// The neck's own level range, before anything is built (`neck.start_level`).
pub fn check_neck(neck: &NeckConfig) -> Result<(), ModelConfigError> {
    let NeckConfig::Fpn(fpn) = neck;
    super::fpn::end_level(fpn)
        .map(|_| ())
        .map_err(|e| e.under("neck"))
}

/// One feature map a part outputs, for one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureMap {
    pub channels: usize,
    /// The input side over this map's side (rounded), along the height.
    pub stride: usize,
    pub hw: (usize, usize),
}

fn maps(l: &Layers<'_>, nodes: &[NodeId], input_h: usize) -> Vec<FeatureMap> {
    (nodes.iter())
        .map(|&x| {
            let s = l.b.shape(x);
            FeatureMap {
                channels: s[1],
                stride: (input_h as f64 / s[2].max(1) as f64).round() as usize,
                hw: (s[2], s[3]),
            }
        })
        .collect()
}

/// The backbone's outputs for one image padded to `hw`, or why it cannot be built.
pub fn backbone_outputs(
    backbone: &BackboneConfig,
    hw: (usize, usize),
) -> Result<Vec<FeatureMap>, String> {
    let BackboneConfig::Resnet(bb) = backbone;
    let mut b = GraphBuilder::new(DType::F32);
    let img = (b.input("img", &[1, bb.in_channels, hw.0, hw.1], DType::F32))
        .map_err(|e| e.to_string())?;
    let mut l = Layers {
        b: &mut b,
        train: false,
        ranks: 1,
    };
    let feats = build_resnet(&mut l, bb, img).map_err(|e| e.to_string())?;
    Ok(maps(&l, &feats, hw.0))
}

/// The neck's levels over inputs of its own `in_channels` at the sizes of the backbone's
/// outputs (so its level strides are known even when the channels disagree), for an input
/// of height `input_h`; or why it cannot be built.
pub fn neck_levels(
    neck: &NeckConfig,
    backbone: &[FeatureMap],
    input_h: usize,
) -> Result<Vec<FeatureMap>, String> {
    let NeckConfig::Fpn(fpn) = neck;
    if fpn.in_channels.len() != backbone.len() {
        return Err(format!(
            "the neck takes {} inputs but the backbone gives {}",
            fpn.in_channels.len(),
            backbone.len()
        ));
    }
    let mut b = GraphBuilder::new(DType::F32);
    let mut inputs = Vec::with_capacity(backbone.len());
    for (i, (m, &c)) in backbone.iter().zip(&fpn.in_channels).enumerate() {
        let x = b.input(&format!("feat{i}"), &[1, c, m.hw.0, m.hw.1], DType::F32);
        inputs.push(x.map_err(|e| e.to_string())?);
    }
    let mut l = Layers {
        b: &mut b,
        train: false,
        ranks: 1,
    };
    let levels = build_fpn(&mut l, fpn, &inputs).map_err(|e| e.to_string())?;
    Ok(maps(&l, &levels, input_h))
}

/// Whether `depth` is a ResNet this build has.
pub fn known_depth(depth: usize) -> bool {
    super::resnet::arch(depth).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component as the checker leaves it: the registry's defaults, then `set`.
    fn component<T: serde::de::DeserializeOwned>(name: &str, set: serde_json::Value) -> T {
        let c = crate::registry::components()
            .find(|c| c.name == name)
            .unwrap();
        let mut v = crate::registry::instance_defaults(c);
        for (k, x) in set.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn resnet_and_fpn_shapes_match_torchvision_and_mmdetection() {
        // torchvision's resnet50 layer1..4 output 256, 512, 1024, 2048 channels; resnet18
        // 64..512; strides 4, 8, 16, 32.
        let r50: BackboneConfig = component("resnet", serde_json::json!({"depth": 50}));
        let out = backbone_outputs(&r50, (256, 256)).unwrap();
        let chans: Vec<usize> = out.iter().map(|m| m.channels).collect();
        let strides: Vec<usize> = out.iter().map(|m| m.stride).collect();
        assert_eq!(chans, [256, 512, 1024, 2048]);
        assert_eq!(strides, [4, 8, 16, 32]);
        let r18: BackboneConfig = component(
            "resnet",
            serde_json::json!({"depth": 18, "out_indices": [1, 3]}),
        );
        let chans: Vec<usize> = (backbone_outputs(&r18, (256, 256)).unwrap().iter())
            .map(|m| m.channels)
            .collect();
        assert_eq!(chans, [128, 512]);
        // RetinaNet: C3..C5 from start_level 1, two extra levels: P3..P7.
        let fpn: NeckConfig = component(
            "fpn",
            serde_json::json!({"in_channels": [256, 512, 1024, 2048], "out_channels": 256,
                "start_level": 1, "add_extra_convs": "on_input", "num_outs": 5}),
        );
        let levels = neck_levels(&fpn, &out, 256).unwrap();
        let strides: Vec<usize> = levels.iter().map(|m| m.stride).collect();
        assert_eq!(strides, [8, 16, 32, 64, 128]);
        assert!(levels.iter().all(|m| m.channels == 256));
    }
}
