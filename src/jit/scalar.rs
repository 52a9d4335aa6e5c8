//! The scalar-function IR and its compilation with cranelift.
//!
//! A compiled function reads its `n` arguments from an array of `f64` and returns an `f64`.
//! Arithmetic, comparisons, `min`/`max` (IEEE `minimum`/`maximum`), `sqrt` and `abs` are
//! cranelift instructions; anything else is an [`Extern`]: a Rust function the caller names,
//! registered as the only symbols the module can resolve, so a caller that interprets the
//! same tree with the same functions agrees bit for bit.

use super::code::{Code, JitError, define, host_module, jerr};
use cranelift::codegen::Context;
use cranelift::prelude::*;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

/// A function outside the compiled code, called by symbol.
#[derive(Clone, Copy, Debug)]
pub enum Extern {
    Unary(&'static str, extern "C" fn(f64) -> f64),
    Binary(&'static str, extern "C" fn(f64, f64) -> f64),
}

impl Extern {
    fn name(self) -> &'static str {
        match self {
            Extern::Unary(n, _) | Extern::Binary(n, _) => n,
        }
    }
    fn ptr(self) -> *const u8 {
        match self {
            Extern::Unary(_, f) => f as *const u8,
            Extern::Binary(_, f) => f as *const u8,
        }
    }
    fn arity(self) -> usize {
        match self {
            Extern::Unary(..) => 1,
            Extern::Binary(..) => 2,
        }
    }
}

/// A comparison; true is 1.0 and false 0.0. Unordered operands compare unequal, as Rust's
/// `!=` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    /// The same comparison as cranelift's condition code.
    pub(super) fn float_cc(self) -> FloatCC {
        match self {
            Cmp::Lt => FloatCC::LessThan,
            Cmp::Le => FloatCC::LessThanOrEqual,
            Cmp::Gt => FloatCC::GreaterThan,
            Cmp::Ge => FloatCC::GreaterThanOrEqual,
            Cmp::Eq => FloatCC::Equal,
            Cmp::Ne => FloatCC::NotEqual,
        }
    }
}

/// A pure scalar function of `f64` arguments, as a tree.
#[derive(Clone, Debug)]
pub enum Scalar {
    Const(f64),
    /// Argument `i`.
    Arg(usize),
    Neg(Box<Scalar>),
    Add(Box<Scalar>, Box<Scalar>),
    Sub(Box<Scalar>, Box<Scalar>),
    Mul(Box<Scalar>, Box<Scalar>),
    Div(Box<Scalar>, Box<Scalar>),
    /// IEEE 754-2019 `minimum` (NaN if either is NaN; -0 below +0).
    Min(Box<Scalar>, Box<Scalar>),
    /// IEEE 754-2019 `maximum`.
    Max(Box<Scalar>, Box<Scalar>),
    Sqrt(Box<Scalar>),
    Abs(Box<Scalar>),
    Cmp(Cmp, Box<Scalar>, Box<Scalar>),
    /// `then` where `cond != 0` (NaN counts as true), else `otherwise`; both are evaluated.
    Select {
        cond: Box<Scalar>,
        then: Box<Scalar>,
        otherwise: Box<Scalar>,
    },
    /// A call of an external function with as many arguments as it takes.
    Call(Extern, Vec<Scalar>),
}

impl Scalar {
    /// Every external function the tree calls (with repeats), and the largest argument index
    /// plus one.
    fn visit(&self, externs: &mut Vec<Extern>, args: &mut usize) {
        match self {
            Scalar::Const(_) => {}
            Scalar::Arg(i) => *args = (*args).max(i + 1),
            Scalar::Neg(a) | Scalar::Sqrt(a) | Scalar::Abs(a) => a.visit(externs, args),
            Scalar::Add(a, b)
            | Scalar::Sub(a, b)
            | Scalar::Mul(a, b)
            | Scalar::Div(a, b)
            | Scalar::Min(a, b)
            | Scalar::Max(a, b)
            | Scalar::Cmp(_, a, b) => {
                a.visit(externs, args);
                b.visit(externs, args);
            }
            Scalar::Select {
                cond,
                then,
                otherwise,
            } => {
                cond.visit(externs, args);
                then.visit(externs, args);
                otherwise.visit(externs, args);
            }
            Scalar::Call(f, xs) => {
                externs.push(*f);
                xs.iter().for_each(|x| x.visit(externs, args));
            }
        }
    }
}

