//! Fused elementwise chains (`Op::Fused`). On the CPU, random chains compiled by cranelift
//! against the same ops run one by one (`backend::fused_op_by_op`), bit for bit, over lengths
//! that leave every vector tail and cross the parallel chunks, with zeros of both signs,
//! infinities, NaNs and subnormals among the inputs. On every backend, a chain of each op
//! against the CPU's f64 reference.

use super::harness::{ELEMENTWISE, Suite, check_op, rng, uniform};
use mmrun::backend::cpu::{CpuBackend, fused};
use mmrun::backend::{Backend, TensorMut, TensorRef, fused_op_by_op};
use mmrun::ir::op::{BinaryOp, Op, UnaryOp};
use mmrun::ir::{DType, FusedElementwise, FusedOp, FusedStep, HostData};
use mmrun::util::rng::Rng;

/// The ops the CPU fuses (`fused::fusable` says yes to each in f32).
fn op_pool(rng: &mut Rng) -> Vec<FusedOp> {
    let mut c = || (rng.range_f64(-2.0, 2.0) as f32) as f64;
    let (lo, hi, s, v) = (c(), c(), c(), c());
    let mut pool: Vec<FusedOp> = [
        UnaryOp::Relu,
        UnaryOp::Scale(s),
        UnaryOp::AddScalar(v),
        UnaryOp::ReluGrad,
        UnaryOp::SigmoidGrad,
        UnaryOp::ExpGrad,
        UnaryOp::LogGrad,
        UnaryOp::ClampGrad {
            lo: lo.min(hi),
            hi: lo.max(hi),
        },
    ]
    .into_iter()
    .map(FusedOp::Unary)
    .collect();
    let binaries = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];
    pool.extend(binaries.map(FusedOp::Binary));
    pool
}

fn random_chain(rng: &mut Rng) -> FusedElementwise {
    let pool = op_pool(rng);
    let inputs = 1 + rng.below(4) as usize;
    let steps = (0..1 + rng.below(7) as usize)
        .map(|k| {
            let op = pool[rng.below(pool.len() as u64) as usize].clone();
            let args = (0..op.arity())
                .map(|_| rng.below((inputs + k) as u64) as usize)
                .collect();
            FusedStep { op, args }
        })
        .collect();
    FusedElementwise { inputs, steps }
}

fn random_values(rng: &mut Rng, n: usize) -> Vec<f32> {
    const SPECIAL: [f32; 7] = [
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        -f32::INFINITY,
        1e-40,
        1.0,
    ];
    (0..n)
        .map(|_| match rng.below(10) {
            0 => SPECIAL[rng.below(SPECIAL.len() as u64) as usize],
            _ => rng.range_f64(-3.0, 3.0) as f32,
        })
        .collect()
}

fn run(
    how: impl Fn(&FusedElementwise, &[TensorRef<'_, HostData>], TensorMut<'_, HostData>),
    f: &FusedElementwise,
    ins: &[HostData],
    shape: &[usize],
) -> Vec<f32> {
    let refs: Vec<TensorRef<'_, HostData>> = (ins.iter())
        .map(|buf| TensorRef {
            buf,
            shape,
            dtype: DType::F32,
        })
        .collect();
    let mut out = HostData::F32(vec![f32::from_bits(0x7fc0_dead); shape[0]]);
    how(
        f,
        &refs,
        TensorMut {
            buf: &mut out,
            shape,
            dtype: DType::F32,
        },
    );
    match out {
        HostData::F32(v) => v,
        _ => unreachable!(),
    }
}

#[test]
fn compiled_chains_are_the_same_bits_as_the_ops_one_by_one() {
    let test = "compiled_chains_are_the_same_bits_as_the_ops_one_by_one";
    if std::env::var(fused::ENV).is_err() && cfg!(feature = "jit") {
        assert!(fused::enabled(), "{}", fused::describe());
    }
    let mut rng = rng(test);
    let cpu = CpuBackend;
    for case in 0..60 {
        let f = random_chain(&mut rng);
        let n = [1, 5, 8, 13, 16384, 2 * 16384 + 11][case % 6];
        let ins: Vec<HostData> = (0..f.inputs)
            .map(|_| HostData::F32(random_values(&mut rng, n)))
            .collect();
        let shape = [n];
        let got = run(|f, i, o| cpu.fused(f, i, o).unwrap(), &f, &ins, &shape);
        let want = run(
            |f, i, o| fused_op_by_op(&cpu, f, i, o).unwrap(),
            &f,
            &ins,
            &shape,
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "case {case}, chain {}, length {n}, element {i}: {g} against {w} one by one",
                f.describe()
            );
        }
    }
}

