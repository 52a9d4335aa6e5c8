//! f16 and bf16 on the device backends: on wgpu (`backend::wgpu::half`) stored two to a word
//! and converted by integer operations transcribed from the `half` crate; on CUDA
//! (`backend::cuda::half`) stored as 16-bit patterns and converted by PTX's `cvt.rn`. Casts
//! between f32 and either half type give the CPU backend's bits for every class of value
//! (ties, overflow, subnormals of both types, odd lengths, tensors larger than a wgpu binding;
//! NaN stays NaN, and on wgpu keeps the CPU's payload); an op over half tensors runs in f32
//! and rounds once, as the CPU's does; upload and download keep the bits.

use mmrun::backend::cpu::CpuBackend;
use mmrun::ir::op::*;
use mmrun::ir::{DType, HostData, HostTensor};

use super::harness::{Suite, rng, run_on, uniform};

/// f32 values of every class a conversion treats apart, then random ones over f16's range and
/// beyond.
fn hard_values(n: usize, seed_test: &str) -> Vec<f32> {
    let special = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        65504.0,
        65520.0, // rounds to f16 infinity
        65519.99,
        1e6,
        -1e6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7F80_0001), // a signalling NaN
        f32::from_bits(0xFFC1_2345),
        2f32.powi(-14),       // smallest f16 normal
        2f32.powi(-24),       // smallest f16 subnormal
        2f32.powi(-25),       // half of it: a tie to zero
        3.0 * 2f32.powi(-26), // 0.75 of it: rounds up
        1e-9,
        f32::MIN_POSITIVE,
        f32::from_bits(1), // an f32 subnormal
        f32::MAX,
        1.0 + 2f32.powi(-10),        // exact in f16
        1.0 + 2f32.powi(-11),        // an f16 tie to even (down)
        1.0 + 3.0 * 2f32.powi(-11),  // an f16 tie to even (up)
        1.0 + 2f32.powi(-7),         // exact in bf16
        1.0 + 2f32.powi(-8),         // a bf16 tie to even (down)
        f32::from_bits(0x7F7F_8000), // a bf16 tie at the top: rounds to infinity
    ];
    let mut r = rng(seed_test);
    let mut v: Vec<f32> = special.to_vec();
    while v.len() < n {
        let scale = [1e-7, 1e-3, 1.0, 1e3, 1e5][v.len() % 5];
        v.push(r.range_f64(-scale, scale) as f32);
    }
    v.truncate(n);
    v
}

/// A device backend's half conversions: whether NaN payloads are the CPU's too.
trait HalfSuite: Suite {
    const NAN_PAYLOADS: bool;
}

/// The reference against itself: the suite's CPU instance.
impl HalfSuite for CpuBackend {
    const NAN_PAYLOADS: bool = true;
}

#[cfg(feature = "wgpu")]
impl HalfSuite for mmrun::backend::wgpu::WgpuBackend {
    const NAN_PAYLOADS: bool = true;
}

/// PTX's `cvt` gives NaN for NaN but not the `half` crate's payload bits.
#[cfg(feature = "cuda")]
impl HalfSuite for mmrun::backend::cuda::CudaBackend {
    const NAN_PAYLOADS: bool = false;
}

