//! FLOPs of a graph as mmdetection's `tools/analysis_tools/get_flops.py` counts them (mmcv's
//! `get_model_complexity_info`): module forward hooks, a multiply-add counted once.
//!
//! - convolution: `kh·kw · Ci · Co/groups` per output position, plus `Co` per position for
//!   the bias;
//! - batch and group norm: the input's elements, twice when affine (ours always are);
//! - ReLU: the output's elements; max pooling: the input's elements;
//! - a linear layer (a matrix product): the input's elements times the output features (its
//!   bias not counted, as mmcv's `linear_flops_counter_hook`).
//!
//! mmcv counts modules only, so what mmdetection computes functionally — residual and FPN
//! additions, `F.interpolate` upsampling, FCOS's `Scale` and `exp` — counts nothing here
//! either.

use crate::graph::Graph;
use crate::ir::numel;
use crate::ir::op::{ConvOp, NormOp, Op, PoolOp, UnaryOp};

/// The graph's FLOPs by mmcv's rules (for the whole batch the graph was built for).
pub fn mmcv_flops(g: &Graph) -> u64 {
    let mut total: u64 = 0;
    for node in &g.nodes {
        let shape = |i: usize| g.shape(node.inputs[i]);
        let out = numel(&node.shape) as u64;
        total += match &node.op {
            Op::Conv(ConvOp::Conv2d(attrs)) => {
                let (x, w) = (shape(0), shape(1));
                let (ci, co, k) = (x[1] as u64, w[0] as u64, (w[2] * w[3]) as u64);
                let per_position = k * ci * (co / attrs.groups as u64);
                let positions = out / co.max(1);
                let bias = if node.inputs.len() > 2 { co } else { 0 };
                (per_position + bias) * positions
            }
            Op::Norm(NormOp::Apply { .. }) => 2 * numel(shape(0)) as u64,
            Op::Unary(UnaryOp::Relu) => out,
            Op::Pool(PoolOp::MaxPool2d { .. }) => numel(shape(0)) as u64,
            Op::Matmul(_) => {
                numel(shape(0)) as u64 * node.shape.last().copied().unwrap_or(0) as u64
            }
            _ => 0,
        };
    }
    total
}
