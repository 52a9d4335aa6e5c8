//! The `Backend` trait, its implementations — `cpu` (the reference, the living spec), `cuda`
//! (feature `cuda`) and `wgpu` (feature `wgpu`; each a stand-in type without its feature) —
//! and the [`Device`] a run picks them by. `strided` and `geometry` hold the host-side shape
//! logic the device backends share, and [`ShapeError`] says why it refuses an op.
//!
//! A backend owns opaque device buffers and implements one method per op family; the
//! engine's executor plans memory and calls these in schedule order. Buffers may be
//! larger than the tensor they hold (slots are reused), so implementations read and write only
//! the first `numel(shape)` elements.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_standin.rs"]
pub mod cuda;
pub mod device;
mod fused;
pub(crate) mod geometry;
pub mod optim;
mod shape_error;
#[cfg(not(all(feature = "cuda", feature = "wgpu")))]
mod standin;
pub(crate) mod strided;
#[cfg(feature = "wgpu")]
pub mod wgpu;
#[cfg(not(feature = "wgpu"))]
#[path = "wgpu_standin.rs"]
pub mod wgpu;
pub(crate) mod widen;

pub use device::{AdapterChoice, Device, DeviceError, DeviceOptions, DeviceSpec, WithBackend};
pub use fused::{check_fused, fused_op_by_op};
pub use optim::{ParamHyper, ParamUpdate, UpdateRule};
pub use shape_error::{BroadcastError, ShapeError};

use crate::ir::op::*;
use crate::ir::{DType, FusedElementwise, HostData, HostTensor};

/// A read-only view of a tensor in a backend buffer.
pub struct TensorRef<'a, Buf> {
    pub buf: &'a Buf,
    pub shape: &'a [usize],
    pub dtype: DType,
}

/// A writable view of a tensor in a backend buffer.
pub struct TensorMut<'a, Buf> {
    pub buf: &'a mut Buf,
    pub shape: &'a [usize],
    pub dtype: DType,
}

/// Backend failures (device errors, unsupported dtype/op combinations).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    #[error("backend `{backend}` does not support {op} on {dtype}")]
    Unsupported {
        backend: &'static str,
        op: &'static str,
        dtype: DType,
    },
    /// An op whose inputs, attributes or output shape do not fit together (the graph builder
    /// never makes one; a malformed op handed to a backend directly gets this, not a fault).
    #[error("backend `{backend}`: {op}: {message}")]
    Invalid {
        backend: &'static str,
        op: &'static str,
        message: String,
    },
    /// An op the device backends' shared host-side checks (`strided`, `geometry`) refuse before
    /// any launch: the same fault as [`BackendError::Invalid`], typed.
    #[error("backend `{backend}`: {op}: {source}")]
    Shape {
        backend: &'static str,
        op: &'static str,
        #[source]
        source: Box<ShapeError>,
    },
    #[error("backend `{backend}`: {message}")]
    Device {
        backend: &'static str,
        message: String,
    },
}

/// Executes graph ops. Implementations: [`cpu::CpuBackend`]; the CUDA backend lives in
/// `backend::cuda`. Every method gets its inputs in the order documented on the op.
pub trait Backend {
    /// An opaque buffer on the device.
    type Buffer: Send + 'static;

    /// Waits for the work queued so far (for timing it; results are ordered anyway). Host
    /// backends have nothing to wait for.
    fn synchronize(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Short name (`cpu`, `cuda`).
    fn name(&self) -> &'static str;
    /// A buffer holding at least `len` elements of `dtype` (contents unspecified).
    fn alloc(&self, dtype: DType, len: usize) -> Result<Self::Buffer, BackendError>;
    /// Copies a host tensor to the device.
    fn upload(&self, t: &HostTensor) -> Result<Self::Buffer, BackendError>;
    /// Copies the first `numel(shape)` elements back to the host.
    fn download(
        &self,
        buf: &Self::Buffer,
        dtype: DType,
        shape: &[usize],
    ) -> Result<HostTensor, BackendError>;
    /// Copies a host tensor into `buf`, a buffer of an earlier upload; backends that can reuse
    /// it (same dtype and length) skip the allocation (and, on the host, its page faults).
    fn upload_into(&self, t: &HostTensor, buf: &mut Self::Buffer) -> Result<(), BackendError> {
        *buf = self.upload(t)?;
        Ok(())
    }
    /// Host-memory backends: `t`'s own storage as a buffer, read in place instead of
    /// uploaded (the executor's parameters and feeds). `None` where buffers live elsewhere.
    fn host_buffer<'a>(&self, _t: &'a HostTensor) -> Option<&'a Self::Buffer> {
        None
    }
    /// Host-memory backends: host storage to use as a buffer (storage a caller hands back for
    /// reuse). `None` where buffers live elsewhere.
    fn adopt_host(&self, _data: HostData) -> Option<Self::Buffer> {
        None
    }
    /// Takes a buffer as a host tensor of `shape`: without a copy where the backend can
    /// (host memory), else by [`Backend::download`].
    fn take_host(
        &self,
        buf: Self::Buffer,
        dtype: DType,
        shape: &[usize],
    ) -> Result<HostTensor, BackendError> {
        self.download(&buf, dtype, shape)
    }
    /// Fills a tensor with one value.
    fn fill(&self, out: TensorMut<'_, Self::Buffer>, value: f64) -> Result<(), BackendError>;
    /// Elementwise one-input ops (and their gradients).
    fn unary(
        &self,
        op: &UnaryOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Elementwise two-input ops with broadcasting.
    fn binary(
        &self,
        op: BinaryOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Reductions.
    fn reduce(
        &self,
        op: &ReduceOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Data movement.
    fn layout(
        &self,
        op: &LayoutOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Matrix products.
    fn matmul(
        &self,
        op: &MatmulOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Convolutions and their gradients.
    fn conv(
        &self,
        op: &ConvOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Pooling and resampling.
    fn pool(
        &self,
        op: &PoolOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Normalisation.
    fn norm(
        &self,
        op: &NormOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// Whether `op` on `dtype` may join a fused elementwise chain ([`Backend::fused`]): the
    /// executor fuses a step graph's chains of such ops (`graph::fuse_elementwise`) only for a
    /// backend that runs them in one pass. None by default.
    fn fusable(&self, _op: &Op, _dtype: DType) -> bool {
        false
    }
    /// A fused elementwise chain ([`Op::Fused`]) over inputs of the output's shape. By default
    /// its ops one by one ([`fused_op_by_op`]), which is what a faster version must match.
    fn fused(
        &self,
        f: &FusedElementwise,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError> {
        fused_op_by_op(self, f, ins, out)
    }
    /// Losses and their gradients.
    fn loss(
        &self,
        op: &LossOp,
        ins: &[TensorRef<'_, Self::Buffer>],
        out: TensorMut<'_, Self::Buffer>,
    ) -> Result<(), BackendError>;
    /// One optimizer step over f32 parameters: each value updated in place from its gradient
    /// and state by `rule` (the CPU backend's `optim` is the definition). Nothing is written
    /// when any parameter's buffers do not fit the rule.
    fn update(
        &self,
        rule: &UpdateRule,
        params: &mut [ParamUpdate<'_, Self::Buffer>],
    ) -> Result<(), BackendError>;
}
