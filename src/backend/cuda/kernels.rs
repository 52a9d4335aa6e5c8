//! The kernel-module registry: one variant per handwritten PTX file in `kernels/`, its source
//! embedded with `include_str!`, and the ABI of every entry the Rust side launches.
//!
//! [`ENTRIES`] is the contract between `kernels/*.ptx` and `launch.rs`: the ABI test parses
//! each module's `.entry` declarations and checks they match this table exactly (names, and
//! parameter types in order), so a PTX edit that changes a signature fails in CI, without a GPU.

use super::dtype::DType;

/// One PTX module (= one file in `kernels/`), loaded lazily per device on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    LossFocal,
    LossCe,
    LossBce,
    LossL1,
    LossGiou,
    Elementwise,
    Reduce,
    Norm,
    Pool,
    Optim,
    Scale,
    Conv,
    /// Graph-IR tensor ops: strided copies, broadcasting binaries, unary maps, row sums.
    Tensor,
    /// Graph-IR normalisation ops (statistics, apply, and their gradients).
    NormIr,
}

impl Module {
    pub const ALL: [Module; 14] = [
        Module::LossFocal,
        Module::LossCe,
        Module::LossBce,
        Module::LossL1,
        Module::LossGiou,
        Module::Elementwise,
        Module::Reduce,
        Module::Norm,
        Module::Pool,
        Module::Optim,
        Module::Scale,
        Module::Conv,
        Module::Tensor,
        Module::NormIr,
    ];

    /// Position in [`Module::ALL`] (the per-device module cache index).
    pub fn index(self) -> usize {
        Module::ALL.iter().position(|m| *m == self).unwrap_or(0)
    }

    /// The file name under `kernels/`.
    pub fn file(self) -> &'static str {
        match self {
            Module::LossFocal => "loss_focal.ptx",
            Module::LossCe => "loss_ce.ptx",
            Module::LossBce => "loss_bce.ptx",
            Module::LossL1 => "loss_l1.ptx",
            Module::LossGiou => "loss_giou.ptx",
            Module::Elementwise => "elementwise.ptx",
            Module::Reduce => "reduce.ptx",
            Module::Norm => "norm.ptx",
            Module::Pool => "pool.ptx",
            Module::Optim => "optim.ptx",
            Module::Scale => "scale.ptx",
            Module::Conv => "conv.ptx",
            Module::Tensor => "tensor.ptx",
            Module::NormIr => "norm_ir.ptx",
        }
    }

    /// The embedded PTX text.
    pub fn ptx(self) -> &'static str {
        match self {
            Module::LossFocal => include_str!("../../../kernels/loss_focal.ptx"),
            Module::LossCe => include_str!("../../../kernels/loss_ce.ptx"),
            Module::LossBce => include_str!("../../../kernels/loss_bce.ptx"),
            Module::LossL1 => include_str!("../../../kernels/loss_l1.ptx"),
            Module::LossGiou => include_str!("../../../kernels/loss_giou.ptx"),
            Module::Elementwise => include_str!("../../../kernels/elementwise.ptx"),
            Module::Reduce => include_str!("../../../kernels/reduce.ptx"),
            Module::Norm => include_str!("../../../kernels/norm.ptx"),
            Module::Pool => include_str!("../../../kernels/pool.ptx"),
            Module::Optim => include_str!("../../../kernels/optim.ptx"),
            Module::Scale => include_str!("../../../kernels/scale.ptx"),
            Module::Conv => include_str!("../../../kernels/conv.ptx"),
            Module::Tensor => include_str!("../../../kernels/tensor.ptx"),
            Module::NormIr => include_str!("../../../kernels/norm_ir.ptx"),
        }
    }

    /// Loss modules: a register spill there is a CI failure (they must stream at bandwidth).
    pub fn is_loss(self) -> bool {
        matches!(
            self,
            Module::LossFocal
                | Module::LossCe
                | Module::LossBce
                | Module::LossL1
                | Module::LossGiou
        )
    }
}

/// A kernel parameter type, as declared in PTX (`.param .u64` etc.).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// A device pointer (`.u64`); may be 0 where the ABI says "nullable".
    Ptr,
    U32,
    S32,
    F32,
}

impl Param {
    /// The PTX spelling.
    pub fn ptx(self) -> &'static str {
        match self {
            Param::Ptr => "u64",
            Param::U32 => "u32",
            Param::S32 => "s32",
            Param::F32 => "f32",
        }
    }
}

