//! mmdetection's `ResNet` (pytorch or caffe style) on the graph: stem (7×7/2 conv, norm, ReLU,
//! 3×3/2 max-pool) and `num_stages` stages of basic blocks (depth 18/34) or bottlenecks
//! (50/101/152), `frozen_stages`, `norm_eval`, `zero_init_residual`, `out_indices`.

use super::layers::{Layers, kaiming_fan_out};
use crate::graph::{GraphError, NodeId};
use crate::model::config::{ModelConfigError, NormConfig, ResNetConfig, ResNetStyle};

/// Blocks per stage and whether they are bottlenecks, for a depth.
pub fn arch(depth: usize) -> Option<(bool, [usize; 4])> {
    Some(match depth {
        18 => (false, [2, 2, 2, 2]),
        34 => (false, [3, 4, 6, 3]),
        50 => (true, [3, 4, 6, 3]),
        101 => (true, [3, 4, 23, 3]),
        152 => (true, [3, 8, 36, 3]),
        _ => return None,
    })
}

/// Output channels of each stage (`base · 2^i · expansion`).
pub fn stage_channels(cfg: &ResNetConfig) -> Option<Vec<usize>> {
    let (bottleneck, _) = arch(cfg.depth)?;
    let exp = if bottleneck { 4 } else { 1 };
    Some(
        (0..cfg.num_stages)
            .map(|i| cfg.base_channels * (1 << i) * exp)
            .collect(),
    )
}

/// Validation of what the graph cannot express.
pub fn validate(cfg: &ResNetConfig) -> Result<(), ModelConfigError> {
    if arch(cfg.depth).is_none() {
        let msg = format!("depth {} is not one of 18, 34, 50, 101, 152", cfg.depth);
        return Err(ModelConfigError::at("depth", msg));
    }
    if !(1..=4).contains(&cfg.num_stages) || cfg.strides.len() < cfg.num_stages {
        let msg = format!(
            "num_stages {} needs that many strides, {} given",
            cfg.num_stages,
            cfg.strides.len()
        );
        return Err(ModelConfigError::at("num_stages", msg).also("strides"));
    }
    if let Some(&i) = cfg.out_indices.iter().find(|&&i| i >= cfg.num_stages) {
        let msg = format!(
            "out_indices has {i}, but the stages of a {}-stage ResNet are numbered 0 to {}",
            cfg.num_stages,
            cfg.num_stages - 1
        );
        return Err(ModelConfigError::at("out_indices", msg).also("num_stages"));
    }
    if cfg.norm_cfg.is_none() {
        let msg = "norm_cfg = null is not supported for resnet";
        return Err(ModelConfigError::at("norm_cfg", msg));
    }
    Ok(())
}

/// Build the backbone on `x [N, in_channels, H, W]`; returns the outputs of `out_indices`.
pub fn build_resnet(
    l: &mut Layers<'_>,
    cfg: &ResNetConfig,
    x: NodeId,
) -> Result<Vec<NodeId>, GraphError> {
    validate(cfg).map_err(|e| GraphError::Invalid(e.under("backbone").to_string()))?;
    let (bottleneck, blocks) = arch(cfg.depth).expect("validated");
    let norm = cfg.norm_cfg.clone().expect("validated");
    let p = "backbone";
    let frozen = |stage: i64| cfg.frozen_stages >= stage;
    l.b.push_scope("backbone");
    let y = l.conv(
        &format!("{p}.conv1"),
        x,
        cfg.base_channels,
        7,
        2,
        3,
        false,
        kaiming_fan_out(),
        frozen(0),
    )?;
    let y = l.norm(&format!("{p}.bn1"), y, &norm, cfg.norm_eval, frozen(0), 1.0)?;
    let y = l.b.relu(y)?;
    let mut y = l.b.max_pool2d(y, [3, 3], [2, 2], [1, 1])?;
    let mut outs = Vec::new();
    for (i, &nblocks) in blocks.iter().enumerate().take(cfg.num_stages) {
        let planes = cfg.base_channels << i;
        let fz = frozen(i as i64 + 1);
        for j in 0..nblocks {
            let name = format!("{p}.layer{}.{j}", i + 1);
            let stride = if j == 0 { cfg.strides[i] } else { 1 };
            let blk = Block {
                cfg,
                norm: &norm,
                planes,
                stride,
                frozen: fz,
            };
            y = if bottleneck {
                blk.bottleneck(l, &name, y)?
            } else {
                blk.basic(l, &name, y)?
            };
        }
        if cfg.out_indices.contains(&i) {
            outs.push(y);
        }
    }
    l.b.pop_scope();
    Ok(outs)
}

