//! A chain of elementwise ops run as one op ([`super::Op::Fused`]). The fusion pass
//! (`graph::fuse_elementwise`) makes them from a finished step graph for a backend that runs
//! such chains in one pass over memory; their meaning is the ops one after the other, each
//! rounded to the element type as the unfused graph rounds it (`backend::fused_op_by_op`).

use super::op::{BinaryOp, UnaryOp};
use serde::{Deserialize, Serialize};

/// The op of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FusedOp {
    /// A one-input op, or a `*Grad` op reading `(y or x, dy)`.
    Unary(UnaryOp),
    /// A two-input op; both inputs have the output's shape (no broadcasting inside a chain).
    Binary(BinaryOp),
}

impl FusedOp {
    /// How many values the op reads.
    pub fn arity(&self) -> usize {
        match self {
            FusedOp::Unary(u) if u.is_grad() => 2,
            FusedOp::Unary(_) => 1,
            FusedOp::Binary(_) => 2,
        }
    }
}

/// One step of a chain: `op` over earlier values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusedStep {
    pub op: FusedOp,
    /// Values read, in the op's input order: `0..inputs` are the chain's inputs, `inputs + k`
    /// is step `k`'s result (always an earlier step).
    pub args: Vec<usize>,
}

/// Elementwise ops over tensors of one shape, computed element by element without storing
/// the intermediate values. The last step's value is the output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusedElementwise {
    /// How many input tensors the chain reads (the node's inputs, in order).
    pub inputs: usize,
    pub steps: Vec<FusedStep>,
}

impl FusedElementwise {
    /// Whether every step reads only earlier values with the op's arity, and there is a step.
    pub fn is_well_formed(&self) -> bool {
        !self.steps.is_empty()
            && self.steps.iter().enumerate().all(|(k, s)| {
                s.args.len() == s.op.arity() && s.args.iter().all(|&a| a < self.inputs + k)
            })
    }

    /// The chain as text for dumps and profiles: `v2 = Add[v0, v1]; v3 = Relu[v2]`.
    pub fn describe(&self) -> String {
        let steps: Vec<String> = (self.steps.iter().enumerate())
            .map(|(k, s)| {
                let args: Vec<String> = s.args.iter().map(|a| format!("v{a}")).collect();
                let op = match &s.op {
                    FusedOp::Unary(u) => format!("{u:?}"),
                    FusedOp::Binary(b) => format!("{b:?}"),
                };
                format!("v{} = {op}[{}]", self.inputs + k, args.join(", "))
            })
            .collect();
        steps.join("; ")
    }
}

impl UnaryOp {
    /// The `*Grad` variants, which read `(y or x, dy)`.
    pub fn is_grad(&self) -> bool {
        matches!(
            self,
            UnaryOp::ReluGrad
                | UnaryOp::SigmoidGrad
                | UnaryOp::ExpGrad
                | UnaryOp::LogGrad
                | UnaryOp::ClampGrad { .. }
        )
    }
}
