//! Native code generation with cranelift (feature `jit`): recipe schedule expressions now;
//! fused elementwise chains of the step graph belong here too.
//!
//! - `expr`: compiles a [`crate::schedule::expr::Expr`] to a native
//!   `extern "C" fn(f64 × 6) -> f64`, once per run.
//! - `bench`: compiled against interpreted evaluation time.

pub mod bench;
mod expr;

pub use expr::{CompiledExpr, JitError, compile_expr};
