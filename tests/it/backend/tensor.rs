//! The tensor op families on each backend (f32) against the CPU reference (f64): fill, every
//! unary op and cast, broadcasting binaries, sums over axes, and every layout op in f32 and
//! i32. Random shapes each run (scalars, size-1 dims, ranks 1–5), seed printed
//! (`MMRUN_SEED` replays).

use mmrun::ir::op::{BinaryOp, LayoutOp, Op, ReduceOp, UnaryOp};
use mmrun::ir::{DType, HostTensor, numel};
use mmrun::util::rng::Rng;

use super::harness::{ELEMENTWISE, REDUCTION, Suite, check_op, rng, run_on, uniform};

const EXACT: (f64, f64) = (0.0, 0.0);

/// A random shape of `rank` dims in 1..=4, a size-1 dim about one time in three.
fn shape(rng: &mut Rng, rank: usize) -> Vec<usize> {
    (0..rank)
        .map(|_| {
            if rng.below(3) == 0 {
                1
            } else {
                1 + rng.below(4) as usize
            }
        })
        .collect()
}

fn any_shape(rng: &mut Rng) -> Vec<usize> {
    let rank = rng.below(6) as usize;
    shape(rng, rank)
}

fn ints(rng: &mut Rng, shape: &[usize]) -> HostTensor {
    let v = (0..numel(shape))
        .map(|_| rng.below(2001) as i32 - 1000)
        .collect();
    HostTensor::i32(shape.to_vec(), v).expect("length matches")
}

/// A value exactly representable in f32 (so thresholds mean the same on both sides).
fn f32_exact(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    rng.range_f64(lo, hi) as f32 as f64
}

fn fill_f32_and_i32<B: Suite>(be: &B) {
    let mut rng = rng("fill_f32_and_i32");
    for _ in 0..6 {
        let s = any_shape(&mut rng);
        let v = f32_exact(&mut rng, -1e3, 1e3);
        check_op(
            be,
            "fill f32",
            &Op::Fill { value: v },
            &[],
            &s,
            DType::F32,
            EXACT,
        );
        // The CPU reference fills floats only: i32 is checked against `value as i32`.
        let got = run_on(be, &Op::Fill { value: v }, &[], &s, DType::I32).expect("fill i32");
        assert_eq!(
            got.as_i32().unwrap(),
            &vec![v as i32; numel(&s)][..],
            "{s:?}"
        );
    }
}

fn unary_ops_and_gradients<B: Suite>(be: &B) {
    let mut rng = rng("unary_ops_and_gradients");
    for _ in 0..4 {
        let s = any_shape(&mut rng);
        let lo = f32_exact(&mut rng, -1.0, 0.0);
        let hi = f32_exact(&mut rng, 0.0, 1.0);
        let factor = rng.range_f64(-3.0, 3.0);
        // (op, input range, takes dy)
        let cases: Vec<(UnaryOp, (f64, f64), bool)> = vec![
            (UnaryOp::Relu, (-2.0, 2.0), false),
            (UnaryOp::Sigmoid, (-30.0, 30.0), false),
            (UnaryOp::Exp, (-20.0, 20.0), false),
            (UnaryOp::Log, (1e-3, 50.0), false),
            (UnaryOp::Log, (0.99, 1.01), false),
            (UnaryOp::Scale(factor), (-5.0, 5.0), false),
            (UnaryOp::AddScalar(factor), (-5.0, 5.0), false),
            (UnaryOp::Clamp { lo, hi }, (-2.0, 2.0), false),
            (
                UnaryOp::Clamp {
                    lo,
                    hi: f64::INFINITY,
                },
                (-2.0, 2.0),
                false,
            ),
            (UnaryOp::ReluGrad, (-2.0, 2.0), true),
            (UnaryOp::SigmoidGrad, (0.0, 1.0), true),
            (UnaryOp::ExpGrad, (0.0, 10.0), true),
            (UnaryOp::LogGrad, (0.05, 5.0), true),
            (UnaryOp::ClampGrad { lo, hi }, (-2.0, 2.0), true),
        ];
        for (op, (a, b), grad) in cases {
            let mut ins = vec![uniform(&mut rng, &s, a, b)];
            if grad {
                ins.push(uniform(&mut rng, &s, -3.0, 3.0));
            }
            let what = format!("{op:?} {s:?}");
            check_op(be, &what, &Op::Unary(op), &ins, &s, DType::F32, ELEMENTWISE);
        }
    }
}

