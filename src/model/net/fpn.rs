//! mmdetection's `FPN`: 1×1 laterals on backbone levels `start_level..backbone_end_level`,
//! top-down nearest upsampling (to the lower level's size) and addition, 3×3 output convs,
//! then extra levels up to `num_outs` by max-pool or stride-2 3×3 convs on the input, the last
//! lateral, or the last output (`add_extra_convs`), optionally after a ReLU.

use super::layers::{Layers, xavier_uniform};
use crate::graph::{GraphError, NodeId};
use crate::model::config::{ExtraConvs, FpnConfig, ModelConfigError};

/// `backbone_end_level` as mmdetection computes it, or the setting that makes the config
/// invalid.
pub fn end_level(cfg: &FpnConfig) -> Result<usize, ModelConfigError> {
    let n = cfg.in_channels.len();
    let end = if cfg.end_level == -1 || cfg.end_level == n as i64 - 1 {
        n
    } else if cfg.end_level >= 0 && (cfg.end_level as usize) < n {
        cfg.end_level as usize + 1
    } else {
        let msg = format!("end_level {} outside the {n} inputs", cfg.end_level);
        return Err(ModelConfigError::at("end_level", msg).also("in_channels"));
    };
    if cfg.start_level >= end {
        let msg = format!(
            "start_level {} is not below the end level {end}",
            cfg.start_level
        );
        return Err(ModelConfigError::at("start_level", msg).also("end_level"));
    }
    let used = end - cfg.start_level;
    if cfg.num_outs < used {
        let msg = format!(
            "num_outs {} is fewer than the {used} levels used",
            cfg.num_outs
        );
        let e = ModelConfigError::at("num_outs", msg).also("start_level");
        return Err(e.also("end_level"));
    }
    if cfg.end_level != -1 && cfg.num_outs != used {
        // The rule is end_level's: num_outs is free without it.
        let msg = format!("with end_level set, num_outs must be {used}");
        return Err(ModelConfigError::at("end_level", msg).also("num_outs"));
    }
    Ok(end)
}

/// Build the neck over backbone outputs `inputs`; returns `num_outs` levels.
pub fn build_fpn(
    l: &mut Layers<'_>,
    cfg: &FpnConfig,
    inputs: &[NodeId],
) -> Result<Vec<NodeId>, GraphError> {
    let invalid = |m: String| GraphError::Invalid(format!("neck: {m}"));
    let end = end_level(cfg).map_err(|e| invalid(e.msg))?;
    if inputs.len() != cfg.in_channels.len() {
        return Err(invalid(format!(
            "{} backbone outputs for {} in_channels",
            inputs.len(),
            cfg.in_channels.len()
        )));
    }
    for (i, (&x, &c)) in inputs.iter().zip(&cfg.in_channels).enumerate() {
        if l.b.shape(x).get(1) != Some(&c) {
            return Err(invalid(format!(
                "in_channels[{i}] = {c} but the backbone gives {:?}",
                l.b.shape(x)
            )));
        }
    }
    l.b.push_scope("neck");
    let norm = cfg.norm_cfg.as_ref();
    let oc = cfg.out_channels;
    let used = end - cfg.start_level;
    let mut lat = Vec::with_capacity(used);
    for (k, &x) in inputs[cfg.start_level..end].iter().enumerate() {
        lat.push(l.conv_module(
            &format!("neck.lateral_convs.{k}"),
            x,
            oc,
            1,
            1,
            norm,
            false,
            xavier_uniform(),
        )?);
    }
    for i in (1..used).rev() {
        let s = l.b.shape(lat[i - 1]).to_vec();
        let up = l.b.upsample_nearest(lat[i], [s[2], s[3]])?;
        lat[i - 1] = l.b.add(lat[i - 1], up)?;
    }
    let mut outs = Vec::with_capacity(cfg.num_outs);
    for (k, &x) in lat.iter().enumerate() {
        outs.push(l.conv_module(
            &format!("neck.fpn_convs.{k}"),
            x,
            oc,
            3,
            1,
            norm,
            false,
            xavier_uniform(),
        )?);
    }
    if cfg.num_outs > used {
        if cfg.add_extra_convs == ExtraConvs::None {
            for _ in used..cfg.num_outs {
                let last = *outs.last().expect("at least one level");
                outs.push(l.b.max_pool2d(last, [1, 1], [2, 2], [0, 0])?);
            }
        } else {
            let src = match cfg.add_extra_convs {
                ExtraConvs::OnInput => inputs[end - 1],
                ExtraConvs::OnLateral => *lat.last().expect("at least one level"),
                _ => *outs.last().expect("at least one level"),
            };
            outs.push(l.conv_module(
                &format!("neck.fpn_convs.{used}"),
                src,
                oc,
                3,
                2,
                norm,
                false,
                xavier_uniform(),
            )?);
            for k in used + 1..cfg.num_outs {
                let mut x = *outs.last().expect("at least one level");
                if cfg.relu_before_extra_convs {
                    x = l.b.relu(x)?;
                }
                outs.push(l.conv_module(
                    &format!("neck.fpn_convs.{k}"),
                    x,
                    oc,
                    3,
                    2,
                    norm,
                    false,
                    xavier_uniform(),
                )?);
            }
        }
    }
    l.b.pop_scope();
    Ok(outs)
}
