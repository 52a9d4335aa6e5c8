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
//! - `optim`: the SGD and AdamW updates;
//! - `split`: ops on tensors larger than the adapter binds, a slab of their first axis at a
//!   time;
//! - `half`: f16 and bf16 storage (two to a word), widened to f32 around every op.
//!
//! Tensors are f32 on the device (i32 for labels; f16 and bf16 for mixed precision, computed
//! in f32 as on the CPU); f64 graphs — the CPU's gradient-check dtype — are refused with
//! [`BackendError::Unsupported`]. Ops are recorded into one command
//! encoder and submitted when the host reads a result, so a training step is a handful of
//! submissions, not one per op.

mod context;
mod half;
mod loss;
mod nn;
mod norm;
mod optim;
mod pool;
mod split;
mod tensor;

pub use context::{
    Gpu, MAX_BINDING_ENV, MaxBindingError, OpenError, adapters, describe, max_binding_from_env,
};

use crate::backend::AdapterChoice;

use std::sync::Arc;

use context::{Bound, NAME, device_err};
use split::OpKind;

use crate::backend::{Backend, BackendError, ParamUpdate, TensorMut, TensorRef, UpdateRule};
use crate::ir::op::*;
use crate::ir::{DType, HostData, HostTensor, numel};

/// A device buffer: storage for at least the tensor it currently holds. `split` makes views
/// of a larger buffer (a slab of a tensor, from element `offset`); everything else holds a
/// whole buffer at offset 0.
pub struct WgpuBuffer {
    pub(crate) buf: wgpu::Buffer,
    offset: usize,
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

    /// The window of the first `n` elements, as kernels bind it (at least one element).
    pub(crate) fn bound(&self, n: usize) -> Bound<'_> {
        self.window(0, n)
    }

    /// The window of elements `start..start + n` (at least one element; whole words, so a
    /// window of halves starts at an even element).
    pub(crate) fn window(&self, start: usize, n: usize) -> Bound<'_> {
        let size = self.dtype.size_bytes() as u64;
        Bound {
            buf: &self.buf,
            offset: size * (self.offset + start) as u64,
            size: (size * n.max(1) as u64).next_multiple_of(4),
        }
    }
}

/// The wgpu implementation of the graph backend on one adapter. Cheap to clone.
#[derive(Clone)]
pub struct WgpuBackend {
    gpu: Arc<Gpu>,
}

impl WgpuBackend {
    /// Opens the chosen adapter, its bindings capped by [`MAX_BINDING_ENV`] where that is set
    /// (an unreadable value opens nothing: `mmrun` checks it first).
    pub fn open(choice: &AdapterChoice) -> Result<Self, OpenError> {
        let cap = max_binding_from_env().map_err(OpenError::MaxBinding)?;
        Self::open_with_max_binding(choice, cap)
    }

    /// Opens the chosen adapter, its bindings capped at `max_binding` bytes where that is lower
    /// than the adapter's own limit.
    pub fn open_with_max_binding(
        choice: &AdapterChoice,
        max_binding: Option<u64>,
    ) -> Result<Self, OpenError> {
        Ok(WgpuBackend {
            gpu: Arc::new(Gpu::open(choice, max_binding)?),
        })
    }

    /// The adapter in use, in words (name, type, backend, driver).
    pub fn adapter(&self) -> String {
        describe(&self.gpu.info)
    }

    /// The adapter in words and the largest binding it is used with (the run's device line).
    pub fn adapter_and_limits(&self) -> String {
        format!(
            "{}; bindings up to {}, larger tensors in slabs",
            self.adapter(),
            crate::util::units::human_bytes(u128::from(self.max_binding_bytes()))
        )
    }

    /// The largest tensor, in bytes, one kernel binding holds; ops on larger ones run a slab
    /// at a time where they split along their first axis.
    pub fn max_binding_bytes(&self) -> u64 {
        self.gpu.max_binding_bytes()
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
) -> Result<Bound<'a>, BackendError> {
    holding(t.buf, t.shape, t.dtype, op, dtype, "input")
}

/// The output's buffer (as [`input`]).
pub(crate) fn output<'a>(
    t: &'a Out<'_>,
    op: &'static str,
    dtype: DType,
) -> Result<Bound<'a>, BackendError> {
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
) -> Result<Bound<'a>, BackendError> {
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
    Ok(buf.bound(n))
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

/// A tensor's elements as bytes, padded to whole words (wgpu copies words).
fn padded_bytes(data: &HostData) -> Result<Vec<u8>, BackendError> {
    let mut bytes: Vec<u8> = match data {
        HostData::F32(v) => bytemuck::cast_slice(v).to_vec(),
        HostData::I32(v) => bytemuck::cast_slice(v).to_vec(),
        HostData::F16(v) => bytemuck::cast_slice(v).to_vec(),
        HostData::BF16(v) => bytemuck::cast_slice(v).to_vec(),
        other => return Err(unsupported("upload", other.dtype())),
    };
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    Ok(bytes)
}

