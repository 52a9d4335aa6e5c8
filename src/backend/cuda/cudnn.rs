//! Convolutions through cuDNN (NCHW, any group count; f32, or f16/bf16 data with f32
//! accumulation — tensor cores — under mixed precision): forward, backward-data and
//! backward-filter, each with the algorithm PyTorch's `cudnn.benchmark` would pick.
//!
//! The first call of each shape (a [`ConvKey`]: pass, input and filter shapes, stride,
//! padding, dilation, groups) benchmarks every algorithm with `cudnnFind…AlgorithmEx` on the
//! call's own buffers and keeps the fastest that succeeded, fits [`WORKSPACE_CAP`] and — under
//! `runtime.deterministic` — is deterministic ([`choose`]). Descriptors are made once per key;
//! one workspace, grown to the largest chosen algorithm's need, serves every call, so a
//! training step allocates nothing after its first iteration (shapes are static per bucket).
//!
//! Math: under TF32 the descriptor takes the math type the chosen algorithm was timed with
//! (cuDNN refuses a mismatch); strict f32 pins `CUDNN_FMA_MATH`, which forbids tensor-op
//! conversions, as PyTorch does when `allow_tf32` is off. Half data is timed under
//! `CUDNN_TENSOR_OP_MATH` (f16) or `CUDNN_DEFAULT_MATH` (bf16), PyTorch's choices, and runs
//! with the math type of its chosen algorithm.
//!
//! Built on cudarc's public `result`/`sys` layers: its safe `Conv*` wrappers keep their
//! descriptors private and pick algorithms by heuristic only. libcudnn is loaded at run time
//! ([`Cudnn::open`] says when it cannot be), so a build runs without it (im2col + cuBLAS).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use cudarc::cudnn::{result, sys};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

use super::device::CudaDevice;
use super::error::CudaError;
use super::options::CudaOptions;
use crate::ir::DType;

/// The most workspace one algorithm may take (PyTorch caps it by free memory; a detector's
/// largest convolutions choose algorithms needing well under this).
pub const WORKSPACE_CAP: usize = 1 << 30;

/// Which of a convolution's three computations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    Forward,
    BackwardData,
    BackwardFilter,
}

/// What an algorithm is chosen for: shapes are static per bucket, so a step has a few dozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvKey {
    pub pass: Pass,
    /// Input `[n, c, h, w]`.
    pub x: [usize; 4],
    /// Filter `[k, c / groups, r, s]`.
    pub w: [usize; 4],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    /// The data type of all three tensors: f32, f16 or bf16 (accumulation is f32).
    pub dtype: DType,
}

impl ConvKey {
    /// The output `[n, k, oh, ow]` (cross-correlation, torch's formula); `None` when the
    /// geometry is empty or the channels do not divide into the groups.
    pub fn output(&self) -> Option<[usize; 4]> {
        let ([n, c, h, w], [k, cg, r, s]) = (self.x, self.w);
        let g = self.groups;
        if g == 0 || c != cg * g || k % g != 0 || k == 0 || n == 0 || self.dilation.contains(&0) {
            return None;
        }
        let axis = |len: usize, i: usize, kernel: usize| {
            let span = self.dilation[i].checked_mul(kernel.checked_sub(1)?)? + 1;
            let padded = len.checked_add(self.padding[i].checked_mul(2)?)?;
            (self.stride[i] > 0 && padded >= span).then(|| (padded - span) / self.stride[i] + 1)
        };
        Some([n, k, axis(h, 0, r)?, axis(w, 1, s)?])
    }
}

/// One algorithm as cuDNN's Find reported it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// The algorithm's number in its pass's enum.
    pub algo: u32,
    pub succeeded: bool,
    pub time_ms: f32,
    pub memory: usize,
    pub deterministic: bool,
    /// The math type it was timed with (the descriptor must carry the same to run it).
    pub math: sys::cudnnMathType_t,
}

impl Candidate {
    /// Whether it runs on tensor cores (TF32 for f32 data).
    pub fn tensor_ops(&self) -> bool {
        use sys::cudnnMathType_t::{CUDNN_TENSOR_OP_MATH, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION};
        self.math == CUDNN_TENSOR_OP_MATH || self.math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
    }
}

