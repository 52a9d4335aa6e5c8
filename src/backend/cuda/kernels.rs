//! The kernel-module registry: one variant per handwritten PTX file in `kernels/`, its source
//! embedded with `include_str!`, and the ABI of every entry the Rust side launches.
//!
//! [`ENTRIES`] is the contract between `kernels/*.ptx` and `launch.rs`: the ABI test parses
//! each module's `.entry` declarations and checks they match this table exactly (names, and
//! parameter types in order), so a PTX edit that changes a signature fails in CI, without a GPU.

/// One PTX module (= one file in `kernels/`), loaded lazily per device on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    LossFocal,
    LossCe,
    LossBce,
    LossL1,
    LossGiou,
    Reduce,
    Norm,
    Pool,
    RoiAlign,
    Optim,
    Scale,
    Conv,
    /// Tensor ops: strided copies, broadcasting binaries, unary maps, row sums, fill.
    Tensor,
    /// f32 <-> f16 / bf16 conversions (half-precision storage).
    Half,
}

impl Module {
    pub const ALL: [Module; 14] = [
        Module::LossFocal,
        Module::LossCe,
        Module::LossBce,
        Module::LossL1,
        Module::LossGiou,
        Module::Reduce,
        Module::Norm,
        Module::Pool,
        Module::RoiAlign,
        Module::Optim,
        Module::Scale,
        Module::Conv,
        Module::Tensor,
        Module::Half,
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
            Module::Reduce => "reduce.ptx",
            Module::Norm => "norm.ptx",
            Module::Pool => "pool.ptx",
            Module::RoiAlign => "roi_align.ptx",
            Module::Optim => "optim.ptx",
            Module::Scale => "scale.ptx",
            Module::Conv => "conv.ptx",
            Module::Tensor => "tensor.ptx",
            Module::Half => "half.ptx",
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
            Module::Reduce => include_str!("../../../kernels/reduce.ptx"),
            Module::Norm => include_str!("../../../kernels/norm.ptx"),
            Module::Pool => include_str!("../../../kernels/pool.ptx"),
            Module::RoiAlign => include_str!("../../../kernels/roi_align.ptx"),
            Module::Optim => include_str!("../../../kernels/optim.ptx"),
            Module::Scale => include_str!("../../../kernels/scale.ptx"),
            Module::Conv => include_str!("../../../kernels/conv.ptx"),
            Module::Tensor => include_str!("../../../kernels/tensor.ptx"),
            Module::Half => include_str!("../../../kernels/half.ptx"),
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

/// One kernel entry: its module, name stem (`focal_elem_fwd`) and parameters. Every entry
/// takes f32 data and its PTX name is the stem with `_f32` appended.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub module: Module,
    pub stem: &'static str,
    pub params: &'static [Param],
}

impl Entry {
    /// The PTX entry name.
    pub fn name(&self) -> String {
        ptx_name(self.stem)
    }
}

/// The PTX name of the entry with this stem (`focal_elem_fwd` → `focal_elem_fwd_f32`).
pub(crate) fn ptx_name(stem: &str) -> String {
    format!("{stem}_f32")
}

use Param::{F32, Ptr, S32, U32};

/// Every entry of every module. Order inside a module is irrelevant.
pub const ENTRIES: &[Entry] = &[
    // loss_focal.ptx
    Entry {
        module: Module::LossFocal,
        stem: "focal_elem_fwd",
        params: &[Ptr, Ptr, Ptr, U32, F32, F32],
    },
    Entry {
        module: Module::LossFocal,
        stem: "focal_elem_bwd",
        params: &[Ptr, Ptr, Ptr, Ptr, U32, F32, F32],
    },
    // loss_ce.ptx
    Entry {
        module: Module::LossCe,
        stem: "ce_row_fwd",
        params: &[Ptr, Ptr, Ptr, U32, U32, S32, F32],
    },
    Entry {
        module: Module::LossCe,
        stem: "ce_row_bwd",
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, S32, F32],
    },
    // loss_bce.ptx
    Entry {
        module: Module::LossBce,
        stem: "bce_elem_fwd",
        params: &[Ptr, Ptr, Ptr, U32],
    },
    Entry {
        module: Module::LossBce,
        stem: "bce_elem_bwd",
        params: &[Ptr, Ptr, Ptr, Ptr, U32],
    },
    // loss_l1.ptx
    Entry {
        module: Module::LossL1,
        stem: "smooth_l1_elem_fwd",
        params: &[Ptr, Ptr, Ptr, U32, F32],
    },
    Entry {
        module: Module::LossL1,
        stem: "smooth_l1_elem_bwd",
        params: &[Ptr, Ptr, Ptr, Ptr, U32, F32, F32],
    },
    // loss_giou.ptx
    Entry {
        module: Module::LossGiou,
        stem: "iou_box_fwd",
        params: &[Ptr, Ptr, Ptr, U32, U32, F32],
    },
    Entry {
        module: Module::LossGiou,
        stem: "iou_box_bwd",
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, F32],
    },
    // tensor.ptx
    // One strided index space of rank <= 6 (dims innermost first, then a stride per dim for
    // each operand): see kernels/README.md, "tensor.ptx".
    Entry {
        module: Module::Tensor,
        stem: "strided_copy_fwd",
        params: &[
            Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32,
            U32, U32, U32, U32, U32,
        ],
    },
    Entry {
        module: Module::Tensor,
        stem: "broadcast_binary_fwd",
        params: &[
            Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32,
            U32, U32, U32, U32, U32, U32, U32,
        ],
    },
    Entry {
        module: Module::Tensor,
        stem: "unary_map_fwd",
        params: &[Ptr, Ptr, Ptr, U32, U32, F32, F32],
    },
    Entry {
        module: Module::Tensor,
        stem: "rowsum_reduce",
        params: &[Ptr, Ptr, U32, U32, U32, U32],
    },
    Entry {
        module: Module::Tensor,
        stem: "fill_fwd",
        params: &[Ptr, U32, F32],
    },
    // half.ptx
    Entry {
        module: Module::Half,
        stem: "half_narrow_fwd",
        params: &[Ptr, Ptr, U32, U32],
    },
    Entry {
        module: Module::Half,
        stem: "half_widen_fwd",
        params: &[Ptr, Ptr, U32, U32],
    },
    // reduce.ptx
    Entry {
        module: Module::Reduce,
        stem: "sumsq_multi_fwd",
        params: &[Ptr, Ptr, Ptr],
    },
    Entry {
        module: Module::Reduce,
        stem: "finish_fwd",
        params: &[Ptr, Ptr, U32, F32, U32],
    },
    // norm.ptx
    Entry {
        module: Module::Norm,
        stem: "norm_stats",
        params: &[Ptr, Ptr, U32, U32, U32],
    },
    Entry {
        module: Module::Norm,
        stem: "norm_apply_fwd",
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::Norm,
        stem: "norm_apply_grad_x",
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::Norm,
        stem: "norm_apply_grad_stats",
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::Norm,
        stem: "norm_apply_grad_affine",
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, U32, F32],
    },
    Entry {
        module: Module::Norm,
        stem: "norm_stats_grad",
        params: &[Ptr, Ptr, Ptr, Ptr, U32, U32, U32, F32],
    },
    // pool.ptx
    Entry {
        module: Module::Pool,
        stem: "maxpool2d_fwd",
        params: &[Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32],
    },
    Entry {
        module: Module::Pool,
        stem: "maxpool2d_bwd",
        params: &[Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32],
    },
    Entry {
        module: Module::Pool,
        stem: "upsample_nearest2d_fwd",
        params: &[Ptr, Ptr, U32, U32, U32, U32, U32, F32, F32],
    },
    Entry {
        module: Module::Pool,
        stem: "upsample_nearest2d_bwd",
        params: &[Ptr, Ptr, U32, U32, U32, U32, U32, F32, F32],
    },
    // roi_align.ptx
    Entry {
        module: Module::RoiAlign,
        stem: "roi_align_fwd",
        params: &[
            Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, F32,
        ],
    },
    Entry {
        module: Module::RoiAlign,
        stem: "roi_align_bwd",
        params: &[
            Ptr, Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, F32,
        ],
    },
    // optim.ptx
    Entry {
        module: Module::Optim,
        stem: "sgd_multi",
        params: &[Ptr, Ptr, Ptr, Ptr, F32, F32, F32, F32, U32, U32],
    },
    Entry {
        module: Module::Optim,
        stem: "adamw_multi",
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, F32, F32, F32, F32, F32, F32, F32],
    },
    // scale.ptx
    Entry {
        module: Module::Scale,
        stem: "unscale_multi",
        params: &[Ptr, Ptr, Ptr, F32],
    },
    // conv.ptx
    Entry {
        module: Module::Conv,
        stem: "im2col_fwd",
        params: &[
            Ptr, Ptr, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32,
        ],
    },
    Entry {
        module: Module::Conv,
        stem: "col2im_bwd",
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
