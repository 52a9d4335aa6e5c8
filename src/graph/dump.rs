//! The stable text form of a graph: one line per node with its op, attributes, inputs, dtype,
//! shape and scope, then outputs, gradients and the memory plan. Meant to be snapshotted and
//! diffed between revisions.

use super::builder::Graph;
use super::memory::MemoryPlan;
use crate::ir::fmt_shape;
use crate::ir::op::*;
use std::fmt::Write;

fn attrs(op: &Op) -> String {
    match op {
        Op::Input { name } | Op::Param { name } => format!(" \"{name}\""),
        Op::Fill { value } => format!(" {value}"),
        Op::Unary(u) => match u {
            UnaryOp::Scale(f) => format!(" {f}"),
            UnaryOp::AddScalar(f) => format!(" {f}"),
            UnaryOp::Clamp { lo, hi } | UnaryOp::ClampGrad { lo, hi } => {
                format!(" lo={lo} hi={hi}")
            }
            UnaryOp::Cast(d) => format!(" to={d}"),
            _ => String::new(),
        },
        Op::Reduce(ReduceOp::Sum { axes, keepdim }) => format!(" axes={axes:?} keepdim={keepdim}"),
        Op::Layout(l) => match l {
            LayoutOp::Permute { perm } => format!(" perm={perm:?}"),
            LayoutOp::Slice { axis, start, end } => format!(" axis={axis} {start}..{end}"),
            LayoutOp::SlicePad { axis, start } => format!(" axis={axis} start={start}"),
            LayoutOp::Concat { axis } => format!(" axis={axis}"),
            _ => String::new(),
        },
        Op::Matmul(m) => format!(" ta={} tb={}", m.trans_a, m.trans_b),
        Op::Conv(ConvOp::Conv2d(a) | ConvOp::Conv2dGradInput(a) | ConvOp::Conv2dGradWeight(a)) => {
            format!(
                " stride={:?} pad={:?} dil={:?} groups={}",
                a.stride, a.padding, a.dilation, a.groups
            )
        }
        Op::Pool(
            PoolOp::MaxPool2d {
                kernel,
                stride,
                padding,
            }
            | PoolOp::MaxPool2dGrad {
                kernel,
                stride,
                padding,
            },
        ) => {
            format!(" k={kernel:?} s={stride:?} p={padding:?}")
        }
        Op::Pool(_) => String::new(),
        Op::Norm(n) => match n {
            NormOp::Stats(k) | NormOp::StatsGrad(k) => format!(" {}", kind(k)),
            NormOp::Apply { kind: k, eps }
            | NormOp::ApplyGradX { kind: k, eps }
            | NormOp::ApplyGradStats { kind: k, eps }
            | NormOp::ApplyGradAffine { kind: k, eps } => format!(" {} eps={eps}", kind(k)),
        },
        Op::Loss(LossOp::Forward(k)) => loss_attrs(k),
        Op::Loss(LossOp::Grad { kind, wrt }) => {
            format!(" {}{} wrt={wrt}", kind.name(), loss_attrs(kind))
        }
        Op::UpdateRunningStats {
            mean,
            var,
            momentum,
            count,
        } => {
            format!(" \"{mean}\" \"{var}\" momentum={momentum} count={count}")
        }
        Op::Fused(f) => format!(" {{{}}}", f.describe()),
        Op::Binary(_) | Op::AllReduceMean => String::new(),
    }
}

fn kind(k: &NormKind) -> String {
    match k {
        NormKind::Batch => "batch".into(),
        NormKind::Group(g) => format!("group={g}"),
    }
}

fn loss_attrs(k: &LossKind) -> String {
    match k {
        LossKind::SigmoidFocal { alpha, gamma } => format!(" alpha={alpha} gamma={gamma}"),
        LossKind::CrossEntropy {
            ignore_index,
            label_smoothing,
        } => {
            format!(" ignore_index={ignore_index} label_smoothing={label_smoothing}")
        }
        LossKind::SmoothL1 { beta } => format!(" beta={beta}"),
        LossKind::Iou { eps, .. } => format!(" eps={eps}"),
        LossKind::L1 | LossKind::BceWithLogits => String::new(),
    }
}

impl Graph {
    /// The stable text dump (nodes, outputs, gradients, memory plan).
    pub fn dump(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "graph: {} nodes, {} params ({} elements, {} trainable), {} inputs",
            self.nodes.len(),
            self.params.len(),
            self.num_params(),
            self.num_trainable(),
            self.inputs.len()
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let ins: Vec<String> = n.inputs.iter().map(|j| format!("%{}", j.0)).collect();
            let args = if ins.is_empty() {
                String::new()
            } else {
                format!("({})", ins.join(", "))
            };
            let scope = if n.scope.is_empty() {
                String::new()
            } else {
                format!("  @{}", n.scope)
            };
            let _ = writeln!(
                s,
                "%{i} = {}{}{} : {}{}{}",
                n.op.name(),
                args,
                attrs(&n.op),
                n.dtype,
                fmt_shape(&n.shape),
                scope
            );
        }
        for (name, id) in &self.outputs {
            let _ = writeln!(s, "output {name} = %{}", id.0);
        }
        for (name, id) in &self.grads {
            let _ = writeln!(s, "grad {name} = %{}", id.0);
        }
        let _ = writeln!(s, "{}", MemoryPlan::new(self).summary());
        s
    }
}
