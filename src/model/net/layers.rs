//! Layer helpers over [`GraphBuilder`]: conv (+bias), batch/group/sync batch norm with
//! mmdetection's train/eval/frozen semantics, `ConvModule` (conv → norm → ReLU).

use crate::graph::{BnMode, GraphBuilder, GraphError, Init, NodeId};
use crate::ir::op::Conv2dAttrs;
use crate::model::config::NormConfig;

/// A graph builder plus whether the graph trains (batch statistics, trainable parameters).
pub struct Layers<'a> {
    pub b: &'a mut GraphBuilder,
    /// Training graph (false: inference; every norm uses running statistics).
    pub train: bool,
    /// Ranks of the data-parallel run the graph trains in (sync batch norm spans them).
    pub ranks: usize,
}

impl Layers<'_> {
    /// A parameter, frozen when `frozen`. Eval graphs declare the same trainable flags as train
    /// graphs (they have no backward pass), so both describe one parameter store.
    pub fn param(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        frozen: bool,
    ) -> Result<NodeId, GraphError> {
        if frozen {
            self.b.param_frozen(name, shape, init)
        } else {
            self.b.param(name, shape, init)
        }
    }

    /// `k×k` convolution `name.weight [co, ci, k, k]` (+ `name.bias`), padding `pad`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        x: NodeId,
        co: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
        init: Init,
        frozen: bool,
    ) -> Result<NodeId, GraphError> {
        let ci = self.b.shape(x).get(1).copied().unwrap_or(0);
        let w = self.param(&format!("{name}.weight"), &[co, ci, k, k], init, frozen)?;
        let bias = if bias {
            Some(self.param(&format!("{name}.bias"), &[co], Init::Constant(0.0), frozen)?)
        } else {
            None
        };
        let attrs = Conv2dAttrs {
            stride: [stride; 2],
            padding: [pad; 2],
            ..Default::default()
        };
        self.b.conv2d(x, w, bias, attrs)
    }

    /// A norm layer `name` over `x`. BatchNorm uses batch statistics only when training and
    /// neither `norm_eval` nor `frozen` holds (mmdetection's `train()` override); its affine
    /// parameters train unless frozen or `requires_grad = false`. `gamma0` is the initial
    /// weight (0 for `zero_init_residual`).
    pub fn norm(
        &mut self,
        name: &str,
        x: NodeId,
        cfg: &NormConfig,
        norm_eval: bool,
        frozen: bool,
        gamma0: f64,
    ) -> Result<NodeId, GraphError> {
        let c = self.b.shape(x).get(1).copied().unwrap_or(0);
        match *cfg {
            NormConfig::BatchNorm {
                requires_grad,
                eps,
                momentum,
            }
            | NormConfig::SyncBatchNorm {
                requires_grad,
                eps,
                momentum,
            } => {
                let fz = frozen || !requires_grad;
                let g = self.param(&format!("{name}.weight"), &[c], Init::Constant(gamma0), fz)?;
                let be = self.param(&format!("{name}.bias"), &[c], Init::Constant(0.0), fz)?;
                let rm =
                    self.b
                        .buffer(&format!("{name}.running_mean"), &[c], Init::Constant(0.0))?;
                let rv =
                    self.b
                        .buffer(&format!("{name}.running_var"), &[c], Init::Constant(1.0))?;
                let sync = matches!(cfg, NormConfig::SyncBatchNorm { .. }) && self.ranks > 1;
                let mode = match (self.train && !norm_eval && !frozen, sync) {
                    (false, _) => BnMode::Eval,
                    (true, false) => BnMode::Train { momentum },
                    (true, true) => BnMode::SyncTrain {
                        momentum,
                        ranks: self.ranks,
                    },
                };
                self.b.batch_norm(x, g, be, rm, rv, mode, eps)
            }
            NormConfig::GroupNorm {
                num_groups,
                requires_grad,
                eps,
            } => {
                let fz = frozen || !requires_grad;
                let g = self.param(&format!("{name}.weight"), &[c], Init::Constant(gamma0), fz)?;
                let be = self.param(&format!("{name}.bias"), &[c], Init::Constant(0.0), fz)?;
                self.b.group_norm(x, num_groups, g, be, eps)
            }
        }
    }

    /// mmcv's `ConvModule`: `name.conv` (bias only without a norm), optional norm named `bn`
    /// or `gn` after its type, then ReLU when `relu`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_module(
        &mut self,
        name: &str,
        x: NodeId,
        co: usize,
        k: usize,
        stride: usize,
        norm: Option<&NormConfig>,
        relu: bool,
        init: Init,
    ) -> Result<NodeId, GraphError> {
        let y = self.conv(
            &format!("{name}.conv"),
            x,
            co,
            k,
            stride,
            k / 2,
            norm.is_none(),
            init,
            false,
        )?;
        let y = match norm {
            Some(n) => {
                let tag = match n {
                    NormConfig::BatchNorm { .. } | NormConfig::SyncBatchNorm { .. } => "bn",
                    NormConfig::GroupNorm { .. } => "gn",
                };
                self.norm(&format!("{name}.{tag}"), y, n, false, false, 1.0)?
            }
            None => y,
        };
        if relu { self.b.relu(y) } else { Ok(y) }
    }
}

/// mmcv `normal_init(std=0.01)`.
pub fn normal_001() -> Init {
    Init::Normal {
        mean: 0.0,
        std: 0.01,
    }
}

/// mmcv `kaiming_init(mode='fan_out', nonlinearity='relu')` (ResNet convs).
pub fn kaiming_fan_out() -> Init {
    Init::KaimingNormal {
        fan_out: true,
        a: 0.0,
    }
}

/// mmcv `xavier_init(distribution='uniform')` (FPN convs).
pub fn xavier_uniform() -> Init {
    Init::XavierUniform { gain: 1.0 }
}
