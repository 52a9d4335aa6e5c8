//! Reverse-mode autodiff: appends the backward pass to a forward graph, turning it into a step
//! graph whose `grads` list the gradient node of every trainable parameter. Contributions of a
//! value used several times (shared heads across FPN levels) are summed in the order the uses
//! were added, so the result is deterministic.

use super::builder::{GraphBuilder, NodeId};
use super::error::GraphError;
use crate::ir::numel;
use crate::ir::op::*;

impl GraphBuilder {
    /// Appends the gradient of the scalar `loss` w.r.t. every trainable parameter and records
    /// them in [`super::Graph::grads`] (parameters the loss does not reach get zeros).
    pub fn backward(&mut self, loss: NodeId) -> Result<(), GraphError> {
        if numel(self.shape(loss)) != 1 || !self.dtype(loss).is_float() {
            return Err(self.err("backward", "the loss must be a float scalar", &[loss]));
        }
        if !self.g.grads.is_empty() {
            return Err(GraphError::Invalid(
                "backward was already called on this graph".into(),
            ));
        }
        self.push_scope("backward");
        // Gradient ops take their forward op's dtypes; autocast must not re-cast them.
        let autocast = self.autocast.take();
        let result = self.append_backward(loss);
        self.autocast = autocast;
        result
    }

    fn append_backward(&mut self, loss: NodeId) -> Result<(), GraphError> {
        let n = loss.0 + 1;
        let mut requires = vec![false; n];
        for i in 0..n {
            let node = &self.g.nodes[i];
            requires[i] = match &node.op {
                Op::Param { name } => self.g.params.get(name).is_some_and(|p| p.trainable),
                Op::Input { .. } | Op::Fill { .. } | Op::UpdateRunningStats { .. } => false,
                Op::Loss(LossOp::Grad { .. }) => false,
                _ => node.dtype.is_float() && node.inputs.iter().any(|j| requires[j.0]),
            };
        }
        let mut grads: Vec<Option<NodeId>> = vec![None; n];
        if requires[loss.0] {
            let s = self.shape(loss).to_vec();
            grads[loss.0] = Some(self.fill(&s, 1.0));
        }
        for i in (0..n).rev() {
            let Some(dy) = grads[i] else { continue };
            if !requires[i] {
                continue;
            }
            let node = self.g.nodes[i].clone();
            let need: Vec<bool> = node.inputs.iter().map(|j| requires[j.0]).collect();
            let contribs = self.vjp(NodeId(i), &node.op, &node.inputs, &need, dy)?;
            for (k, c) in contribs.into_iter().enumerate() {
                let (Some(c), true) = (c, need[k]) else {
                    continue;
                };
                let j = node.inputs[k].0;
                grads[j] = Some(match grads[j] {
                    None => c,
                    Some(prev) => self.add(prev, c)?,
                });
            }
        }
        let params: Vec<(String, Vec<usize>)> = self
            .g
            .params
            .values()
            .filter(|p| p.trainable)
            .map(|p| (p.name.clone(), p.shape.clone()))
            .collect();
        let mut out = Vec::new();
        for (name, shape) in params {
            let pos = self.g.nodes[..n]
                .iter()
                .position(|nd| matches!(&nd.op, Op::Param { name: p } if *p == name));
            let g = match pos.and_then(|p| grads[p]) {
                Some(g) => g,
                None => self.fill(&shape, 0.0),
            };
            out.push((name, g));
        }
        self.g.grads = out;
        self.pop_scope();
        Ok(())
    }

