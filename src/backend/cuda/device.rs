//! Device detection and the per-device state: context, stream, lazily loaded PTX modules
//! and a function cache.
//!
//! cudarc panics when libcuda is missing (`CudaContext::new`), so nothing here touches the
//! context before [`probe`] has checked that the driver library loads and the ordinal exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;

use super::error::{CudaError, DriverContext};
use super::kernels::Module;

/// Threads per block of every kernel (the PTX block reductions assume 8 warps).
pub const BLOCK: u32 = 256;

/// Number of CUDA devices, or why there are none. Never panics: a machine without the
/// driver library gives [`CudaError::NoDriver`], a driver without devices gives 0.
pub fn probe() -> Result<usize, CudaError> {
    // SAFETY: only tries to dlopen the driver library by its usual names; no CUDA call yet.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    match CudaContext::device_count() {
        Ok(n) => Ok(n.max(0) as usize),
        // cuInit fails with NO_DEVICE on a driver without GPUs: that is "zero devices".
        Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => Ok(0),
        Err(source) => Err(CudaError::Driver {
            context: "cuInit/cuDeviceGetCount",
            source,
        }),
    }
}

/// Parses a `--device` value: `None` for `cpu`, `Some(ordinal)` for `cuda` / `cuda:N`.
pub fn parse_device(s: &str) -> Result<Option<usize>, CudaError> {
    match s {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(Some)
            .ok_or_else(|| CudaError::BadDeviceName(s.to_string())),
    }
}

/// One CUDA device with the state every op needs: its context, the one stream every op is
/// issued on (a non-blocking stream of its own, in order, so consecutive launches need no
/// synchronisation; memory comes from the stream-ordered pool, which keeps what is freed),
/// and the loaded PTX modules and functions.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<Vec<Option<Arc<CudaModule>>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    sm_count: u32,
}

/// Makes the stream-ordered pool keep what a step frees, as PyTorch's caching allocator does:
/// with the default release threshold (0) the driver hands freed memory back to the OS at
/// every synchronisation, and the next step allocates it again. Devices without memory pools
/// (cudarc then uses `cuMemAlloc`) are left as they are.
fn keep_freed_memory(ctx: &Arc<CudaContext>) -> Result<(), CudaError> {
    use cudarc::driver::{result, sys};
    if !ctx.has_async_alloc() {
        return Ok(());
    }
    let mut threshold = u64::MAX;
    // SAFETY: the device comes from a live context; the attribute takes a u64 (cuuint64_t).
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device())
            .ctx("cuDeviceGetDefaultMemPool")?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .ctx("cuMemPoolSetAttribute(RELEASE_THRESHOLD)")
    }
}

impl CudaDevice {
    /// Opens device `ordinal` after checking that it exists (see [`probe`]).
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        let count = probe()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).ctx("cuCtxCreate")?;
        // One stream carries every op, so cudarc's per-slice event tracking (which its
        // multi-stream mode turns on for every buffer argument) would order nothing: off.
        // SAFETY: no slice exists yet, and no second stream is ever made on this context.
        unsafe { ctx.disable_event_tracking() };
        // Our own non-blocking stream, not the legacy NULL stream: it does not serialise
        // with other contexts' work, and it is the kind a CUDA graph can be captured on.
        let stream = ctx.new_stream().ctx("cuStreamCreate")?;
        keep_freed_memory(&ctx)?;
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .ctx("cuDeviceGetAttribute")?
            .max(1) as u32;
        Ok(CudaDevice {
            ctx,
            stream,
            modules: Mutex::new(vec![None; Module::ALL.len()]),
            functions: Mutex::new(HashMap::new()),
            sm_count,
        })
    }

    /// The device's name as the driver reports it.
    pub fn name(&self) -> Result<String, CudaError> {
        self.ctx.name().ctx("cuDeviceGetName")
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Streaming multiprocessors (sizes grid-stride grids).
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// Waits for all queued work; surfaces asynchronous kernel faults.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize().ctx("cuStreamSynchronize")
    }

    /// The module, loading its PTX (JIT by the driver) on first use.
    fn module(&self, m: Module) -> Result<Arc<CudaModule>, CudaError> {
        let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(loaded) = &mods[m.index()] {
            return Ok(loaded.clone());
        }
        let loaded = self
            .ctx
            .load_module(Ptx::from_src(m.ptx()))
            .ctx("cuModuleLoadData (PTX JIT)")?;
        mods[m.index()] = Some(loaded.clone());
        Ok(loaded)
    }

    /// The kernel `stem` of module `m` (its f32 entry), cached.
    pub(crate) fn function(&self, m: Module, stem: &str) -> Result<CudaFunction, CudaError> {
        let name = super::kernels::ptx_name(stem);
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
        {
            return Ok(f.clone());
        }
        let f = self
            .module(m)?
            .load_function(&name)
            .ctx("cuModuleGetFunction")?;
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, f.clone());
        Ok(f)
    }

    /// Grid for a grid-stride kernel over `n` items: enough blocks to fill the device a few
    /// times over, never more than the items need.
    pub(crate) fn grid_for(&self, n: usize, cap: u32) -> LaunchConfig {
        let want = n.div_ceil(BLOCK as usize).max(1);
        let cap = cap.min(self.sm_count.saturating_mul(8)).max(1) as usize;
        LaunchConfig {
            grid_dim: (want.min(cap) as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Copies a host slice (values, labels, pointer tables) to a new device buffer.
    pub fn upload<T: cudarc::driver::DeviceRepr>(
        &self,
        host: &[T],
    ) -> Result<CudaSlice<T>, CudaError> {
        self.stream.clone_htod(host).ctx("cuMemcpyHtoD")
    }

    /// Copies a device buffer back (synchronises the stream).
    pub fn download<T: cudarc::driver::DeviceRepr + Default + Clone>(
        &self,
        dev: &CudaSlice<T>,
    ) -> Result<Vec<T>, CudaError> {
        self.stream.clone_dtoh(dev).ctx("cuMemcpyDtoH")
    }

    /// A zeroed device buffer.
    pub fn zeros<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        self.stream.alloc_zeros(len.max(1)).ctx("cuMemAlloc")
    }
}
