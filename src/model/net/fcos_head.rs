//! mmdetection's `FCOSHead`: classification and regression towers of ConvModules (GN by
//! default, no conv bias then), `conv_cls`, `conv_reg` scaled by a learnable per-level
//! `scales.{l}.scale` then `exp` (or ReLU with `norm_on_bbox`), and `conv_centerness` on the
//! classification tower (or the regression tower with `centerness_on_reg`).

use super::layers::Layers;
use super::retina_head::{head_conv, towers};
use crate::graph::{GraphError, Init, NodeId};
use crate::model::config::FcosHeadConfig;

/// Per level: `cls [N, C, h, w]`, `reg [N, 4, h, w]` (distances after scale and exp/ReLU, in
/// units of the stride when `norm_on_bbox`), `centerness [N, 1, h, w]` logits.
pub struct FcosLevel {
    pub cls: NodeId,
    pub reg: NodeId,
    pub centerness: NodeId,
}

/// Build the head over the neck's levels.
pub fn build_fcos_head(
    l: &mut Layers<'_>,
    cfg: &FcosHeadConfig,
    feats: &[NodeId],
) -> Result<Vec<FcosLevel>, GraphError> {
    let p = "bbox_head";
    if feats.len() != cfg.strides.len() {
        return Err(GraphError::Invalid(format!(
            "bbox_head: {} strides for {} neck levels",
            cfg.strides.len(),
            feats.len()
        )));
    }
    l.b.push_scope("bbox_head");
    let norm = cfg.norm_cfg.as_ref();
    let mut out = Vec::with_capacity(feats.len());
    for (lvl, &x) in feats.iter().enumerate() {
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
            &format!("{p}.conv_cls"),
            c,
            cfg.num_classes,
            Init::PriorProb(0.01),
        )?;
        let reg = head_conv(l, &format!("{p}.conv_reg"), r, 4, Init::Constant(0.0))?;
        // A 0-d tensor, as mmcv's `Scale` (`nn.Parameter(torch.tensor(1.0))`), so mmdetection
        // FCOS checkpoints load without a shape mismatch.
        let scale = l.param(
            &format!("{p}.scales.{lvl}.scale"),
            &[],
            Init::Constant(1.0),
            false,
        )?;
        let reg = l.b.mul(reg, scale)?;
        let reg = if cfg.norm_on_bbox {
            l.b.relu(reg)?
        } else {
            l.b.exp(reg)?
        };
        let src = if cfg.centerness_on_reg { r } else { c };
        let centerness = head_conv(
            l,
            &format!("{p}.conv_centerness"),
            src,
            1,
            Init::Constant(0.0),
        )?;
        out.push(FcosLevel {
            cls,
            reg,
            centerness,
        });
    }
    l.b.pop_scope();
    Ok(out)
}