/// The fastest candidate that ran, fits `cap` bytes and, when asked, is deterministic.
/// Find reports in increasing time; this does not rely on it.
pub fn choose(found: &[Candidate], deterministic: bool, cap: usize) -> Option<Candidate> {
    found
        .iter()
        .filter(|c| c.succeeded && c.memory <= cap && (c.deterministic || !deterministic))
        .min_by(|a, b| a.time_ms.total_cmp(&b.time_ms))
        .copied()
}

/// The algorithm kept for a key, with the descriptors that run it.
struct Chosen {
    algo: u32,
    tensor_ops: bool,
    memory: usize,
    time_ms: f32,
    descs: Descs,
}

/// The chosen algorithm of one key, for reports (`bench cuda` prints them).
#[derive(Clone, Debug)]
pub struct ChosenAlgo {
    pub key: ConvKey,
    pub algo: String,
    pub tensor_ops: bool,
    pub workspace: usize,
    pub time_ms: f32,
}

/// cuDNN on the device's stream: the handle, the per-key algorithm cache and the workspace.
pub struct Cudnn {
    inner: Mutex<Inner>,
    options: CudaOptions,
    version: usize,
    /// Kept so the handle is destroyed before its stream and context.
    stream: std::sync::Arc<cudarc::driver::CudaStream>,
}

struct Inner {
    handle: sys::cudnnHandle_t,
    cache: HashMap<ConvKey, Chosen>,
    /// Keys no algorithm ran for: refused at once after the first Find.
    unrunnable: std::collections::HashSet<ConvKey>,
    workspace: Option<CudaSlice<u8>>,
}

// SAFETY: the handle is used only under the mutex, so never from two threads at once (cuDNN's
// requirement), and the descriptors are immutable after creation.
unsafe impl Send for Cudnn {}
unsafe impl Sync for Cudnn {}

fn no_algorithm(key: ConvKey, deterministic: bool) -> CudaError {
    CudaError::Cudnn {
        context: "cudnnFind…AlgorithmEx",
        message: format!(
            "no {}algorithm ran for {key:?}",
            if deterministic { "deterministic " } else { "" },
        ),
    }
}

/// Makes the device's context current on this thread (cudarc's safe cuDNN wrapper does the
/// same before every call).
fn bind(dev: &CudaDevice) -> Result<(), CudaError> {
    dev.context()
        .bind_to_thread()
        .map_err(|source| CudaError::Driver {
            context: "cuCtxSetCurrent (cuDNN)",
            source,
        })
}

fn err(context: &'static str) -> impl Fn(result::CudnnError) -> CudaError {
    move |e| CudaError::Cudnn {
        context,
        message: format!("{:?}", e.0),
    }
}

impl Cudnn {
    /// Opens cuDNN on the device's stream; `Ok(None)` when libcudnn does not load.
    pub fn open(dev: &CudaDevice, options: CudaOptions) -> Result<Option<Self>, CudaError> {
        // SAFETY: only tries to dlopen libcudnn by its usual names.
        if !unsafe { sys::is_culib_present() } {
            return Ok(None);
        }
        // The bindings are cuDNN 9's: an older library, or a 9 whose engine libraries do not
        // load (cuDNN 9 opens them lazily), counts as no cuDNN.
        if result::get_version() < 90000 || result::version_check().is_err() {
            return Ok(None);
        }
        bind(dev)?;
        let handle = result::create_handle().map_err(err("cudnnCreate"))?;
        // SAFETY: the handle was just created; the stream lives as long as the device, which
        // outlives this handle (the backend holds both). The two `CUstream_st` types are the
        // same driver object, declared once per cudarc module.
        unsafe { result::set_stream(handle, dev.stream().cu_stream().cast()) }
            .map_err(err("cudnnSetStream"))?;
        Ok(Some(Cudnn {
            inner: Mutex::new(Inner {
                handle,
                cache: HashMap::new(),
                unrunnable: Default::default(),
                workspace: None,
            }),
            options,
            version: result::get_version(),
            stream: dev.stream().clone(),
        }))
    }

    /// `9.1.0` for cuDNN 9.1.0 (its `CUDNN_VERSION` is major·10000 + minor·100 + patch).
    pub fn version(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
    }

