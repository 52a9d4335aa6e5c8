//! The CUDA backend (feature `cuda`): [`CudaBackend`], the graph [`crate::backend::Backend`] on
//! one GPU, built from handwritten PTX kernels (`kernels/*.ptx`, embedded in the binary) loaded
//! through cudarc's driver API, and GEMM through cuBLAS.
//!
//! Layers, bottom up (the cudarc `sys → result → safe` shape, copied small):
//! - [`kernels`]: the module registry (one enum variant per PTX file) and the ABI table of
//!   every entry — the single list the loader and the ABI test agree on;
//! - [`device`]: device detection that never panics, a [`CudaDevice`] per ordinal with its
//!   stream and lazily loaded modules;
//! - `launch`: the `unsafe` launch functions with their safety contracts;
//! - [`options`]: how the backend may compute (`runtime.tf32`, `runtime.deterministic`,
//!   `MMRUN_CUDA_CONV`);
//! - [`blas`] (cuBLAS GEMM, TF32 or strict), [`cudnn`] (convolutions with benchmarked
//!   algorithms, cached per shape) and [`im2col`] (convolution as im2col + GEMM, the fallback);
//! - [`backend`]: [`CudaBackend`] and its buffer type, dispatching each op family to `tensor`,
//!   `nn` (matmul, convolution, pooling, norms) and `loss` (the unreduced loss ops);
//! - [`optim`]: the fused multi-tensor SGD/AdamW steps, gradient norm and unscale; `update`
//!   serves `Backend::update` with them, one launch per run of parameters sharing their
//!   hyper-parameters.
//!
//! Everything here builds without CUDA installed: the driver is opened at run time, and
//! [`probe`] reports a missing driver or device as an error instead of cudarc's panic.
//! Owns no model knowledge; the CPU backend is the spec every op is tested against (the
//! shared backend suite, `tests/it/backend`).

pub mod backend;
pub mod blas;
pub mod cudnn;
pub mod device;
mod error;
mod half;
pub mod im2col;
pub mod kernels;
mod launch;
mod loss;
mod nn;
pub mod optim;
pub mod options;
mod tensor;
mod update;

pub use backend::{CudaBackend, CudaBuffer};
pub use device::{CudaDevice, parse_device, probe};
pub use error::CudaError;
pub use options::{ConvChoice, CudaOptions};
