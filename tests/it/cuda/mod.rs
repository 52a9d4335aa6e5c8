#![cfg(feature = "cuda")]
//! Integration tests of the `cuda` area.
//!
//! Without a GPU (CI): every PTX module assembles with ptxas for sm_80 and sm_90 without
//! spills, declares exactly the entries and parameter lists the Rust side launches, and device
//! detection fails cleanly. The f64 reference the GPU parity tests compare against is itself
//! checked against PyTorch autograd (skipped with a reason when torch is missing), and the CPU
//! backend's loss functions are checked against it.
//! With a GPU: CPU backend (f64) vs CUDA parity for every kernel (skipped with a reason otherwise).

mod abi;
mod cpu_ref;
mod ir_graph;
mod ir_harness;
mod ir_loss;
mod ir_nn;
mod ir_tensor;
mod parity;
mod probe;
mod ptxas;
mod reference;
mod torch_ref;
