//! Native code generation with cranelift: recipe schedule expressions and fused elementwise chains.
