//! Fused elementwise chains on the CPU ([`crate::ir::Op::Fused`]): each distinct chain is
//! lowered to a lane program and compiled once per process by cranelift
//! ([`crate::jit::compile_lanes`]), then run over the same independent chunks as the op-by-op
//! maps, so the bits do not depend on the thread count and equal the ops run one by one
//! (`elementwise::unary`/`binary` in f32; `backend::fused_op_by_op` is the test's reference).
//!
//! f32 only, and only the ops whose f32 arithmetic the lanes reproduce exactly: no
//! transcendental functions (`exp`, `log`, `sigmoid`) and no `clamp` (Rust's `max`/`min` leave
//! the sign of a zero result open). Without the `jit` feature, on a host cranelift does not
//! support, or with `MMRUN_CPU_FUSE=off`, nothing is fusable and the executor runs every op
//! alone; the results are the same bits either way.

use super::{In, Out, inp, outp};
use crate::backend::{BackendError, check_fused};
use crate::ir::op::{Op, UnaryOp};
use crate::ir::{DType, FusedElementwise, FusedOp};

/// The environment variable that turns fusion on (`on`, the default) or off (`off`).
pub const ENV: &str = "MMRUN_CPU_FUSE";

/// Whether the executor should fuse `op` on `dtype` for this backend.
pub fn fusable(op: &Op, dtype: DType) -> bool {
    let exact = match op {
        Op::Binary(_) => true,
        Op::Unary(u) => unary_exact(u),
        _ => false,
    };
    exact && dtype == DType::F32 && enabled()
}

/// Whether [`run`] takes `f` on `dtype`: what [`fusable`] says of every step (a chain made
/// elsewhere may hold other ops; those run op by op).
pub fn compiles(f: &FusedElementwise, dtype: DType) -> bool {
    let exact = |s: &crate::ir::FusedStep| match &s.op {
        FusedOp::Unary(u) => unary_exact(u),
        FusedOp::Binary(_) => true,
    };
    f.steps.iter().all(exact) && dtype == DType::F32 && enabled()
}

/// The one-input ops the lowering below reproduces bit for bit (every binary op does).
fn unary_exact(u: &UnaryOp) -> bool {
    matches!(
        u,
        UnaryOp::Relu
            | UnaryOp::Scale(_)
            | UnaryOp::AddScalar(_)
            | UnaryOp::ReluGrad
            | UnaryOp::SigmoidGrad
            | UnaryOp::ExpGrad
            | UnaryOp::LogGrad
            | UnaryOp::ClampGrad { .. }
    )
}

/// A value of [`ENV`] that is neither on nor off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ENV}={0:?}: expected on or off")]
pub struct FuseSettingError(String);

/// [`ENV`] read and checked, once per process: whether fusion is wanted.
pub fn from_env() -> Result<bool, FuseSettingError> {
    static SETTING: std::sync::OnceLock<Result<bool, FuseSettingError>> =
        std::sync::OnceLock::new();
    let read = || {
        let v = match std::env::var(ENV) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => return Ok(true),
            Err(std::env::VarError::NotUnicode(v)) => {
                return Err(FuseSettingError(v.to_string_lossy().into_owned()));
            }
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "on" | "1" | "true" => Ok(true),
            "off" | "0" | "false" => Ok(false),
            _ => Err(FuseSettingError(v)),
        }
    };
    SETTING.get_or_init(read).clone()
}

/// Fusion is on: wanted ([`ENV`] unset or on), and this build and host can compile chains.
pub fn enabled() -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    from_env() == Ok(true) && *CAN.get_or_init(compiler::available)
}

/// How fusion stands, for run logs and benchmark headers.
pub fn describe() -> &'static str {
    if enabled() {
        "fused elementwise chains on (cranelift, 4-lane f32 vectors)"
    } else if from_env() != Ok(true) {
        "fused elementwise chains off (MMRUN_CPU_FUSE)"
    } else if cfg!(feature = "jit") {
        "fused elementwise chains off (cranelift does not support this host)"
    } else {
        "fused elementwise chains off (this build has no `jit` feature)"
    }
}

/// Runs `f` over `ins` into `out` (only where [`compiles`] says so).
pub fn run(f: &FusedElementwise, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
    check_fused("cpu", f, ins, &out)?;
    let xs = (ins.iter())
        .map(|t| inp::<f32>(t, "fused"))
        .collect::<Result<Vec<_>, _>>()?;
    let o = outp::<f32>(&mut out, "fused")?;
    compiler::run(f, &xs, o)
}

#[cfg(feature = "jit")]
mod compiler {
    use super::super::CHUNK;
    use crate::backend::BackendError;
    use crate::ir::op::{BinaryOp, UnaryOp};
    use crate::ir::{FusedElementwise, FusedOp};
    use crate::jit::{Cmp, CompiledLanes, LaneOp, LaneProgram, compile_lanes};
    use rayon::prelude::*;
    use std::sync::{Arc, Mutex};

    /// Every chain compiled so far in this process (a step graph has a few dozen at most).
    type Cache = Vec<(FusedElementwise, Arc<CompiledLanes>)>;
    static COMPILED: Mutex<Cache> = Mutex::new(Vec::new());

