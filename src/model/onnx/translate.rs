//! mmrun's graph IR → ONNX nodes and initializers, op by op. Only the nodes the graph's
//! outputs need are written; parameters become initializers from the weights given.
//!
//! Two patterns are read as one layer: an eval-mode batch norm (its running buffers reshaped
//! and concatenated into statistics, then `norm_apply`) becomes `BatchNormalization`, and
//! group norm (`norm_stats` then `norm_apply` on the same input) becomes
//! Reshape → InstanceNormalization → Reshape → Mul → Add, which every runtime has at opset 17
//! (`GroupNormalization` needs opset 21 for per-channel affine). Every other op the
//! exporter does not know, and every training-only op, is refused by name: a wrong file is
//! never written.

mod elementwise;
mod layers;

use super::OnnxError;
use super::proto::{Attr, FLOAT, GraphParts, f32_tensor, i64_tensor, node, value_info};
use crate::graph::{Graph, NodeId};
use crate::ir::DType;
use crate::ir::op::*;
use crate::model::weights::StateDict;

/// Translates the inference graph `g` to the parts of an ONNX graph. `inputs` maps
/// the graph's feed names to the names the ONNX graph gives them; every feed must be named.
pub fn translate(
    g: &Graph,
    weights: &StateDict,
    inputs: &[(&str, &str)],
) -> Result<GraphParts, OnnxError> {
    let mut t = Translator {
        g,
        weights,
        names: Vec::with_capacity(g.nodes.len()),
        parts: GraphParts::default(),
        consts: 0,
    };
    for (i, n) in g.nodes.iter().enumerate() {
        let name = match &n.op {
            Op::Param { name } => name.clone(),
            Op::Input { name } => match inputs.iter().find(|(k, _)| k == name) {
                Some((_, to)) => to.to_string(),
                None => {
                    return Err(OnnxError::Model(format!(
                        "the graph's feed `{name}` has no ONNX input"
                    )));
                }
            },
            _ => match g.outputs.iter().find(|(_, id)| id.0 == i) {
                Some((out, _)) => out.clone(),
                None => format!("{}.{i}", n.op.name()),
            },
        };
        t.names.push(name);
    }
    let live = t.live()?;
    for (i, n) in g.nodes.iter().enumerate() {
        if live[i] {
            t.node(NodeId(i), n)?;
        }
    }
    for (out, id) in &g.outputs {
        if t.names[id.0] != *out {
            let src = t.names[id.0].clone();
            t.push("Identity", *id, ".out", &[&src], out, vec![]);
        }
        t.parts.outputs.push(value_info(out, FLOAT, g.shape(*id)));
    }
    Ok(t.parts)
}

struct Translator<'a> {
    g: &'a Graph,
    weights: &'a StateDict,
    /// The ONNX value name of each node's result.
    names: Vec<String>,
    parts: GraphParts,
    consts: usize,
}

