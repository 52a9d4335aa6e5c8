//! Native code compiled with cranelift (feature `jit`): pure scalar functions of `f64`
//! arguments ([`Scalar`], [`compile`]) and elementwise loops over `f32` arrays
//! ([`LaneProgram`], [`compile_lanes`]).
//!
//! Knows no caller's language: a caller lowers its own expressions into these forms. The
//! schedule language compiles its `custom` policies to scalar functions (`crate::schedule`);
//! the CPU backend compiles fused elementwise chains of the step graph to lane loops
//! (`backend::cpu::fused`).

mod code;
mod lanes;
mod scalar;

pub use code::JitError;
pub use lanes::{CompiledLanes, LaneOp, LaneProgram, compile_lanes};
pub use scalar::{Cmp, CompiledScalar, Extern, Scalar, compile};
