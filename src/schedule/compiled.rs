//! A `custom` policy's expression as native code (feature `jit`): the tree lowered to the
//! JIT's scalar functions, calling the interpreter's own [`ops`] for everything cranelift has
//! no instruction for, so compiled and interpreted values agree bit for bit.

use super::expr::{BinOp, Expr, Func, Vars, ops};
use crate::jit::{Cmp, CompiledScalar, Extern, JitError, Scalar, compile};

/// A compiled expression.
#[derive(Debug)]
pub struct CompiledExpr(CompiledScalar);

impl CompiledExpr {
    /// Evaluates the expression at `v`.
    #[inline]
    pub fn call(&self, v: &Vars) -> f64 {
        self.0.call(&v.to_array())
    }
}

/// Compiles `e` (once per run).
pub fn compile_expr(e: &Expr) -> Result<CompiledExpr, JitError> {
    compile(&lower(e)).map(CompiledExpr)
}

fn lower(e: &Expr) -> Scalar {
    let b = |e: &Expr| Box::new(lower(e));
    let unary = |name, f, x: &Expr| Scalar::Call(Extern::Unary(name, f), vec![lower(x)]);
    match e {
        Expr::Num(x) => Scalar::Const(*x),
        Expr::Var(v) => Scalar::Arg(v.index()),
        Expr::Neg(a) => Scalar::Neg(b(a)),
        Expr::Bin(op, l, r) => {
            let cmp = |c| Scalar::Cmp(c, b(l), b(r));
            match op {
                BinOp::Add => Scalar::Add(b(l), b(r)),
                BinOp::Sub => Scalar::Sub(b(l), b(r)),
                BinOp::Mul => Scalar::Mul(b(l), b(r)),
                BinOp::Div => Scalar::Div(b(l), b(r)),
                BinOp::Pow => Scalar::Call(
                    Extern::Binary("mmrun_pow", ops::pow),
                    vec![lower(l), lower(r)],
                ),
                BinOp::Lt => cmp(Cmp::Lt),
                BinOp::Le => cmp(Cmp::Le),
                BinOp::Gt => cmp(Cmp::Gt),
                BinOp::Ge => cmp(Cmp::Ge),
                BinOp::Eq => cmp(Cmp::Eq),
                BinOp::Ne => cmp(Cmp::Ne),
            }
        }
        Expr::Call(f, args) => {
            let x = &args[0];
            match f {
                Func::Min => Scalar::Min(b(x), b(&args[1])),
                Func::Max => Scalar::Max(b(x), b(&args[1])),
                Func::Sqrt => Scalar::Sqrt(b(x)),
                Func::Abs => Scalar::Abs(b(x)),
                Func::Cos => unary("mmrun_cos", ops::cos, x),
                Func::Sin => unary("mmrun_sin", ops::sin, x),
                Func::Exp => unary("mmrun_exp", ops::exp, x),
                Func::Log => unary("mmrun_log", ops::log, x),
                Func::Floor => unary("mmrun_floor", ops::floor, x),
                Func::Ceil => unary("mmrun_ceil", ops::ceil, x),
            }
        }
        Expr::If(c, t, f) => Scalar::Select {
            cond: b(c),
            then: b(t),
            otherwise: b(f),
        },
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
