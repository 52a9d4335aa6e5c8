//! [`CudaBackend`]: the graph [`crate::backend::Backend`] on one GPU, so the executor runs
//! forward and step graphs on a device exactly as it runs them on the CPU reference.
//!
//! Owns the device buffer type ([`CudaBuffer`]: f32, i32 or u8 storage) and the dispatch of
//! each op family to its module beside this one:
//! - `tensor`: unary, binary (broadcasting), reductions and layout ops;
//! - `nn`: matmul (cuBLAS), convolution (`im2col` + cuBLAS), pooling, normalisation;
//! - `loss`: the unreduced loss family (forward and gradient with `dy`).
//!
//! Tensors are f32 on the device (i32 for labels, u8 for masks; f16 and bf16 stored as 16-bit
//! patterns and widened to f32 around every op by `half`); f64 graphs — the CPU's
//! gradient-check dtype — are refused with [`BackendError::Unsupported`]. Every op is issued
//! on the device's one stream, so scratch allocations need no synchronisation.

use super::{half, loss, nn, tensor, update};
use std::sync::Arc;

use cudarc::driver::CudaSlice;

use super::blas::Blas;
use super::cudnn::Cudnn;
use super::device::CudaDevice;
use super::error::CudaError;
use super::options::{ConvChoice, CudaOptions};
use crate::backend::{Backend, BackendError, ParamUpdate, TensorMut, TensorRef, UpdateRule};
use crate::ir::op::*;
use crate::ir::{DType, HostData, HostTensor, numel};

/// A device buffer: storage for at least the tensor it currently holds. Halves are stored
/// as their 16-bit patterns.
pub enum CudaBuffer {
    F32(CudaSlice<f32>),
    I32(CudaSlice<i32>),
    U8(CudaSlice<u8>),
    F16(CudaSlice<u16>),
    BF16(CudaSlice<u16>),
}

impl CudaBuffer {
    /// The element type stored.
    pub fn dtype(&self) -> DType {
        match self {
            CudaBuffer::F32(_) => DType::F32,
            CudaBuffer::I32(_) => DType::I32,
            CudaBuffer::U8(_) => DType::U8,
            CudaBuffer::F16(_) => DType::F16,
            CudaBuffer::BF16(_) => DType::BF16,
        }
    }

    /// Capacity in elements.
    pub fn len(&self) -> usize {
        match self {
            CudaBuffer::F32(s) => s.len(),
            CudaBuffer::I32(s) => s.len(),
            CudaBuffer::U8(s) => s.len(),
            CudaBuffer::F16(s) | CudaBuffer::BF16(s) => s.len(),
        }
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The CUDA implementation of the graph backend: one device, its cuBLAS handle (GEMM and the
/// im2col convolutions) and, where libcudnn loads, cuDNN (the convolutions). Cheap to clone
/// (shared handles).
#[derive(Clone)]
pub struct CudaBackend {
    dev: Arc<CudaDevice>,
    blas: Arc<Blas>,
    cudnn: Option<Arc<Cudnn>>,
    options: CudaOptions,
}

impl CudaBackend {
    /// Opens device `ordinal` with strict f32 math ([`CudaOptions::STRICT`]): the CPU
    /// reference's tolerances hold.
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        Self::open_with(ordinal, CudaOptions::STRICT)
    }

    /// Opens device `ordinal`, cuBLAS on its stream and cuDNN unless `options.conv` is
    /// `im2col` (`cudnn` makes a missing libcudnn an error; `auto` falls back to im2col).
    pub fn open_with(ordinal: usize, options: CudaOptions) -> Result<Self, CudaError> {
        let dev = Arc::new(CudaDevice::open(ordinal)?);
        let blas = Arc::new(Blas::new(&dev, options.tf32)?);
        let cudnn = match options.conv {
            ConvChoice::Im2col => None,
            ConvChoice::Auto => Cudnn::open(&dev, options)?,
            ConvChoice::Cudnn => Some(Cudnn::open(&dev, options)?.ok_or_else(|| {
                CudaError::Cudnn {
                    context: "open",
                    message: format!(
                        "{}=cudnn but cuDNN 9 could not be loaded (put the folder of libcudnn.so.9 on LD_LIBRARY_PATH)",
                        super::options::CONV_ENV
                    ),
                }
            })?),
        };
        Ok(CudaBackend {
            dev,
            blas,
            cudnn: cudnn.map(Arc::new),
            options,
        })
    }

    /// The numerics and convolution path this backend was opened with.
    pub fn options(&self) -> CudaOptions {
        self.options
    }

    /// cuDNN, when the convolutions run through it.
    pub fn cudnn(&self) -> Option<&Cudnn> {
        self.cudnn.as_deref()
    }

    /// The device and how it computes, for the run's `device:` line:
    /// `NVIDIA H100 80GB HBM3; TF32 tensor cores allowed; convolutions: cuDNN 9.1.0 …`.
    pub fn describe(&self) -> String {
        let name = self.dev.name().unwrap_or_else(|_| "unnamed GPU".into());
        let math = if self.options.tf32 {
            "TF32 tensor cores allowed (runtime.tf32)"
        } else {
            "strict f32 (runtime.tf32 = false)"
        };
        let conv = match &self.cudnn {
            Some(c) => format!(
                "convolutions: cuDNN {} (benchmarked algorithms{})",
                c.version(),
                if self.options.deterministic {
                    ", deterministic only"
                } else {
                    ""
                }
            ),
            None => "convolutions: im2col + cuBLAS".to_string(),
        };
        format!("{name}; {math}; {conv}")
    }

    /// The device (for direct kernel calls: optimizers, benchmarks).
    pub fn device(&self) -> &Arc<CudaDevice> {
        &self.dev
    }

    /// Free device memory in bytes, as the driver reports it.
    pub fn free_memory(&self) -> Option<u64> {
        let (free, _) = self.dev.context().mem_get_info().ok()?;
        Some(free as u64)
    }

    /// The cuBLAS handle (GEMM and convolution).
    pub fn blas(&self) -> &Blas {
        &self.blas
    }
}

pub(crate) const NAME: &str = "cuda";

/// A device failure as a backend error.
pub(crate) fn device_err(e: CudaError) -> BackendError {
    BackendError::Device {
        backend: NAME,
        message: e.to_string(),
    }
}

/// An op the shared host-side checks (`strided`, `geometry`) refuse.
pub(crate) fn geometry_err(op: &'static str, source: crate::backend::ShapeError) -> BackendError {
    BackendError::Shape {
        backend: NAME,
        op,
        source: Box::new(source),
    }
}

pub(crate) fn unsupported(op: &'static str, dtype: DType) -> BackendError {
    BackendError::Unsupported {
        backend: NAME,
        op,
        dtype,
    }
}

/// An input's f32 storage (the first `numel(shape)` elements are the tensor).
pub(crate) fn f32_in<'a>(
    t: &TensorRef<'a, CudaBuffer>,
    op: &'static str,
) -> Result<&'a CudaSlice<f32>, BackendError> {
    match t.buf {
        CudaBuffer::F32(s) if t.dtype == DType::F32 => Ok(s),
        _ => Err(unsupported(op, t.dtype)),
    }
}

