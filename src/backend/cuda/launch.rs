//! Raw kernel launches: one `unsafe` function per entry family (generic over the dtype
//! variants), parameters pushed in exactly the order of `kernels/README.md` and
//! [`super::kernels::ENTRIES`]. Callers (the safe op layer) uphold each `# Safety` contract;
//! every launch's driver result is checked.

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::device::CudaDevice;
use super::dtype::{DType, KernelFloat};
use super::error::{CudaError, DriverContext};
use super::kernels::Module;

/// A device pointer argument that may be null (`weight` and similar).
fn opt_ptr<T>(dev: &CudaDevice, s: Option<&CudaSlice<T>>) -> u64 {
    use cudarc::driver::DevicePtr;
    match s {
        // The read is ordered by the stream: every op in this backend uses the one stream.
        Some(s) => s.device_ptr(dev.stream()).0,
        None => 0,
    }
}

/// Inputs shared by the fused loss kernels.
pub(crate) struct LossLaunch<'a, T> {
    pub input: &'a CudaSlice<T>,
    pub grad: Option<&'a mut CudaSlice<T>>,
    pub weight: Option<&'a CudaSlice<f32>>,
    pub partial: &'a mut CudaSlice<f32>,
}

/// `focal_fwdbwd_<dt>` / `focal_fwd_<dt>`.
///
/// # Safety
/// `input` and `grad` hold `n_rows * n_cls` elements, `labels` `n_rows`, `weight` (if any)
/// `n_rows`; `n_rows * n_cls < 2^32`; `n_cls > 0`; `cfg.block_dim == (256,1,1)` and
/// `cfg.grid_dim.x <= partial.len()`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn focal<T: KernelFloat>(
    dev: &CudaDevice,
    cfg: LaunchConfig,
    a: LossLaunch<'_, T>,
    labels: &CudaSlice<i32>,
    n_rows: u32,
    n_cls: u32,
    gamma: f32,
    alpha: f32,
    scale: f32,
) -> Result<(), CudaError> {
    let stem = if a.grad.is_some() {
        "focal_fwdbwd"
    } else {
        "focal_fwd"
    };
    let f = dev.function(Module::LossFocal, stem, T::DTYPE)?;
    let weight = opt_ptr(dev, a.weight);
    let mut b = dev.stream().launch_builder(&f);
    b.arg(a.input).arg(labels).arg(&weight);
    if let Some(g) = a.grad {
        b.arg(g);
    }
    b.arg(a.partial)
        .arg(&n_rows)
        .arg(&n_cls)
        .arg(&gamma)
        .arg(&alpha)
        .arg(&scale);
    // SAFETY: the caller upholds the contract above; parameter order matches the PTX.
    unsafe { b.launch(cfg) }.ctx(stem)?;
    Ok(())
}

/// `ce_fwdbwd_<dt>`.
///
/// # Safety
/// As [`focal`], with `grad` required and `cfg.block_dim == (256,1,1)` (8 rows per block).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn ce<T: KernelFloat>(
    dev: &CudaDevice,
    cfg: LaunchConfig,
    a: LossLaunch<'_, T>,
    labels: &CudaSlice<i32>,
    n_rows: u32,
    n_cls: u32,
    ignore_index: i32,
    scale: f32,
) -> Result<(), CudaError> {
    let f = dev.function(Module::LossCe, "ce_fwdbwd", T::DTYPE)?;
    let weight = opt_ptr(dev, a.weight);
    let grad = a
        .grad
        .ok_or_else(|| CudaError::shape("ce_fwdbwd", "a gradient buffer is required"))?;
    let mut b = dev.stream().launch_builder(&f);
    b.arg(a.input)
        .arg(labels)
        .arg(&weight)
        .arg(grad)
        .arg(a.partial)
        .arg(&n_rows)
        .arg(&n_cls)
        .arg(&ignore_index)
        .arg(&scale);
    // SAFETY: the caller upholds the contract above.
    unsafe { b.launch(cfg) }.ctx("ce_fwdbwd")?;
    Ok(())
}

