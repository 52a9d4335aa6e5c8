//! Fused loss forward+backward on the device: sigmoid focal, softmax cross-entropy, BCE with
//! logits, L1, smooth L1, GIoU. Each call reads its inputs once, writes the input gradient of
//! the reduced loss and the reduced loss itself (a 1-element device buffer; no host sync).
//!
//! Reduction follows mmdetection's `weight_reduce_loss`: the element losses are multiplied by
//! the weights, then `mean` divides by the element count, or by `avg_factor + f32::EPSILON`
//! when an avg_factor is given (mmdetection adds that epsilon), and `sum` sums (an avg_factor
//! with `sum` is an error, as there). `loss_weight` multiplies the result. All of that is one
//! factor, [`Reduction::scale`], applied inside the kernels.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::device::{BLOCK, CudaDevice, MAX_PARTIALS};
use super::dtype::{DType, KernelFloat};
use super::error::{CudaError, DriverContext};
use super::kernels::Module;
use super::launch::{self, LossLaunch};

/// How element losses become the scalar loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reduction {
    pub mean: bool,
    pub avg_factor: Option<f64>,
    pub loss_weight: f64,
}

impl Reduction {
    pub fn mean() -> Self {
        Reduction {
            mean: true,
            avg_factor: None,
            loss_weight: 1.0,
        }
    }

    pub fn sum() -> Self {
        Reduction {
            mean: false,
            avg_factor: None,
            loss_weight: 1.0,
        }
    }

    /// The factor applied to the weighted sum of `count` element losses (and to gradients).
    pub fn scale(&self, count: usize) -> Result<f64, CudaError> {
        match (self.mean, self.avg_factor) {
            (true, Some(a)) => Ok(self.loss_weight / (a + f32::EPSILON as f64)),
            (true, None) => Ok(self.loss_weight / count.max(1) as f64),
            (false, None) => Ok(self.loss_weight),
            (false, Some(_)) => Err(CudaError::shape(
                "loss",
                "avg_factor can not be used with reduction=\"sum\"",
            )),
        }
    }
}

fn check_len<T>(
    op: &'static str,
    what: &str,
    s: &CudaSlice<T>,
    want: usize,
) -> Result<(), CudaError> {
    if s.len() < want {
        return Err(CudaError::shape(
            op,
            format!("{what} holds {} elements, {want} needed", s.len()),
        ));
    }
    Ok(())
}

fn check_u32(op: &'static str, n: usize) -> Result<u32, CudaError> {
    u32::try_from(n).map_err(|_| CudaError::shape(op, format!("{n} elements exceed 2^32 - 1")))
}