#[test]
fn a_malformed_chain_is_an_error_not_a_fault() {
    let cpu = CpuBackend;
    let ahead = FusedElementwise {
        inputs: 1,
        steps: vec![FusedStep {
            op: FusedOp::Binary(BinaryOp::Add),
            args: vec![0, 1],
        }],
    };
    let ins = [HostData::F32(vec![1.0; 4])];
    let refs = [TensorRef {
        buf: &ins[0],
        shape: &[4][..],
        dtype: DType::F32,
    }];
    let mut out = HostData::F32(vec![0.0; 4]);
    let out = TensorMut {
        buf: &mut out,
        shape: &[4],
        dtype: DType::F32,
    };
    let e = cpu.fused(&ahead, &refs, out).unwrap_err().to_string();
    assert!(
        e.contains("fused") && e.contains("not computed before"),
        "{e}"
    );
}

/// `relu(a·b + c)`, then each unary op after it in turn, on every backend against the CPU's
/// f64 reference (on the CPU in f32 the compiled chain; elsewhere the default, op by op).
fn chains_of_every_op<B: Suite>(be: &B) {
    let mut rng = rng("backend::fused::chains_of_every_op");
    for last in op_pool(&mut rng) {
        let mut steps = vec![
            FusedStep {
                op: FusedOp::Binary(BinaryOp::Mul),
                args: vec![0, 1],
            },
            FusedStep {
                op: FusedOp::Binary(BinaryOp::Add),
                args: vec![3, 2],
            },
            FusedStep {
                op: FusedOp::Unary(UnaryOp::Relu),
                args: vec![4],
            },
        ];
        let args = if last.arity() == 2 {
            vec![5, 0]
        } else {
            vec![5]
        };
        // LogGrad divides by its first argument: keep it away from zero.
        let args = match &last {
            FusedOp::Unary(UnaryOp::LogGrad) => vec![1, 5],
            _ => args,
        };
        steps.push(FusedStep { op: last, args });
        let f = FusedElementwise { inputs: 3, steps };
        let shape = [3, 5, 7];
        let ins = [
            uniform(&mut rng, &shape, -2.0, 2.0),
            uniform(&mut rng, &shape, 0.5, 2.0),
            uniform(&mut rng, &shape, -2.0, 2.0),
        ];
        let what = f.describe();
        check_op(
            be,
            &what,
            &Op::Fused(f),
            &ins,
            &shape,
            DType::F32,
            ELEMENTWISE,
        );
    }
}

super::suite!(chains_of_every_op);

/// A chain made elsewhere may hold ops the CPU does not compile (`exp`): it runs op by op.
#[test]
fn a_chain_the_cpu_does_not_compile_runs_op_by_op() {
    let cpu = CpuBackend;
    let f = FusedElementwise {
        inputs: 1,
        steps: vec![
            FusedStep {
                op: FusedOp::Unary(UnaryOp::Exp),
                args: vec![0],
            },
            FusedStep {
                op: FusedOp::Unary(UnaryOp::Relu),
                args: vec![1],
            },
        ],
    };
    assert!(!fused::compiles(&f, DType::F32));
    let ins = [HostData::F32(vec![-1.0, 0.0, 2.5])];
    let got = run(|f, i, o| cpu.fused(f, i, o).unwrap(), &f, &ins, &[3]);
    let want = run(
        |f, i, o| fused_op_by_op(&cpu, f, i, o).unwrap(),
        &f,
        &ins,
        &[3],
    );
    assert_eq!(got, want);
    assert!(got[1] == 1.0 && got[2] > 12.0, "{got:?}");
}