struct Block<'c> {
    cfg: &'c ResNetConfig,
    norm: &'c NormConfig,
    planes: usize,
    stride: usize,
    frozen: bool,
}

impl Block<'_> {
    fn conv(
        &self,
        l: &mut Layers<'_>,
        name: &str,
        x: NodeId,
        co: usize,
        k: usize,
        stride: usize,
    ) -> Result<NodeId, GraphError> {
        l.conv(
            name,
            x,
            co,
            k,
            stride,
            k / 2,
            false,
            kaiming_fan_out(),
            self.frozen,
        )
    }

    fn bn(
        &self,
        l: &mut Layers<'_>,
        name: &str,
        x: NodeId,
        last: bool,
    ) -> Result<NodeId, GraphError> {
        let g0 = if last && self.cfg.zero_init_residual {
            0.0
        } else {
            1.0
        };
        l.norm(name, x, self.norm, self.cfg.norm_eval, self.frozen, g0)
    }

    /// Identity, or `downsample.0` (1×1 conv with the block's stride) + `downsample.1` (norm).
    fn shortcut(
        &self,
        l: &mut Layers<'_>,
        name: &str,
        x: NodeId,
        co: usize,
    ) -> Result<NodeId, GraphError> {
        let ci = l.b.shape(x)[1];
        if self.stride == 1 && ci == co {
            return Ok(x);
        }
        let d = self.conv(l, &format!("{name}.downsample.0"), x, co, 1, self.stride)?;
        self.bn(l, &format!("{name}.downsample.1"), d, false)
    }

    fn basic(&self, l: &mut Layers<'_>, name: &str, x: NodeId) -> Result<NodeId, GraphError> {
        let p = self.planes;
        let y = self.conv(l, &format!("{name}.conv1"), x, p, 3, self.stride)?;
        let y = self.bn(l, &format!("{name}.bn1"), y, false)?;
        let y = l.b.relu(y)?;
        let y = self.conv(l, &format!("{name}.conv2"), y, p, 3, 1)?;
        let y = self.bn(l, &format!("{name}.bn2"), y, true)?;
        let s = self.shortcut(l, name, x, p)?;
        let y = l.b.add(y, s)?;
        l.b.relu(y)
    }

    fn bottleneck(&self, l: &mut Layers<'_>, name: &str, x: NodeId) -> Result<NodeId, GraphError> {
        let p = self.planes;
        let (s1, s2) = match self.cfg.style {
            ResNetStyle::Pytorch => (1, self.stride),
            ResNetStyle::Caffe => (self.stride, 1),
        };
        let y = self.conv(l, &format!("{name}.conv1"), x, p, 1, s1)?;
        let y = self.bn(l, &format!("{name}.bn1"), y, false)?;
        let y = l.b.relu(y)?;
        let y = self.conv(l, &format!("{name}.conv2"), y, p, 3, s2)?;
        let y = self.bn(l, &format!("{name}.bn2"), y, false)?;
        let y = l.b.relu(y)?;
        let y = self.conv(l, &format!("{name}.conv3"), y, p * 4, 1, 1)?;
        let y = self.bn(l, &format!("{name}.bn3"), y, true)?;
        let s = self.shortcut(l, name, x, p * 4)?;
        let y = l.b.add(y, s)?;
        l.b.relu(y)
    }
}