type Entry = extern "C" fn(*const f64) -> f64;

/// A compiled function. Owns the code memory; freed on drop.
pub struct CompiledScalar {
    entry: Entry,
    args: usize,
    _code: Code,
}

impl CompiledScalar {
    /// Evaluates the function.
    ///
    /// # Panics
    /// When `args` is shorter than the function's arguments: the code would read past it.
    #[inline]
    pub fn call(&self, args: &[f64]) -> f64 {
        assert!(
            args.len() >= self.args,
            "a compiled scalar function of {} arguments was given {}",
            self.args,
            args.len()
        );
        (self.entry)(args.as_ptr())
    }
}

impl std::fmt::Debug for CompiledScalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompiledScalar({} args)", self.args)
    }
}

/// Compiles `f` to native code.
pub fn compile(f: &Scalar) -> Result<CompiledScalar, JitError> {
    let (mut externs, mut args) = (Vec::new(), 0);
    f.visit(&mut externs, &mut args);
    externs.sort_by_key(|e| e.name());
    externs.dedup_by_key(|e| e.name());
    let symbols: Vec<(&'static str, *const u8)> =
        externs.iter().map(|e| (e.name(), e.ptr())).collect();
    let mut module = host_module(&symbols)?;

    let mut extern_ids = Vec::new();
    for e in &externs {
        let mut sig = module.make_signature();
        for _ in 0..e.arity() {
            sig.params.push(AbiParam::new(types::F64));
        }
        sig.returns.push(AbiParam::new(types::F64));
        let id = module
            .declare_function(e.name(), Linkage::Import, &sig)
            .map_err(jerr)?;
        extern_ids.push((e.name(), id));
    }

    let ptr_ty = module.target_config().pointer_type();
    let mut ctx: Context = module.make_context();
    ctx.func.signature.params.push(AbiParam::new(ptr_ty));
    ctx.func.signature.returns.push(AbiParam::new(types::F64));
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let base = b.block_params(block)[0];
        // The caller passes an aligned array of `args` values (`CompiledScalar::call`).
        let params: Vec<Value> = (0..args)
            .map(|i| {
                b.ins()
                    .load(types::F64, MemFlagsData::trusted(), base, 8 * i as i32)
            })
            .collect();
        let mut g = Gen {
            module: &mut module,
            extern_ids: &extern_ids,
            params: &params,
        };
        let out = g.emit(&mut b, f);
        b.ins().return_(&[out]);
        b.finalize(g.module.target_config());
    }
    let (code, owner) = define(module, &mut ctx, "mmrun_scalar")?;
    // SAFETY: the function was declared with one pointer parameter and an f64 return in the
    // platform's default calling convention, which is `extern "C"`.
    let entry = unsafe { std::mem::transmute::<*const u8, Entry>(code) };
    Ok(CompiledScalar {
        entry,
        args,
        _code: owner,
    })
}

struct Gen<'a> {
    module: &'a mut JITModule,
    extern_ids: &'a [(&'static str, FuncId)],
    params: &'a [Value],
}

