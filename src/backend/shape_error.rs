//! Why an op's shapes do not fit together, as the device backends' shared host-side checks
//! (`strided`, `geometry`) find it before any launch. A backend reports one as
//! [`BackendError::Shape`](super::BackendError::Shape), which names the backend and the op; the
//! CPU's loss check reports the text as `BackendError::Invalid`.

/// Why a shape does not broadcast to an output (right-aligned, size-1 axes stretched).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// The shape has more axes than the output.
    #[error("shape {shape:?} has more axes than the output {out:?}")]
    MoreAxes {
        /// The shape to broadcast.
        shape: Vec<usize>,
        /// The output's shape.
        out: Vec<usize>,
    },
    /// An axis that is neither the output's size nor 1.
    #[error("shape {shape:?} does not broadcast to {out:?}")]
    Mismatch {
        /// The shape to broadcast.
        shape: Vec<usize>,
        /// The output's shape.
        out: Vec<usize>,
    },
}

/// An op whose inputs, attributes or output shape do not fit together, or whose index space the
/// device kernels cannot address. Variants that carry an `op` start their message with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A strided index space with more dims than the kernels decode, even after merging.
    #[error(
        "{op}: the index space {dims:?} still has rank {rank} after merging contiguous dims; \
         the device kernels handle rank <= {max_rank}"
    )]
    Rank {
        /// The op (dump name).
        op: &'static str,
        /// The index space before merging.
        dims: Vec<usize>,
        /// Its rank after merging.
        rank: usize,
        /// The largest rank the kernels decode (`strided::MAX_RANK`).
        max_rank: usize,
    },
    /// A strided index space with more elements, or a larger offset, than u32 indices reach.
    #[error("{op}: {n} elements (largest offset {max}) exceed the device limit of {limit}")]
    TooLarge {
        /// The op (dump name).
        op: &'static str,
        /// Elements of the index space.
        n: usize,
        /// The largest offset it reaches.
        max: usize,
        /// The device limit (`strided::MAX_ELEMS`).
        limit: usize,
    },
    /// A binary op's input that does not broadcast to the output.
    #[error(transparent)]
    Broadcast(#[from] BroadcastError),
    /// `broadcast_to`'s input that does not broadcast to the output.
    #[error("broadcast_to: {0}")]
    BroadcastTo(#[source] BroadcastError),
    /// A layout op with too few inputs.
    #[error("{op}: expects {want} input(s), got {got}")]
    TooFewInputs {
        /// The op (dump name).
        op: &'static str,
        /// Inputs the op needs.
        want: usize,
        /// Inputs given.
        got: usize,
    },
    /// A layout op's axis beyond the rank of the shape it indexes.
    #[error("{op}: axis {axis} out of range for shape {shape:?}")]
    Axis {
        /// The op (dump name).
        op: &'static str,
        /// The op's `axis` attribute.
        axis: usize,
        /// The shape it indexes.
        shape: Vec<usize>,
    },
    /// `slice_pad`'s or `concat`'s operand that differs from the output off the op's axis.
    #[error("{op}: shapes {shape:?} and {other:?} must agree on every axis but {axis}")]
    NotSameBut {
        /// The op (dump name).
        op: &'static str,
        /// The operand's shape.
        shape: Vec<usize>,
        /// The output's shape.
        other: Vec<usize>,
        /// The op's `axis` attribute.
        axis: usize,
    },
    /// A reshape that changes the element count.
    #[error("reshape: {from:?} ({n_from} elements) cannot become {to:?} ({n_to})")]
    Reshape {
        /// The input's shape.
        from: Vec<usize>,
        /// Its element count.
        n_from: usize,
        /// The output's shape.
        to: Vec<usize>,
        /// Its element count.
        n_to: usize,
    },
    /// A permute whose `perm` is not a permutation of the input's axes.
    #[error("permute: {perm:?} is not a permutation of the {rank} axes of {shape:?}", rank = shape.len())]
    NotPermutation {
        /// The op's `perm` attribute.
        perm: Vec<usize>,
        /// The input's shape.
        shape: Vec<usize>,
    },
    /// A permute whose output is not the input permuted.
    #[error("permute: {shape:?} permuted by {perm:?} is {permuted:?}, not {out:?}")]
    Permuted {
        /// The input's shape.
        shape: Vec<usize>,
        /// The op's `perm` attribute.
        perm: Vec<usize>,
        /// The input permuted.
        permuted: Vec<usize>,
        /// The output's shape.
        out: Vec<usize>,
    },
    /// A slice whose range does not lie in its axis.
    #[error("slice: {start}..{end} out of range for axis {axis} of {shape:?}")]
    SliceRange {
        /// The op's `start` attribute.
        start: usize,
        /// The op's `end` attribute.
        end: usize,
        /// The op's `axis` attribute.
        axis: usize,
        /// The input's shape.
        shape: Vec<usize>,
    },
    /// A slice whose output is not the slice's shape.
    #[error("slice: result {result:?} is not {out:?}")]
    SliceResult {
        /// The slice's shape.
        result: Vec<usize>,
        /// The output's shape.
        out: Vec<usize>,
    },
    /// A `slice_pad` whose input, placed at `start`, runs past the output.
    #[error("slice_pad: {shape:?} placed at {start} on axis {axis} overflows {out:?}")]
    PadOverflow {
        /// The input's shape.
        shape: Vec<usize>,
        /// The op's `start` attribute.
        start: usize,
        /// The op's `axis` attribute.
        axis: usize,
        /// The output's shape.
        out: Vec<usize>,
    },
    /// A concat whose inputs do not fill the output's axis exactly.
    #[error("concat: the inputs add up to {sum} on axis {axis}, the output has {out}")]
    ConcatSum {
        /// The inputs' total along the axis.
        sum: usize,
        /// The op's `axis` attribute.
        axis: usize,
        /// The output's size along the axis.
        out: usize,
    },
    /// A sum whose axes are unsorted, repeated or beyond the input's rank.
    #[error("sum: axes {axes:?} must be sorted, unique and below the rank of {shape:?}")]
    SumAxes {
        /// The op's axes.
        axes: Vec<usize>,
        /// The input's shape.
        shape: Vec<usize>,
    },
    /// A sum whose output does not hold one element per kept index.
    #[error("sum over {axes:?} of {shape:?} has {rows} elements, the output {out}")]
    SumOutput {
        /// The op's axes.
        axes: Vec<usize>,
        /// The input's shape.
        shape: Vec<usize>,
        /// Elements the sum makes.
        rows: usize,
        /// Elements of the output.
        out: usize,
    },
    /// Matmul operands that are not two rank-2 or two rank-3 tensors with a result of their rank.
    #[error(
        "expected two rank-2 or two rank-3 operands and a result of the same rank, got {a:?} @ {b:?} -> {out:?}"
    )]
    MatmulRank {
        /// `a`'s shape.
        a: Vec<usize>,
        /// `b`'s shape.
        b: Vec<usize>,
        /// The result's shape.
        out: Vec<usize>,
    },
    /// A batched matmul whose operands and result have different batch sizes.
    #[error("batch sizes differ: {a:?} @ {b:?} -> {out:?}")]
    MatmulBatch {
        /// `a`'s shape.
        a: Vec<usize>,
        /// `b`'s shape.
        b: Vec<usize>,
        /// The result's shape.
        out: Vec<usize>,
    },
    /// Matmul operands whose inner (`k`) dimensions differ.
    #[error("inner dimensions {k} and {kb} differ")]
    MatmulInner {
        /// `op(a)`'s columns.
        k: usize,
        /// `op(b)`'s rows.
        kb: usize,
    },
    /// A matmul result that is not `[.., m, n]`.
    #[error("result {out:?} is not [.., {m}, {n}]")]
    MatmulResult {
        /// The result's shape.
        out: Vec<usize>,
        /// `op(a)`'s rows.
        m: usize,
        /// `op(b)`'s columns.
        n: usize,
    },
    /// A tensor that must be 4-D (NCHW) and is not.
    #[error("{what} must be 4-D (NCHW), got {shape:?}")]
    NotNchw {
        /// Which tensor (`input`, `weight`).
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A convolution's `groups` that does not divide the input's or the weight's channels.
    #[error(
        "groups = {groups} must divide the input's {in_channels} and the weight's {out_channels} channels"
    )]
    ConvGroups {
        /// The op's `groups` attribute.
        groups: usize,
        /// The input's channels.
        in_channels: usize,
        /// The weight's output channels.
        out_channels: usize,
    },
    /// A convolution weight whose channels per group do not match the input's.
    #[error(
        "the weight {w:?} takes {per_group} channels per group, the input {x:?} has {in_channels} in {groups} group(s)",
        per_group = w[1],
        in_channels = x[1]
    )]
    ConvChannels {
        /// The weight's shape.
        w: [usize; 4],
        /// The input's shape.
        x: [usize; 4],
        /// The op's `groups` attribute.
        groups: usize,
    },
    /// A convolution with a zero stride or dilation.
    #[error("stride {stride:?} and dilation {dilation:?} must be positive")]
    ConvStride {
        /// The op's `stride` attribute.
        stride: [usize; 2],
        /// The op's `dilation` attribute.
        dilation: [usize; 2],
    },
    /// A convolution window larger than the padded input.
    #[error("a {window:?} window does not fit the padded input {x:?}")]
    ConvWindow {
        /// The kernel's height and width.
        window: [usize; 2],
        /// The input's shape.
        x: [usize; 4],
    },
    /// A convolution gradient whose `dy` is not the forward's output.
    #[error("dy is {dy:?}, the convolution of {x:?} by {w:?} gives {y:?}")]
    ConvOutput {
        /// `dy`'s shape.
        dy: Vec<usize>,
        /// The input's shape.
        x: [usize; 4],
        /// The weight's shape.
        w: [usize; 4],
        /// The forward's output shape.
        y: [usize; 4],
    },
    /// A norm's input of rank below 2.
    #[error("input {shape:?} must be at least [N, C]")]
    NormRank {
        /// The input's shape.
        shape: Vec<usize>,
    },
    /// A group norm whose channels do not split into its groups.
    #[error("{channels} channels do not split into {groups} groups")]
    NormGroups {
        /// The input's channels.
        channels: usize,
        /// The op's groups.
        groups: usize,
    },
    /// A norm op given the wrong number of inputs.
    #[error("expected [{want}] inputs, got {got}")]
    NormInputs {
        /// Inputs the op takes.
        want: usize,
        /// Inputs given.
        got: usize,
    },
    /// A loss op given the wrong number of inputs.
    #[error("expected {want} inputs, got {got}")]
    LossInputs {
        /// Inputs the op takes.
        want: usize,
        /// Inputs given.
        got: usize,
    },
    /// An operand or output (named by its role) whose shape is not the one the op needs.
    #[error("{what} is {got:?}, expected {want:?}")]
    Operand {
        /// Its role (`stats`, `gamma`, `dy`, `output`).
        what: &'static str,
        /// Its shape.
        got: Vec<usize>,
        /// The shape the op needs.
        want: Vec<usize>,
    },
    /// A loss's operand or output (named by its role) whose shape is not the one the loss needs.
    #[error("{what} has shape {got:?}, expected {want:?}")]
    LossOperand {
        /// Its role (`the target`, `the output gradient`, `the output`).
        what: &'static str,
        /// Its shape.
        got: Vec<usize>,
        /// The shape the loss needs.
        want: Vec<usize>,
    },
    /// Cross-entropy logits that are not `[N, K]`.
    #[error("logits must be [N, K], got {shape:?}")]
    Logits {
        /// The logits' shape.
        shape: Vec<usize>,
    },
    /// An IoU loss's boxes that are not `[N, 4]`.
    #[error("boxes must be [N, 4], got {shape:?}")]
    Boxes {
        /// The boxes' shape.
        shape: Vec<usize>,
    },
    /// A loss gradient with respect to an input the loss has none for.
    #[error("no gradient with respect to input {wrt}")]
    NoGradient {
        /// The op's `wrt` attribute.
        wrt: usize,
    },
    /// RoIAlign's boxes that are not `[K, 5]`.
    #[error("rois must be [K, 5], got {shape:?}")]
    Rois {
        /// The boxes' shape.
        shape: Vec<usize>,
    },
}

