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
/// issued on (in order, so consecutive launches need no synchronisation), and the loaded
/// PTX modules and functions.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<Vec<Option<Arc<CudaModule>>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    sm_count: u32,
}

impl CudaDevice {
    /// Opens device `ordinal` after checking that it exists (see [`probe`]).
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        let count = probe()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).ctx("cuCtxCreate")?;
        let stream = ctx.default_stream();
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
