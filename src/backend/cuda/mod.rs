//! The CUDA backend (feature `cuda`): handwritten PTX kernels (`kernels/*.ptx`, embedded in
//! the binary) loaded through cudarc's driver API, plus GEMM through cuBLAS.
//!
//! Layers, bottom up (the cudarc `sys → result → safe` shape, copied small):
//! - [`kernels`]: the module registry (one enum variant per PTX file) and the ABI table of
//!   every entry — the single list the loader and the ABI test agree on;
//! - [`device`]: device detection that never panics, a [`CudaDevice`] per ordinal with its
//!   stream, lazily loaded modules and scratch space;
//! - `launch`: one `unsafe` launch function per kernel entry with its safety contract;
//! - [`loss`], [`optim`], [`ops`], [`blas`]: the safe, shape-checked API the engine calls;
//! - [`ir`]: [`CudaBackend`], the graph [`crate::backend::Backend`] built on the layers above.
//!
//! Everything here builds without CUDA installed: the driver is opened at run time, and
//! [`probe`] reports a missing driver or device as an error instead of cudarc's panic.
//! Owns no model knowledge; the CPU backend is the spec every kernel is tested against.

pub mod blas;
pub mod conv;
pub mod device;
mod dtype;
mod error;
pub mod ir;
pub mod kernels;
mod launch;
pub mod loss;
pub mod ops;
pub mod optim;

pub use device::{CudaDevice, parse_device, probe};
pub use dtype::{DType, KernelFloat};
pub use error::CudaError;
pub use ir::{CudaBackend, CudaBuffer};
