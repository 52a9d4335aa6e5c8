//! Elementwise loops over `f32` arrays: a straight-line [`LaneProgram`] applied at every index
//! of its input arrays, compiled with cranelift into a loop over 4-lane vectors (two per
//! iteration) and a scalar loop for the rest.
//!
//! Every operation is one IEEE single-precision operation with one rounding, and nothing is
//! contracted into a fused multiply-add, so a caller that evaluates the same program in `f32`
//! one operation at a time agrees bit for bit, NaNs and signed zeros included.

use super::code::{Code, JitError, define, host_module};
use super::scalar::Cmp;
use cranelift::codegen::Context;
use cranelift::codegen::ir::BlockArg;
use cranelift::prelude::*;
use cranelift_module::Module;

/// One operation; operands are indices of earlier operations of the program.
#[derive(Clone, Debug, PartialEq)]
pub enum LaneOp {
    /// Input array `i` at the current index.
    Input(usize),
    Const(f32),
    Add(usize, usize),
    Sub(usize, usize),
    Mul(usize, usize),
    Div(usize, usize),
    /// `then` where `a cmp b` holds, else `otherwise`; an unordered comparison holds only for
    /// [`Cmp::Ne`], as Rust's operators say.
    Select {
        cmp: Cmp,
        a: usize,
        b: usize,
        then: usize,
        otherwise: usize,
    },
}

impl LaneOp {
    fn operands(&self) -> Vec<usize> {
        match *self {
            LaneOp::Input(_) | LaneOp::Const(_) => vec![],
            LaneOp::Add(a, b) | LaneOp::Sub(a, b) | LaneOp::Mul(a, b) | LaneOp::Div(a, b) => {
                vec![a, b]
            }
            LaneOp::Select {
                a,
                b,
                then,
                otherwise,
                ..
            } => vec![a, b, then, otherwise],
        }
    }
}

/// A function of `inputs` values; the last operation's value is the output.
#[derive(Clone, Debug, PartialEq)]
pub struct LaneProgram {
    pub inputs: usize,
    pub ops: Vec<LaneOp>,
}

impl LaneProgram {
    fn check(&self) -> Result<(), JitError> {
        if self.ops.is_empty() {
            return Err(JitError("a lane program needs an operation".into()));
        }
        for (k, op) in self.ops.iter().enumerate() {
            let bad_input = matches!(*op, LaneOp::Input(i) if i >= self.inputs);
            if bad_input || op.operands().iter().any(|&o| o >= k) {
                return Err(JitError(format!(
                    "lane operation {k} ({op:?}) reads an input or operation it cannot see"
                )));
            }
        }
        Ok(())
    }
}

type Entry = unsafe extern "C" fn(*const *const f32, *mut f32, usize);

/// A compiled program. Owns the code memory; freed on drop.
pub struct CompiledLanes {
    entry: Entry,
    inputs: usize,
    _code: Code,
}

impl CompiledLanes {
    /// `out[i] = program(ins[0][i], ins[1][i], …)` for every `i < out.len()`.
    ///
    /// # Panics
    /// When `ins` does not hold one array per input, or one is shorter than `out`: the code
    /// would read past it.
    pub fn run(&self, ins: &[&[f32]], out: &mut [f32]) {
        assert_eq!(ins.len(), self.inputs, "one array per input");
        assert!(
            ins.iter().all(|x| x.len() >= out.len()),
            "every input at least as long as the output"
        );
        let ptrs: Vec<*const f32> = ins.iter().map(|x| x.as_ptr()).collect();
        // SAFETY: the code reads `out.len()` elements from each of the `inputs` pointers and
        // writes `out.len()` elements to `out`, all checked above; `&mut out` excludes aliasing.
        unsafe { (self.entry)(ptrs.as_ptr(), out.as_mut_ptr(), out.len()) }
    }
}

impl std::fmt::Debug for CompiledLanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompiledLanes({} inputs)", self.inputs)
    }
}

/// Elements per vector, and vectors per iteration of the main loop.
const LANES: i64 = 4;
const UNROLL: i64 = 2;

/// Compiles `p` to native code.
pub fn compile_lanes(p: &LaneProgram) -> Result<CompiledLanes, JitError> {
    p.check()?;
    let module = host_module(&[])?;
    let target = module.target_config();
    let ptr = target.pointer_type();
    let mut ctx: Context = module.make_context();
    for _ in 0..3 {
        ctx.func.signature.params.push(AbiParam::new(ptr));
    }
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let [entry, vhead, vbody, shead, sbody, exit] = [(); 6].map(|()| b.create_block());
        b.append_block_params_for_function_params(entry);
        for block in [vhead, vbody, shead, sbody] {
            b.append_block_param(block, ptr);
        }

        b.switch_to_block(entry);
        let (ins, out, n) = {
            let v = b.block_params(entry);
            (v[0], v[1], v[2])
        };
        let bases: Vec<Value> = (0..p.inputs)
            .map(|k| {
                let off = (k as u32 * ptr.bytes()) as i32;
                b.ins().load(ptr, MemFlagsData::trusted(), ins, off)
            })
            .collect();
        let zero = b.ins().iconst(ptr, 0);
        b.ins().jump(vhead, &[BlockArg::Value(zero)]);

        // Vectors while a whole iteration's worth is left.
        b.switch_to_block(vhead);
        let i = b.block_params(vhead)[0];
        let end = b.ins().iadd_imm_u(i, LANES * UNROLL);
        let more = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, n);
        b.ins().brif(
            more,
            vbody,
            &[BlockArg::Value(i)],
            shead,
            &[BlockArg::Value(i)],
        );

        b.switch_to_block(vbody);
        let i = b.block_params(vbody)[0];
        for u in 0..UNROLL {
            let at = b.ins().iadd_imm_u(i, u * LANES);
            emit_at(&mut b, p, types::F32X4, &bases, out, at);
        }
        let next = b.ins().iadd_imm_u(i, LANES * UNROLL);
        b.ins().jump(vhead, &[BlockArg::Value(next)]);

        // One element at a time for the rest.
        b.switch_to_block(shead);
        let i = b.block_params(shead)[0];
        let more = b.ins().icmp(IntCC::UnsignedLessThan, i, n);
        b.ins().brif(more, sbody, &[BlockArg::Value(i)], exit, &[]);

        b.switch_to_block(sbody);
        let i = b.block_params(sbody)[0];
        emit_at(&mut b, p, types::F32, &bases, out, i);
        let next = b.ins().iadd_imm_u(i, 1);
        b.ins().jump(shead, &[BlockArg::Value(next)]);

        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(target);
    }
    let (code, owner) = define(module, &mut ctx, "mmrun_lanes")?;
    // SAFETY: the function was declared with three pointer-sized parameters and no return
    // value in the platform's default calling convention, which is `extern "C"`.
    let entry = unsafe { std::mem::transmute::<*const u8, Entry>(code) };
    Ok(CompiledLanes {
        entry,
        inputs: p.inputs,
        _code: owner,
    })
}