/// The elementwise fused losses with an f32 target of the input's length:
/// `bce_fwdbwd`, `l1_fwdbwd`, `smooth_l1_fwdbwd` (extra = [beta]), `giou_fwdbwd`
/// (extra = [eps], n counts boxes of 4).
///
/// # Safety
/// `input`, `grad`, `target` hold `n` (or `4n` for giou) elements; `weight` (if any) `n`
/// (per element, or per box for giou); `cfg.block_dim == (256,1,1)`,
/// `cfg.grid_dim.x <= partial.len()`; `n` (or `4n`) `< 2^32`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn pointwise_loss<T: KernelFloat>(
    dev: &CudaDevice,
    cfg: LaunchConfig,
    module: Module,
    stem: &'static str,
    a: LossLaunch<'_, T>,
    target: &CudaSlice<f32>,
    n: u32,
    extra: Option<f32>,
    scale: f32,
) -> Result<(), CudaError> {
    let f = dev.function(module, stem, T::DTYPE)?;
    let weight = opt_ptr(dev, a.weight);
    let grad = a
        .grad
        .ok_or_else(|| CudaError::shape(stem, "a gradient buffer is required"))?;
    let mut b = dev.stream().launch_builder(&f);
    b.arg(a.input)
        .arg(target)
        .arg(&weight)
        .arg(grad)
        .arg(a.partial)
        .arg(&n);
    if let Some(x) = &extra {
        b.arg(x);
    }
    b.arg(&scale);
    // SAFETY: the caller upholds the contract above.
    unsafe { b.launch(cfg) }.ctx(stem)?;
    Ok(())
}

/// `finish_fwd_f32`: `out[0] = scale * sum(partial[..n])`, square-rooted if `sqrt`.
///
/// # Safety
/// `partial` holds `n` elements, `out` at least 1; launched as one block of 256.
pub(crate) unsafe fn finish(
    dev: &CudaDevice,
    partial: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
    n: u32,
    scale: f32,
    sqrt: bool,
) -> Result<(), CudaError> {
    let f = dev.function(Module::Reduce, "finish_fwd", DType::F32)?;
    let take_sqrt = sqrt as u32;
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (super::device::BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = dev.stream().launch_builder(&f);
    b.arg(partial).arg(out).arg(&n).arg(&scale).arg(&take_sqrt);
    // SAFETY: the caller upholds the contract above.
    unsafe { b.launch(cfg) }.ctx("finish_fwd_f32")?;
    Ok(())
}

/// Any f32 kernel whose parameters are device buffers followed by scalars, in ABI order.
/// Used by the op families with many small entries (elementwise, reduce, norm, pool, optim).
pub(crate) enum Arg<'a, 'v> {
    In(&'a CudaSlice<f32>),
    Out(&'a mut CudaSlice<f32>),
    InI32(&'a CudaSlice<i32>),
    OutI32(&'a mut CudaSlice<i32>),
    InU64(&'a CudaSlice<u64>),
    InU32(&'a CudaSlice<u32>),
    InView(&'a CudaView<'v, f32>),
    OutView(&'a mut CudaViewMut<'v, f32>),
    /// A nullable pointer that is null.
    Null,
    U32(u32),
    F32(f32),
}

/// Launches `stem_f32` of `module` with `args` in order.
///
/// # Safety
/// `args` match the entry's ABI (checked against [`super::kernels::ENTRIES`] in debug builds
/// and by the ABI test) and the buffer lengths satisfy the entry's contract in
/// `kernels/README.md`; `cfg` follows that entry's launch geometry.
pub(crate) unsafe fn generic(
    dev: &CudaDevice,
    module: Module,
    stem: &'static str,
    cfg: LaunchConfig,
    args: &mut [Arg<'_, '_>],
) -> Result<(), CudaError> {
    debug_assert_eq!(super::kernels::entry(stem).params.len(), args.len());
    let f = dev.function(module, stem, DType::F32)?;
    let null = 0u64;
    let mut b = dev.stream().launch_builder(&f);
    for a in args.iter_mut() {
        match a {
            Arg::In(s) => b.arg(*s),
            Arg::Out(s) => b.arg(&mut **s),
            Arg::InI32(s) => b.arg(*s),
            Arg::OutI32(s) => b.arg(&mut **s),
            Arg::InU64(s) => b.arg(*s),
            Arg::InU32(s) => b.arg(*s),
            Arg::InView(s) => b.arg(*s),
            Arg::OutView(s) => b.arg(&mut **s),
            Arg::Null => b.arg(&null),
            Arg::U32(v) => b.arg(&*v),
            Arg::F32(v) => b.arg(&*v),
        };
    }
    // SAFETY: the caller upholds the contract above.
    unsafe { b.launch(cfg) }.ctx(stem)?;
    Ok(())
}
