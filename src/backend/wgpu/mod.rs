//! [`WgpuBackend`]: the graph [`crate::backend::Backend`] on any GPU wgpu reaches (Vulkan,
//! Metal, DX12; Mesa's lavapipe on a machine without one), with WGSL kernels kept beside the
//! PTX ones in `kernels/wgsl/`.
//!
//! Owns the buffer type ([`WgpuBuffer`]: f32 or i32 storage) and the dispatch of each op family
//! to its module beside this one:
//! - `context`: the adapter and device, compiled pipelines, the pending command encoder;
//! - `tensor`: fill, unary, binary (broadcasting), sums and layout ops;
//! - `nn`: matmul and convolution (forward and both gradients);
//! - `pool`: max pooling, nearest upsampling, RoIAlign (and their gradients);
//! - `norm`: batch and group normalisation's statistics, apply and gradients;
//! - `loss`: the unreduced loss family (forward and gradient with `dy`);
//! - `optim`: the SGD and AdamW updates.
//!
//! Tensors are f32 on the device (i32 for labels); f64 graphs — the CPU's gradient-check
//! dtype — are refused with [`BackendError::Unsupported`]. Ops are recorded into one command
//! encoder and submitted when the host reads a result, so a training step is a handful of
//! submissions, not one per op.

mod context;
mod loss;
mod nn;
mod norm;
mod optim;
mod pool;
mod tensor;

pub use context::{Gpu, OpenError, adapters, describe};

use crate::backend::AdapterChoice;

use std::sync::Arc;

use context::{NAME, device_err};

use crate::backend::{Backend, BackendError, ParamUpdate, TensorMut, TensorRef, UpdateRule};
use crate::ir::op::*;
use crate::ir::{DType, HostData, HostTensor, numel};

/// A device buffer: storage for at least the tensor it currently holds.
pub struct WgpuBuffer {
    pub(crate) buf: wgpu::Buffer,
    dtype: DType,
    len: usize,
}

impl WgpuBuffer {
    /// The element type stored.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Capacity in elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The wgpu implementation of the graph backend on one adapter. Cheap to clone.
#[derive(Clone)]
pub struct WgpuBackend {
    gpu: Arc<Gpu>,
}

impl WgpuBackend {
    /// Opens the chosen adapter.
    pub fn open(choice: &AdapterChoice) -> Result<Self, OpenError> {
        Ok(WgpuBackend {
            gpu: Arc::new(Gpu::open(choice)?),
        })
    }

    /// The adapter in use, in words (name, type, backend, driver).
    pub fn adapter(&self) -> String {
        describe(&self.gpu.info)
    }

    /// Waits for every recorded op; a device error since the last check is returned.
    pub fn synchronize(&self) -> Result<(), BackendError> {
        self.gpu.finish()
    }

    pub(crate) fn gpu(&self) -> &Gpu {
        &self.gpu
    }
}

pub(crate) fn unsupported(op: &'static str, dtype: DType) -> BackendError {
    BackendError::Unsupported {
        backend: NAME,
        op,
        dtype,
    }
}

/// A shape or length error (`{op}: {message}`).
pub(crate) fn shape_err(op: &'static str, message: impl Into<String>) -> BackendError {
    BackendError::Invalid {
        backend: NAME,
        op,
        message: message.into(),
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

type In<'a> = TensorRef<'a, WgpuBuffer>;
type Out<'a> = TensorMut<'a, WgpuBuffer>;

/// Element count of a tensor the kernels may touch (u32 indices).
pub(crate) fn count(op: &'static str, shape: &[usize]) -> Result<usize, BackendError> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| shape_err(op, format!("shape {shape:?} overflows")))?;
    if n > crate::backend::strided::MAX_ELEMS {
        return Err(shape_err(
            op,
            format!("{shape:?} has {n} elements; the kernels index with u32"),
        ));
    }
    Ok(n)
}

/// An input's buffer after checking its dtype and that it holds the tensor.
pub(crate) fn input<'a>(
    t: &In<'a>,
    op: &'static str,
    dtype: DType,
) -> Result<&'a wgpu::Buffer, BackendError> {
    holding(t.buf, t.shape, t.dtype, op, dtype, "input")
}

/// The output's buffer (as [`input`]).
pub(crate) fn output<'a>(
    t: &'a Out<'_>,
    op: &'static str,
    dtype: DType,
) -> Result<&'a wgpu::Buffer, BackendError> {
    holding(t.buf, t.shape, t.dtype, op, dtype, "output")
}