fn unary_edge_values<B: Suite>(be: &B) {
    // Exact zeros, infinities and extreme magnitudes through every branch of the kernels.
    let v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e-30,
        -1e-30,
        88.0,
        -88.0,
        100.0,
        -100.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let s = vec![v.len()];
    let x = HostTensor::f64(s.clone(), v).unwrap();
    for op in [UnaryOp::Relu, UnaryOp::Sigmoid, UnaryOp::Exp] {
        let got = run_on(
            be,
            &Op::Unary(op.clone()),
            std::slice::from_ref(&x),
            &s,
            DType::F32,
        )
        .unwrap();
        let want = super::harness::cpu_ref(
            &Op::Unary(op.clone()),
            std::slice::from_ref(&x),
            &s,
            DType::F32,
        );
        for (i, (g, w)) in got.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
            let w = w as f32 as f64; // the f32 result the device should round to
            let flushed = B::FLUSHES_SUBNORMALS && *g == 0.0 && subnormal(w);
            let ok = flushed || (g == &w) || (g - w).abs() <= 1e-6 * w.abs().max(1e-37);
            assert!(ok, "{op:?}[{i}]: got {g}, want {w}");
        }
    }
    let p = vec![1e-38, 1e-30, 0.5, 1.0, 2.0, 1e30, 3e38, f64::INFINITY, 0.0];
    let ps = p.clone();
    let sp = vec![p.len()];
    let xp = HostTensor::f64(sp.clone(), p).unwrap();
    let got = run_on(
        be,
        &Op::Unary(UnaryOp::Log),
        std::slice::from_ref(&xp),
        &sp,
        DType::F32,
    )
    .unwrap();
    let want = super::harness::cpu_ref(&Op::Unary(UnaryOp::Log), &[xp], &sp, DType::F32);
    for (i, (g, w)) in got.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
        let w = w as f32 as f64;
        // A subnormal input read as 0 gives -inf.
        let flushed = B::FLUSHES_SUBNORMALS && subnormal(ps[i]) && *g == f64::NEG_INFINITY;
        assert!(
            flushed || g == &w || (g - w).abs() <= 1e-6 * w.abs(),
            "log[{i}]: {g} vs {w}"
        );
    }
}

/// Nonzero and below f32's smallest normal.
fn subnormal(v: f64) -> bool {
    v != 0.0 && v.abs() < f32::MIN_POSITIVE as f64
}

fn casts_between_f32_and_i32<B: Suite>(be: &B) {
    let mut rng = rng("casts_between_f32_and_i32");
    for _ in 0..4 {
        let s = any_shape(&mut rng);
        let x = uniform(&mut rng, &s, -100.0, 100.0);
        let to_i = Op::Unary(UnaryOp::Cast(DType::I32));
        check_op(
            be,
            "f32->i32",
            &to_i,
            std::slice::from_ref(&x),
            &s,
            DType::I32,
            EXACT,
        );
        let i = ints(&mut rng, &s);
        let to_f = Op::Unary(UnaryOp::Cast(DType::F32));
        check_op(
            be,
            "i32->f32",
            &to_f,
            std::slice::from_ref(&i),
            &s,
            DType::F32,
            EXACT,
        );
        check_op(be, "f32->f32", &to_f, &[x], &s, DType::F32, EXACT);
        check_op(be, "i32->i32", &to_i, &[i], &s, DType::I32, EXACT);
    }
    // Saturation and NaN follow Rust's `as`.
    let v = vec![3e9, -3e9, 2.9, -2.9, f64::NAN];
    let x = HostTensor::f64(vec![5], v).unwrap();
    let got = run_on(
        be,
        &Op::Unary(UnaryOp::Cast(DType::I32)),
        &[x],
        &[5],
        DType::I32,
    )
    .unwrap();
    assert_eq!(got.as_i32().unwrap(), &[i32::MAX, i32::MIN, 2, -2, 0][..]);
}

/// An input shape that broadcasts to `so`: a suffix of its axes, some set to 1.
fn broadcast_side(rng: &mut Rng, so: &[usize]) -> Vec<usize> {
    let keep = rng.below(so.len() as u64 + 1) as usize;
    so[so.len() - keep..]
        .iter()
        .map(|&d| if rng.below(3) == 0 { 1 } else { d })
        .collect()
}

