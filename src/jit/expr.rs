//! Compiles a schedule expression to native code with cranelift.
//!
//! The function takes the six variables of [`Vars`] in [`Var::index`] order as `f64`
//! arguments and returns an `f64`. Arithmetic, comparisons, `min`/`max` (IEEE `minimum` /
//! `maximum`), `sqrt` and `abs` are cranelift instructions; `^` and the transcendental
//! functions call the Rust shims of [`ops`], registered as the only symbols the module can
//! resolve. The interpreter uses the same shims, so both agree bit for bit.

use crate::schedule::expr::{BinOp, Expr, Func, Var, Vars, ops};
use cranelift::codegen::Context;
use cranelift::prelude::*;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};

/// Compilation failed (an unsupported host, or a cranelift error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JitError(String);

fn jerr(e: impl std::fmt::Display) -> JitError {
    JitError(e.to_string())
}

type Entry = extern "C" fn(f64, f64, f64, f64, f64, f64) -> f64;

/// A compiled expression. Owns the code memory; freed on drop.
pub struct CompiledExpr {
    entry: Entry,
    module: Option<JITModule>,
}

// SAFETY: after `finalize_definitions` the module's code is immutable; `entry` only reads
// its arguments and calls the pure shims in `ops`. The module itself is touched again only
// in `drop`, which has exclusive access.
unsafe impl Send for CompiledExpr {}
unsafe impl Sync for CompiledExpr {}

impl CompiledExpr {
    /// Evaluates the compiled expression.
    #[inline]
    pub fn call(&self, v: &Vars) -> f64 {
        (self.entry)(
            v.epoch,
            v.iter,
            v.progress,
            v.base,
            v.max_epochs,
            v.max_iters,
        )
    }
}

impl Drop for CompiledExpr {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `entry` points into this module and dies with `self`; nothing else
            // holds a pointer into its memory.
            unsafe { m.free_memory() };
        }
    }
}

impl std::fmt::Debug for CompiledExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledExpr")
    }
}

/// The shims an expression may call: name, function pointer, arity.
const SHIMS: [(&str, *const u8, usize); 7] = [
    ("mmrun_cos", ops::cos as *const u8, 1),
    ("mmrun_sin", ops::sin as *const u8, 1),
    ("mmrun_exp", ops::exp as *const u8, 1),
    ("mmrun_log", ops::log as *const u8, 1),
    ("mmrun_floor", ops::floor as *const u8, 1),
    ("mmrun_ceil", ops::ceil as *const u8, 1),
    ("mmrun_pow", ops::pow as *const u8, 2),
];

/// Compiles `expr` to native code.
pub fn compile_expr(expr: &Expr) -> Result<CompiledExpr, JitError> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(jerr)?;
    // Long-range relocations: the shims may live far from the JIT's code memory.
    flags.set("use_colocated_libcalls", "false").map_err(jerr)?;
    flags.set("is_pic", "false").map_err(jerr)?;
    let isa = cranelift_native::builder()
        .map_err(|m| JitError(format!("host not supported by cranelift: {m}")))?
        .finish(settings::Flags::new(flags))
        .map_err(jerr)?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, ptr, _) in SHIMS {
        jb.symbol(name, ptr);
    }
    let mut module = JITModule::new(jb);

    let mut shim_ids = Vec::new();
    for (name, _, arity) in SHIMS {
        let mut sig = module.make_signature();
        for _ in 0..arity {
            sig.params.push(AbiParam::new(types::F64));
        }
        sig.returns.push(AbiParam::new(types::F64));
        let id = module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(jerr)?;
        shim_ids.push(id);
    }

    let mut ctx: Context = module.make_context();
    for _ in 0..6 {
        ctx.func.signature.params.push(AbiParam::new(types::F64));
    }
    ctx.func.signature.returns.push(AbiParam::new(types::F64));
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let params = b.block_params(block).to_vec();
        let mut g = Gen {
            module: &mut module,
            shim_ids: &shim_ids,
            params: &params,
        };
        let out = g.emit(&mut b, expr);
        b.ins().return_(&[out]);
        b.finalize(g.module.target_config());
    }
    let id = module
        .declare_function("mmrun_schedule_expr", Linkage::Export, &ctx.func.signature)
        .map_err(jerr)?;
    module.define_function(id, &mut ctx).map_err(jerr)?;
    module.clear_context(&mut ctx);
    module.finalize_definitions().map_err(jerr)?;
    let code = module.get_finalized_function(id);
    // SAFETY: the function was declared with six f64 parameters and an f64 return in the
    // platform's default calling convention, which is `extern "C"`.
    let entry = unsafe { std::mem::transmute::<*const u8, Entry>(code) };
    Ok(CompiledExpr {
        entry,
        module: Some(module),
    })
}