/// The program at element index `at` in values of type `ty` (`F32` or `F32X4`): loads from
/// `bases`, stores the result to `out`.
fn emit_at(
    b: &mut FunctionBuilder,
    p: &LaneProgram,
    ty: Type,
    bases: &[Value],
    out: Value,
    at: Value,
) {
    // Arrays of f32 are 4-byte aligned only: vector accesses are unaligned.
    let mem = MemFlagsData::new().with_notrap();
    let offset = b.ins().imul_imm_u(at, 4);
    let mut vals: Vec<Value> = Vec::with_capacity(p.ops.len());
    for op in &p.ops {
        let v = match *op {
            LaneOp::Input(k) => {
                let addr = b.ins().iadd(bases[k], offset);
                b.ins().load(ty, mem, addr, 0)
            }
            LaneOp::Const(c) => {
                let s = b.ins().f32const(c);
                if ty.is_vector() {
                    b.ins().splat(ty, s)
                } else {
                    s
                }
            }
            LaneOp::Add(x, y) => b.ins().fadd(vals[x], vals[y]),
            LaneOp::Sub(x, y) => b.ins().fsub(vals[x], vals[y]),
            LaneOp::Mul(x, y) => b.ins().fmul(vals[x], vals[y]),
            LaneOp::Div(x, y) => b.ins().fdiv(vals[x], vals[y]),
            LaneOp::Select {
                cmp,
                a,
                b: c,
                then,
                otherwise,
            } => {
                let holds = b.ins().fcmp(cmp.float_cc(), vals[a], vals[c]);
                if ty.is_vector() {
                    // A lane mask of all ones or all zeros, as the same bits in f32 lanes.
                    let mask = b.ins().bitcast(ty, MemFlagsData::new(), holds);
                    b.ins().bitselect(mask, vals[then], vals[otherwise])
                } else {
                    b.ins().select(holds, vals[then], vals[otherwise])
                }
            }
        };
        vals.push(v);
    }
    let addr = b.ins().iadd(out, offset);
    let result = *vals.last().expect("checked: a program has an operation");
    b.ins().store(mem, result, addr, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x > 0 ? (x + y) * 0.5 : y / x` over lengths that leave every tail, NaNs and signed
    /// zeros included, against the same in Rust's f32.
    #[test]
    fn compiled_matches_rust_f32() {
        let p = LaneProgram {
            inputs: 2,
            ops: vec![
                LaneOp::Input(0),
                LaneOp::Input(1),
                LaneOp::Const(0.0),
                LaneOp::Add(0, 1),
                LaneOp::Const(0.5),
                LaneOp::Mul(3, 4),
                LaneOp::Div(1, 0),
                LaneOp::Select {
                    cmp: Cmp::Gt,
                    a: 0,
                    b: 2,
                    then: 5,
                    otherwise: 6,
                },
            ],
        };
        let f = compile_lanes(&p).unwrap();
        let special = [0.0f32, -0.0, f32::NAN, f32::INFINITY, -1.5, 3.25, 1e-40];
        for n in [0usize, 1, 3, 4, 7, 8, 9, 17, 33] {
            let x: Vec<f32> = (0..n).map(|i| special[i % special.len()]).collect();
            let y: Vec<f32> = (0..n)
                .map(|i| special[(i * 3 + 1) % special.len()])
                .collect();
            let mut out = vec![f32::MAX; n + 1];
            f.run(&[&x, &y], &mut out[..n]);
            for i in 0..n {
                let want = if x[i] > 0.0 {
                    (x[i] + y[i]) * 0.5
                } else {
                    y[i] / x[i]
                };
                assert_eq!(out[i].to_bits(), want.to_bits(), "n {n}, index {i}");
            }
            assert_eq!(out[n], f32::MAX, "nothing written past the output");
        }
    }

    #[test]
    fn programs_reading_ahead_are_refused() {
        let ahead = LaneProgram {
            inputs: 1,
            ops: vec![LaneOp::Add(0, 1), LaneOp::Input(0)],
        };
        assert!(compile_lanes(&ahead).is_err());
        let missing = LaneProgram {
            inputs: 1,
            ops: vec![LaneOp::Input(1)],
        };
        assert!(compile_lanes(&missing).is_err());
    }
}
