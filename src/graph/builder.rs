//! The graph and its builder: every method infers the output shape and dtype and returns a
//! [`GraphError`] instead of panicking when the inputs do not fit.
//!
//! Over 600 lines on purpose: one short method per op, each with its shape rule beside it;
//! the op list is the file's structure (autodiff reads it as the vocabulary it may emit).

use super::error::GraphError;
use super::init::Init;
use crate::ir::op::*;
use crate::ir::{DType, numel};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Handle of a node (a value) in a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub usize);

/// One op application with its static output shape and dtype.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// The builder's name scope when the node was added (`backbone.layer1.0.conv1`).
    pub scope: String,
}

/// A named parameter or buffer: shape, dtype, initialiser, whether the optimizer trains it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub init: Init,
    /// Trainable parameters get gradients; buffers (BN running stats) and frozen parameters
    /// do not.
    pub trainable: bool,
    /// Buffers are state, not parameters (BN running statistics): never trained.
    pub buffer: bool,
}

/// A static compute graph: nodes in topological order (inputs always precede users).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Parameters and buffers by name.
    pub params: BTreeMap<String, ParamSpec>,
    /// Feeds by name.
    pub inputs: BTreeMap<String, NodeId>,
    /// Named results returned by the executor.
    pub outputs: Vec<(String, NodeId)>,
    /// Gradient of the loss w.r.t. each trainable parameter (filled by autodiff).
    pub grads: Vec<(String, NodeId)>,
    /// Side-effect nodes that always run (running-statistics updates).
    pub effects: Vec<NodeId>,
}

impl Graph {
    /// A node by id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }
    /// Shape of a node.
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id.0].shape
    }
    /// Number of trainable parameter elements.
    pub fn num_trainable(&self) -> usize {
        self.params
            .values()
            .filter(|p| p.trainable)
            .map(|p| numel(&p.shape))
            .sum()
    }
    /// Number of parameter elements (trainable or frozen, without buffers).
    pub fn num_params(&self) -> usize {
        self.params
            .values()
            .filter(|p| !p.buffer)
            .map(|p| numel(&p.shape))
            .sum()
    }
}

/// Builds a [`Graph`]. Float parameters and fills use the builder's float dtype.
#[derive(Clone, Debug)]
pub struct GraphBuilder {
    pub(crate) g: Graph,
    float: DType,
    /// Mixed precision: the half dtype convolutions and matrix products of f32 values run in.
    pub(super) autocast: Option<DType>,
    scope: Vec<String>,
}

pub(crate) fn shape_err(
    op: &'static str,
    scope: &str,
    message: impl Into<String>,
    shapes: Vec<Vec<usize>>,
) -> GraphError {
    GraphError::Shape {
        op,
        scope: scope.to_string(),
        message: message.into(),
        shapes,
    }
}

/// Numpy broadcasting of two shapes.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

impl GraphBuilder {
    /// A builder whose parameters and float values use `float` (F32 for training, F64 for
    /// gradient checks).
    pub fn new(float: DType) -> Self {
        GraphBuilder {
            g: Graph::default(),
            float,
            autocast: None,
            scope: Vec::new(),
        }
    }

    /// Mixed precision as torch's autocast: from now on a convolution or matrix product whose
    /// operands are all f32 casts them to `half` (f16 or bf16), runs in `half` and casts its
    /// result back to f32; everything else (norms, losses, softmax, reductions) stays f32.
    /// Parameters stay f32 (the master weights); their gradients come back through the casts.
    /// `None` turns it off.
    pub fn set_autocast(&mut self, half: Option<DType>) -> Result<(), GraphError> {
        if let Some(h) = half
            && !matches!(h, DType::F16 | DType::BF16)
        {
            return Err(GraphError::Invalid(format!(
                "autocast needs a half dtype (f16 or bf16), not {h}"
            )));
        }
        self.autocast = half;
        Ok(())
    }

    /// The mixed-precision dtype, if any.
    pub fn autocast(&self) -> Option<DType> {
        self.autocast
    }

    /// The half dtype an autocast op over `ids` runs in: set, and every operand f32.
    pub(crate) fn autocast_for(&self, ids: &[NodeId]) -> Option<DType> {
        let all_f32 = ids
            .iter()
            .all(|i| i.0 < self.g.nodes.len() && self.dtype(*i) == DType::F32);
        self.autocast.filter(|_| all_f32)
    }