    /// Every algorithm chosen so far, in no particular order.
    pub fn chosen(&self) -> Vec<ChosenAlgo> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .cache
            .iter()
            .map(|(key, c)| ChosenAlgo {
                key: *key,
                algo: algo_name(key.pass, c.algo),
                tensor_ops: c.tensor_ops,
                workspace: c.memory,
                time_ms: c.time_ms,
            })
            .collect()
    }

    /// Runs `key`'s pass: `Forward` reads (`a` = x, `b` = w) and writes y (plus `bias` per
    /// output channel); `BackwardData` reads (`a` = dy, `b` = w) and writes dx;
    /// `BackwardFilter` reads (`a` = x, `b` = dy) and writes dw. Buffer lengths are checked
    /// against the key's shapes; a bias is refused on the backward passes.
    ///
    /// `T` is the storage of `key.dtype`: `f32`, or `u16` patterns for f16 and bf16.
    pub fn run<T: cudarc::driver::DeviceRepr>(
        &self,
        dev: &CudaDevice,
        key: ConvKey,
        a: &CudaSlice<T>,
        b: &CudaSlice<T>,
        bias: Option<&CudaSlice<T>>,
        out: &mut CudaSlice<T>,
    ) -> Result<(), CudaError> {
        let bytes = match key.dtype {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            d => {
                return Err(CudaError::shape(
                    "conv2d (cudnn)",
                    format!("{d:?} data is not a cuDNN convolution type here"),
                ));
            }
        };
        if std::mem::size_of::<T>() != bytes {
            return Err(CudaError::shape(
                "conv2d (cudnn)",
                format!(
                    "{:?} data in {}-byte storage",
                    key.dtype,
                    std::mem::size_of::<T>()
                ),
            ));
        }
        let y = key
            .output()
            .ok_or_else(|| CudaError::shape("conv2d (cudnn)", format!("bad geometry {key:?}")))?;
        let numel = |s: [usize; 4]| s.iter().product::<usize>();
        let (na, nb, nout) = match key.pass {
            Pass::Forward => (numel(key.x), numel(key.w), numel(y)),
            Pass::BackwardData => (numel(y), numel(key.w), numel(key.x)),
            Pass::BackwardFilter => (numel(key.x), numel(y), numel(key.w)),
        };
        let bias_len = match (key.pass, bias) {
            (_, None) => 0,
            (Pass::Forward, Some(bias)) => bias.len(),
            (_, Some(_)) => {
                return Err(CudaError::shape(
                    "conv2d (cudnn)",
                    "a bias belongs to the forward pass",
                ));
            }
        };
        if a.len() < na || b.len() < nb || out.len() < nout || (bias.is_some() && bias_len < y[1]) {
            return Err(CudaError::shape(
                "conv2d (cudnn)",
                "a buffer is shorter than its tensor",
            ));
        }
        if [key.x, key.w, y]
            .iter()
            .flatten()
            .any(|&d| i32::try_from(d).is_err())
            || i32::try_from(nout.max(na).max(nb)).is_err()
        {
            return Err(CudaError::shape(
                "conv2d (cudnn)",
                "a dimension or size exceeds 2^31",
            ));
        }
        let stream = dev.stream();
        // cuDNN runs on the CUDA runtime, which uses the calling thread's current context.
        bind(dev)?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (pa, _ra) = a.device_ptr(stream);
        let (pb, _rb) = b.device_ptr(stream);
        let (po, _ro) = out.device_ptr_mut(stream);
        let (pa, pb, po) = (pa as *const c_void, pb as *const c_void, po as *mut c_void);
        if inner.unrunnable.contains(&key) {
            return Err(no_algorithm(key, self.options.deterministic));
        }
        if !inner.cache.contains_key(&key) {
            match self.find(&inner, dev, key, y, (pa, pb, po)) {
                Ok(chosen) => inner.cache.insert(key, chosen),
                Err(e) => {
                    inner.unrunnable.insert(key);
                    return Err(e);
                }
            };
        }
        let need = inner.cache[&key].memory;
        if inner.workspace.as_ref().is_none_or(|w| w.len() < need) {
            // Grown once per new largest need (the first step); freed memory stays in the pool.
            inner.workspace = None;
            inner.workspace = Some(
                // SAFETY: a workspace is scratch: cuDNN writes before it reads.
                unsafe { stream.alloc::<u8>(need.max(1)) }.map_err(|source| CudaError::Driver {
                    context: "cuMemAllocAsync (cuDNN workspace)",
                    source,
                })?,
            );
        }
        let Inner {
            handle,
            cache,
            workspace,
            ..
        } = &mut *inner;
        let chosen = &cache[&key];
        let ws = workspace.as_mut().expect("allocated above");
        let ws_len = ws.len();
        let (pw, _rw) = ws.device_ptr_mut(stream);
        // SAFETY: the descriptors describe the checked buffers; the workspace holds at least
        // the algorithm's need; everything is issued on the device's stream.
        unsafe {
            launch(
                *handle,
                key.pass,
                chosen,
                (pa, pb, po),
                (pw as *mut c_void, ws_len),
            )?
        };
        if let Some(bias) = bias {
            let (pbias, _rbias) = bias.device_ptr(stream);
            let one = 1.0f32;
            let one = (&one as *const f32).cast::<c_void>();
            // SAFETY: the bias descriptor is [1, k, 1, 1] over a buffer of at least k floats;
            // y += bias broadcast over n, h, w.
            unsafe {
                sys::cudnnAddTensor(
                    *handle,
                    one,
                    chosen.descs.bias.0,
                    pbias as *const c_void,
                    one,
                    chosen.descs.y.0,
                    po,
                )
            }
            .result()
            .map_err(err("cudnnAddTensor (bias)"))?;
        }
        Ok(())
    }

    /// Benchmarks every algorithm of `key` on the call's buffers and keeps the best.
    fn find(
        &self,
        inner: &Inner,
        dev: &CudaDevice,
        key: ConvKey,
        y: [usize; 4],
        ptrs: (*const c_void, *const c_void, *mut c_void),
    ) -> Result<Chosen, CudaError> {
        let strict = !self.options.tf32;
        let descs = Descs::new(&key, y, search_math(key.dtype, strict))?;
        let handle = inner.handle;
        // The workspace Find may use: the largest any algorithm asks for, within the cap.
        // SAFETY: descriptors and handle are live.
        let sizes = unsafe { workspace_sizes(handle, key.pass, &descs) };
        let find_ws = sizes
            .into_iter()
            .filter(|&s| s <= WORKSPACE_CAP)
            .max()
            .unwrap_or(0);
        // Scratch for Find. When the device cannot spare it, Find runs with none, so only
        // the algorithms that need no workspace compete (PyTorch's fallback too).
        let alloc = |bytes: usize| {
            // SAFETY: Find writes its workspace before it reads it.
            unsafe { dev.stream().alloc::<u8>(bytes.max(1)) }
        };
        let (mut scratch, find_ws) = match alloc(find_ws) {
            Ok(s) => (s, find_ws),
            Err(_) => (
                alloc(0).map_err(|source| CudaError::Driver {
                    context: "cuMemAllocAsync (cuDNN find workspace)",
                    source,
                })?,
                0,
            ),
        };
        let (pw, _rw) = scratch.device_ptr_mut(dev.stream());
        // SAFETY: the buffers hold the key's tensors (checked by `run`); Find overwrites the
        // output, which the chosen algorithm then writes again.
        let found = unsafe { find(handle, key.pass, &descs, ptrs, (pw as *mut c_void, find_ws))? };
        let Some(best) = choose(&found, self.options.deterministic, find_ws) else {
            return Err(no_algorithm(key, self.options.deterministic));
        };
        // Strict f32 keeps FMA math whatever Find reports; otherwise the descriptor takes
        // the math type the algorithm was timed with (cuDNN refuses a mismatch).
        let strict_f32 = strict && key.dtype == DType::F32;
        let math = if strict_f32 {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        } else {
            best.math
        };
        // SAFETY: the descriptor is live.
        unsafe { result::set_convolution_math_type(descs.conv.0, math) }
            .map_err(err("cudnnSetConvolutionMathType"))?;
        Ok(Chosen {
            algo: best.algo,
            tensor_ops: !strict_f32 && best.tensor_ops(),
            memory: best.memory,
            time_ms: best.time_ms,
            descs,
        })
    }
}