/// A unary op over half tensors: a cast between f32 and a half type is one conversion; a cast
/// between equal types a copy; anything else runs in f32 on widened copies.
fn half_unary(
    be: &WgpuBackend,
    op: &UnaryOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let (x, n) = tensor::unary_operand(ins, &out)?;
    match op {
        UnaryOp::Cast(to) if *to != out.dtype => Err(unsupported("cast", *to)),
        UnaryOp::Cast(to) if x.dtype == *to => {
            let (src, dst) = (x.buf.bound(n), out.buf.bound(n));
            be.gpu.copy(src, dst, src.size.min(dst.size))
        }
        UnaryOp::Cast(to) if matches!(x.dtype, DType::F32) || matches!(to, DType::F32) => {
            half::cast(be, x.buf, out.buf, n)
        }
        UnaryOp::Cast(to) => {
            let wide = UnaryOp::Cast(half::widened_cast(*to));
            half::widened(be, ins, out, |be, ins, out| be.unary(&wide, ins, out))
        }
        _ => half::widened(be, ins, out, |be, ins, out| be.unary(op, ins, out)),
    }
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
        if !matches!(dtype, DType::F32 | DType::I32 | DType::F16 | DType::BF16) {
            return Err(unsupported("alloc", dtype));
        }
        let bytes = (len as u64).saturating_mul(dtype.size_bytes() as u64);
        let buf = self.gpu.buffer(bytes.next_multiple_of(4), "alloc")?;
        Ok(WgpuBuffer {
            buf,
            offset: 0,
            dtype,
            len,
        })
    }

    fn upload(&self, t: &HostTensor) -> Result<WgpuBuffer, BackendError> {
        let bytes = padded_bytes(&t.data)?;
        let buf = self.gpu.buffer_init(&bytes, "upload")?;
        Ok(WgpuBuffer {
            buf,
            offset: 0,
            dtype: t.dtype(),
            len: t.data.len(),
        })
    }

    fn upload_into(&self, t: &HostTensor, buf: &mut WgpuBuffer) -> Result<(), BackendError> {
        let n = t.data.len();
        if buf.dtype != t.dtype() || buf.len < n || n == 0 {
            *buf = self.upload(t)?;
            return Ok(());
        }
        self.gpu.write(buf.bound(n), &padded_bytes(&t.data)?);
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
        let window = buf.bound(n);
        let bytes = self.gpu.read(window, window.size)?;
        let bytes = &bytes[..n * dtype.size_bytes()];
        let data = match dtype {
            DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(bytes)),
            DType::I32 => HostData::I32(bytemuck::pod_collect_to_vec(bytes)),
            DType::F16 => HostData::F16(bytemuck::pod_collect_to_vec(bytes)),
            DType::BF16 => HostData::BF16(bytemuck::pod_collect_to_vec(bytes)),
            d => return Err(unsupported("download", d)),
        };
        HostTensor::new(shape.to_vec(), data).map_err(|e| device_err(e.to_string()))
    }

    fn fill(&self, out: Out<'_>, value: f64) -> Result<(), BackendError> {
        if half::is_half(out.dtype) {
            return half::widened(self, &[], out, |be, _, out| be.fill(out, value));
        }
        split::run(self, "fill", OpKind::Fill, &[], out, |be, _, out| {
            tensor::fill(be, out, value)
        })
    }

    fn unary(&self, op: &UnaryOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half_unary(self, op, ins, out);
        }
        split::run(self, "unary", OpKind::Unary, ins, out, |be, ins, out| {
            tensor::unary(be, op, ins, out)
        })
    }

    fn binary(&self, op: BinaryOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.binary(op, ins, out));
        }
        split::run(self, "binary", OpKind::Binary, ins, out, |be, ins, out| {
            tensor::binary(be, op, ins, out)
        })
    }

    fn reduce(&self, op: &ReduceOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.reduce(op, ins, out));
        }
        split::run(self, "sum", OpKind::Reduce(op), ins, out, |be, ins, out| {
            tensor::reduce(be, op, ins, out)
        })
    }

    fn layout(&self, op: &LayoutOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.layout(op, ins, out));
        }
        let name = crate::backend::strided::op_name(op);
        split::run(self, name, OpKind::Layout(op), ins, out, |be, ins, out| {
            tensor::layout(be, op, ins, out)
        })
    }

    fn matmul(&self, op: &MatmulOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.matmul(op, ins, out));
        }
        split::run(self, "matmul", OpKind::Matmul, ins, out, |be, ins, out| {
            nn::matmul(be, op, ins, out)
        })
    }

    fn conv(&self, op: &ConvOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.conv(op, ins, out));
        }
        split::run(
            self,
            "conv2d",
            OpKind::Conv(op),
            ins,
            out,
            |be, ins, out| nn::conv(be, op, ins, out),
        )
    }

    fn pool(&self, op: &PoolOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.pool(op, ins, out));
        }
        split::run(self, "pool", OpKind::Pool(op), ins, out, |be, ins, out| {
            pool::pool(be, op, ins, out)
        })
    }

    fn norm(&self, op: &NormOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.norm(op, ins, out));
        }
        split::run(self, "norm", OpKind::Norm(op), ins, out, |be, ins, out| {
            norm::norm(be, op, ins, out)
        })
    }

    fn loss(&self, op: &LossOp, ins: &[In<'_>], out: Out<'_>) -> Result<(), BackendError> {
        if half::involves_half(ins, &out) {
            return half::widened(self, ins, out, |be, ins, out| be.loss(op, ins, out));
        }
        split::run(self, "loss", OpKind::Loss, ins, out, |be, ins, out| {
            loss::loss(be, op, ins, out)
        })
    }

    fn update(
        &self,
        rule: &UpdateRule,
        params: &mut [ParamUpdate<'_, WgpuBuffer>],
    ) -> Result<(), BackendError> {
        optim::update(self, rule, params)
    }
}
