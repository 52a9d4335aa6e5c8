//! The IR patterns that become more than one ONNX node, or one node from several IR nodes:
//! eval-mode batch norm (running buffers → `BatchNormalization`), group norm (instance norm
//! over the groups, then the affine) and nearest resizing (`Resize` or exact `Gather`s).

use super::Translator;
use crate::graph::NodeId;
use crate::ir::op::*;
use crate::model::onnx::OnnxError;
use crate::model::onnx::proto::Attr;

impl Translator<'_> {
    /// The running mean and variance parameters of an eval-mode batch norm `apply`.
    pub(super) fn running_stats(&self, apply: NodeId) -> Result<(NodeId, NodeId), OnnxError> {
        let stats = self.g.node(self.g.node(apply).inputs[1]);
        let param_of = |id: NodeId| {
            let r = self.g.node(id);
            match (&r.op, r.inputs.first()) {
                (Op::Layout(LayoutOp::Reshape), Some(&p))
                    if matches!(self.g.node(p).op, Op::Param { .. }) =>
                {
                    Some(p)
                }
                _ => None,
            }
        };
        match (&stats.op, stats.inputs.as_slice()) {
            (Op::Layout(LayoutOp::Concat { axis: 0 }), &[m, v]) => match (param_of(m), param_of(v))
            {
                (Some(m), Some(v)) => Ok((m, v)),
                _ => Err(self.unsupported(
                    apply,
                    ": batch norm whose statistics are not its running buffers",
                )),
            },
            _ => Err(self.unsupported(
                apply,
                ": batch norm with batch statistics (a train-mode BatchNorm) has no inference form",
            )),
        }
    }

    /// Checks a group norm `apply` reads the statistics of its own input.
    pub(super) fn group_stats(&self, apply: NodeId) -> Result<(), OnnxError> {
        let a = self.g.node(apply);
        let s = self.g.node(a.inputs[1]);
        match (&a.op, &s.op) {
            (
                Op::Norm(NormOp::Apply {
                    kind: NormKind::Group(g),
                    ..
                }),
                Op::Norm(NormOp::Stats(NormKind::Group(h))),
            ) if g == h && s.inputs[0] == a.inputs[0] => Ok(()),
            _ => Err(self.unsupported(apply, ": group norm over statistics of another value")),
        }
    }

    /// mmrun's nearest resize takes source index `dst * in / out` (integer division). An
    /// exact 2× resize is ONNX `Resize` (asymmetric, floor: `dst / 2`, exact in floats);
    /// any other ratio gathers the same indices along each axis, so no runtime's float
    /// rounding can pick a neighbouring row.
    pub(super) fn upsample(&mut self, id: NodeId, x: &str, out: &str) {
        let n = self.g.node(id);
        let (ins, outs) = (self.g.shape(n.inputs[0]).to_vec(), n.shape.clone());
        let doubled = (2..4).all(|a| outs[a] == 2 * ins[a]);
        if doubled {
            let scales = self.const_f32(&[4], &[1.0, 1.0, 2.0, 2.0]);
            let attrs = vec![
                ("mode", Attr::Str("nearest".into())),
                (
                    "coordinate_transformation_mode",
                    Attr::Str("asymmetric".into()),
                ),
                ("nearest_mode", Attr::Str("floor".into())),
            ];
            self.push("Resize", id, "", &[x, "", &scales], out, attrs);
            return;
        }
        let mut cur = x.to_string();
        for axis in [2usize, 3] {
            let idx: Vec<i64> = (0..outs[axis])
                .map(|d| ((d * ins[axis]) / outs[axis]).min(ins[axis] - 1) as i64)
                .collect();
            let c = self.const_i64(&idx);
            let dst = if axis == 3 {
                out.to_string()
            } else {
                format!("{out}.rows")
            };
            self.push(
                "Gather",
                id,
                &format!(".{axis}"),
                &[&cur, &c],
                &dst,
                vec![("axis", Attr::Int(axis as i64))],
            );
            cur = dst;
        }
    }

    /// Group norm as instance norm over `[N, G, C/G·H·W]`, then the per-channel affine.
    pub(super) fn group_norm(
        &mut self,
        id: NodeId,
        groups: usize,
        eps: f64,
        ins: &[String],
        out: &str,
    ) {
        let s = self.g.node(id).shape.clone();
        let (n, c) = (s[0], s[1]);
        let per = crate::ir::numel(&s[1..]) / groups;
        let grouped = self.const_i64(&[n as i64, groups as i64, per as i64]);
        let back = self.const_i64(&s.iter().map(|&d| d as i64).collect::<Vec<_>>());
        let chan = self.const_i64(&[c as i64, 1, 1]);
        let ones = self.const_f32(&[groups], &vec![1.0; groups]);
        let zeros = self.const_f32(&[groups], &vec![0.0; groups]);
        let v = |k: &str| format!("{out}.{k}");
        self.push(
            "Reshape",
            id,
            ".group",
            &[&ins[0], &grouped],
            &v("group"),
            vec![],
        );
        let eps = Attr::Float(eps as f32);
        self.push(
            "InstanceNormalization",
            id,
            ".norm",
            &[&v("group"), &ones, &zeros],
            &v("norm"),
            vec![("epsilon", eps)],
        );
        self.push(
            "Reshape",
            id,
            ".ungroup",
            &[&v("norm"), &back],
            &v("ungroup"),
            vec![],
        );
        self.push(
            "Reshape",
            id,
            ".gamma",
            &[&ins[2], &chan],
            &v("gamma"),
            vec![],
        );
        self.push(
            "Reshape",
            id,
            ".beta",
            &[&ins[3], &chan],
            &v("beta"),
            vec![],
        );
        self.push(
            "Mul",
            id,
            ".scale",
            &[&v("ungroup"), &v("gamma")],
            &v("scaled"),
            vec![],
        );
        self.push("Add", id, "", &[&v("scaled"), &v("beta")], out, vec![]);
    }
}
