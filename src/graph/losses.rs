//! Builder methods for the detection losses, and mmdetection's `weight_reduce_loss`
//! (element weights, `mean`/`sum`/`none`, and `avg_factor` fed as a graph input so that shapes
//! stay static).

use super::builder::{GraphBuilder, NodeId};
use super::error::GraphError;
use crate::ir::DType;
use crate::ir::op::*;

/// Loss reduction, as mmdetection names it (`mean` unless a config says otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    None,
    #[default]
    Mean,
    Sum,
}

impl GraphBuilder {
    fn loss(
        &mut self,
        kind: LossKind,
        ins: &[NodeId],
        out: Vec<usize>,
    ) -> Result<NodeId, GraphError> {
        let dt = self.dtype(ins[0]);
        Ok(self.push(Op::Loss(LossOp::Forward(kind)), ins.to_vec(), out, dt))
    }

    fn same_shape(&self, op: &'static str, a: NodeId, b: NodeId) -> Result<(), GraphError> {
        self.require_float(op, &[a, b])?;
        if self.shape(a) != self.shape(b) {
            return Err(self.err(op, "prediction and target shapes differ", &[a, b]));
        }
        Ok(())
    }

    /// torchvision's sigmoid focal loss per element; `targets` are one-hot floats.
    pub fn sigmoid_focal_loss(
        &mut self,
        logits: NodeId,
        targets: NodeId,
        alpha: f64,
        gamma: f64,
    ) -> Result<NodeId, GraphError> {
        self.same_shape("sigmoid_focal_loss", logits, targets)?;
        let s = self.shape(logits).to_vec();
        self.loss(
            LossKind::SigmoidFocal { alpha, gamma },
            &[logits, targets],
            s,
        )
    }

    /// Binary cross-entropy on logits per element.
    pub fn bce_with_logits(
        &mut self,
        logits: NodeId,
        targets: NodeId,
    ) -> Result<NodeId, GraphError> {
        self.same_shape("bce_with_logits", logits, targets)?;
        let s = self.shape(logits).to_vec();
        self.loss(LossKind::BceWithLogits, &[logits, targets], s)
    }

    /// Softmax cross-entropy of `logits [N,K]` against i32 `labels [N]`, per row.
    pub fn cross_entropy(
        &mut self,
        logits: NodeId,
        labels: NodeId,
        ignore_index: i64,
        label_smoothing: f64,
    ) -> Result<NodeId, GraphError> {
        self.require_float("cross_entropy", &[logits])?;
        let (ls, ts) = (self.shape(logits).to_vec(), self.shape(labels).to_vec());
        if ls.len() != 2 || ts != [ls[0]] || self.dtype(labels) != DType::I32 {
            return Err(self.err(
                "cross_entropy",
                "expected logits [N,K] and i32 labels [N]",
                &[logits, labels],
            ));
        }
        if !(0.0..=1.0).contains(&label_smoothing) {
            return Err(self.err(
                "cross_entropy",
                "label_smoothing must be in [0, 1]",
                &[logits],
            ));
        }
        self.loss(
            LossKind::CrossEntropy {
                ignore_index,
                label_smoothing,
            },
            &[logits, labels],
            vec![ls[0]],
        )
    }

    /// `|pred - target|` per element.
    pub fn l1_loss(&mut self, pred: NodeId, target: NodeId) -> Result<NodeId, GraphError> {
        self.same_shape("l1_loss", pred, target)?;
        let s = self.shape(pred).to_vec();
        self.loss(LossKind::L1, &[pred, target], s)
    }

    /// Smooth L1 per element (`beta` > 0).
    pub fn smooth_l1_loss(
        &mut self,
        pred: NodeId,
        target: NodeId,
        beta: f64,
    ) -> Result<NodeId, GraphError> {
        self.same_shape("smooth_l1_loss", pred, target)?;
        if beta <= 0.0 {
            return Err(self.err(
                "smooth_l1_loss",
                "beta must be positive (use l1_loss for 0)",
                &[pred],
            ));
        }
        let s = self.shape(pred).to_vec();
        self.loss(LossKind::SmoothL1 { beta }, &[pred, target], s)
    }

    /// GIoU/DIoU/CIoU loss of decoded xyxy boxes `[N,4]`, per row.
    pub fn iou_loss(
        &mut self,
        pred: NodeId,
        target: NodeId,
        kind: IouKind,
        eps: f64,
    ) -> Result<NodeId, GraphError> {
        self.same_shape("iou_loss", pred, target)?;
        let s = self.shape(pred).to_vec();
        if s.len() != 2 || s[1] != 4 {
            return Err(self.err("iou_loss", "expected boxes [N,4]", &[pred, target]));
        }
        self.loss(LossKind::Iou { kind, eps }, &[pred, target], vec![s[0]])
    }

    /// mmdetection's `weight_reduce_loss`: multiply by `weight` (broadcast), then reduce.
    /// With `avg_factor` (a scalar or `[1]` node) and `Mean`, the result is
    /// `sum / (avg_factor + f32::EPSILON)`, as mmdet ≥ 2.19 computes it.
    pub fn weight_reduce_loss(
        &mut self,
        loss: NodeId,
        weight: Option<NodeId>,
        reduction: Reduction,
        avg_factor: Option<NodeId>,
    ) -> Result<NodeId, GraphError> {
        let loss = match weight {
            Some(w) => {
                let ls = self.shape(loss).to_vec();
                let wl = self.mul(loss, w)?;
                if self.shape(wl) != ls {
                    return Err(self.err(
                        "weight_reduce_loss",
                        "weight must broadcast to the loss shape",
                        &[loss, w],
                    ));
                }
                wl
            }
            None => loss,
        };
        match (reduction, avg_factor) {
            (Reduction::None, None) => Ok(loss),
            (Reduction::Sum, None) => self.sum_all(loss),
            (Reduction::Mean, None) => self.mean_all(loss),
            (Reduction::Mean, Some(a)) => {
                if crate::ir::numel(self.shape(a)) != 1 {
                    return Err(self.err(
                        "weight_reduce_loss",
                        "avg_factor must be a scalar",
                        &[a],
                    ));
                }
                let s = self.sum_all(loss)?;
                let a = self.reshape(a, &[])?;
                let a = self.add_scalar(a, f32::EPSILON as f64)?;
                self.div(s, a)
            }
            (_, Some(a)) => Err(self.err(
                "weight_reduce_loss",
                "avg_factor can only be used with reduction 'mean'",
                &[a],
            )),
        }
    }
}
