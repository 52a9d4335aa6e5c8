//! One-input element-wise ops and data movement, each one ONNX node (plus constants).

use super::Translator;
use crate::graph::NodeId;
use crate::ir::DType;
use crate::ir::op::*;
use crate::model::onnx::OnnxError;
use crate::model::onnx::proto::Attr;

impl Translator<'_> {
    pub(super) fn unary(
        &mut self,
        id: NodeId,
        u: &UnaryOp,
        x: &str,
        out: &str,
    ) -> Result<(), OnnxError> {
        let scalar = |t: &mut Self, v: f64| t.const_f32(&[], &[v as f32]);
        match u {
            UnaryOp::Relu => self.push("Relu", id, "", &[x], out, vec![]),
            UnaryOp::Sigmoid => self.push("Sigmoid", id, "", &[x], out, vec![]),
            UnaryOp::Exp => self.push("Exp", id, "", &[x], out, vec![]),
            UnaryOp::Log => self.push("Log", id, "", &[x], out, vec![]),
            UnaryOp::Scale(f) => {
                let c = scalar(self, *f);
                self.push("Mul", id, "", &[x, &c], out, vec![]);
            }
            UnaryOp::AddScalar(v) => {
                let c = scalar(self, *v);
                self.push("Add", id, "", &[x, &c], out, vec![]);
            }
            UnaryOp::Clamp { lo, hi } => {
                let (l, h) = (scalar(self, *lo), scalar(self, *hi));
                self.push("Clip", id, "", &[x, &l, &h], out, vec![]);
            }
            UnaryOp::Cast(DType::F32) => self.push("Identity", id, "", &[x], out, vec![]),
            _ => return Err(self.unsupported(id, "")),
        }
        Ok(())
    }

    pub(super) fn layout(
        &mut self,
        id: NodeId,
        l: &LayoutOp,
        ins: &[String],
        out: &str,
    ) -> Result<(), OnnxError> {
        let n = self.g.node(id);
        let shape: Vec<i64> = n.shape.iter().map(|&d| d as i64).collect();
        let x = ins[0].as_str();
        match l {
            LayoutOp::Reshape => {
                let s = self.const_i64(&shape);
                // allowzero: a 0 in the shape is a size, not "copy the input's".
                self.push(
                    "Reshape",
                    id,
                    "",
                    &[x, &s],
                    out,
                    vec![("allowzero", Attr::Int(1))],
                );
            }
            LayoutOp::Permute { perm } => {
                let perm = perm.iter().map(|&p| p as i64).collect();
                self.push(
                    "Transpose",
                    id,
                    "",
                    &[x],
                    out,
                    vec![("perm", Attr::Ints(perm))],
                );
            }
            LayoutOp::Slice { axis, start, end } => {
                let (s, e, a) = (
                    self.const_i64(&[*start as i64]),
                    self.const_i64(&[*end as i64]),
                    self.const_i64(&[*axis as i64]),
                );
                self.push("Slice", id, "", &[x, &s, &e, &a], out, vec![]);
            }
            LayoutOp::Concat { axis } => {
                let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                self.push(
                    "Concat",
                    id,
                    "",
                    &refs,
                    out,
                    vec![("axis", Attr::Int(*axis as i64))],
                );
            }
            LayoutOp::BroadcastTo => {
                let s = self.const_i64(&shape);
                self.push("Expand", id, "", &[x, &s], out, vec![]);
            }
            LayoutOp::SlicePad { .. } => return Err(self.unsupported(id, "")),
        }
        Ok(())
    }
}