/// An input's i32 storage (labels).
pub(crate) fn i32_in<'a>(
    t: &TensorRef<'a, CudaBuffer>,
    op: &'static str,
) -> Result<&'a CudaSlice<i32>, BackendError> {
    match t.buf {
        CudaBuffer::I32(s) if t.dtype == DType::I32 => Ok(s),
        _ => Err(unsupported(op, t.dtype)),
    }
}

/// The output's f32 storage.
pub(crate) fn f32_out<'a>(
    t: &'a mut TensorMut<'_, CudaBuffer>,
    op: &'static str,
) -> Result<&'a mut CudaSlice<f32>, BackendError> {
    let dt = t.dtype;
    match t.buf {
        CudaBuffer::F32(s) if dt == DType::F32 => Ok(s),
        _ => Err(unsupported(op, dt)),
    }
}

impl Backend for CudaBackend {
    type Buffer = CudaBuffer;

    fn synchronize(&self) -> Result<(), BackendError> {
        self.device().synchronize().map_err(device_err)
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn alloc(&self, dtype: DType, len: usize) -> Result<CudaBuffer, BackendError> {
        let len = len.max(1);
        // SAFETY (of the unsynchronised alloc): every op writes the elements it later reads;
        // buffers are never read before their producer ran (the executor's schedule).
        let s = self.dev.stream();
        let buf = match dtype {
            DType::F32 => CudaBuffer::F32(unsafe { s.alloc::<f32>(len) }.map_err(drv)?),
            DType::I32 => CudaBuffer::I32(unsafe { s.alloc::<i32>(len) }.map_err(drv)?),
            DType::U8 => CudaBuffer::U8(unsafe { s.alloc::<u8>(len) }.map_err(drv)?),
            DType::F16 => CudaBuffer::F16(unsafe { s.alloc::<u16>(len) }.map_err(drv)?),
            DType::BF16 => CudaBuffer::BF16(unsafe { s.alloc::<u16>(len) }.map_err(drv)?),
            d => return Err(unsupported("alloc", d)),
        };
        Ok(buf)
    }

    fn upload(&self, t: &HostTensor) -> Result<CudaBuffer, BackendError> {
        let s = self.dev.stream();
        // Empty tensors still get a one-element buffer (cudarc refuses zero-size copies).
        fn padded<T: Copy + Default>(v: &[T]) -> std::borrow::Cow<'_, [T]> {
            if v.is_empty() {
                vec![T::default()].into()
            } else {
                v.into()
            }
        }
        Ok(match &t.data {
            HostData::F32(v) => CudaBuffer::F32(s.clone_htod(&*padded(v)).map_err(drv)?),
            HostData::I32(v) => CudaBuffer::I32(s.clone_htod(&*padded(v)).map_err(drv)?),
            HostData::U8(v) => CudaBuffer::U8(s.clone_htod(&*padded(v)).map_err(drv)?),
            HostData::F16(v) => {
                let bits: &[u16] = bytemuck::cast_slice(v);
                CudaBuffer::F16(s.clone_htod(&*padded(bits)).map_err(drv)?)
            }
            HostData::BF16(v) => {
                let bits: &[u16] = bytemuck::cast_slice(v);
                CudaBuffer::BF16(s.clone_htod(&*padded(bits)).map_err(drv)?)
            }
            other => return Err(unsupported("upload", other.dtype())),
        })
    }