#[cfg(test)]
mod tests {
    use super::super::geometry::{ConvGeo, MatmulGeo, NormGeo, loss_shape};
    use super::super::strided::{plan_binary, plan_layout};
    use super::*;
    use crate::ir::op::{Conv2dAttrs, LayoutOp, LossKind, LossOp, MatmulOp, NormKind};

    /// The messages are the ones the checks wrote as text before they were typed.
    #[test]
    fn messages_name_the_shapes() {
        let e = plan_binary(&[2, 3], &[4], &[2, 3]).unwrap_err();
        assert_eq!(e.to_string(), "shape [4] does not broadcast to [2, 3]");
        let e = plan_layout(&LayoutOp::BroadcastTo, &[&[2, 2, 3]], &[2, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "broadcast_to: shape [2, 2, 3] has more axes than the output [2, 3]"
        );
        assert!(matches!(
            e,
            ShapeError::BroadcastTo(BroadcastError::MoreAxes { .. })
        ));
        let e =
            plan_layout(&LayoutOp::Permute { perm: vec![0, 0] }, &[&[2, 3]], &[2, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "permute: [0, 0] is not a permutation of the 2 axes of [2, 3]"
        );
        let e = plan_layout(&LayoutOp::Concat { axis: 2 }, &[&[2, 3]], &[2, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "concat: axis 2 out of range for shape [2, 3]"
        );
        let a = Conv2dAttrs {
            groups: 2,
            ..Conv2dAttrs::default()
        };
        let e = ConvGeo::new(&a, &[1, 4, 9, 8], &[6, 4, 3, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the weight [6, 4, 3, 3] takes 4 channels per group, the input [1, 4, 9, 8] has 4 in 2 group(s)"
        );
        let e = ConvGeo::with_output(&a, &[1, 4, 9, 8], &[6, 2, 3, 3], &[1, 6, 5, 5]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dy is [1, 6, 5, 5], the convolution of [1, 4, 9, 8] by [6, 2, 3, 3] gives [1, 6, 7, 6]"
        );
        let o = MatmulOp {
            trans_a: false,
            trans_b: false,
        };
        let e = MatmulGeo::new(&o, &[3, 4], &[5, 5], &[3, 5]).unwrap_err();
        assert_eq!(e, ShapeError::MatmulInner { k: 4, kb: 5 });
        assert_eq!(e.to_string(), "inner dimensions 4 and 5 differ");
        let e = NormGeo::new(&[2, 6, 4, 4], NormKind::Group(4)).unwrap_err();
        assert_eq!(e.to_string(), "6 channels do not split into 4 groups");
        let l1 = LossOp::Forward(LossKind::L1);
        let e = loss_shape(&l1, &[&[2, 3], &[3, 2]], &[2, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the target has shape [3, 2], expected [2, 3]"
        );
    }
}