    /// Whether cranelift compiles for this host (a one-op chain, once).
    pub fn available() -> bool {
        let probe = LaneProgram {
            inputs: 1,
            ops: vec![LaneOp::Input(0)],
        };
        compile_lanes(&probe).is_ok()
    }

    pub fn run(f: &FusedElementwise, ins: &[&[f32]], out: &mut [f32]) -> Result<(), BackendError> {
        let code = compiled(f)?;
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
            let at = c * CHUNK;
            let xs: Vec<&[f32]> = ins.iter().map(|x| &x[at..at + o.len()]).collect();
            code.run(&xs, o);
        });
        Ok(())
    }

    fn compiled(f: &FusedElementwise) -> Result<Arc<CompiledLanes>, BackendError> {
        let mut cache = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, code)) = cache.iter().find(|(g, _)| g == f) {
            return Ok(code.clone());
        }
        let code = compile_lanes(&lower(f)).map_err(|e| BackendError::Device {
            backend: "cpu",
            message: format!("compiling the fused chain {}: {e}", f.describe()),
        })?;
        let code = Arc::new(code);
        cache.push((f.clone(), code.clone()));
        Ok(code)
    }

    /// The chain as lane operations, each step as `elementwise::unary`/`binary` compute it
    /// in f32 (constants rounded to f32 first, as `Float::from_f64`).
    fn lower(f: &FusedElementwise) -> LaneProgram {
        let mut ops: Vec<LaneOp> = (0..f.inputs).map(LaneOp::Input).collect();
        let mut value_at: Vec<usize> = (0..f.inputs).collect();
        let push = |ops: &mut Vec<LaneOp>, op: LaneOp| {
            ops.push(op);
            ops.len() - 1
        };
        for step in &f.steps {
            let a = |k: usize| value_at[step.args[k]];
            let v = match &step.op {
                FusedOp::Binary(b) => {
                    let (x, y) = (a(0), a(1));
                    push(
                        &mut ops,
                        match b {
                            BinaryOp::Add => LaneOp::Add(x, y),
                            BinaryOp::Sub => LaneOp::Sub(x, y),
                            BinaryOp::Mul => LaneOp::Mul(x, y),
                            BinaryOp::Div => LaneOp::Div(x, y),
                        },
                    )
                }
                FusedOp::Unary(u) => {
                    let zero = push(&mut ops, LaneOp::Const(0.0));
                    let select = |cmp, a, b, then, otherwise| LaneOp::Select {
                        cmp,
                        a,
                        b,
                        then,
                        otherwise,
                    };
                    match u {
                        // `x > 0 ? x : 0`
                        UnaryOp::Relu => push(&mut ops, select(Cmp::Gt, a(0), zero, a(0), zero)),
                        UnaryOp::Scale(s) => {
                            let c = push(&mut ops, LaneOp::Const(*s as f32));
                            push(&mut ops, LaneOp::Mul(a(0), c))
                        }
                        UnaryOp::AddScalar(s) => {
                            let c = push(&mut ops, LaneOp::Const(*s as f32));
                            push(&mut ops, LaneOp::Add(a(0), c))
                        }
                        // `y > 0 ? dy : 0`
                        UnaryOp::ReluGrad => {
                            push(&mut ops, select(Cmp::Gt, a(0), zero, a(1), zero))
                        }
                        // `dy * y * (1 - y)`, left to right
                        UnaryOp::SigmoidGrad => {
                            let one = push(&mut ops, LaneOp::Const(1.0));
                            let dy_y = push(&mut ops, LaneOp::Mul(a(1), a(0)));
                            let one_y = push(&mut ops, LaneOp::Sub(one, a(0)));
                            push(&mut ops, LaneOp::Mul(dy_y, one_y))
                        }
                        UnaryOp::ExpGrad => push(&mut ops, LaneOp::Mul(a(1), a(0))),
                        UnaryOp::LogGrad => push(&mut ops, LaneOp::Div(a(1), a(0))),
                        // `x >= lo && x <= hi ? dy : 0`
                        UnaryOp::ClampGrad { lo, hi } => {
                            let lo = push(&mut ops, LaneOp::Const(*lo as f32));
                            let hi = push(&mut ops, LaneOp::Const(*hi as f32));
                            let inner = push(&mut ops, select(Cmp::Le, a(0), hi, a(1), zero));
                            push(&mut ops, select(Cmp::Ge, a(0), lo, inner, zero))
                        }
                        other => unreachable!("{other:?} is not fusable (`unary_exact`)"),
                    }
                }
            };
            value_at.push(v);
        }
        LaneProgram {
            inputs: f.inputs,
            ops,
        }
    }
}

#[cfg(not(feature = "jit"))]
mod compiler {
    use crate::backend::BackendError;
    use crate::ir::FusedElementwise;

    pub fn available() -> bool {
        false
    }

    pub fn run(_: &FusedElementwise, _: &[&[f32]], _: &mut [f32]) -> Result<(), BackendError> {
        Err(BackendError::Invalid {
            backend: "cpu",
            op: "fused",
            message: "this build has no `jit` feature to run fused chains".into(),
        })
    }
}
