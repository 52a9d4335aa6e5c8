//! Builder methods for the neural-network layers: convolution, pooling, resampling and
//! normalisation (batch norm in train/eval mode, group norm).

use super::builder::{GraphBuilder, NodeId};
use super::error::GraphError;
use crate::ir::conv_out_size;
use crate::ir::op::*;

/// How a batch norm layer computes its statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BnMode {
    /// Batch statistics; running buffers updated with `momentum` (PyTorch convention:
    /// `running = (1 - momentum) * running + momentum * batch`, unbiased variance).
    Train { momentum: f64 },
    /// Batch statistics of the whole global batch of a data-parallel run of `ranks` ranks
    /// (PyTorch's `SyncBatchNorm`): each rank's mean and biased variance are combined over the
    /// ranks (equal counts: `mean = avg(mean_r)`, `var = avg(var_r) + avg(mean_r²) − mean²`)
    /// before use; the running buffers count `ranks` times the elements.
    SyncTrain { momentum: f64, ranks: usize },
    /// Running statistics (eval, or training with mmdet's `norm_eval=True`); gradients still
    /// reach gamma and beta when they are trainable.
    Eval,
}

impl GraphBuilder {
    /// 2-D convolution of `x [N,Ci,H,W]` with `w [Co,Ci/groups,kh,kw]` and optional `bias [Co]`.
    pub fn conv2d(
        &mut self,
        x: NodeId,
        w: NodeId,
        bias: Option<NodeId>,
        attrs: Conv2dAttrs,
    ) -> Result<NodeId, GraphError> {
        let mut ids = vec![x, w];
        ids.extend(bias);
        if let Some(half) = self.autocast_for(&ids) {
            return self.in_half(half, &ids, |g, h| {
                g.conv2d(h[0], h[1], h.get(2).copied(), attrs)
            });
        }
        let dt = self.require_float("conv2d", &ids)?;
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        if xs.len() != 4 || ws.len() != 4 {
            return Err(self.err(
                "conv2d",
                "expected x [N,C,H,W] and weight [Co,Ci/groups,kh,kw]",
                &ids,
            ));
        }
        let g = attrs.groups;
        if g == 0 || xs[1] % g != 0 || ws[0] % g != 0 || ws[1] * g != xs[1] {
            return Err(self.err(
                "conv2d",
                format!(
                    "{} input channels do not match weight {:?} with groups={g}",
                    xs[1], ws
                ),
                &ids,
            ));
        }
        if let Some(b) = bias
            && self.shape(b) != [ws[0]]
        {
            return Err(self.err("conv2d", format!("bias must be [{}]", ws[0]), &ids));
        }
        let oh = conv_out_size(
            xs[2],
            ws[2],
            attrs.stride[0],
            attrs.padding[0],
            attrs.dilation[0],
        );
        let ow = conv_out_size(
            xs[3],
            ws[3],
            attrs.stride[1],
            attrs.padding[1],
            attrs.dilation[1],
        );
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(self.err(
                "conv2d",
                format!("kernel larger than padded input ({attrs:?})"),
                &ids,
            ));
        };
        Ok(self.push(
            Op::Conv(ConvOp::Conv2d(attrs)),
            ids,
            vec![xs[0], ws[0], oh, ow],
            dt,
        ))
    }

    /// Max pooling over `x [N,C,H,W]` (floor mode).
    pub fn max_pool2d(
        &mut self,
        x: NodeId,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<NodeId, GraphError> {
        let dt = self.require_float("max_pool2d", &[x])?;
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 {
            return Err(self.err("max_pool2d", "expected [N,C,H,W]", &[x]));
        }
        if padding[0] * 2 > kernel[0] || padding[1] * 2 > kernel[1] {
            return Err(self.err(
                "max_pool2d",
                "padding must be at most half the kernel",
                &[x],
            ));
        }
        let oh = conv_out_size(xs[2], kernel[0], stride[0], padding[0], 1);
        let ow = conv_out_size(xs[3], kernel[1], stride[1], padding[1], 1);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(self.err("max_pool2d", "window larger than padded input", &[x]));
        };
        let op = PoolOp::MaxPool2d {
            kernel,
            stride,
            padding,
        };
        Ok(self.push(Op::Pool(op), vec![x], vec![xs[0], xs[1], oh, ow], dt))
    }

    /// Nearest-neighbour resize of `x [N,C,H,W]` to `size` (FPN's top-down path).
    pub fn upsample_nearest(&mut self, x: NodeId, size: [usize; 2]) -> Result<NodeId, GraphError> {
        let dt = self.require_float("upsample_nearest", &[x])?;
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 || size[0] == 0 || size[1] == 0 {
            return Err(self.err(
                "upsample_nearest",
                format!("expected [N,C,H,W] and a positive size, got {size:?}"),
                &[x],
            ));
        }
        Ok(self.push(
            Op::Pool(PoolOp::UpsampleNearest),
            vec![x],
            vec![xs[0], xs[1], size[0], size[1]],
            dt,
        ))
    }

    /// The element-wise mean of `x` over the ranks of a data-parallel run (`x` itself in one
    /// process).
    pub fn all_reduce_mean(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        let dt = self.require_float("all_reduce_mean", &[x])?;
        let s = self.shape(x).to_vec();
        Ok(self.push(Op::AllReduceMean, vec![x], s, dt))
    }

    /// Batch statistics `[mean; biased var]` (`[2, c]`) of equal-sized per-rank batches
    /// combined over the ranks: `[avg(mean); avg(var) + avg(mean²) − avg(mean)²]`.
    fn stats_over_ranks(&mut self, stats: NodeId, c: usize) -> Result<NodeId, GraphError> {
        let mean = self.slice(stats, 0, 0, 1)?;
        let var = self.slice(stats, 0, 1, 2)?;
        let sq = self.mul(mean, mean)?;
        let rows = self.concat(&[mean, var, sq], 0)?;
        let avg = self.all_reduce_mean(rows)?;
        let mean = self.slice(avg, 0, 0, 1)?;
        let var = self.slice(avg, 0, 1, 2)?;
        let sq_avg = self.slice(avg, 0, 2, 3)?;
        let mean_sq = self.mul(mean, mean)?;
        let spread = self.sub(sq_avg, mean_sq)?;
        let var = self.add(var, spread)?;
        debug_assert_eq!(self.shape(var), [1, c]);
        self.concat(&[mean, var], 0)
    }

    /// RoIAlign of `x [N,C,H,W]` over `rois [K, 5]` (`[batch index, x1, y1, x2, y2]`, same
    /// float type): `[K, C, ph, pw]`. Differentiable in `x` only.
    pub fn roi_align(
        &mut self,
        x: NodeId,
        rois: NodeId,
        attrs: RoiAlignAttrs,
    ) -> Result<NodeId, GraphError> {
        let dt = self.require_float("roi_align", &[x, rois])?;
        let (xs, rs) = (self.shape(x).to_vec(), self.shape(rois).to_vec());
        if xs.len() != 4 || xs[2] == 0 || xs[3] == 0 {
            return Err(self.err(
                "roi_align",
                format!("expected x [N,C,H,W], got {xs:?}"),
                &[x],
            ));
        }
        if rs.len() != 2 || rs[1] != 5 {
            return Err(self.err(
                "roi_align",
                format!("expected rois [K, 5], got {rs:?}"),
                &[rois],
            ));
        }
        let [ph, pw] = attrs.output;
        if ph == 0 || pw == 0 || !(attrs.spatial_scale > 0.0 && attrs.spatial_scale.is_finite()) {
            return Err(self.err(
                "roi_align",
                format!("needs a positive output size and spatial scale, got {attrs:?}"),
                &[x],
            ));
        }
        Ok(self.push(
            Op::Pool(PoolOp::RoiAlign(attrs)),
            vec![x, rois],
            vec![rs[0], xs[1], ph, pw],
            dt,
        ))
    }

    fn check_affine(
        &self,
        op: &'static str,
        x: NodeId,
        gamma: NodeId,
        beta: NodeId,
    ) -> Result<usize, GraphError> {
        let xs = self.shape(x);
        if xs.len() != 4 {
            return Err(self.err(op, "expected x [N,C,H,W]", &[x, gamma, beta]));
        }
        let c = xs[1];
        if self.shape(gamma) != [c] || self.shape(beta) != [c] {
            return Err(self.err(
                op,
                format!("gamma and beta must be [{c}]"),
                &[x, gamma, beta],
            ));
        }
        Ok(c)
    }

    /// Batch normalisation of `x [N,C,H,W]`. `running_mean` and `running_var` must be buffer
    /// nodes (see [`GraphBuilder::buffer`]); in train mode they are updated after each run.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &mut self,
        x: NodeId,
        gamma: NodeId,
        beta: NodeId,
        running_mean: NodeId,
        running_var: NodeId,
        mode: BnMode,
        eps: f64,
    ) -> Result<NodeId, GraphError> {
        let ids = [x, gamma, beta, running_mean, running_var];
        let dt = self.require_float("batch_norm", &ids)?;
        let c = self.check_affine("batch_norm", x, gamma, beta)?;
        if self.shape(running_mean) != [c] || self.shape(running_var) != [c] {
            return Err(self.err("batch_norm", format!("running stats must be [{c}]"), &ids));
        }
        let kind = NormKind::Batch;
        let (momentum, ranks) = match mode {
            BnMode::Train { momentum } => (momentum, 1),
            BnMode::SyncTrain { momentum, ranks } => (momentum, ranks.max(1)),
            BnMode::Eval => (0.0, 0),
        };
        let stats = match mode {
            BnMode::Train { .. } | BnMode::SyncTrain { .. } => {
                let xs = self.shape(x).to_vec();
                let count = xs[0] * xs[2] * xs[3] * ranks;
                if count < 2 {
                    return Err(self.err(
                        "batch_norm",
                        "training needs more than one value per channel",
                        &[x],
                    ));
                }
                let names = [running_mean, running_var].map(|id| match &self.graph().node(id).op {
                    Op::Param { name } => Some(name.clone()),
                    _ => None,
                });
                let [Some(mean), Some(var)] = names else {
                    return Err(self.err("batch_norm", "running stats must be buffers", &ids));
                };
                let mut stats = self.push(Op::Norm(NormOp::Stats(kind)), vec![x], vec![2, c], dt);
                if ranks > 1 {
                    stats = self.stats_over_ranks(stats, c)?;
                }
                let eff = self.push(
                    Op::UpdateRunningStats {
                        mean,
                        var,
                        momentum,
                        count,
                    },
                    vec![stats],
                    vec![],
                    dt,
                );
                self.g.effects.push(eff);
                stats
            }
            BnMode::Eval => {
                let m = self.reshape(running_mean, &[1, c])?;
                let v = self.reshape(running_var, &[1, c])?;
                self.concat(&[m, v], 0)?
            }
        };
        Ok(self.push(
            Op::Norm(NormOp::Apply { kind, eps }),
            vec![x, stats, gamma, beta],
            self.shape(x).to_vec(),
            dt,
        ))
    }

    /// Group normalisation of `x [N,C,H,W]` with `groups` groups and per-channel affine.
    pub fn group_norm(
        &mut self,
        x: NodeId,
        groups: usize,
        gamma: NodeId,
        beta: NodeId,
        eps: f64,
    ) -> Result<NodeId, GraphError> {
        let dt = self.require_float("group_norm", &[x, gamma, beta])?;
        let c = self.check_affine("group_norm", x, gamma, beta)?;
        if groups == 0 || c % groups != 0 {
            return Err(self.err(
                "group_norm",
                format!("{c} channels do not split into {groups} groups"),
                &[x],
            ));
        }
        let kind = NormKind::Group(groups);
        let n = self.shape(x)[0];
        let stats = self.push(
            Op::Norm(NormOp::Stats(kind)),
            vec![x],
            vec![2, n * groups],
            dt,
        );
        Ok(self.push(
            Op::Norm(NormOp::Apply { kind, eps }),
            vec![x, stats, gamma, beta],
            self.shape(x).to_vec(),
            dt,
        ))
    }
}