    fn download(
        &self,
        buf: &CudaBuffer,
        dtype: DType,
        shape: &[usize],
    ) -> Result<HostTensor, BackendError> {
        let n = numel(shape);
        if buf.dtype() != dtype || buf.len() < n {
            return Err(unsupported("download", dtype));
        }
        let s = self.dev.stream();
        let data = if n == 0 {
            HostData::zeros(dtype, 0)
        } else {
            match buf {
                CudaBuffer::F32(b) => HostData::F32(s.clone_dtoh(&b.slice(..n)).map_err(drv)?),
                CudaBuffer::I32(b) => HostData::I32(s.clone_dtoh(&b.slice(..n)).map_err(drv)?),
                CudaBuffer::U8(b) => HostData::U8(s.clone_dtoh(&b.slice(..n)).map_err(drv)?),
                CudaBuffer::F16(b) => HostData::F16(bytemuck::cast_vec(
                    s.clone_dtoh(&b.slice(..n)).map_err(drv)?,
                )),
                CudaBuffer::BF16(b) => HostData::BF16(bytemuck::cast_vec(
                    s.clone_dtoh(&b.slice(..n)).map_err(drv)?,
                )),
            }
        };
        Ok(HostTensor {
            shape: shape.to_vec(),
            data,
        })
    }

    fn fill(&self, out: TensorMut<'_, CudaBuffer>, value: f64) -> Result<(), BackendError> {
        if half::is_half(out.dtype) {
            return half::widened(self, &[], out, |be, _, out| be.fill(out, value));
        }
        tensor::fill(self, out, value)
    }

    fn unary(
        &self,
        op: &UnaryOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::unary(self, op, ins, out);
        }
        tensor::unary(self, op, ins, out)
    }

    fn binary(
        &self,
        op: BinaryOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.binary(op, ins, out));
        }
        tensor::binary(self, op, ins, out)
    }

    fn reduce(
        &self,
        op: &ReduceOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.reduce(op, ins, out));
        }
        tensor::reduce(self, op, ins, out)
    }

    fn layout(
        &self,
        op: &LayoutOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.layout(op, ins, out));
        }
        tensor::layout(self, op, ins, out)
    }

    fn matmul(
        &self,
        op: &MatmulOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.matmul(op, ins, out));
        }
        nn::matmul(self, op, ins, out)
    }

    fn conv(
        &self,
        op: &ConvOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            if nn::conv_runs_half_directly(self, ins, &out) {
                let direct = TensorMut {
                    buf: &mut *out.buf,
                    shape: out.shape,
                    dtype: out.dtype,
                };
                if nn::conv(self, op, ins, direct).is_ok() {
                    return Ok(());
                }
                // cuDNN found no algorithm for these half tensors: run them widened.
            }
            return half::widened(self, ins, out, |be, ins, out| nn::conv(be, op, ins, out));
        }
        nn::conv(self, op, ins, out)
    }

    fn pool(
        &self,
        op: &PoolOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.pool(op, ins, out));
        }
        nn::pool(self, op, ins, out)
    }

    fn norm(
        &self,
        op: &NormOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.norm(op, ins, out));
        }
        nn::norm(self, op, ins, out)
    }

    fn loss(
        &self,
        op: &LossOp,
        ins: &[TensorRef<'_, CudaBuffer>],
        out: TensorMut<'_, CudaBuffer>,
    ) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.loss(op, ins, out));
        }
        loss::loss(self, op, ins, out)
    }

    fn update(
        &self,
        rule: &UpdateRule,
        params: &mut [ParamUpdate<'_, CudaBuffer>],
    ) -> Result<(), BackendError> {
        update::update(self, rule, params)
    }
}

pub(crate) fn drv(e: cudarc::driver::DriverError) -> BackendError {
    device_err(CudaError::Driver {
        context: "cuda backend memory",
        source: e,
    })
}
