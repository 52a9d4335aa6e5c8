//! Native code for pure scalar functions, compiled with cranelift (feature `jit`).
//!
//! Knows no caller's language: a caller lowers its own expression tree into a [`Scalar`] and
//! gets back a [`CompiledScalar`] of `n` `f64` arguments. The schedule language compiles its
//! `custom` policies this way (`crate::schedule`); fused elementwise chains of the step graph
//! are the next user.

mod scalar;

pub use scalar::{Cmp, CompiledScalar, Extern, JitError, Scalar, compile};