    /// `op` applied to `ids` cast to `half`, its result cast back to f32.
    pub(crate) fn in_half(
        &mut self,
        half: DType,
        ids: &[NodeId],
        op: impl FnOnce(&mut Self, &[NodeId]) -> Result<NodeId, GraphError>,
    ) -> Result<NodeId, GraphError> {
        let cast: Vec<NodeId> = ids
            .iter()
            .map(|&i| self.cast(i, half))
            .collect::<Result<_, _>>()?;
        let y = op(self, &cast)?;
        self.cast(y, DType::F32)
    }

    /// The float dtype of parameters.
    pub fn float_dtype(&self) -> DType {
        self.float
    }

    /// The graph built so far.
    pub fn graph(&self) -> &Graph {
        &self.g
    }

    /// Finishes building.
    pub fn finish(self) -> Graph {
        self.g
    }

    /// Enters a name scope (recorded on nodes, reported in errors).
    pub fn push_scope(&mut self, name: &str) {
        self.scope.push(name.to_string());
    }

    /// Leaves the innermost name scope.
    pub fn pop_scope(&mut self) {
        self.scope.pop();
    }

    /// The current scope joined with dots.
    pub fn scope(&self) -> String {
        self.scope.join(".")
    }

    /// Shape of a node.
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.g.nodes[id.0].shape
    }

    /// Dtype of a node.
    pub fn dtype(&self, id: NodeId) -> DType {
        self.g.nodes[id.0].dtype
    }

    pub(crate) fn push(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        shape: Vec<usize>,
        dtype: DType,
    ) -> NodeId {
        let id = NodeId(self.g.nodes.len());
        self.g.nodes.push(Node {
            op,
            inputs,
            shape,
            dtype,
            scope: self.scope(),
        });
        id
    }

    pub(crate) fn err(
        &self,
        op: &'static str,
        msg: impl Into<String>,
        ids: &[NodeId],
    ) -> GraphError {
        shape_err(
            op,
            &self.scope(),
            msg,
            ids.iter().map(|i| self.shape(*i).to_vec()).collect(),
        )
    }

    fn check_ids(&self, ids: &[NodeId]) -> Result<(), GraphError> {
        for id in ids {
            if id.0 >= self.g.nodes.len() {
                return Err(GraphError::Invalid(format!(
                    "node %{} is not in this graph",
                    id.0
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn require_float(
        &self,
        op: &'static str,
        ids: &[NodeId],
    ) -> Result<DType, GraphError> {
        self.check_ids(ids)?;
        let dt = self.dtype(ids[0]);
        if ids.iter().any(|i| self.dtype(*i) != dt || !dt.is_float()) {
            return Err(GraphError::DType {
                op,
                scope: self.scope(),
                message: "expected float inputs of one dtype".into(),
                dtypes: ids.iter().map(|i| self.dtype(*i)).collect(),
            });
        }
        Ok(dt)
    }

    /// A run-time feed.
    pub fn input(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: DType,
    ) -> Result<NodeId, GraphError> {
        if self.g.inputs.contains_key(name) {
            return Err(GraphError::Invalid(format!(
                "input `{name}` declared twice"
            )));
        }
        let id = self.push(
            Op::Input {
                name: name.to_string(),
            },
            vec![],
            shape.to_vec(),
            dtype,
        );
        self.g.inputs.insert(name.to_string(), id);
        Ok(id)
    }

    fn declare(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        trainable: bool,
        buffer: bool,
    ) -> Result<NodeId, GraphError> {
        let spec = ParamSpec {
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype: self.float,
            init,
            trainable,
            buffer,
        };
        if let Some(old) = self.g.params.get(name) {
            if old.shape != spec.shape || old.trainable != trainable || old.buffer != buffer {
                return Err(GraphError::Param {
                    name: name.to_string(),
                    message: format!(
                        "first as {:?} {}, now {:?} {}",
                        old.shape,
                        role(old.trainable, old.buffer),
                        spec.shape,
                        role(trainable, buffer)
                    ),
                });
            }
        } else {
            self.g.params.insert(name.to_string(), spec);
        }
        // Every use reads the same stored value; a parameter used twice (shared heads) gets one
        // node so that its gradient contributions are summed in one place.
        if let Some(i) = self
            .g
            .nodes
            .iter()
            .position(|n| matches!(&n.op, Op::Param { name: p } if p == name))
        {
            return Ok(NodeId(i));
        }
        Ok(self.push(
            Op::Param {
                name: name.to_string(),
            },
            vec![],
            shape.to_vec(),
            self.float,
        ))
    }

    /// A trainable parameter (declaring the same name again returns the same node: sharing).
    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) -> Result<NodeId, GraphError> {
        self.declare(name, shape, init, true, false)
    }

    /// A parameter that is loaded and saved but not trained (frozen stages, `requires_grad=False`).
    pub fn param_frozen(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<NodeId, GraphError> {
        self.declare(name, shape, init, false, false)
    }

    /// A non-trainable buffer (BN running mean/var).
    pub fn buffer(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<NodeId, GraphError> {
        self.declare(name, shape, init, false, true)
    }

    /// A tensor filled with `value` in the builder's float dtype.
    pub fn fill(&mut self, shape: &[usize], value: f64) -> NodeId {
        self.push(Op::Fill { value }, vec![], shape.to_vec(), self.float)
    }

    /// Marks a named result.
    pub fn output(&mut self, name: &str, x: NodeId) -> Result<(), GraphError> {
        self.check_ids(&[x])?;
        if self.g.outputs.iter().any(|(n, _)| n == name) {
            return Err(GraphError::Invalid(format!(
                "output `{name}` declared twice"
            )));
        }
        self.g.outputs.push((name.to_string(), x));
        Ok(())
    }

    fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId, GraphError> {
        let name = Op::Unary(op.clone()).name();
        let dt = self.require_float(name, &[x])?;
        Ok(self.push(Op::Unary(op), vec![x], self.shape(x).to_vec(), dt))
    }

    /// `max(x, 0)`.
    pub fn relu(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::Relu, x)
    }
    /// `1 / (1 + exp(-x))`.
    pub fn sigmoid(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::Sigmoid, x)
    }
    /// `exp(x)`.
    pub fn exp(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::Exp, x)
    }
    /// `ln(x)`.
    pub fn log(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::Log, x)
    }
    /// `x * factor`.
    pub fn scale(&mut self, x: NodeId, factor: f64) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::Scale(factor), x)
    }
    /// `x + value`.
    pub fn add_scalar(&mut self, x: NodeId, value: f64) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::AddScalar(value), x)
    }
    /// `min(max(x, lo), hi)` (use ±∞ for one-sided clamps).
    pub fn clamp(&mut self, x: NodeId, lo: f64, hi: f64) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::Clamp { lo, hi }, x)
    }
    /// Element type conversion (float ↔ float or int → float).
    pub fn cast(&mut self, x: NodeId, to: DType) -> Result<NodeId, GraphError> {
        self.check_ids(&[x])?;
        Ok(self.push(
            Op::Unary(UnaryOp::Cast(to)),
            vec![x],
            self.shape(x).to_vec(),
            to,
        ))
    }

    fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        let name = Op::Binary(op).name();
        let dt = self.require_float(name, &[a, b])?;
        let shape = broadcast_shapes(self.shape(a), self.shape(b))
            .ok_or_else(|| self.err(name, "shapes do not broadcast", &[a, b]))?;
        Ok(self.push(Op::Binary(op), vec![a, b], shape, dt))
    }

    /// `a + b` with broadcasting.
    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Add, a, b)
    }
    /// `a - b` with broadcasting.
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Sub, a, b)
    }
    /// `a * b` with broadcasting.
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Mul, a, b)
    }
    /// `a / b` with broadcasting.
    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Div, a, b)
    }

    /// Sum over `axes`.
    pub fn sum(&mut self, x: NodeId, axes: &[usize], keepdim: bool) -> Result<NodeId, GraphError> {
        let dt = self.require_float("sum", &[x])?;
        let shape = self.shape(x).to_vec();
        let mut ax = axes.to_vec();
        ax.sort_unstable();
        ax.dedup();
        if ax.iter().any(|&a| a >= shape.len()) {
            return Err(self.err("sum", format!("axes {axes:?} out of range"), &[x]));
        }
        let out: Vec<usize> = shape
            .iter()
            .enumerate()
            .filter_map(|(i, &d)| {
                if ax.contains(&i) {
                    keepdim.then_some(1)
                } else {
                    Some(d)
                }
            })
            .collect();
        Ok(self.push(
            Op::Reduce(ReduceOp::Sum { axes: ax, keepdim }),
            vec![x],
            out,
            dt,
        ))
    }

    /// Mean over `axes`.
    pub fn mean(&mut self, x: NodeId, axes: &[usize], keepdim: bool) -> Result<NodeId, GraphError> {
        let s = self.sum(x, axes, keepdim)?;
        let count: usize = numel(self.shape(x)) / numel(self.shape(s)).max(1);
        self.scale(s, 1.0 / count.max(1) as f64)
    }

    /// Sum of all elements (a scalar `[]`).
    pub fn sum_all(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        let axes: Vec<usize> = (0..self.shape(x).len()).collect();
        self.sum(x, &axes, false)
    }

    /// Mean of all elements (a scalar `[]`).
    pub fn mean_all(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        let axes: Vec<usize> = (0..self.shape(x).len()).collect();
        self.mean(x, &axes, false)
    }

    /// Sums `x` down to `shape` (the adjoint of broadcasting `shape` to `x`'s shape).
    pub fn sum_to(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, GraphError> {
        let xs = self.shape(x).to_vec();
        if xs == shape {
            return Ok(x);
        }
        if broadcast_shapes(&xs, shape).as_deref() != Some(&xs[..]) {
            return Err(self.err("sum_to", format!("cannot sum to {shape:?}"), &[x]));
        }
        let lead = xs.len() - shape.len();
        let axes: Vec<usize> = (0..xs.len())
            .filter(|&i| i < lead || (shape[i - lead] == 1 && xs[i] != 1))
            .collect();
        let s = self.sum(x, &axes, true)?;
        self.reshape(s, shape)
    }

    /// Broadcasts `x` to `shape`.
    pub fn broadcast_to(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, GraphError> {
        self.check_ids(&[x])?;
        if self.shape(x) == shape {
            return Ok(x);
        }
        if broadcast_shapes(self.shape(x), shape).as_deref() != Some(shape) {
            return Err(self.err(
                "broadcast_to",
                format!("cannot broadcast to {shape:?}"),
                &[x],
            ));
        }
        let dt = self.dtype(x);
        Ok(self.push(
            Op::Layout(LayoutOp::BroadcastTo),
            vec![x],
            shape.to_vec(),
            dt,
        ))
    }

    /// Same data with a new shape of equal element count.
    pub fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, GraphError> {
        self.check_ids(&[x])?;
        if numel(self.shape(x)) != numel(shape) {
            return Err(self.err("reshape", format!("cannot reshape to {shape:?}"), &[x]));
        }
        if self.shape(x) == shape {
            return Ok(x);
        }
        let dt = self.dtype(x);
        Ok(self.push(Op::Layout(LayoutOp::Reshape), vec![x], shape.to_vec(), dt))
    }

    /// Axis permutation (`out.shape[i] = x.shape[perm[i]]`).
    pub fn permute(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId, GraphError> {
        self.check_ids(&[x])?;
        let s = self.shape(x).to_vec();
        let mut seen = vec![false; s.len()];
        if perm.len() != s.len()
            || perm
                .iter()
                .any(|&p| p >= s.len() || std::mem::replace(&mut seen[p], true))
        {
            return Err(self.err(
                "permute",
                format!("{perm:?} is not a permutation of the axes"),
                &[x],
            ));
        }
        let out: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
        let dt = self.dtype(x);
        Ok(self.push(
            Op::Layout(LayoutOp::Permute {
                perm: perm.to_vec(),
            }),
            vec![x],
            out,
            dt,
        ))
    }

    /// `x[.., start..end, ..]` along `axis`.
    pub fn slice(
        &mut self,
        x: NodeId,
        axis: usize,
        start: usize,
        end: usize,
    ) -> Result<NodeId, GraphError> {
        self.check_ids(&[x])?;
        let s = self.shape(x).to_vec();
        if axis >= s.len() || start >= end || end > s[axis] {
            return Err(self.err(
                "slice",
                format!("range {start}..{end} on axis {axis} out of bounds"),
                &[x],
            ));
        }
        let mut out = s.clone();
        out[axis] = end - start;
        let dt = self.dtype(x);
        Ok(self.push(
            Op::Layout(LayoutOp::Slice { axis, start, end }),
            vec![x],
            out,
            dt,
        ))
    }

    pub(crate) fn slice_pad(
        &mut self,
        dy: NodeId,
        full: &[usize],
        axis: usize,
        start: usize,
    ) -> NodeId {
        let dt = self.dtype(dy);
        self.push(
            Op::Layout(LayoutOp::SlicePad { axis, start }),
            vec![dy],
            full.to_vec(),
            dt,
        )
    }

    /// Concatenation along `axis`; all other axes must agree.
    pub fn concat(&mut self, xs: &[NodeId], axis: usize) -> Result<NodeId, GraphError> {
        if xs.is_empty() {
            return Err(shape_err("concat", &self.scope(), "no inputs", vec![]));
        }
        self.check_ids(xs)?;
        let first = self.shape(xs[0]).to_vec();
        let dt = self.dtype(xs[0]);
        if axis >= first.len() {
            return Err(self.err("concat", format!("axis {axis} out of range"), xs));
        }
        let mut total = 0;
        for &x in xs {
            let s = self.shape(x);
            let ok = s.len() == first.len()
                && s.iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !ok || self.dtype(x) != dt {
                return Err(self.err("concat", format!("inputs disagree outside axis {axis}"), xs));
            }
            total += s[axis];
        }
        let mut out = first;
        out[axis] = total;
        Ok(self.push(Op::Layout(LayoutOp::Concat { axis }), xs.to_vec(), out, dt))
    }

    /// Matrix product `a @ b` of `[M,K]x[K,N]` or batched `[B,M,K]x[B,K,N]`.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.matmul_t(a, b, false, false)
    }

    /// Matrix product with either operand transposed (its last two axes).
    pub fn matmul_t(
        &mut self,
        a: NodeId,
        b: NodeId,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<NodeId, GraphError> {
        if let Some(half) = self.autocast_for(&[a, b]) {
            return self.in_half(half, &[a, b], |g, h| {
                g.matmul_t(h[0], h[1], trans_a, trans_b)
            });
        }
        let dt = self.require_float("matmul", &[a, b])?;
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        if sa.len() != sb.len()
            || !(sa.len() == 2 || sa.len() == 3)
            || (sa.len() == 3 && sa[0] != sb[0])
        {
            return Err(self.err(
                "matmul",
                "expected two 2-D or two batched 3-D operands",
                &[a, b],
            ));
        }
        let r = sa.len();
        let (m, ka) = if trans_a {
            (sa[r - 1], sa[r - 2])
        } else {
            (sa[r - 2], sa[r - 1])
        };
        let (kb, n) = if trans_b {
            (sb[r - 1], sb[r - 2])
        } else {
            (sb[r - 2], sb[r - 1])
        };
        if ka != kb {
            return Err(self.err(
                "matmul",
                format!("inner dimensions {ka} and {kb} differ"),
                &[a, b],
            ));
        }
        let mut out = sa[..r - 2].to_vec();
        out.extend([m, n]);
        Ok(self.push(
            Op::Matmul(MatmulOp { trans_a, trans_b }),
            vec![a, b],
            out,
            dt,
        ))
    }
}

fn role(trainable: bool, buffer: bool) -> &'static str {
    match (trainable, buffer) {
        (_, true) => "buffer",
        (true, false) => "trainable",
        (false, false) => "frozen",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[2, 3, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shapes(&[1], &[5, 1]), Some(vec![5, 1]));
        assert_eq!(broadcast_shapes(&[], &[2]), Some(vec![2]));
        assert_eq!(broadcast_shapes(&[2, 3], &[3, 2]), None);
    }

    #[test]
    fn sum_to_and_matmul_shapes() {
        let mut b = GraphBuilder::new(DType::F32);
        let x = b.input("x", &[2, 3, 4], DType::F32).unwrap();
        let s = b.sum_to(x, &[3, 1]).unwrap();
        assert_eq!(b.shape(s), &[3, 1]);
        let a = b.input("a", &[5, 3], DType::F32).unwrap();
        let c = b.input("c", &[5, 7], DType::F32).unwrap();
        let m = b.matmul_t(a, c, true, false).unwrap();
        assert_eq!(b.shape(m), &[3, 7]);
        assert!(b.matmul(a, c).is_err());
    }
}