impl Gen<'_> {
    fn bool_to_f64(b: &mut FunctionBuilder, c: Value) -> Value {
        let one = b.ins().f64const(1.0);
        let zero = b.ins().f64const(0.0);
        b.ins().select(c, one, zero)
    }

    fn emit(&mut self, b: &mut FunctionBuilder, e: &Scalar) -> Value {
        let two = |g: &mut Self, b: &mut FunctionBuilder, x: &Scalar, y: &Scalar| {
            (g.emit(b, x), g.emit(b, y))
        };
        match e {
            Scalar::Const(x) => b.ins().f64const(*x),
            Scalar::Arg(i) => self.params[*i],
            Scalar::Neg(a) => {
                let x = self.emit(b, a);
                b.ins().fneg(x)
            }
            Scalar::Sqrt(a) => {
                let x = self.emit(b, a);
                b.ins().sqrt(x)
            }
            Scalar::Abs(a) => {
                let x = self.emit(b, a);
                b.ins().fabs(x)
            }
            Scalar::Add(l, r) => {
                let (x, y) = two(self, b, l, r);
                b.ins().fadd(x, y)
            }
            Scalar::Sub(l, r) => {
                let (x, y) = two(self, b, l, r);
                b.ins().fsub(x, y)
            }
            Scalar::Mul(l, r) => {
                let (x, y) = two(self, b, l, r);
                b.ins().fmul(x, y)
            }
            Scalar::Div(l, r) => {
                let (x, y) = two(self, b, l, r);
                b.ins().fdiv(x, y)
            }
            Scalar::Min(l, r) => {
                let (x, y) = two(self, b, l, r);
                b.ins().fmin(x, y)
            }
            Scalar::Max(l, r) => {
                let (x, y) = two(self, b, l, r);
                b.ins().fmax(x, y)
            }
            Scalar::Cmp(op, l, r) => {
                let (x, y) = two(self, b, l, r);
                let c = b.ins().fcmp(op.float_cc(), x, y);
                Self::bool_to_f64(b, c)
            }
            Scalar::Select {
                cond,
                then,
                otherwise,
            } => {
                // Both branches are pure, so a select (no control flow) is exact.
                let cv = self.emit(b, cond);
                let tv = self.emit(b, then);
                let fv = self.emit(b, otherwise);
                let zero = b.ins().f64const(0.0);
                let c = b.ins().fcmp(FloatCC::NotEqual, cv, zero);
                b.ins().select(c, tv, fv)
            }
            Scalar::Call(f, xs) => {
                let args: Vec<Value> = xs.iter().map(|x| self.emit(b, x)).collect();
                let id = (self.extern_ids.iter())
                    .find(|(n, _)| *n == f.name())
                    .map(|(_, id)| *id)
                    .expect("every extern the tree calls was declared");
                let fref = self.module.declare_func_in_func(id, b.func);
                let inst = b.ins().call(fref, &args);
                b.inst_results(inst)[0]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn pow(x: f64, y: f64) -> f64 {
        x.powf(y)
    }

    /// `a * (1 - b) ^ 0.9 + select(a < 10, 1, 0) * min(b, 3)` against the same in Rust.
    #[test]
    fn compiled_matches_rust() {
        let (a, b) = (|| Box::new(Scalar::Arg(0)), || Box::new(Scalar::Arg(1)));
        let c = |x: f64| Box::new(Scalar::Const(x));
        let f = Scalar::Add(
            Box::new(Scalar::Mul(
                a(),
                Box::new(Scalar::Call(
                    Extern::Binary("test_pow", pow),
                    vec![Scalar::Sub(c(1.0), b()), Scalar::Const(0.9)],
                )),
            )),
            Box::new(Scalar::Mul(
                Box::new(Scalar::Select {
                    cond: Box::new(Scalar::Cmp(Cmp::Lt, a(), c(10.0))),
                    then: c(1.0),
                    otherwise: c(0.0),
                }),
                Box::new(Scalar::Min(b(), c(3.0))),
            )),
        );
        let compiled = compile(&f).unwrap();
        for i in 0..20 {
            let (x, y) = (i as f64 * 0.7, i as f64 / 20.0);
            let want = x * pow(1.0 - y, 0.9) + if x < 10.0 { 1.0 } else { 0.0 } * y.min(3.0);
            assert_eq!(compiled.call(&[x, y]).to_bits(), want.to_bits(), "at {i}");
        }
    }
}
