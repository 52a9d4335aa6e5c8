//! The vocabulary the compute graph and every backend share: the op set ([`op`]), element
//! types ([`DType`]) and host tensors ([`HostTensor`]). It sits below both `graph` (which builds
//! and differentiates graphs of these ops) and `backend` (which runs them), so neither needs
//! the other.

mod dtype;
mod fused;
pub mod op;
mod tensor;

pub(crate) use dtype::fmt_shape;
pub use dtype::{DType, Precision, numel};
pub use fused::{FusedElementwise, FusedOp, FusedStep};
pub use op::{Op, conv_out_size};
pub use tensor::{HostData, HostTensor, LengthMismatch};
