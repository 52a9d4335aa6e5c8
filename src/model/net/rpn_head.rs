//! mmdetection's `RPNHead`: per level (weights shared across levels) `rpn_conv` (3×3, ReLU),
//! then `rpn_cls` (1×1, `A` objectness logits) and `rpn_reg` (1×1, `A·4` deltas), every conv
//! initialised `normal(0, 0.01)` with zero bias (its `init_cfg`).

use super::layers::{Layers, normal_001};
use crate::graph::{GraphError, NodeId};
use crate::model::config::RpnHeadConfig;

/// Per-level `(cls [N, A, h, w], reg [N, A·4, h, w])`.
pub fn build_rpn_head(
    l: &mut Layers<'_>,
    cfg: &RpnHeadConfig,
    num_anchors: usize,
    feats: &[NodeId],
) -> Result<Vec<(NodeId, NodeId)>, GraphError> {
    l.b.push_scope("rpn_head");
    let mut out = Vec::with_capacity(feats.len());
    for &x in feats {
        if l.b.shape(x).get(1) != Some(&cfg.in_channels) {
            return Err(GraphError::Invalid(format!(
                "rpn_head: in_channels = {} but the neck gives {:?}",
                cfg.in_channels,
                l.b.shape(x)
            )));
        }
        let y = conv(l, "rpn_head.rpn_conv", x, cfg.feat_channels, 3)?;
        let y = l.b.relu(y)?;
        let cls = conv(l, "rpn_head.rpn_cls", y, num_anchors * cfg.num_classes, 1)?;
        let reg = conv(l, "rpn_head.rpn_reg", y, num_anchors * 4, 1)?;
        out.push((cls, reg));
    }
    l.b.pop_scope();
    Ok(out)
}

/// A `k×k` conv (padding `k / 2`) with bias, `normal(0, 0.01)` weights.
fn conv(
    l: &mut Layers<'_>,
    name: &str,
    x: NodeId,
    co: usize,
    k: usize,
) -> Result<NodeId, GraphError> {
    l.conv(name, x, co, k, 1, k / 2, true, normal_001(), false)
}
