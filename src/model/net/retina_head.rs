//! mmdetection's `RetinaHead`: per level (weights shared across levels) a classification tower
//! and a regression tower of `stacked_convs` ConvModules (3×3, ReLU), then `retina_cls`
//! (`A·C` channels, bias initialised for prior probability 0.01) and `retina_reg` (`A·4`).

use super::layers::{Layers, normal_001};
use crate::graph::{GraphError, Init, NodeId};
use crate::ir::op::Conv2dAttrs;
use crate::model::config::{NormConfig, RetinaHeadConfig};

/// The classification and regression towers both dense heads share: `stacked_convs`
/// ConvModules (3×3, ReLU) each, named `bbox_head.{cls,reg}_convs.{i}` as in mmdetection.
pub(super) fn towers(
    l: &mut Layers<'_>,
    x: NodeId,
    in_channels: usize,
    stacked_convs: usize,
    feat_channels: usize,
    norm: Option<&NormConfig>,
) -> Result<(NodeId, NodeId), GraphError> {
    if l.b.shape(x).get(1) != Some(&in_channels) {
        return Err(GraphError::Invalid(format!(
            "bbox_head: in_channels = {in_channels} but the neck gives {:?}",
            l.b.shape(x)
        )));
    }
    let (mut c, mut r) = (x, x);
    for i in 0..stacked_convs {
        for (tower, y) in [("cls", &mut c), ("reg", &mut r)] {
            *y = l.conv_module(
                &format!("bbox_head.{tower}_convs.{i}"),
                *y,
                feat_channels,
                3,
                1,
                norm,
                true,
                normal_001(),
            )?;
        }
    }
    Ok((c, r))
}

/// Per-level `(cls [N, A·C, h, w], reg [N, A·4, h, w])`.
pub fn build_retina_head(
    l: &mut Layers<'_>,
    cfg: &RetinaHeadConfig,
    num_anchors: usize,
    feats: &[NodeId],
) -> Result<Vec<(NodeId, NodeId)>, GraphError> {
    let p = "bbox_head";
    l.b.push_scope("bbox_head");
    let norm = cfg.norm_cfg.as_ref();
    let mut out = Vec::with_capacity(feats.len());
    for &x in feats {
        let (c, r) = towers(
            l,
            x,
            cfg.in_channels,
            cfg.stacked_convs,
            cfg.feat_channels,
            norm,
        )?;
        let cls = head_conv(
            l,
            &format!("{p}.retina_cls"),
            c,
            num_anchors * cfg.num_classes,
            Init::PriorProb(0.01),
        )?;
        let reg = head_conv(
            l,
            &format!("{p}.retina_reg"),
            r,
            num_anchors * 4,
            Init::Constant(0.0),
        )?;
        out.push((cls, reg));
    }
    l.b.pop_scope();
    Ok(out)
}

/// A 3×3 output conv with `normal(0, 0.01)` weights and the given bias init.
pub(super) fn head_conv(
    l: &mut Layers<'_>,
    name: &str,
    x: NodeId,
    co: usize,
    bias: Init,
) -> Result<NodeId, GraphError> {
    let ci = l.b.shape(x)[1];
    let w = l.param(
        &format!("{name}.weight"),
        &[co, ci, 3, 3],
        normal_001(),
        false,
    )?;
    let b = l.param(&format!("{name}.bias"), &[co], bias, false)?;
    l.b.conv2d(
        x,
        w,
        Some(b),
        Conv2dAttrs {
            padding: [1, 1],
            ..Default::default()
        },
    )
}