fn binary_ops_with_broadcasting<B: Suite>(be: &B) {
    let mut rng = rng("binary_ops_with_broadcasting");
    for _ in 0..8 {
        let so = any_shape(&mut rng);
        let pairs = [
            (so.clone(), so.clone()),
            (so.clone(), broadcast_side(&mut rng, &so)),
            (broadcast_side(&mut rng, &so), so.clone()),
            (broadcast_side(&mut rng, &so), broadcast_side(&mut rng, &so)),
            (so.clone(), vec![]),
        ];
        for (sa, sb) in pairs {
            // The output must be the broadcast of the two (the node's shape).
            let r = so.len();
            let full = |s: &[usize], i: usize| {
                let lead = r - s.len();
                if i < lead { 1 } else { s[i - lead] }
            };
            let out: Vec<usize> = (0..r).map(|i| full(&sa, i).max(full(&sb, i))).collect();
            for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
                let a = uniform(&mut rng, &sa, -3.0, 3.0);
                let mut b = uniform(&mut rng, &sb, 0.5, 2.0);
                if let mmrun::ir::HostData::F64(v) = &mut b.data {
                    for x in v.iter_mut() {
                        if rng.below(2) == 0 {
                            *x = -*x;
                        }
                    }
                }
                let what = format!("{op:?} {sa:?} {sb:?} -> {out:?}");
                check_op(
                    be,
                    &what,
                    &Op::Binary(op),
                    &[a, b],
                    &out,
                    DType::F32,
                    ELEMENTWISE,
                );
            }
        }
    }
}