impl Drop for Cudnn {
    fn drop(&mut self) {
        let _ = self.stream.context().bind_to_thread();
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        inner.cache.clear();
        inner.workspace = None;
        // SAFETY: the handle is live and no descriptor of it remains.
        let _ = unsafe { result::destroy_handle(inner.handle) };
    }
}

/// The descriptors of one key, destroyed on drop (`bias` is `[1, k, 1, 1]`).
struct Descs {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    bias: TensorDesc,
    conv: ConvDesc,
}

struct TensorDesc(sys::cudnnTensorDescriptor_t);
struct FilterDesc(sys::cudnnFilterDescriptor_t);
struct ConvDesc(sys::cudnnConvolutionDescriptor_t);

impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_tensor_descriptor`, destroyed once.
        let _ = unsafe { result::destroy_tensor_descriptor(self.0) };
    }
}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: as above.
        let _ = unsafe { result::destroy_filter_descriptor(self.0) };
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: as above.
        let _ = unsafe { result::destroy_convolution_descriptor(self.0) };
    }
}

fn dims(s: [usize; 4]) -> [i32; 4] {
    s.map(|d| d as i32) // checked < 2^31 by `Cudnn::run`
}

/// The math type Find times algorithms under: strict f32 may not convert to TF32 (FMA);
/// f16 asks for tensor ops and bf16 takes the default, as PyTorch does.
fn search_math(dtype: DType, strict: bool) -> sys::cudnnMathType_t {
    use sys::cudnnMathType_t::*;
    match dtype {
        DType::F16 => CUDNN_TENSOR_OP_MATH,
        DType::F32 if strict => CUDNN_FMA_MATH,
        _ => CUDNN_DEFAULT_MATH,
    }
}

fn data_type(dtype: DType) -> sys::cudnnDataType_t {
    match dtype {
        DType::F16 => sys::cudnnDataType_t::CUDNN_DATA_HALF,
        DType::BF16 => sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16,
        _ => sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
    }
}

impl Descs {
    fn new(key: &ConvKey, y: [usize; 4], math: sys::cudnnMathType_t) -> Result<Self, CudaError> {
        use sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let data = data_type(key.dtype);
        let tensor = |s: [usize; 4]| -> Result<TensorDesc, CudaError> {
            let d = TensorDesc(
                result::create_tensor_descriptor().map_err(err("cudnnCreateTensorDescriptor"))?,
            );
            // SAFETY: a fresh descriptor.
            unsafe { result::set_tensor4d_descriptor(d.0, CUDNN_TENSOR_NCHW, data, dims(s)) }
                .map_err(err("cudnnSetTensor4dDescriptor"))?;
            Ok(d)
        };
        let (x, bias) = (tensor(key.x)?, tensor([1, y[1], 1, 1])?);
        let y = tensor(y)?;
        let w = FilterDesc(
            result::create_filter_descriptor().map_err(err("cudnnCreateFilterDescriptor"))?,
        );
        // SAFETY: a fresh descriptor.
        unsafe { result::set_filter4d_descriptor(w.0, data, CUDNN_TENSOR_NCHW, dims(key.w)) }
            .map_err(err("cudnnSetFilter4dDescriptor"))?;
        let conv = ConvDesc(
            result::create_convolution_descriptor()
                .map_err(err("cudnnCreateConvolutionDescriptor"))?,
        );
        let i = |v: usize| v as i32;
        // SAFETY: a fresh descriptor; the values were checked to fit by `ConvKey::output`.
        // The compute type is f32 for every data type (cuDNN's PSEUDO_HALF/BFLOAT16 configs).
        unsafe {
            result::set_convolution2d_descriptor(
                conv.0,
                i(key.padding[0]),
                i(key.padding[1]),
                i(key.stride[0]),
                i(key.stride[1]),
                i(key.dilation[0]),
                i(key.dilation[1]),
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )
            .map_err(err("cudnnSetConvolution2dDescriptor"))?;
            result::set_convolution_group_count(conv.0, i(key.groups))
                .map_err(err("cudnnSetConvolutionGroupCount"))?;
            result::set_convolution_math_type(conv.0, math)
                .map_err(err("cudnnSetConvolutionMathType"))?;
        }
        Ok(Descs {
            x,
            w,
            y,
            bias,
            conv,
        })
    }
}

/// Every algorithm's workspace need for this pass (those cuDNN cannot run are left out).
///
/// # Safety
/// The handle and descriptors are live.
unsafe fn workspace_sizes(h: sys::cudnnHandle_t, pass: Pass, d: &Descs) -> Vec<usize> {
    let mut sizes = Vec::new();
    for algo in 0..algo_count(pass) {
        let mut size = 0usize;
        // SAFETY: the algorithm number is below its enum's COUNT, so a valid variant.
        let status = unsafe {
            match pass {
                Pass::Forward => sys::cudnnGetConvolutionForwardWorkspaceSize(
                    h,
                    d.x.0,
                    d.w.0,
                    d.conv.0,
                    d.y.0,
                    std::mem::transmute::<u32, sys::cudnnConvolutionFwdAlgo_t>(algo),
                    &mut size,
                ),
                Pass::BackwardData => sys::cudnnGetConvolutionBackwardDataWorkspaceSize(
                    h,
                    d.w.0,
                    d.y.0,
                    d.conv.0,
                    d.x.0,
                    std::mem::transmute::<u32, sys::cudnnConvolutionBwdDataAlgo_t>(algo),
                    &mut size,
                ),
                Pass::BackwardFilter => sys::cudnnGetConvolutionBackwardFilterWorkspaceSize(
                    h,
                    d.x.0,
                    d.y.0,
                    d.conv.0,
                    d.w.0,
                    std::mem::transmute::<u32, sys::cudnnConvolutionBwdFilterAlgo_t>(algo),
                    &mut size,
                ),
            }
        };
        if status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            sizes.push(size);
        }
    }
    sizes
}

fn algo_count(pass: Pass) -> u32 {
    match pass {
        Pass::Forward => sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_COUNT as u32,
        Pass::BackwardData => {
            sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT as u32
        }
        Pass::BackwardFilter => {
            sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT as u32
        }
    }
}

/// cuDNN's name for an algorithm, without the common prefix (`IMPLICIT_PRECOMP_GEMM`).
pub fn algo_name(pass: Pass, algo: u32) -> String {
    if algo >= algo_count(pass) {
        return format!("algorithm {algo}");
    }
    // SAFETY: below the enum's COUNT, so a valid variant.
    let full = unsafe {
        match pass {
            Pass::Forward => {
                format!(
                    "{:?}",
                    std::mem::transmute::<u32, sys::cudnnConvolutionFwdAlgo_t>(algo)
                )
            }
            Pass::BackwardData => format!(
                "{:?}",
                std::mem::transmute::<u32, sys::cudnnConvolutionBwdDataAlgo_t>(algo)
            ),
            Pass::BackwardFilter => format!(
                "{:?}",
                std::mem::transmute::<u32, sys::cudnnConvolutionBwdFilterAlgo_t>(algo)
            ),
        }
    };
    [
        "CUDNN_CONVOLUTION_FWD_ALGO_",
        "CUDNN_CONVOLUTION_BWD_DATA_ALGO_",
        "CUDNN_CONVOLUTION_BWD_FILTER_ALGO_",
    ]
    .iter()
    .find_map(|p| full.strip_prefix(p))
    .unwrap_or(&full)
    .to_string()
}

/// One result of a Find, with its enums as plain numbers: a value cuDNN writes that the
/// bindings' Rust enums do not list (another cuDNN version's status code, a field of a failed
/// entry) would be undefined behaviour read as those enums.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawPerf {
    algo: u32,
    status: u32,
    time: f32,
    memory: usize,
    determinism: u32,
    math_type: u32,
    reserved: [i32; 3],
}

const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<RawPerf>() == size_of::<sys::cudnnConvolutionFwdAlgoPerf_t>());
    assert!(size_of::<RawPerf>() == size_of::<sys::cudnnConvolutionBwdDataAlgoPerf_t>());
    assert!(size_of::<RawPerf>() == size_of::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>());
    assert!(align_of::<RawPerf>() == align_of::<sys::cudnnConvolutionFwdAlgoPerf_t>());
};

impl RawPerf {
    fn candidate(&self) -> Candidate {
        use sys::cudnnMathType_t::*;
        Candidate {
            algo: self.algo,
            succeeded: self.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS as u32,
            time_ms: self.time,
            memory: self.memory,
            deterministic: self.determinism == sys::cudnnDeterminism_t::CUDNN_DETERMINISTIC as u32,
            math: match self.math_type {
                1 => CUDNN_TENSOR_OP_MATH,
                2 => CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION,
                3 => CUDNN_FMA_MATH,
                _ => CUDNN_DEFAULT_MATH,
            },
        }
    }
}

/// Runs every algorithm of the pass (cuDNN's Find) and reports each.
///
/// # Safety
/// Handle and descriptors are live; the pointers hold the descriptors' tensors; the
/// workspace holds `ws.1` bytes.
unsafe fn find(
    h: sys::cudnnHandle_t,
    pass: Pass,
    d: &Descs,
    (a, b, out): (*const c_void, *const c_void, *mut c_void),
    (ws, ws_len): (*mut c_void, usize),
) -> Result<Vec<Candidate>, CudaError> {
    let want = algo_count(pass) as i32;
    let mut got = 0i32;
    macro_rules! run_find {
        ($f:ident, $perf:ty, $($args:expr),*) => {{
            let mut perf = vec![RawPerf::default(); want as usize];
            // SAFETY: `perf` has room for `want` results of the pass's perf struct, whose
            // layout `RawPerf` repeats (asserted below); cuDNN writes `got` of them.
            unsafe {
                sys::$f(h, $($args),*, want, &mut got, perf.as_mut_ptr().cast::<$perf>(), ws, ws_len)
                    .result()
                    .map_err(err(stringify!($f)))?;
            }
            perf.truncate(got.clamp(0, want) as usize);
            perf.iter().map(RawPerf::candidate).collect()
        }};
    }
    Ok(match pass {
        Pass::Forward => run_find!(
            cudnnFindConvolutionForwardAlgorithmEx,
            sys::cudnnConvolutionFwdAlgoPerf_t,
            d.x.0,
            a,
            d.w.0,
            b,
            d.conv.0,
            d.y.0,
            out
        ),
        Pass::BackwardData => run_find!(
            cudnnFindConvolutionBackwardDataAlgorithmEx,
            sys::cudnnConvolutionBwdDataAlgoPerf_t,
            d.w.0,
            b,
            d.y.0,
            a,
            d.conv.0,
            d.x.0,
            out
        ),
        Pass::BackwardFilter => run_find!(
            cudnnFindConvolutionBackwardFilterAlgorithmEx,
            sys::cudnnConvolutionBwdFilterAlgoPerf_t,
            d.x.0,
            a,
            d.y.0,
            b,
            d.conv.0,
            d.w.0,
            out
        ),
    })
}

/// Runs the chosen algorithm: `out = conv(a, b)` (β = 0).
///
/// # Safety
/// As [`find`], with the workspace at least the algorithm's need.
unsafe fn launch(
    h: sys::cudnnHandle_t,
    pass: Pass,
    c: &Chosen,
    (a, b, out): (*const c_void, *const c_void, *mut c_void),
    (ws, ws_len): (*mut c_void, usize),
) -> Result<(), CudaError> {
    let (alpha, beta) = (1.0f32, 0.0f32);
    let (al, be) = (
        (&alpha as *const f32).cast::<c_void>(),
        (&beta as *const f32).cast::<c_void>(),
    );
    let d = &c.descs;
    // SAFETY: the caller's contract; the algorithm came from Find for this pass, so it is a
    // valid variant of the pass's enum.
    unsafe {
        match pass {
            Pass::Forward => sys::cudnnConvolutionForward(
                h,
                al,
                d.x.0,
                a,
                d.w.0,
                b,
                d.conv.0,
                std::mem::transmute::<u32, sys::cudnnConvolutionFwdAlgo_t>(c.algo),
                ws,
                ws_len,
                be,
                d.y.0,
                out,
            )
            .result()
            .map_err(err("cudnnConvolutionForward")),
            Pass::BackwardData => sys::cudnnConvolutionBackwardData(
                h,
                al,
                d.w.0,
                b,
                d.y.0,
                a,
                d.conv.0,
                std::mem::transmute::<u32, sys::cudnnConvolutionBwdDataAlgo_t>(c.algo),
                ws,
                ws_len,
                be,
                d.x.0,
                out,
            )
            .result()
            .map_err(err("cudnnConvolutionBackwardData")),
            Pass::BackwardFilter => sys::cudnnConvolutionBackwardFilter(
                h,
                al,
                d.x.0,
                a,
                d.y.0,
                b,
                d.conv.0,
                std::mem::transmute::<u32, sys::cudnnConvolutionBwdFilterAlgo_t>(c.algo),
                ws,
                ws_len,
                be,
                d.w.0,
                out,
            )
            .result()
            .map_err(err("cudnnConvolutionBackwardFilter")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(algo: u32, time_ms: f32, memory: usize, deterministic: bool) -> Candidate {
        Candidate {
            algo,
            succeeded: true,
            time_ms,
            memory,
            deterministic,
            math: sys::cudnnMathType_t::CUDNN_FMA_MATH,
        }
    }

    #[test]
    fn the_fastest_algorithm_that_ran_fits_and_is_deterministic_when_asked_is_chosen() {
        let mut failed = cand(0, 0.1, 0, true);
        failed.succeeded = false;
        let found = [
            failed,
            cand(1, 0.5, 2 << 30, true),
            cand(2, 1.0, 1 << 20, false),
            cand(3, 2.0, 0, true),
        ];
        assert_eq!(
            choose(&found, false, WORKSPACE_CAP).map(|c| c.algo),
            Some(2)
        );
        assert_eq!(choose(&found, true, WORKSPACE_CAP).map(|c| c.algo), Some(3));
        assert_eq!(choose(&found, false, usize::MAX).map(|c| c.algo), Some(1));
        assert_eq!(choose(&found[..1], false, WORKSPACE_CAP), None);
    }

    #[test]
    fn keys_give_torch_output_shapes_and_refuse_bad_groups() {
        let key = ConvKey {
            pass: Pass::Forward,
            x: [2, 64, 200, 336],
            w: [128, 64, 3, 3],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 1,
            dtype: DType::F32,
        };
        assert_eq!(key.output(), Some([2, 128, 100, 168]));
        let grouped = ConvKey {
            w: [128, 2, 3, 3],
            groups: 32,
            ..key
        };
        assert_eq!(grouped.output(), Some([2, 128, 100, 168]));
        assert_eq!(ConvKey { groups: 3, ..key }.output(), None);
        let dilated = ConvKey {
            x: [1, 64, 4, 4],
            dilation: [3, 3],
            padding: [0, 0],
            stride: [1, 1],
            ..key
        };
        assert_eq!(
            dilated.output(),
            None,
            "a 7-wide dilated window over 4 pixels"
        );
    }

    #[test]
    fn half_data_is_searched_with_tensor_ops_as_pytorch_does() {
        use sys::cudnnMathType_t::*;
        assert_eq!(search_math(DType::F32, true), CUDNN_FMA_MATH);
        assert_eq!(search_math(DType::F32, false), CUDNN_DEFAULT_MATH);
        assert_eq!(search_math(DType::F16, true), CUDNN_TENSOR_OP_MATH);
        assert_eq!(search_math(DType::BF16, true), CUDNN_DEFAULT_MATH);
        assert_eq!(
            data_type(DType::BF16),
            sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16
        );
    }

    #[test]
    fn find_results_are_read_as_numbers_so_unknown_codes_are_failures_not_ub() {
        let raw = RawPerf {
            algo: 1,
            status: 0,
            time: 0.5,
            memory: 64,
            determinism: 1,
            math_type: 1,
            reserved: [0; 3],
        };
        let c = raw.candidate();
        assert!(c.succeeded && c.deterministic && c.tensor_ops());
        // A cuDNN 8 status code, an unknown math type, a non-deterministic algorithm.
        let odd = RawPerf {
            status: 7,
            math_type: 42,
            determinism: 0,
            ..raw
        }
        .candidate();
        assert!(!odd.succeeded && !odd.deterministic && !odd.tensor_ops());
        assert_eq!(odd.math, sys::cudnnMathType_t::CUDNN_DEFAULT_MATH);
    }

    #[test]
    fn algorithm_names_drop_the_common_prefix() {
        assert_eq!(algo_name(Pass::Forward, 1), "IMPLICIT_PRECOMP_GEMM");
        assert_eq!(algo_name(Pass::BackwardFilter, 3), "3");
        assert_eq!(algo_name(Pass::BackwardData, 99), "algorithm 99");
    }
}