struct Gen<'a> {
    module: &'a mut JITModule,
    shim_ids: &'a [FuncId],
    params: &'a [Value],
}

impl Gen<'_> {
    fn call(&mut self, b: &mut FunctionBuilder, name: &str, args: &[Value]) -> Value {
        let i = SHIMS
            .iter()
            .position(|s| s.0 == name)
            .expect("every shim name used below is in SHIMS");
        let fref = self.module.declare_func_in_func(self.shim_ids[i], b.func);
        let inst = b.ins().call(fref, args);
        b.inst_results(inst)[0]
    }

    fn bool_to_f64(b: &mut FunctionBuilder, c: Value) -> Value {
        let one = b.ins().f64const(1.0);
        let zero = b.ins().f64const(0.0);
        b.ins().select(c, one, zero)
    }

    fn emit(&mut self, b: &mut FunctionBuilder, e: &Expr) -> Value {
        match e {
            Expr::Num(x) => b.ins().f64const(*x),
            Expr::Var(v) => self.params[Var::index(*v)],
            Expr::Neg(a) => {
                let x = self.emit(b, a);
                b.ins().fneg(x)
            }
            Expr::Bin(op, l, r) => {
                let x = self.emit(b, l);
                let y = self.emit(b, r);
                let cmp = |b: &mut FunctionBuilder, cc: FloatCC| {
                    let c = b.ins().fcmp(cc, x, y);
                    Self::bool_to_f64(b, c)
                };
                match op {
                    BinOp::Add => b.ins().fadd(x, y),
                    BinOp::Sub => b.ins().fsub(x, y),
                    BinOp::Mul => b.ins().fmul(x, y),
                    BinOp::Div => b.ins().fdiv(x, y),
                    BinOp::Pow => self.call(b, "mmrun_pow", &[x, y]),
                    BinOp::Lt => cmp(b, FloatCC::LessThan),
                    BinOp::Le => cmp(b, FloatCC::LessThanOrEqual),
                    BinOp::Gt => cmp(b, FloatCC::GreaterThan),
                    BinOp::Ge => cmp(b, FloatCC::GreaterThanOrEqual),
                    BinOp::Eq => cmp(b, FloatCC::Equal),
                    // Unordered counts as not equal, as Rust's `!=` does.
                    BinOp::Ne => cmp(b, FloatCC::NotEqual),
                }
            }
            Expr::Call(f, args) => {
                let x = self.emit(b, &args[0]);
                match f {
                    Func::Min => {
                        let y = self.emit(b, &args[1]);
                        b.ins().fmin(x, y)
                    }
                    Func::Max => {
                        let y = self.emit(b, &args[1]);
                        b.ins().fmax(x, y)
                    }
                    Func::Sqrt => b.ins().sqrt(x),
                    Func::Abs => b.ins().fabs(x),
                    Func::Cos => self.call(b, "mmrun_cos", &[x]),
                    Func::Sin => self.call(b, "mmrun_sin", &[x]),
                    Func::Exp => self.call(b, "mmrun_exp", &[x]),
                    Func::Log => self.call(b, "mmrun_log", &[x]),
                    Func::Floor => self.call(b, "mmrun_floor", &[x]),
                    Func::Ceil => self.call(b, "mmrun_ceil", &[x]),
                }
            }
            Expr::If(c, t, f) => {
                // Both branches are pure, so a select (no control flow) is exact.
                let cv = self.emit(b, c);
                let tv = self.emit(b, t);
                let fv = self.emit(b, f);
                let zero = b.ins().f64const(0.0);
                let cond = b.ins().fcmp(FloatCC::NotEqual, cv, zero);
                b.ins().select(cond, tv, fv)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::expr::parse;

    #[test]
    fn compiled_matches_interpreter_on_a_poly_decay() {
        let e =
            parse("base_lr * (1 - progress) ^ 0.9 + if(iter < 10, 1, 0) * min(epoch, 3)").unwrap();
        let c = compile_expr(&e).unwrap();
        for i in 0..20 {
            let v = Vars {
                epoch: (i / 5) as f64,
                iter: i as f64,
                progress: i as f64 / 20.0,
                base: 0.02,
                max_epochs: 4.0,
                max_iters: 20.0,
            };
            assert_eq!(c.call(&v).to_bits(), e.eval(&v).to_bits(), "at {i}");
        }
    }
}