    /// Vector-Jacobian product of one node: a gradient (or None) per input.
    fn vjp(
        &mut self,
        y: NodeId,
        op: &Op,
        ins: &[NodeId],
        need: &[bool],
        dy: NodeId,
    ) -> Result<Vec<Option<NodeId>>, GraphError> {
        let shape_of = |b: &Self, k: usize| b.shape(ins[k]).to_vec();
        let dt = self.dtype(dy);
        Ok(match op {
            Op::Input { .. }
            | Op::Param { .. }
            | Op::Fill { .. }
            | Op::UpdateRunningStats { .. } => vec![],
            Op::Fused(_) => {
                return Err(GraphError::Invalid(
                    "a fused elementwise chain is not differentiated: fusion runs after autodiff"
                        .into(),
                ));
            }
            Op::AllReduceMean => {
                vec![Some(self.push(
                    Op::AllReduceMean,
                    vec![dy],
                    shape_of(self, 0),
                    dt,
                ))]
            }
            Op::Unary(u) => {
                let x = ins[0];
                let xs = shape_of(self, 0);
                let g = match u {
                    UnaryOp::Relu => self.push(Op::Unary(UnaryOp::ReluGrad), vec![y, dy], xs, dt),
                    UnaryOp::Sigmoid => {
                        self.push(Op::Unary(UnaryOp::SigmoidGrad), vec![y, dy], xs, dt)
                    }
                    UnaryOp::Exp => self.push(Op::Unary(UnaryOp::ExpGrad), vec![y, dy], xs, dt),
                    UnaryOp::Log => self.push(Op::Unary(UnaryOp::LogGrad), vec![x, dy], xs, dt),
                    UnaryOp::Scale(f) => self.scale(dy, *f)?,
                    UnaryOp::AddScalar(_) => dy,
                    UnaryOp::Clamp { lo, hi } => self.push(
                        Op::Unary(UnaryOp::ClampGrad { lo: *lo, hi: *hi }),
                        vec![x, dy],
                        xs,
                        dt,
                    ),
                    UnaryOp::Cast(_) => {
                        let to = self.dtype(x);
                        self.cast(dy, to)?
                    }
                    _ => {
                        return Err(self.err(
                            "backward",
                            "second-order gradients are not supported",
                            &[x],
                        ));
                    }
                };
                vec![Some(g)]
            }
            Op::Binary(b) => {
                let (a, bb) = (ins[0], ins[1]);
                let (sa, sb) = (shape_of(self, 0), shape_of(self, 1));
                let mut da = None;
                let mut db = None;
                match b {
                    BinaryOp::Add => {
                        if need[0] {
                            da = Some(self.sum_to(dy, &sa)?);
                        }
                        if need[1] {
                            db = Some(self.sum_to(dy, &sb)?);
                        }
                    }
                    BinaryOp::Sub => {
                        if need[0] {
                            da = Some(self.sum_to(dy, &sa)?);
                        }
                        if need[1] {
                            let s = self.sum_to(dy, &sb)?;
                            db = Some(self.scale(s, -1.0)?);
                        }
                    }
                    BinaryOp::Mul => {
                        if need[0] {
                            let m = self.mul(dy, bb)?;
                            da = Some(self.sum_to(m, &sa)?);
                        }
                        if need[1] {
                            let m = self.mul(dy, a)?;
                            db = Some(self.sum_to(m, &sb)?);
                        }
                    }
                    BinaryOp::Div => {
                        if need[0] {
                            let m = self.div(dy, bb)?;
                            da = Some(self.sum_to(m, &sa)?);
                        }
                        if need[1] {
                            // d(a/b)/db = -y/b
                            let m = self.mul(dy, y)?;
                            let m = self.div(m, bb)?;
                            let s = self.sum_to(m, &sb)?;
                            db = Some(self.scale(s, -1.0)?);
                        }
                    }
                }
                vec![da, db]
            }
            Op::Reduce(ReduceOp::Sum { axes, .. }) => {
                let xs = shape_of(self, 0);
                let kept: Vec<usize> = xs
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
                    .collect();
                let r = self.reshape(dy, &kept)?;
                vec![Some(self.broadcast_to(r, &xs)?)]
            }
            Op::Layout(l) => match l {
                LayoutOp::Reshape => vec![Some(self.reshape(dy, &shape_of(self, 0))?)],
                LayoutOp::Permute { perm } => {
                    let mut inv = vec![0; perm.len()];
                    for (i, &p) in perm.iter().enumerate() {
                        inv[p] = i;
                    }
                    vec![Some(self.permute(dy, &inv)?)]
                }
                LayoutOp::Slice { axis, start, .. } => {
                    let xs = shape_of(self, 0);
                    vec![Some(self.slice_pad(dy, &xs, *axis, *start))]
                }
                LayoutOp::SlicePad { axis, start } => {
                    let len = shape_of(self, 0)[*axis];
                    vec![Some(self.slice(dy, *axis, *start, start + len)?)]
                }
                LayoutOp::Concat { axis } => {
                    let mut out = Vec::new();
                    let mut off = 0;
                    for (k, &needed) in need.iter().enumerate() {
                        let len = shape_of(self, k)[*axis];
                        out.push(if needed {
                            Some(self.slice(dy, *axis, off, off + len)?)
                        } else {
                            None
                        });
                        off += len;
                    }
                    out
                }
                LayoutOp::BroadcastTo => vec![Some(self.sum_to(dy, &shape_of(self, 0))?)],
            },
            Op::Matmul(MatmulOp { trans_a, trans_b }) => {
                let (a, b) = (ins[0], ins[1]);
                let da = if !need[0] {
                    None
                } else {
                    Some(match (trans_a, trans_b) {
                        (false, false) => self.matmul_t(dy, b, false, true)?,
                        (true, false) => self.matmul_t(b, dy, false, true)?,
                        (false, true) => self.matmul_t(dy, b, false, false)?,
                        (true, true) => self.matmul_t(b, dy, true, true)?,
                    })
                };
                let db = if !need[1] {
                    None
                } else {
                    Some(match (trans_a, trans_b) {
                        (false, false) => self.matmul_t(a, dy, true, false)?,
                        (true, false) => self.matmul_t(a, dy, false, false)?,
                        (false, true) => self.matmul_t(dy, a, true, false)?,
                        (true, true) => self.matmul_t(dy, a, true, true)?,
                    })
                };
                vec![da, db]
            }
            Op::Conv(ConvOp::Conv2d(attrs)) => {
                let (x, w) = (ins[0], ins[1]);
                let dx = need[0].then(|| {
                    self.push(
                        Op::Conv(ConvOp::Conv2dGradInput(*attrs)),
                        vec![dy, w],
                        shape_of(self, 0),
                        dt,
                    )
                });
                let dw = need[1].then(|| {
                    self.push(
                        Op::Conv(ConvOp::Conv2dGradWeight(*attrs)),
                        vec![x, dy],
                        shape_of(self, 1),
                        dt,
                    )
                });
                let mut out = vec![dx, dw];
                if ins.len() == 3 {
                    out.push(if need[2] {
                        Some(self.sum(dy, &[0, 2, 3], false)?)
                    } else {
                        None
                    });
                }
                out
            }
            Op::Conv(_) => {
                return Err(self.err("backward", "second-order gradients are not supported", ins));
            }
            Op::Pool(p) => match p {
                PoolOp::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => {
                    let op = PoolOp::MaxPool2dGrad {
                        kernel: *kernel,
                        stride: *stride,
                        padding: *padding,
                    };
                    vec![Some(self.push(
                        Op::Pool(op),
                        vec![ins[0], dy],
                        shape_of(self, 0),
                        dt,
                    ))]
                }
                PoolOp::UpsampleNearest => {
                    vec![Some(self.push(
                        Op::Pool(PoolOp::UpsampleNearestGrad),
                        vec![dy],
                        shape_of(self, 0),
                        dt,
                    ))]
                }
                PoolOp::RoiAlign(attrs) => {
                    let dx = self.push(
                        Op::Pool(PoolOp::RoiAlignGrad(*attrs)),
                        vec![ins[1], dy],
                        shape_of(self, 0),
                        dt,
                    );
                    vec![Some(dx), None]
                }
                _ => {
                    return Err(self.err(
                        "backward",
                        "second-order gradients are not supported",
                        ins,
                    ));
                }
            },
            Op::Norm(NormOp::Stats(kind)) => {
                vec![Some(self.push(
                    Op::Norm(NormOp::StatsGrad(*kind)),
                    vec![ins[0], y, dy],
                    shape_of(self, 0),
                    dt,
                ))]
            }
            Op::Norm(NormOp::Apply { kind, eps }) => {
                let (x, stats, gamma) = (ins[0], ins[1], ins[2]);
                let (kind, eps) = (*kind, *eps);
                let xs = shape_of(self, 0);
                let c = xs[1];
                let dx = need[0].then(|| {
                    self.push(
                        Op::Norm(NormOp::ApplyGradX { kind, eps }),
                        vec![x, stats, gamma, dy],
                        xs.clone(),
                        dt,
                    )
                });
                let ds = need[1].then(|| {
                    let s = shape_of(self, 1);
                    self.push(
                        Op::Norm(NormOp::ApplyGradStats { kind, eps }),
                        vec![x, stats, gamma, dy],
                        s,
                        dt,
                    )
                });
                let (mut dg, mut db) = (None, None);
                if need[2] || need[3] {
                    let aff = self.push(
                        Op::Norm(NormOp::ApplyGradAffine { kind, eps }),
                        vec![x, stats, dy],
                        vec![2, c],
                        dt,
                    );
                    if need[2] {
                        let s = self.slice(aff, 0, 0, 1)?;
                        dg = Some(self.reshape(s, &[c])?);
                    }
                    if need[3] {
                        let s = self.slice(aff, 0, 1, 2)?;
                        db = Some(self.reshape(s, &[c])?);
                    }
                }
                vec![dx, ds, dg, db]
            }
            Op::Norm(_) => {
                return Err(self.err("backward", "second-order gradients are not supported", ins));
            }
            Op::Loss(LossOp::Forward(kind)) => {
                let mut out = Vec::new();
                for (k, &inp) in ins.iter().enumerate() {
                    if need[k] && self.dtype(inp).is_float() {
                        let mut args = ins.to_vec();
                        args.push(dy);
                        let op = Op::Loss(LossOp::Grad {
                            kind: kind.clone(),
                            wrt: k,
                        });
                        let s = self.shape(inp).to_vec();
                        out.push(Some(self.push(op, args, s, dt)));
                    } else {
                        out.push(None);
                    }
                }
                out
            }
            Op::Loss(LossOp::Grad { .. }) => vec![],
        })
    }
}