impl Translator<'_> {
    pub(super) fn unsupported(&self, id: NodeId, why: &str) -> OnnxError {
        let n = self.g.node(id);
        OnnxError::Unsupported {
            op: n.op.name(),
            scope: n.scope.clone(),
            why: why.to_string(),
        }
    }

    /// Which nodes the outputs need, reading the norm patterns as the layer they are.
    fn live(&self) -> Result<Vec<bool>, OnnxError> {
        let mut live = vec![false; self.g.nodes.len()];
        let mut stack: Vec<NodeId> = self.g.outputs.iter().map(|(_, id)| *id).collect();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut live[id.0], true) {
                continue;
            }
            let n = self.g.node(id);
            match &n.op {
                Op::Norm(NormOp::Apply { kind, .. }) => {
                    stack.extend([n.inputs[0], n.inputs[2], n.inputs[3]]);
                    if *kind == NormKind::Batch {
                        let (m, v) = self.running_stats(id)?;
                        stack.extend([m, v]);
                    } else {
                        self.group_stats(id)?;
                    }
                }
                _ => stack.extend(n.inputs.iter().copied()),
            }
        }
        Ok(live)
    }

    /// Adds one ONNX node for IR node `id` (`part` tells the nodes of one IR node apart).
    pub(super) fn push(
        &mut self,
        op: &str,
        id: NodeId,
        part: &str,
        ins: &[&str],
        out: &str,
        attrs: Vec<(&str, Attr)>,
    ) {
        let n = self.g.node(id);
        let name = format!("{}/{}.{}{part}", n.scope, n.op.name(), id.0);
        self.parts.nodes.push(node(op, &name, ins, &[out], &attrs));
    }

    pub(super) fn const_i64(&mut self, vals: &[i64]) -> String {
        self.consts += 1;
        let name = format!("const.{}", self.consts);
        self.parts
            .initializers
            .push(i64_tensor(&name, &[vals.len()], vals));
        name
    }

    pub(super) fn const_f32(&mut self, dims: &[usize], vals: &[f32]) -> String {
        self.consts += 1;
        let name = format!("const.{}", self.consts);
        self.parts.initializers.push(f32_tensor(&name, dims, vals));
        name
    }

    fn node(&mut self, id: NodeId, n: &crate::graph::Node) -> Result<(), OnnxError> {
        if n.dtype != DType::F32 {
            return Err(self.unsupported(
                id,
                &format!(": its values are {}, the export writes f32", n.dtype),
            ));
        }
        let out = self.names[id.0].clone();
        let ins: Vec<String> = n.inputs.iter().map(|i| self.names[i.0].clone()).collect();
        let x = ins.first().cloned().unwrap_or_default();
        let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<i64>>();
        match &n.op {
            Op::Input { .. } => self.parts.inputs.push(value_info(&out, FLOAT, &n.shape)),
            Op::Param { name } => {
                let w = (self.weights.get(name))
                    .ok_or_else(|| OnnxError::MissingWeight(name.clone()))?;
                if w.shape != n.shape {
                    return Err(OnnxError::WeightShape {
                        name: name.clone(),
                        got: w.shape.clone(),
                        want: n.shape.clone(),
                    });
                }
                self.parts
                    .initializers
                    .push(f32_tensor(name, &w.shape, &w.data));
            }
            Op::Fill { value } => {
                let data = vec![*value as f32; crate::ir::numel(&n.shape)];
                self.parts
                    .initializers
                    .push(f32_tensor(&out, &n.shape, &data));
            }
            Op::Unary(u) => self.unary(id, u, &x, &out)?,
            Op::Binary(b) => {
                let op = match b {
                    BinaryOp::Add => "Add",
                    BinaryOp::Sub => "Sub",
                    BinaryOp::Mul => "Mul",
                    BinaryOp::Div => "Div",
                };
                self.push(op, id, "", &[&x, &ins[1]], &out, vec![]);
            }
            Op::Reduce(ReduceOp::Sum { axes, .. }) if axes.is_empty() => {
                // Over no axes: the input itself (ONNX's ReduceSum would sum over all).
                self.push("Identity", id, "", &[&x], &out, vec![]);
            }
            Op::Reduce(ReduceOp::Sum { axes, keepdim }) => {
                let a = self.const_i64(&i64s(axes));
                self.push(
                    "ReduceSum",
                    id,
                    "",
                    &[&x, &a],
                    &out,
                    vec![("keepdims", Attr::Int(*keepdim as i64))],
                );
            }
            Op::Layout(l) => self.layout(id, l, &ins, &out)?,
            Op::Matmul(m) => {
                let mut args = Vec::new();
                for (k, (t, v)) in [(m.trans_a, &ins[0]), (m.trans_b, &ins[1])]
                    .into_iter()
                    .enumerate()
                {
                    let r = self.g.shape(n.inputs[k]).len();
                    if t {
                        let mut perm: Vec<i64> = (0..r as i64).collect();
                        perm.swap(r - 2, r - 1);
                        let tv = format!("{out}.t{k}");
                        self.push(
                            "Transpose",
                            id,
                            &format!(".t{k}"),
                            &[v],
                            &tv,
                            vec![("perm", Attr::Ints(perm))],
                        );
                        args.push(tv);
                    } else {
                        args.push(v.clone());
                    }
                }
                self.push("MatMul", id, "", &[&args[0], &args[1]], &out, vec![]);
            }
            Op::Conv(ConvOp::Conv2d(a)) => {
                let ws = self.g.shape(n.inputs[1]);
                let attrs = vec![
                    ("kernel_shape", Attr::Ints(i64s(&ws[2..]))),
                    ("strides", Attr::Ints(i64s(&a.stride))),
                    (
                        "pads",
                        Attr::Ints(i64s(&[
                            a.padding[0],
                            a.padding[1],
                            a.padding[0],
                            a.padding[1],
                        ])),
                    ),
                    ("dilations", Attr::Ints(i64s(&a.dilation))),
                    ("group", Attr::Int(a.groups as i64)),
                ];
                let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                self.push("Conv", id, "", &refs, &out, attrs);
            }
            Op::Pool(PoolOp::MaxPool2d {
                kernel,
                stride,
                padding,
            }) => {
                let attrs = vec![
                    ("kernel_shape", Attr::Ints(i64s(kernel))),
                    ("strides", Attr::Ints(i64s(stride))),
                    (
                        "pads",
                        Attr::Ints(i64s(&[padding[0], padding[1], padding[0], padding[1]])),
                    ),
                ];
                self.push("MaxPool", id, "", &[&x], &out, attrs);
            }
            Op::Pool(PoolOp::UpsampleNearest) => self.upsample(id, &x, &out),
            Op::Norm(NormOp::Apply {
                kind: NormKind::Batch,
                eps,
            }) => {
                let (m, v) = self.running_stats(id)?;
                let (m, v) = (self.names[m.0].clone(), self.names[v.0].clone());
                let eps = Attr::Float(*eps as f32);
                self.push(
                    "BatchNormalization",
                    id,
                    "",
                    &[&x, &ins[2], &ins[3], &m, &v],
                    &out,
                    vec![("epsilon", eps)],
                );
            }
            Op::Norm(NormOp::Apply {
                kind: NormKind::Group(groups),
                eps,
            }) => {
                self.group_norm(id, *groups, *eps, &ins, &out);
            }
            _ => return Err(self.unsupported(id, "")),
        }
        Ok(())
    }
}