/// One kernel entry: its module, name stem (`focal_fwdbwd`), dtype variants and parameters.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub module: Module,
    pub stem: &'static str,
    /// Dtype variants; an entry without variants ends in `_f32` and takes f32 only.
    pub dtypes: &'static [DType],
    pub params: &'static [Param],
}

impl Entry {
    /// The full PTX entry names of every variant.
    pub fn names(&self) -> Vec<String> {
        self.dtypes
            .iter()
            .map(|d| format!("{}_{}", self.stem, d.suffix()))
            .collect()
    }
}

use Param::{F32, Ptr, S32, U32};

const ALL: &[DType] = &DType::ALL;
const F32_ONLY: &[DType] = &[DType::F32];

/// Every entry of every module. Order inside a module is irrelevant.
pub const ENTRIES: &[Entry] = &[
    // loss_focal.ptx
    Entry {
        module: Module::LossFocal,
        stem: "focal_fwdbwd",
        dtypes: ALL,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, F32, F32, F32],
    },
    Entry {
        module: Module::LossFocal,
        stem: "focal_fwd",
        dtypes: ALL,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, F32, F32, F32],
    },
    // graph-IR (unreduced) focal loss, ir/loss.rs
    Entry {
        module: Module::LossFocal,
        stem: "focal_elem_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, F32, F32],
    },
    Entry {
        module: Module::LossFocal,
        stem: "focal_elem_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, F32, F32],
    },
    // loss_ce.ptx
    Entry {
        module: Module::LossCe,
        stem: "ce_fwdbwd",
        dtypes: ALL,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, S32, F32],
    },
    // graph-IR (unreduced) cross-entropy, ir/loss.rs
    Entry {
        module: Module::LossCe,
        stem: "ce_row_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, U32, S32, F32],
    },
    Entry {
        module: Module::LossCe,
        stem: "ce_row_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, S32, F32],
    },
    // loss_bce.ptx
    Entry {
        module: Module::LossBce,
        stem: "bce_fwdbwd",
        dtypes: ALL,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, F32],
    },
    // graph-IR (unreduced) BCE with logits, ir/loss.rs
    Entry {
        module: Module::LossBce,
        stem: "bce_elem_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32],
    },
    Entry {
        module: Module::LossBce,
        stem: "bce_elem_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32],
    },
    // loss_l1.ptx
    Entry {
        module: Module::LossL1,
        stem: "l1_fwdbwd",
        dtypes: ALL,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, F32],
    },
    Entry {
        module: Module::LossL1,
        stem: "smooth_l1_fwdbwd",
        dtypes: ALL,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, F32, F32],
    },
    // graph-IR (unreduced) L1 / smooth L1, ir/loss.rs
    Entry {
        module: Module::LossL1,
        stem: "smooth_l1_elem_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, F32],
    },
    Entry {
        module: Module::LossL1,
        stem: "smooth_l1_elem_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, F32, F32],
    },
    // loss_giou.ptx
    Entry {
        module: Module::LossGiou,
        stem: "giou_fwdbwd",
        dtypes: ALL,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, F32, F32],
    },
    // graph-IR (unreduced) GIoU / DIoU / CIoU, ir/loss.rs
    Entry {
        module: Module::LossGiou,
        stem: "iou_box_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, U32, F32],
    },
    Entry {
        module: Module::LossGiou,
        stem: "iou_box_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, F32],
    },
    // elementwise.ptx
    Entry {
        module: Module::Elementwise,
        stem: "relu_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32],
    },
    Entry {
        module: Module::Elementwise,
        stem: "relu_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32],
    },
    Entry {
        module: Module::Elementwise,
        stem: "add_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32],
    },
    Entry {
        module: Module::Elementwise,
        stem: "mul_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32],
    },
    Entry {
        module: Module::Elementwise,
        stem: "axpby_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, F32, F32],
    },
    Entry {
        module: Module::Elementwise,
        stem: "sigmoid_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32],
    },
    Entry {
        module: Module::Elementwise,
        stem: "sigmoid_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32],
    },
    Entry {
        module: Module::Elementwise,
        stem: "fill_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, U32, F32],
    },
    // ---- tensor.ptx (graph-IR tensor ops, ir/tensor.rs) ----
    // One strided index space of rank <= 6 (dims innermost first, then a stride per dim for
    // each operand): see kernels/README.md, "tensor.ptx".
    Entry {
        module: Module::Tensor,
        stem: "strided_copy_fwd",
        dtypes: F32_ONLY,
        params: &[
            Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32,
            U32, U32, U32, U32, U32,
        ],
    },
    Entry {
        module: Module::Tensor,
        stem: "broadcast_binary_fwd",
        dtypes: F32_ONLY,
        params: &[
            Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32,
            U32, U32, U32, U32, U32, U32, U32,
        ],
    },
    Entry {
        module: Module::Tensor,
        stem: "unary_map_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, U32, F32, F32],
    },
    Entry {
        module: Module::Tensor,
        stem: "rowsum_reduce",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32, U32, U32, U32],
    },
    // ---- end tensor.ptx ----
    // reduce.ptx
    Entry {
        module: Module::Reduce,
        stem: "sum_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32],
    },
    Entry {
        module: Module::Reduce,
        stem: "sumsq_multi_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr],
    },
    Entry {
        module: Module::Reduce,
        stem: "finish_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32, F32, U32],
    },
    // norm.ptx
    Entry {
        module: Module::Norm,
        stem: "batchnorm_stats",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, F32, F32],
    },
    Entry {
        module: Module::Norm,
        stem: "batchnorm_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32],
    },
    Entry {
        module: Module::Norm,
        stem: "batchnorm_bwd_reduce",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32],
    },
    Entry {
        module: Module::Norm,
        stem: "batchnorm_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32],
    },
    Entry {
        module: Module::Norm,
        stem: "groupnorm_stats",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, U32, U32, F32],
    },
    Entry {
        module: Module::Norm,
        stem: "groupnorm_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32],
    },
    Entry {
        module: Module::Norm,
        stem: "groupnorm_bwd_reduce",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32],
    },
    Entry {
        module: Module::Norm,
        stem: "groupnorm_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32],
    },
    Entry {
        module: Module::Norm,
        stem: "groupnorm_param_grad",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32],
    },
    // ---- norm_ir.ptx (graph-IR normalisation, ir/nn.rs) ----
    Entry {
        module: Module::NormIr,
        stem: "norm_ir_stats",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32, U32, U32],
    },
    Entry {
        module: Module::NormIr,
        stem: "norm_ir_apply_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::NormIr,
        stem: "norm_ir_apply_grad_x",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::NormIr,
        stem: "norm_ir_apply_grad_stats",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::NormIr,
        stem: "norm_ir_apply_grad_affine",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::NormIr,
        stem: "norm_ir_stats_grad",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, F32],
    },
    // ---- end norm_ir.ptx ----
    // pool.ptx
    Entry {
        module: Module::Pool,
        stem: "maxpool2d_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32],
    },
    Entry {
        module: Module::Pool,
        stem: "maxpool2d_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32],
    },
    Entry {
        module: Module::Pool,
        stem: "upsample_nearest2d_fwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32, U32, U32, U32, U32, F32, F32],
    },
    Entry {
        module: Module::Pool,
        stem: "upsample_nearest2d_bwd",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, U32, U32, U32, U32, U32, F32, F32],
    },
    // optim.ptx
    Entry {
        module: Module::Optim,
        stem: "sgd_multi",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, F32, F32, F32, F32, U32, U32],
    },
    Entry {
        module: Module::Optim,
        stem: "adamw_multi",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, F32, F32, F32, F32, F32, F32, F32],
    },
    // scale.ptx
    Entry {
        module: Module::Scale,
        stem: "unscale_multi",
        dtypes: F32_ONLY,
        params: &[Ptr, Ptr, Ptr, F32],
    },
    // conv.ptx
    Entry {
        module: Module::Conv,
        stem: "im2col_fwd",
        dtypes: F32_ONLY,
        params: &[
            Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32,
        ],
    },
    Entry {
        module: Module::Conv,
        stem: "col2im_bwd",
        dtypes: F32_ONLY,
        params: &[
            Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32,
        ],
    },
];

/// The entry with this stem (panics only on a typo in this crate, caught by the ABI test).
pub(crate) fn entry(stem: &str) -> &'static Entry {
    ENTRIES
        .iter()
        .find(|e| e.stem == stem)
        .unwrap_or_else(|| panic!("kernel entry `{stem}` is not in kernels::ENTRIES"))
}
