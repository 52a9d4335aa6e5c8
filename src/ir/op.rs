//! The op set of the IR, grouped by family. A backend implements one method per family
//! (`crate::backend::Backend`); forward ops and the backward ops autodiff emits are
//! ordinary members of the same families, so a step graph needs nothing else to run.
//!
//! Conventions: tensors are contiguous row-major, images NCHW, conv weights `[Co, Ci/g, kh, kw]`.

use super::DType;
use serde::{Deserialize, Serialize};

/// One node's operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A value fed at run time by name (images, targets, avg_factor …).
    Input {
        name: String,
    },
    /// A parameter or buffer read by name from the parameters a run is given.
    Param {
        name: String,
    },
    /// A tensor filled with one value.
    Fill {
        value: f64,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    Reduce(ReduceOp),
    Layout(LayoutOp),
    Matmul(MatmulOp),
    Conv(ConvOp),
    Pool(PoolOp),
    Norm(NormOp),
    Loss(LossOp),
    /// Side effect handled by the executor: exponential moving average of batch statistics
    /// into BN running buffers. Input: `[2, C]` (mean, biased variance). Output: scalar 0.
    UpdateRunningStats {
        mean: String,
        var: String,
        momentum: f64,
        /// Elements per channel in the batch (for the unbiased variance `n/(n-1)`).
        count: usize,
    },
    /// The element-wise mean of the input over the ranks of a data-parallel run (the input
    /// itself in one process), handled by the executor through the run's collective. Its
    /// gradient is the same mean of the output gradient (sync batch norm's statistics).
    AllReduceMean,
    /// Elementwise ops run as one (made by `graph::fuse_elementwise` after autodiff, for a
    /// backend that asks for it; never differentiated). Inputs: the chain's inputs, each of
    /// the node's shape.
    Fused(super::FusedElementwise),
}

/// Elementwise one-input ops. `*Grad` variants take `(y, dy)` where `y` is the forward output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UnaryOp {
    Relu,
    Sigmoid,
    Exp,
    /// Natural logarithm (FCOS's `IoULoss` is `-ln IoU`).
    Log,
    /// `x * factor`.
    Scale(f64),
    /// `x + value`.
    AddScalar(f64),
    /// `max(x, lo)` clamped below (and above when `hi` is set).
    Clamp {
        lo: f64,
        hi: f64,
    },
    /// Element type conversion.
    Cast(DType),
    /// `dy * (y > 0)`; inputs `(y, dy)`.
    ReluGrad,
    /// `dy * y * (1 - y)`; inputs `(y, dy)`.
    SigmoidGrad,
    /// `dy * y`; inputs `(y, dy)`.
    ExpGrad,
    /// `dy / x`; inputs `(x, dy)`.
    LogGrad,
    /// `dy * (lo < x < hi)`; inputs `(x, dy)`.
    ClampGrad {
        lo: f64,
        hi: f64,
    },
}

/// Elementwise two-input ops with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Reductions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReduceOp {
    /// Sum over `axes` (sorted, unique); `keepdim` keeps them as size 1.
    Sum { axes: Vec<usize>, keepdim: bool },
}

/// Data movement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LayoutOp {
    /// Same data, new shape (output shape is the node's shape).
    Reshape,
    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    Permute { perm: Vec<usize> },
    /// `x[.., start..end, ..]` along `axis`.
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    /// The adjoint of [`LayoutOp::Slice`]: place the input at `start` along `axis` of a zero
    /// tensor (output shape is the node's shape).
    SlicePad { axis: usize, start: usize },
    /// Concatenate all inputs along `axis`.
    Concat { axis: usize },
    /// Repeat size-1 axes (and prepend axes) up to the node's shape.
    BroadcastTo,
}

/// Matrix product of the last two axes, batched over one optional leading axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatmulOp {
    pub trans_a: bool,
    pub trans_b: bool,
}

