//! Raw kernel launches: one `unsafe` function per launch shape, parameters pushed in exactly
//! the order of `kernels/README.md` and
//! [`super::kernels::ENTRIES`]. Callers (the safe op layer) uphold each `# Safety` contract;
//! every launch's driver result is checked.

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::device::CudaDevice;
use super::error::{CudaError, DriverContext};
use super::kernels::Module;

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
    let f = dev.function(Module::Reduce, "finish_fwd")?;
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
    /// Half-precision storage (16-bit patterns).
    InU16(&'a CudaSlice<u16>),
    OutU16(&'a mut CudaSlice<u16>),
    InView(&'a CudaView<'v, f32>),
    OutView(&'a mut CudaViewMut<'v, f32>),
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
    let f = dev.function(module, stem)?;
    let mut b = dev.stream().launch_builder(&f);
    for a in args.iter_mut() {
        match a {
            Arg::In(s) => b.arg(*s),
            Arg::Out(s) => b.arg(&mut **s),
            Arg::InI32(s) => b.arg(*s),
            Arg::OutI32(s) => b.arg(&mut **s),
            Arg::InU64(s) => b.arg(*s),
            Arg::InU32(s) => b.arg(*s),
            Arg::InU16(s) => b.arg(*s),
            Arg::OutU16(s) => b.arg(&mut **s),
            Arg::InView(s) => b.arg(*s),
            Arg::OutView(s) => b.arg(&mut **s),
            Arg::U32(v) => b.arg(&*v),
            Arg::F32(v) => b.arg(&*v),
        };
    }
    // SAFETY: the caller upholds the contract above.
    unsafe { b.launch(cfg) }.ctx(stem)?;
    Ok(())
}
