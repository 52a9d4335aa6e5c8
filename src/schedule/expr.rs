//! Custom schedule expressions: `base_lr * (1 - progress) ^ 0.9`.
//!
//! The language is closed on purpose: numbers, the variables of [`Var`], `+ - * / ^`, unary
//! minus, parentheses, comparisons (`< <= > >= == !=`, giving 1 or 0), `if(c, a, b)` and the
//! functions of [`Func`]. Nothing can read files, time, the environment or randomness.
//!
//! Precedence, loosest first: comparison (non-associative), `+ -`, `* /`, unary minus, `^`
//! (right-associative, so `-2 ^ 2 = -4` and `2 ^ -1 = 0.5`).
//!
//! This module parses and interprets; `compiled` lowers the same tree to `crate::jit` under
//! feature `jit`. Both call the functions in [`ops`], so they agree bit for bit.

use std::fmt;

/// The variables an expression can read. `progress` is `epoch / max_epochs` for a by-epoch
/// schedule and `iter / max_iters` otherwise; `base` (also spelled `base_lr` or
/// `base_momentum`) is the param group's configured value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Epoch,
    Iter,
    Progress,
    Base,
    MaxEpochs,
    MaxIters,
}

impl Var {
    fn from_name(s: &str) -> Option<Var> {
        Some(match s {
            "epoch" => Var::Epoch,
            "iter" => Var::Iter,
            "progress" => Var::Progress,
            "base" | "base_lr" | "base_momentum" => Var::Base,
            "max_epochs" => Var::MaxEpochs,
            "max_iters" => Var::MaxIters,
            _ => return None,
        })
    }
    /// Position in [`Vars`] and in the compiled function's arguments.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The variable values, in [`Var::index`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Vars {
    pub epoch: f64,
    pub iter: f64,
    pub progress: f64,
    pub base: f64,
    pub max_epochs: f64,
    pub max_iters: f64,
}