/// 2-D convolution attributes (PyTorch semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2dAttrs {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2dAttrs {
    fn default() -> Self {
        Conv2dAttrs {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Convolution family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConvOp {
    /// Inputs `(x, w)` or `(x, w, bias)`.
    Conv2d(Conv2dAttrs),
    /// Gradient w.r.t. the input; inputs `(dy, w)`; output shape is the node's (x's) shape.
    Conv2dGradInput(Conv2dAttrs),
    /// Gradient w.r.t. the weight; inputs `(x, dy)`; output shape is the node's (w's) shape.
    Conv2dGradWeight(Conv2dAttrs),
}

/// Pooling and resampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PoolOp {
    /// Max pooling (floor mode, padding with −∞); ties pick the first maximum.
    MaxPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    /// Gradient of max pooling; inputs `(x, dy)`.
    MaxPool2dGrad {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    /// Nearest-neighbour resize to the node's spatial size (PyTorch `nearest`:
    /// `src = floor(dst * in / out)`).
    UpsampleNearest,
    /// Gradient of [`PoolOp::UpsampleNearest`]; input `dy`, output the node's (x's) shape.
    UpsampleNearestGrad,
    /// RoIAlign (torchvision's `roi_align`, average pooling): inputs `(x [N, C, H, W], rois
    /// [K, 5])`, each RoI `[batch index, x1, y1, x2, y2]` in input pixels before
    /// `spatial_scale`; output `[K, C, ph, pw]`. RoIs get no gradient (as in torchvision).
    RoiAlign(RoiAlignAttrs),
    /// Gradient of [`PoolOp::RoiAlign`] w.r.t. `x`; inputs `(rois, dy)`, output the node's
    /// (x's) shape.
    RoiAlignGrad(RoiAlignAttrs),
}

/// RoIAlign's settings (torchvision's arguments; mmcv's `RoIAlign` with `pool_mode = avg`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoiAlignAttrs {
    /// Output bins `[ph, pw]`.
    pub output: [usize; 2],
    /// Box coordinates × this = feature-map coordinates (`1 / stride`).
    pub spatial_scale: f64,
    /// Samples per bin along each axis; 0: `ceil(box size / bins)` per box.
    pub sampling_ratio: usize,
    /// Pixel centres at +0.5 (Detectron2's and mmdetection's `aligned = True`).
    pub aligned: bool,
}

/// Which elements share normalisation statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormKind {
    /// Per channel over (N, H, W): statistics `[2, C]`.
    Batch,
    /// Per (sample, group) over (C/G, H, W): statistics `[2, N*G]`.
    Group(usize),
}

/// Normalisation family. Statistics tensors hold `[mean; biased variance]` as `[2, S]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NormOp {
    /// `x → [2, S]`.
    Stats(NormKind),
    /// `(x, stats, gamma, beta) → (x - mean) / sqrt(var + eps) * gamma + beta`.
    Apply { kind: NormKind, eps: f64 },
    /// Gradient of `Apply` w.r.t. `x` with statistics held constant; `(x, stats, gamma, dy)`.
    ApplyGradX { kind: NormKind, eps: f64 },
    /// Gradient of `Apply` w.r.t. the statistics: `[2, S]`; `(x, stats, gamma, dy)`.
    ApplyGradStats { kind: NormKind, eps: f64 },
    /// Gradient of `Apply` w.r.t. gamma and beta: `[2, C]`; `(x, stats, dy)`.
    ApplyGradAffine { kind: NormKind, eps: f64 },
    /// Gradient of `Stats` w.r.t. `x`; `(x, stats, dstats)`.
    StatsGrad(NormKind),
}

/// Box regression losses on `[N, 4]` xyxy boxes (torchvision formulas).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IouKind {
    /// `1 - IoU` (mmdetection's `IoULoss` builds its linear/square/log modes on it).
    IoU,
    GIoU,
    DIoU,
    /// The aspect term's weight α is treated as a constant, as torchvision and mmdet do.
    CIoU,
}

/// Detection losses without reduction (reduction, weights and `avg_factor` are built from
/// ordinary ops, see `GraphBuilder::weight_reduce_loss`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LossKind {
    /// `(logits, targets) → same shape`; torchvision's sigmoid focal loss; `alpha < 0` disables α.
    SigmoidFocal { alpha: f64, gamma: f64 },
    /// `(logits, targets) → same shape`.
    BceWithLogits,
    /// `(logits [N, K], labels i32 [N]) → [N]`; ignored rows give 0.
    CrossEntropy {
        ignore_index: i64,
        label_smoothing: f64,
    },
    /// `(pred, target) → |pred - target|`.
    L1,
    /// `(pred, target)`: `0.5 d²/β` if `|d| < β` else `|d| - 0.5β`.
    SmoothL1 { beta: f64 },
    /// `(pred [N,4], target [N,4]) → [N]`.
    Iou { kind: IouKind, eps: f64 },
}