/// `buf`'s storage, if it and the tensor's declared dtype are `want` and it holds `shape`.
fn holding<'a>(
    buf: &'a WgpuBuffer,
    shape: &[usize],
    declared: DType,
    op: &'static str,
    want: DType,
    what: &str,
) -> Result<&'a wgpu::Buffer, BackendError> {
    if declared != want || buf.dtype != want {
        return Err(unsupported(op, declared));
    }
    let n = count(op, shape)?;
    if buf.len < n {
        return Err(shape_err(
            op,
            format!(
                "{what} buffer holds {} elements, {shape:?} needs {n}",
                buf.len
            ),
        ));
    }
    Ok(&buf.buf)
}

/// The `i`th input, or an error naming the op.
pub(crate) fn nth<'a, 'b>(
    ins: &'b [In<'a>],
    i: usize,
    op: &'static str,
) -> Result<&'b In<'a>, BackendError> {
    ins.get(i).ok_or_else(|| {
        shape_err(
            op,
            format!("expects at least {} inputs, got {}", i + 1, ins.len()),
        )
    })
}

/// f32 bits for the meta words.
pub(crate) fn fbits(v: f64) -> u32 {
    (v as f32).to_bits()
}

/// A usize as a meta word (callers have bounded it by [`count`]).
pub(crate) fn w(v: usize) -> u32 {
    v as u32
}

impl Backend for WgpuBackend {
    type Buffer = WgpuBuffer;

    fn name(&self) -> &'static str {
        NAME
    }

    fn synchronize(&self) -> Result<(), BackendError> {
        WgpuBackend::synchronize(self)
    }

    fn alloc(&self, dtype: DType, len: usize) -> Result<WgpuBuffer, BackendError> {
        if !matches!(dtype, DType::F32 | DType::I32) {
            return Err(unsupported("alloc", dtype));
        }
        let bytes = (len as u64).saturating_mul(4);
        let buf = self.gpu.buffer(bytes, "alloc")?;
        Ok(WgpuBuffer { buf, dtype, len })
    }

    fn upload(&self, t: &HostTensor) -> Result<WgpuBuffer, BackendError> {
        let (bytes, dtype): (&[u8], DType) = match &t.data {
            HostData::F32(v) => (bytemuck::cast_slice(v), DType::F32),
            HostData::I32(v) => (bytemuck::cast_slice(v), DType::I32),
            other => return Err(unsupported("upload", other.dtype())),
        };
        let buf = self.gpu.buffer_init(bytes, "upload")?;
        Ok(WgpuBuffer {
            buf,
            dtype,
            len: t.data.len(),
        })
    }

    fn upload_into(&self, t: &HostTensor, buf: &mut WgpuBuffer) -> Result<(), BackendError> {
        let n = t.data.len();
        if buf.dtype != t.dtype() || buf.len < n || n == 0 {
            *buf = self.upload(t)?;
            return Ok(());
        }
        let bytes: &[u8] = match &t.data {
            HostData::F32(v) => bytemuck::cast_slice(v),
            HostData::I32(v) => bytemuck::cast_slice(v),
            other => return Err(unsupported("upload", other.dtype())),
        };
        self.gpu.write(&buf.buf, bytes);
        Ok(())
    }

    fn download(
        &self,
        buf: &WgpuBuffer,
        dtype: DType,
        shape: &[usize],
    ) -> Result<HostTensor, BackendError> {
        let n = numel(shape);
        if buf.dtype != dtype || buf.len < n {
            return Err(unsupported("download", dtype));
        }
        let bytes = self.gpu.read(&buf.buf, 4 * n as u64)?;
        let data = match dtype {
            DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(&bytes)),
            DType::I32 => HostData::I32(bytemuck::pod_collect_to_vec(&bytes)),
            d => return Err(unsupported("download", d)),
        };
        HostTensor::new(shape.to_vec(), data).map_err(|e| device_err(e.to_string()))
    }

    fn fill(&self, out: Out<'_>, value: f64) -> Result<(), BackendError> {
        tensor::fill(self, out, value)
    }

    fn unary(&self, op: &UnaryOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        tensor::unary(self, op, ins, out)
    }

    fn binary(&self, op: BinaryOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        tensor::binary(self, op, ins, out)
    }

    fn reduce(&self, op: &ReduceOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        tensor::reduce(self, op, ins, out)
    }

    fn layout(&self, op: &LayoutOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        tensor::layout(self, op, ins, out)
    }

    fn matmul(&self, op: &MatmulOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        nn::matmul(self, op, ins, out)
    }

    fn conv(&self, op: &ConvOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        nn::conv(self, op, ins, out)
    }

    fn pool(&self, op: &PoolOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        pool::pool(self, op, ins, out)
    }

    fn norm(&self, op: &NormOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        norm::norm(self, op, ins, out)
    }

    fn loss(&self, op: &LossOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        loss::loss(self, op, ins, out)
    }

    fn update(
        &self,
        rule: &UpdateRule,
        params: &mut [ParamUpdate<'_, WgpuBuffer>],
    ) -> Result<(), BackendError> {
        optim::update(self, rule, params)
    }
}