fn reduced_shape(s: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    (0..s.len())
        .filter_map(|i| match (axes.contains(&i), keepdim) {
            (false, _) => Some(s[i]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

fn check_sum<B: Suite>(be: &B, rng: &mut Rng, s: &[usize], axes: Vec<usize>, keepdim: bool) {
    let out = reduced_shape(s, &axes, keepdim);
    let x = uniform(rng, s, -1.0, 1.0);
    let what = format!("sum {s:?} over {axes:?} keepdim {keepdim}");
    let op = Op::Reduce(ReduceOp::Sum { axes, keepdim });
    check_op(be, &what, &op, &[x], &out, DType::F32, REDUCTION);
}

fn sums_over_axis_sets<B: Suite>(be: &B) {
    let mut rng = rng("sums_over_axis_sets");
    for _ in 0..10 {
        let rank = 1 + rng.below(5) as usize;
        let s: Vec<usize> = (0..rank).map(|_| 1 + rng.below(7) as usize).collect();
        let axes: Vec<usize> = (0..rank).filter(|_| rng.below(2) == 0).collect();
        let keepdim = rng.below(2) == 0;
        check_sum(be, &mut rng, &s, axes, keepdim);
        check_sum(be, &mut rng, &s, (0..rank).collect(), keepdim);
        check_sum(be, &mut rng, &s, vec![], false);
    }
    // A scalar, NCHW bias-gradient style (all but C), and the last axis only.
    check_sum(be, &mut rng, &[], vec![], false);
    check_sum(be, &mut rng, &[3, 5, 7, 9], vec![0, 2, 3], true);
    check_sum(be, &mut rng, &[3, 5, 7, 9], vec![3], false);
}

fn sums_of_more_than_a_million_elements<B: Suite>(be: &B) {
    let mut rng = rng("sums_of_more_than_a_million_elements");
    let s = [1031, 1024 + rng.below(64) as usize];
    check_sum(be, &mut rng, &s, vec![0, 1], false);
    check_sum(be, &mut rng, &s, vec![0], false);
    check_sum(be, &mut rng, &s, vec![1], true);
    check_sum(be, &mut rng, &[2, 3, 1 << 18], vec![0, 2], false);
}

/// Every layout op on a random input of `dtype` (i32 inputs are random integers).
fn layout_cases<B: Suite>(be: &B, rng: &mut Rng, dtype: DType) {
    let input = |rng: &mut Rng, s: &[usize]| match dtype {
        DType::I32 => ints(rng, s),
        _ => uniform(rng, s, -1.0, 1.0),
    };
    for rank in 0..=5usize {
        let s = shape(rng, rank);
        let x = input(rng, &s);
        let run = |op: LayoutOp, ins: &[HostTensor], out: &[usize]| {
            let what = format!("{op:?} {dtype:?} of {s:?}");
            check_op(be, &what, &Op::Layout(op), ins, out, dtype, EXACT);
        };
        // Reshape to the reversed shape.
        let rs: Vec<usize> = s.iter().rev().copied().collect();
        run(LayoutOp::Reshape, std::slice::from_ref(&x), &rs);
        // Permutations: identity, reversal, a random one, and every adjacent swap.
        let mut perms: Vec<Vec<usize>> = vec![(0..rank).collect(), (0..rank).rev().collect()];
        let mut p: Vec<usize> = (0..rank).collect();
        rng.shuffle(&mut p);
        perms.push(p);
        for i in 0..rank.saturating_sub(1) {
            let mut q: Vec<usize> = (0..rank).collect();
            q.swap(i, i + 1);
            perms.push(q);
        }
        for perm in perms {
            let out: Vec<usize> = perm.iter().map(|&i| s[i]).collect();
            run(LayoutOp::Permute { perm }, std::slice::from_ref(&x), &out);
        }
        for axis in 0..rank {
            let start = rng.below(s[axis] as u64) as usize;
            let end = start + 1 + rng.below((s[axis] - start) as u64) as usize;
            let mut out = s.clone();
            out[axis] = end - start;
            run(
                LayoutOp::Slice { axis, start, end },
                std::slice::from_ref(&x),
                &out,
            );
            let start = rng.below(3) as usize;
            let mut out = s.clone();
            out[axis] += start + rng.below(3) as usize;
            run(
                LayoutOp::SlicePad { axis, start },
                std::slice::from_ref(&x),
                &out,
            );
            let parts: Vec<HostTensor> = (0..3)
                .map(|_| {
                    let mut p = s.clone();
                    p[axis] = 1 + rng.below(3) as usize;
                    input(rng, &p)
                })
                .collect();
            let mut out = s.clone();
            out[axis] = parts.iter().map(|t| t.shape[axis]).sum();
            run(LayoutOp::Concat { axis }, &parts, &out);
        }
        // Broadcast: size-1 axes expand and up to two axes are prepended.
        let src: Vec<usize> = s
            .iter()
            .map(|&d| if rng.below(2) == 0 { 1 } else { d })
            .collect();
        let mut out: Vec<usize> = (0..rng.below(3))
            .map(|_| 1 + rng.below(3) as usize)
            .collect();
        out.extend(
            src.iter()
                .map(|&d| if d == 1 { 1 + rng.below(4) as usize } else { d }),
        );
        let xb = input(rng, &src);
        run(LayoutOp::BroadcastTo, &[xb], &out);
    }
}

fn layout_ops_f32<B: Suite>(be: &B) {
    let mut rng = rng("layout_ops_f32");
    for _ in 0..2 {
        layout_cases(be, &mut rng, DType::F32);
    }
}

fn layout_ops_i32<B: Suite>(be: &B) {
    let mut rng = rng("layout_ops_i32");
    layout_cases(be, &mut rng, DType::I32);
}

fn bad_shapes_are_errors_not_faults<B: Suite>(be: &B) {
    let x = HostTensor::f64(vec![2, 3], vec![0.0; 6]).unwrap();
    let perm = Op::Layout(LayoutOp::Permute { perm: vec![0, 0] });
    assert!(run_on(be, &perm, std::slice::from_ref(&x), &[2, 2], DType::F32).is_err());
    let slice = Op::Layout(LayoutOp::Slice {
        axis: 1,
        start: 2,
        end: 5,
    });
    assert!(run_on(be, &slice, std::slice::from_ref(&x), &[2, 3], DType::F32).is_err());
    let sum = Op::Reduce(ReduceOp::Sum {
        axes: vec![2],
        keepdim: false,
    });
    assert!(run_on(be, &sum, std::slice::from_ref(&x), &[2], DType::F32).is_err());
    be.sync("refused ops");
}

super::suite!(
    fill_f32_and_i32,
    unary_ops_and_gradients,
    unary_edge_values,
    casts_between_f32_and_i32,
    binary_ops_with_broadcasting,
    sums_over_axis_sets,
    sums_of_more_than_a_million_elements,
    layout_ops_f32,
    layout_ops_i32,
    bad_shapes_are_errors_not_faults,
);