/// Element by element the same bits — or, where `B` does not keep NaN payloads, both NaN.
fn assert_same<B: HalfSuite>(got: &HostTensor, want: &HostTensor, what: &str) {
    if B::NAN_PAYLOADS {
        assert_eq!(bits(got), bits(want), "{what}");
        return;
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    for (i, ((gb, wb), (gv, wv))) in bits(got)
        .iter()
        .zip(bits(want))
        .zip(g.iter().zip(&w))
        .enumerate()
    {
        assert!(
            *gb == wb || (gv.is_nan() && wv.is_nan()),
            "{what}[{i}]: got {gv} ({gb:#x}), want {wv} ({wb:#x})"
        );
    }
}

/// Runs one op on `be` from host tensors, into an output of `dtype` (the harness's run, which
/// poisons the output first).
fn run<B: Suite>(be: &B, op: &Op, ins: &[HostTensor], shape: &[usize], dtype: DType) -> HostTensor {
    run_on(be, op, ins, shape, dtype).unwrap_or_else(|e| panic!("{} {}: {e}", be.name(), op.name()))
}

fn bits(t: &HostTensor) -> Vec<u32> {
    match &t.data {
        HostData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        HostData::F16(v) => v.iter().map(|x| u32::from(x.to_bits())).collect(),
        HostData::BF16(v) => v.iter().map(|x| u32::from(x.to_bits())).collect(),
        other => panic!("not a float tensor: {:?}", other.dtype()),
    }
}

fn cast_to(t: DType) -> Op {
    Op::Unary(UnaryOp::Cast(t))
}

fn casts_are_the_cpus_bits<B: HalfSuite>(be: &B, n: usize, test: &str) {
    let x = HostTensor::f32(vec![n], hard_values(n, test)).expect("length");
    for half in [DType::F16, DType::BF16] {
        let want = run(
            &CpuBackend,
            &cast_to(half),
            std::slice::from_ref(&x),
            &[n],
            half,
        );
        let got = run(be, &cast_to(half), std::slice::from_ref(&x), &[n], half);
        assert_same::<B>(&got, &want, &format!("f32 → {half:?}, {n} values"));
        // Back: every half value (the rounded ones, and every f16/bf16 bit pattern below).
        let back = run(
            &CpuBackend,
            &cast_to(DType::F32),
            std::slice::from_ref(&want),
            &[n],
            DType::F32,
        );
        let got = run(be, &cast_to(DType::F32), &[want], &[n], DType::F32);
        assert_same::<B>(&got, &back, &format!("{half:?} → f32, {n} values"));
    }
}

fn casts_between_f32_and_half_types_give_the_cpus_bits<B: HalfSuite>(be: &B) {
    let test = "casts_between_f32_and_half_types_give_the_cpus_bits";
    // Odd lengths end in half a word.
    for n in [1, 2, 29, 1001] {
        casts_are_the_cpus_bits(be, n, test);
    }
    // Every 16-bit pattern of each type, widened.
    let every: Vec<u16> = (0..=u16::MAX).collect();
    for half in [DType::F16, DType::BF16] {
        let data = match half {
            DType::F16 => HostData::F16(every.iter().map(|&b| half::f16::from_bits(b)).collect()),
            _ => HostData::BF16(every.iter().map(|&b| half::bf16::from_bits(b)).collect()),
        };
        let t = HostTensor::new(vec![every.len()], data).expect("length");
        assert_eq!(
            bits(
                &be.download(&be.upload(&t).unwrap(), half, &t.shape)
                    .unwrap()
            ),
            bits(&t)
        );
        let s = [every.len()];
        let want = run(
            &CpuBackend,
            &cast_to(DType::F32),
            std::slice::from_ref(&t),
            &s,
            DType::F32,
        );
        let got = run(be, &cast_to(DType::F32), &[t], &s, DType::F32);
        assert_same::<B>(&got, &want, &format!("every {half:?} → f32"));
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn casts_larger_than_a_binding_run_in_windows() {
    use mmrun::backend::AdapterChoice;
    use mmrun::backend::wgpu::WgpuBackend;
    let test = "casts_larger_than_a_binding_run_in_windows";
    if super::harness::wgpu(test).is_none() {
        return;
    }
    let capped = WgpuBackend::open_with_max_binding(&AdapterChoice::Default, Some(4096))
        .expect("the adapter opens capped");
    casts_are_the_cpus_bits(&capped, 5003, test);
}

fn ops_over_half_tensors_compute_in_f32_and_round_once_as_the_cpu<B: HalfSuite>(be: &B) {
    let test = "ops_over_half_tensors_compute_in_f32_and_round_once_as_the_cpu";
    let mut r = rng(test);
    for half in [DType::F16, DType::BF16] {
        let to_half = |t: HostTensor| t.cast(half);
        let x = to_half(uniform(&mut r, &[2, 3, 9, 9], -1.0, 1.0));
        let wt = to_half(uniform(&mut r, &[4, 3, 3, 3], -0.5, 0.5));
        let conv = Op::Conv(ConvOp::Conv2d(Conv2dAttrs {
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 1,
        }));
        let shape = [2, 4, 9, 9];
        let want = run(&CpuBackend, &conv, &[x.clone(), wt.clone()], &shape, half);
        let got = run(be, &conv, &[x.clone(), wt], &shape, half);
        // The f32 results agree to a few ulp; rounding them to half may then differ by one
        // half ulp where they straddle a rounding boundary.
        let ulp = if half == DType::F16 { 1e-3 } else { 8e-3 };
        for (g, w) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!(
                (g - w).abs() <= ulp * w.abs().max(1e-2),
                "{half:?} conv: {g} vs {w}"
            );
        }
        // Elementwise over halves: the same f32 operation rounded once, the CPU's bits.
        let y = to_half(uniform(&mut r, &[2, 3, 9, 9], -1.0, 1.0));
        let add = Op::Binary(BinaryOp::Mul);
        let xs = [2, 3, 9, 9];
        let want = run(&CpuBackend, &add, &[x.clone(), y.clone()], &xs, half);
        let got = run(be, &add, &[x.clone(), y], &xs, half);
        assert_eq!(bits(&got), bits(&want), "{half:?} mul");
        // A half input, an f32 output (a loss reads f32), and a layout op on halves.
        let relu = Op::Unary(UnaryOp::Relu);
        let want = run(
            &CpuBackend,
            &relu,
            std::slice::from_ref(&x),
            &xs,
            DType::F32,
        );
        let got = run(be, &relu, std::slice::from_ref(&x), &xs, DType::F32);
        assert_eq!(bits(&got), bits(&want), "{half:?} relu into f32");
        let permute = Op::Layout(LayoutOp::Permute {
            perm: vec![0, 2, 3, 1],
        });
        let ps = [2, 9, 9, 3];
        let want = run(&CpuBackend, &permute, std::slice::from_ref(&x), &ps, half);
        let got = run(be, &permute, std::slice::from_ref(&x), &ps, half);
        assert_eq!(bits(&got), bits(&want), "{half:?} permute");
    }
}

super::suite!(
    casts_between_f32_and_half_types_give_the_cpus_bits,
    ops_over_half_tensors_compute_in_f32_and_round_once_as_the_cpu
);
