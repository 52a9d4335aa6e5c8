//! What both compilers share: a cranelift module for the host that resolves only the symbols
//! its caller registers, and [`Code`], which owns the memory of what was compiled into it.

use cranelift::codegen::Context;
use cranelift::prelude::*;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

/// Compilation failed (an unsupported host, or a cranelift error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JitError(pub(super) String);

pub(super) fn jerr(e: impl std::fmt::Display) -> JitError {
    JitError(e.to_string())
}

/// A module for the host's ISA, optimising for speed, that resolves only `symbols`.
pub(super) fn host_module(symbols: &[(&'static str, *const u8)]) -> Result<JITModule, JitError> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(jerr)?;
    // Long-range relocations: the symbols may live far from the JIT's code memory.
    flags.set("use_colocated_libcalls", "false").map_err(jerr)?;
    flags.set("is_pic", "false").map_err(jerr)?;
    let isa = cranelift_native::builder()
        .map_err(|m| JitError(format!("host not supported by cranelift: {m}")))?
        .finish(settings::Flags::new(flags))
        .map_err(jerr)?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for &(name, ptr) in symbols {
        jb.symbol(name, ptr);
    }
    Ok(JITModule::new(jb))
}

/// Defines the function built in `ctx` as `name`, finalizes `module`, and returns the code's
/// address with the [`Code`] that keeps it mapped.
pub(super) fn define(
    mut module: JITModule,
    ctx: &mut Context,
    name: &str,
) -> Result<(*const u8, Code), JitError> {
    let id = module
        .declare_function(name, Linkage::Export, &ctx.func.signature)
        .map_err(jerr)?;
    module.define_function(id, ctx).map_err(jerr)?;
    module.clear_context(ctx);
    module.finalize_definitions().map_err(jerr)?;
    let entry = module.get_finalized_function(id);
    Ok((entry, Code(Some(module))))
}

/// A finalized module: its code stays mapped as long as this lives.
pub(super) struct Code(Option<JITModule>);

// SAFETY: after `finalize_definitions` the code is immutable: calls through its entry points
// read only what they are passed (and call the pure functions a caller registered), from any
// thread. The module itself is touched again only in `drop`, which has exclusive access.
unsafe impl Send for Code {}
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: the entry points into this module live in the same struct as this
            // `Code` and die with it; nothing else holds a pointer into its memory.
            unsafe { m.free_memory() };
        }
    }
}