/// Loss family: forward, or the gradient w.r.t. input `wrt` with inputs `(loss inputs.., dy)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LossOp {
    Forward(LossKind),
    Grad { kind: LossKind, wrt: usize },
}

impl Op {
    /// The short op name used in dumps and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Param { .. } => "param",
            Op::Fill { .. } => "fill",
            Op::Unary(u) => match u {
                UnaryOp::Relu => "relu",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Exp => "exp",
                UnaryOp::Log => "log",
                UnaryOp::Scale(_) => "scale",
                UnaryOp::AddScalar(_) => "add_scalar",
                UnaryOp::Clamp { .. } => "clamp",
                UnaryOp::Cast(_) => "cast",
                UnaryOp::ReluGrad => "relu_grad",
                UnaryOp::SigmoidGrad => "sigmoid_grad",
                UnaryOp::ExpGrad => "exp_grad",
                UnaryOp::LogGrad => "log_grad",
                UnaryOp::ClampGrad { .. } => "clamp_grad",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "add",
                BinaryOp::Sub => "sub",
                BinaryOp::Mul => "mul",
                BinaryOp::Div => "div",
            },
            Op::Reduce(ReduceOp::Sum { .. }) => "sum",
            Op::Layout(l) => match l {
                LayoutOp::Reshape => "reshape",
                LayoutOp::Permute { .. } => "permute",
                LayoutOp::Slice { .. } => "slice",
                LayoutOp::SlicePad { .. } => "slice_pad",
                LayoutOp::Concat { .. } => "concat",
                LayoutOp::BroadcastTo => "broadcast_to",
            },
            Op::Matmul(_) => "matmul",
            Op::Conv(c) => match c {
                ConvOp::Conv2d(_) => "conv2d",
                ConvOp::Conv2dGradInput(_) => "conv2d_grad_input",
                ConvOp::Conv2dGradWeight(_) => "conv2d_grad_weight",
            },
            Op::Pool(p) => match p {
                PoolOp::MaxPool2d { .. } => "max_pool2d",
                PoolOp::MaxPool2dGrad { .. } => "max_pool2d_grad",
                PoolOp::UpsampleNearest => "upsample_nearest",
                PoolOp::UpsampleNearestGrad => "upsample_nearest_grad",
                PoolOp::RoiAlign(_) => "roi_align",
                PoolOp::RoiAlignGrad(_) => "roi_align_grad",
            },
            Op::Norm(n) => match n {
                NormOp::Stats(_) => "norm_stats",
                NormOp::Apply { .. } => "norm_apply",
                NormOp::ApplyGradX { .. } => "norm_apply_grad_x",
                NormOp::ApplyGradStats { .. } => "norm_apply_grad_stats",
                NormOp::ApplyGradAffine { .. } => "norm_apply_grad_affine",
                NormOp::StatsGrad(_) => "norm_stats_grad",
            },
            Op::Loss(l) => match l {
                LossOp::Forward(k) => k.name(),
                LossOp::Grad { .. } => "loss_grad",
            },
            Op::UpdateRunningStats { .. } => "update_running_stats",
            Op::AllReduceMean => "all_reduce_mean",
            Op::Fused(_) => "fused",
        }
    }
}

impl LossKind {
    /// The loss name used in dumps.
    pub fn name(&self) -> &'static str {
        match self {
            LossKind::SigmoidFocal { .. } => "sigmoid_focal_loss",
            LossKind::BceWithLogits => "bce_with_logits",
            LossKind::CrossEntropy { .. } => "cross_entropy",
            LossKind::L1 => "l1_loss",
            LossKind::SmoothL1 { .. } => "smooth_l1_loss",
            LossKind::Iou { kind, .. } => match kind {
                IouKind::IoU => "iou_loss",
                IouKind::GIoU => "giou_loss",
                IouKind::DIoU => "diou_loss",
                IouKind::CIoU => "ciou_loss",
            },
        }
    }
}

/// Output size of a convolution or pooling window along one axis.
pub fn conv_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Option<usize> {
    let eff = dilation * (kernel - 1) + 1;
    if stride == 0 || input + 2 * pad < eff {
        return None;
    }
    Some((input + 2 * pad - eff) / stride + 1)
}
