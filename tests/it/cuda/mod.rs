#![cfg(feature = "cuda")]
//! Integration tests of the `cuda` area (the op-by-op checks of the CUDA backend are the
//! shared backend suite, `tests/it/backend`).
//!
//! Without a GPU (CI): every PTX module assembles with ptxas for sm_80 and sm_90 without
//! spills, declares exactly the entries and parameter lists the Rust side launches, and device
//! detection fails cleanly.
//! With a GPU: the device-level kernels (optimizers, GEMM, im2col), whole train steps against
//! the CPU backend, the runner on `--device cuda:0` and the device-resident SGD loop (each
//! skipped with a reason otherwise).

mod abi;
mod device_ops;
mod limits;
mod numerics;
mod probe;
mod ptxas;
mod train_step;