impl CudaDevice {
    /// Grid for the grid-stride loss kernel `stem_<dtype>` of `module` over `n_items` threads'
    /// worth of work: as many blocks as are resident at once on this device (the driver's
    /// occupancy for that kernel's register count × SMs), never more than the items need nor
    /// [`MAX_PARTIALS`]. A grid of exactly one resident wave matters for these kernels: with
    /// equal work per block, a grid 30% larger than what fits (1024 blocks where 6 per SM
    /// × 132 SMs = 792 fit) runs a second, mostly idle wave and loses a third of the time.
    fn loss_grid(
        &self,
        n_items: usize,
        (module, stem, dtype): (Module, &'static str, DType),
    ) -> Result<LaunchConfig, CudaError> {
        let f = self.function(module, stem, dtype)?;
        let per_sm = f
            .occupancy_max_active_blocks_per_multiprocessor(BLOCK, 0, None)
            .ctx("cuOccupancyMaxActiveBlocksPerMultiprocessor")?
            .max(1);
        let cap = per_sm.saturating_mul(self.sm_count()).min(MAX_PARTIALS);
        let want = n_items.div_ceil(BLOCK as usize).clamp(1, cap as usize);
        Ok(LaunchConfig {
            grid_dim: (want as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        })
    }

    /// Runs a partial-sum loss kernel then the fixed-order finish into `loss[0]`.
    fn with_partials(
        &self,
        n_items: usize,
        kernel: (Module, &'static str, DType),
        loss: &mut CudaSlice<f32>,
        op: &'static str,
        run: impl FnOnce(LaunchConfig, &mut CudaSlice<f32>) -> Result<(), CudaError>,
    ) -> Result<(), CudaError> {
        check_len(op, "loss", loss, 1)?;
        let cfg = self.loss_grid(n_items, kernel)?;
        let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        run(cfg, &mut scratch)?;
        // SAFETY: the kernel above wrote cfg.grid_dim.x <= MAX_PARTIALS partials.
        unsafe { launch::finish(self, &scratch, loss, cfg.grid_dim.0, 1.0, false) }
    }

    /// Sigmoid focal loss (mmdetection `sigmoid_focal_loss`) over `logits[n_rows, n_cls]`
    /// with class-index `labels[n_rows]` (any label outside `0..n_cls` is background) and
    /// optional per-row `weight`. Writes `loss[0]` and, if given, `grad` (same shape).
    #[allow(clippy::too_many_arguments)]
    pub fn focal_loss<T: KernelFloat>(
        &self,
        logits: &CudaSlice<T>,
        labels: &CudaSlice<i32>,
        weight: Option<&CudaSlice<f32>>,
        grad: Option<&mut CudaSlice<T>>,
        loss: &mut CudaSlice<f32>,
        (n_rows, n_cls): (usize, usize),
        gamma: f32,
        alpha: f32,
        red: Reduction,
    ) -> Result<(), CudaError> {
        const OP: &str = "sigmoid_focal_loss";
        let n = n_rows
            .checked_mul(n_cls)
            .ok_or_else(|| CudaError::shape(OP, "size overflows"))?;
        check_u32(OP, n)?;
        if n_cls == 0 || gamma.is_nan() || gamma < 0.0 {
            return Err(CudaError::shape(OP, "n_cls must be > 0 and gamma >= 0"));
        }
        check_len(OP, "logits", logits, n)?;
        check_len(OP, "labels", labels, n_rows)?;
        if let Some(w) = weight {
            check_len(OP, "weight", w, n_rows)?;
        }
        if let Some(g) = &grad {
            check_len(OP, "grad", g, n)?;
        }
        let scale = red.scale(n)? as f32;
        if n == 0 {
            return self.zero_loss(loss);
        }
        let stem = if grad.is_some() {
            "focal_fwdbwd"
        } else {
            "focal_fwd"
        };
        let kernel = (Module::LossFocal, stem, T::DTYPE);
        self.with_partials(n, kernel, loss, OP, |cfg, partial| {
            // SAFETY: lengths checked above, n < 2^32, n_cls > 0, grid from loss_grid.
            unsafe {
                launch::focal(
                    self,
                    cfg,
                    LossLaunch {
                        input: logits,
                        grad,
                        weight,
                        partial,
                    },
                    labels,
                    n_rows as u32,
                    n_cls as u32,
                    gamma,
                    alpha,
                    scale,
                )
            }
        })
    }

    /// Softmax cross-entropy over rows of `logits[n_rows, n_cls]`; rows whose label is
    /// `ignore_index` or outside `0..n_cls` contribute nothing. `mean` divides by `n_rows`
    /// (mmdetection's `weight_reduce_loss` on per-row losses).
    #[allow(clippy::too_many_arguments)]
    pub fn cross_entropy<T: KernelFloat>(
        &self,
        logits: &CudaSlice<T>,
        labels: &CudaSlice<i32>,
        weight: Option<&CudaSlice<f32>>,
        grad: &mut CudaSlice<T>,
        loss: &mut CudaSlice<f32>,
        (n_rows, n_cls): (usize, usize),
        ignore_index: i32,
        red: Reduction,
    ) -> Result<(), CudaError> {
        const OP: &str = "cross_entropy";
        let n = n_rows
            .checked_mul(n_cls)
            .ok_or_else(|| CudaError::shape(OP, "size overflows"))?;
        check_u32(OP, n)?;
        if n_cls == 0 {
            return Err(CudaError::shape(OP, "n_cls must be > 0"));
        }
        check_len(OP, "logits", logits, n)?;
        check_len(OP, "grad", grad, n)?;
        check_len(OP, "labels", labels, n_rows)?;
        if let Some(w) = weight {
            check_len(OP, "weight", w, n_rows)?;
        }
        let scale = red.scale(n_rows)? as f32;
        if n == 0 {
            return self.zero_loss(loss);
        }
        // A warp per row: 8 rows per block of 256 threads.
        let kernel = (Module::LossCe, "ce_fwdbwd", T::DTYPE);
        self.with_partials(n_rows * 32, kernel, loss, OP, |cfg, partial| {
            // SAFETY: lengths checked above; grid from loss_grid.
            unsafe {
                launch::ce(
                    self,
                    cfg,
                    LossLaunch {
                        input: logits,
                        grad: Some(grad),
                        weight,
                        partial,
                    },
                    labels,
                    n_rows as u32,
                    n_cls as u32,
                    ignore_index,
                    scale,
                )
            }
        })
    }

    /// Elementwise losses against an f32 target of the same length `n`, per-element weight.
    #[allow(clippy::too_many_arguments)]
    fn pointwise<T: KernelFloat>(
        &self,
        op: &'static str,
        module: Module,
        stem: &'static str,
        input: &CudaSlice<T>,
        target: &CudaSlice<f32>,
        weight: Option<&CudaSlice<f32>>,
        grad: &mut CudaSlice<T>,
        loss: &mut CudaSlice<f32>,
        n: usize,
        per: usize,
        extra: Option<f32>,
        red: Reduction,
    ) -> Result<(), CudaError> {
        let elems = n
            .checked_mul(per)
            .ok_or_else(|| CudaError::shape(op, "size overflows"))?;
        check_u32(op, elems)?;
        check_len(op, "input", input, elems)?;
        check_len(op, "target", target, elems)?;
        check_len(op, "grad", grad, elems)?;
        if let Some(w) = weight {
            check_len(op, "weight", w, n)?;
        }
        let scale = red.scale(n)? as f32;
        if n == 0 {
            return self.zero_loss(loss);
        }
        self.with_partials(n, (module, stem, T::DTYPE), loss, op, |cfg, partial| {
            // SAFETY: lengths checked above; grid from loss_grid.
            unsafe {
                launch::pointwise_loss(
                    self,
                    cfg,
                    module,
                    stem,
                    LossLaunch {
                        input,
                        grad: Some(grad),
                        weight,
                        partial,
                    },
                    target,
                    n as u32,
                    extra,
                    scale,
                )
            }
        })
    }

    /// Binary cross-entropy with logits against probabilities `target`, per-element weight.
    #[allow(clippy::too_many_arguments)]
    pub fn bce_with_logits<T: KernelFloat>(
        &self,
        logits: &CudaSlice<T>,
        target: &CudaSlice<f32>,
        weight: Option<&CudaSlice<f32>>,
        grad: &mut CudaSlice<T>,
        loss: &mut CudaSlice<f32>,
        n: usize,
        red: Reduction,
    ) -> Result<(), CudaError> {
        self.pointwise(
            "bce_with_logits",
            Module::LossBce,
            "bce_fwdbwd",
            logits,
            target,
            weight,
            grad,
            loss,
            n,
            1,
            None,
            red,
        )
    }

    /// L1 loss, per-element weight.
    #[allow(clippy::too_many_arguments)]
    pub fn l1_loss<T: KernelFloat>(
        &self,
        pred: &CudaSlice<T>,
        target: &CudaSlice<f32>,
        weight: Option<&CudaSlice<f32>>,
        grad: &mut CudaSlice<T>,
        loss: &mut CudaSlice<f32>,
        n: usize,
        red: Reduction,
    ) -> Result<(), CudaError> {
        self.pointwise(
            "l1_loss",
            Module::LossL1,
            "l1_fwdbwd",
            pred,
            target,
            weight,
            grad,
            loss,
            n,
            1,
            None,
            red,
        )
    }

    /// Smooth L1 loss (`beta > 0`), per-element weight.
    #[allow(clippy::too_many_arguments)]
    pub fn smooth_l1_loss<T: KernelFloat>(
        &self,
        pred: &CudaSlice<T>,
        target: &CudaSlice<f32>,
        weight: Option<&CudaSlice<f32>>,
        grad: &mut CudaSlice<T>,
        loss: &mut CudaSlice<f32>,
        n: usize,
        beta: f32,
        red: Reduction,
    ) -> Result<(), CudaError> {
        if beta.is_nan() || beta <= 0.0 {
            return Err(CudaError::shape("smooth_l1_loss", "beta must be > 0"));
        }
        self.pointwise(
            "smooth_l1_loss",
            Module::LossL1,
            "smooth_l1_fwdbwd",
            pred,
            target,
            weight,
            grad,
            loss,
            n,
            1,
            Some(beta),
            red,
        )
    }

    /// GIoU loss over `n` aligned box pairs `(x1, y1, x2, y2)`, per-box weight.
    #[allow(clippy::too_many_arguments)]
    pub fn giou_loss<T: KernelFloat>(
        &self,
        pred: &CudaSlice<T>,
        target: &CudaSlice<f32>,
        weight: Option<&CudaSlice<f32>>,
        grad: &mut CudaSlice<T>,
        loss: &mut CudaSlice<f32>,
        n: usize,
        eps: f32,
        red: Reduction,
    ) -> Result<(), CudaError> {
        self.pointwise(
            "giou_loss",
            Module::LossGiou,
            "giou_fwdbwd",
            pred,
            target,
            weight,
            grad,
            loss,
            n,
            4,
            Some(eps),
            red,
        )
    }

    /// An empty input: the loss is 0 (sum over nothing), as mmdetection returns.
    fn zero_loss(&self, loss: &mut CudaSlice<f32>) -> Result<(), CudaError> {
        self.stream().memset_zeros(loss).ctx("cuMemsetD8")
    }
}