impl Vars {
    /// The values in [`Var::index`] order (a compiled expression's arguments).
    pub fn to_array(&self) -> [f64; 6] {
        [
            self.epoch,
            self.iter,
            self.progress,
            self.base,
            self.max_epochs,
            self.max_iters,
        ]
    }
    pub fn get(&self, v: Var) -> f64 {
        match v {
            Var::Epoch => self.epoch,
            Var::Iter => self.iter,
            Var::Progress => self.progress,
            Var::Base => self.base,
            Var::MaxEpochs => self.max_epochs,
            Var::MaxIters => self.max_iters,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Min,
    Max,
    Cos,
    Sin,
    Exp,
    Log,
    Sqrt,
    Abs,
    Floor,
    Ceil,
}

impl Func {
    fn from_name(s: &str) -> Option<Func> {
        Some(match s {
            "min" => Func::Min,
            "max" => Func::Max,
            "cos" => Func::Cos,
            "sin" => Func::Sin,
            "exp" => Func::Exp,
            "log" => Func::Log,
            "sqrt" => Func::Sqrt,
            "abs" => Func::Abs,
            "floor" => Func::Floor,
            "ceil" => Func::Ceil,
            _ => return None,
        })
    }
    pub fn arity(self) -> usize {
        match self {
            Func::Min | Func::Max => 2,
            _ => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Func::Min => "min",
            Func::Max => "max",
            Func::Cos => "cos",
            Func::Sin => "sin",
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Sqrt => "sqrt",
            Func::Abs => "abs",
            Func::Floor => "floor",
            Func::Ceil => "ceil",
        }
    }
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(f64),
    Var(Var),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
    /// `if(c, a, b)`: `a` where `c != 0` (NaN counts as true, as `!=` says), else `b`.
    If(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// A parse error at a byte offset of the expression text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

/// The scalar operations both the interpreter and the JIT use (the JIT imports them as
/// symbols), so their results agree bit for bit.
pub mod ops {
    pub extern "C" fn cos(x: f64) -> f64 {
        x.cos()
    }
    pub extern "C" fn sin(x: f64) -> f64 {
        x.sin()
    }
    pub extern "C" fn exp(x: f64) -> f64 {
        x.exp()
    }
    pub extern "C" fn log(x: f64) -> f64 {
        x.ln()
    }
    pub extern "C" fn pow(x: f64, y: f64) -> f64 {
        x.powf(y)
    }
    pub extern "C" fn floor(x: f64) -> f64 {
        x.floor()
    }
    pub extern "C" fn ceil(x: f64) -> f64 {
        x.ceil()
    }
    /// IEEE 754-2019 `minimum`: NaN if either is NaN, and -0 below +0 (cranelift's `fmin`).
    pub fn min(a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else if a < b || (a == b && a.is_sign_negative()) {
            a
        } else {
            b
        }
    }
    /// IEEE 754-2019 `maximum` (cranelift's `fmax`).
    pub fn max(a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else if a > b || (a == b && a.is_sign_positive()) {
            a
        } else {
            b
        }
    }
}

fn truth(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

impl Expr {
    /// Interprets the expression.
    pub fn eval(&self, v: &Vars) -> f64 {
        match self {
            Expr::Num(x) => *x,
            Expr::Var(var) => v.get(*var),
            Expr::Neg(a) => -a.eval(v),
            Expr::Bin(op, a, b) => {
                let (x, y) = (a.eval(v), b.eval(v));
                match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Pow => ops::pow(x, y),
                    BinOp::Lt => truth(x < y),
                    BinOp::Le => truth(x <= y),
                    BinOp::Gt => truth(x > y),
                    BinOp::Ge => truth(x >= y),
                    BinOp::Eq => truth(x == y),
                    BinOp::Ne => truth(x != y),
                }
            }
            Expr::Call(f, args) => {
                let x = args[0].eval(v);
                match f {
                    Func::Min => ops::min(x, args[1].eval(v)),
                    Func::Max => ops::max(x, args[1].eval(v)),
                    Func::Cos => ops::cos(x),
                    Func::Sin => ops::sin(x),
                    Func::Exp => ops::exp(x),
                    Func::Log => ops::log(x),
                    Func::Sqrt => x.sqrt(),
                    Func::Abs => x.abs(),
                    Func::Floor => ops::floor(x),
                    Func::Ceil => ops::ceil(x),
                }
            }
            Expr::If(c, a, b) => {
                // Both branches are pure; evaluating only one matches the JIT's select.
                if c.eval(v) != 0.0 {
                    a.eval(v)
                } else {
                    b.eval(v)
                }
            }
        }
    }
}

impl fmt::Display for Expr {
    /// Fully parenthesised, so the printed form parses back to the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Num(x) if x.is_sign_negative() => write!(f, "(-{:?})", -x),
            Expr::Num(x) => write!(f, "{x:?}"),
            Expr::Var(v) => f.write_str(match v {
                Var::Epoch => "epoch",
                Var::Iter => "iter",
                Var::Progress => "progress",
                Var::Base => "base",
                Var::MaxEpochs => "max_epochs",
                Var::MaxIters => "max_iters",
            }),
            Expr::Neg(a) => write!(f, "(-{a})"),
            Expr::Bin(op, a, b) => {
                let s = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Pow => "^",
                    BinOp::Lt => "<",
                    BinOp::Le => "<=",
                    BinOp::Gt => ">",
                    BinOp::Ge => ">=",
                    BinOp::Eq => "==",
                    BinOp::Ne => "!=",
                };
                write!(f, "({a} {s} {b})")
            }
            Expr::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::If(c, a, b) => write!(f, "if({c}, {a}, {b})"),
        }
    }
}

/// Nesting deeper than this is refused, so a hostile expression cannot overflow the stack.
const MAX_DEPTH: usize = 200;

/// Parses an expression. Errors carry the byte offset in `src`.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
    };
    let e = p.comparison()?;
    p.skip_ws();
    if p.pos < src.len() {
        return Err(p.error(format!("unexpected `{}`", p.rest_token())));
    }
    Ok(e)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ExprError {
        ExprError {
            offset: self.pos,
            message: message.into(),
        }
    }
    fn skip_ws(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }
    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.src[self.pos..].chars().next()
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.src[self.pos..].starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }
    fn rest_token(&self) -> String {
        self.src[self.pos..].chars().take(12).collect()
    }
    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("expression nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let lhs = self.sum()?;
        // Two-character operators first, so `<=` is not read as `<`.
        let ops = [
            ("<=", BinOp::Le),
            (">=", BinOp::Ge),
            ("==", BinOp::Eq),
            ("!=", BinOp::Ne),
            ("<", BinOp::Lt),
            (">", BinOp::Gt),
        ];
        for (tok, op) in ops {
            if self.eat(tok) {
                let rhs = self.sum()?;
                if ops
                    .iter()
                    .any(|(t, _)| self.src[self.pos..].trim_start().starts_with(t))
                {
                    self.skip_ws();
                    return Err(self.error("comparisons do not chain: use parentheses"));
                }
                return Ok(Expr::Bin(op, Box::new(lhs), Box::new(rhs)));
            }
        }
        Ok(lhs)
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.product()?;
        loop {
            let op = if self.eat("+") {
                BinOp::Add
            } else if self.eat("-") {
                BinOp::Sub
            } else {
                return Ok(lhs);
            };
            let rhs = self.product()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let op = if self.eat("*") {
                BinOp::Mul
            } else if self.eat("/") {
                BinOp::Div
            } else {
                return Ok(lhs);
            };
            let rhs = self.unary()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        self.enter()?;
        let e = if self.eat("-") {
            Expr::Neg(Box::new(self.unary()?))
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(e)
    }

    fn power(&mut self) -> Result<Expr, ExprError> {
        let base = self.atom()?;
        if self.eat("^") {
            // Right-associative, and the exponent may carry its own sign.
            let exp = self.unary()?;
            return Ok(Expr::Bin(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        match self.peek() {
            None => Err(self.error("unexpected end of expression")),
            Some('(') => {
                self.pos += 1;
                self.enter()?;
                let e = self.comparison()?;
                self.depth -= 1;
                if !self.eat(")") {
                    return Err(self.error("expected `)`"));
                }
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.name(),
            Some(c) => Err(self.error(format!("unexpected `{c}`"))),
        }
    }

    fn number(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            end += 1;
        }
        if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
            let mut e = end + 1;
            if e < bytes.len() && (bytes[e] == b'+' || bytes[e] == b'-') {
                e += 1;
            }
            if e < bytes.len() && bytes[e].is_ascii_digit() {
                while e < bytes.len() && bytes[e].is_ascii_digit() {
                    e += 1;
                }
                end = e;
            }
        }
        let text = &self.src[start..end];
        match text.parse::<f64>() {
            Ok(x) => {
                self.pos = end;
                Ok(Expr::Num(x))
            }
            Err(_) => Err(self.error(format!("`{text}` is not a number"))),
        }
    }

    fn name(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        let len = self.src[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.src.len() - start);
        let name = &self.src[start..start + len];
        self.pos += len;
        if self.peek() != Some('(') {
            return Var::from_name(name)
                .map(Expr::Var)
                .ok_or_else(|| ExprError {
                    offset: start,
                    message: format!(
                        "unknown variable `{name}`: expected one of epoch, iter, progress, \
                     base_lr, base_momentum, max_epochs, max_iters"
                    ),
                });
        }
        let (func, arity) = if name == "if" {
            (None, 3)
        } else {
            let f = Func::from_name(name).ok_or_else(|| ExprError {
                offset: start,
                message: format!(
                    "unknown function `{name}`: expected one of if, min, max, cos, sin, exp, \
                     log, sqrt, abs, floor, ceil"
                ),
            })?;
            (Some(f), f.arity())
        };
        self.pos += 1; // `(`
        self.enter()?;
        let mut args = Vec::new();
        if self.peek() != Some(')') {
            loop {
                args.push(self.comparison()?);
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.depth -= 1;
        if !self.eat(")") {
            return Err(self.error("expected `,` or `)`"));
        }
        if args.len() != arity {
            return Err(ExprError {
                offset: start,
                message: format!("`{name}` takes {arity} argument(s), found {}", args.len()),
            });
        }
        Ok(match func {
            Some(f) => Expr::Call(f, args),
            None => {
                let mut it = args.into_iter();
                let (c, a, b) = (it.next(), it.next(), it.next());
                match (c, a, b) {
                    (Some(c), Some(a), Some(b)) => Expr::If(Box::new(c), Box::new(a), Box::new(b)),
                    _ => unreachable!("arity checked above"),
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
