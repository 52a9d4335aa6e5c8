//! The CUDA backend's numerics and convolution paths, each opened explicitly (the shared suite
//! opens the default: strict f32, cuDNN where it loads):
//! - im2col + cuBLAS and cuDNN each give the CPU reference's convolutions (strict f32);
//! - cuDNN runs grouped convolutions (im2col refuses them);
//! - TF32 math stays within the bound its rounding allows, stated per op;
//! - `deterministic` gives the same bits twice, and the algorithm cache keeps one choice per
//!   shape and pass.
//!
//! Without a device every test prints why it skipped (a failure under `MMRUN_REQUIRE_GPU`).

use mmrun::backend::cuda::{ConvChoice, CudaBackend, CudaOptions};
use mmrun::ir::op::*;
use mmrun::ir::{DType, HostTensor};

use super::harness::{REDUCTION, check_op, cpu_ref, open_or_skip, rng, rounded, run_on, uniform};
use super::nn::{ConvCase, check_convs, conv_cases};

fn open(test: &str, options: CudaOptions) -> Option<CudaBackend> {
    open_or_skip(test, |ordinal| CudaBackend::open_with(ordinal, options))
}

fn strict(conv: ConvChoice) -> CudaOptions {
    CudaOptions {
        conv,
        ..CudaOptions::STRICT
    }
}

#[test]
fn im2col_convolutions_match_cpu() {
    if let Some(be) = open("im2col_convolutions_match_cpu", strict(ConvChoice::Im2col)) {
        assert!(be.cudnn().is_none());
        check_convs(&be, conv_cases(), REDUCTION);
    }
}

#[test]
fn cudnn_convolutions_match_cpu_including_grouped_ones() {
    let Some(be) = open("cudnn_convolutions", strict(ConvChoice::Cudnn)) else {
        return;
    };
    check_convs(&be, conv_cases(), REDUCTION);
    let g = |xs, ws, s, p, g, bias| ConvCase {
        xs,
        ws,
        s,
        p,
        d: 1,
        bias,
        g,
    };
    // ResNeXt's 32-group 3x3, a depthwise 3x3, and a 2-group strided one with bias.
    let grouped = vec![
        g([2, 64, 15, 17], [64, 2, 3, 3], 1, 1, 32, false),
        g([2, 16, 13, 13], [16, 1, 3, 3], 1, 1, 16, false),
        g([1, 8, 12, 10], [12, 4, 3, 3], 2, 1, 2, true),
    ];
    check_convs(&be, grouped, REDUCTION);
    let cudnn = be.cudnn().expect("opened with cuDNN");
    let chosen = cudnn.chosen();
    // One choice per (pass, shape): 11 cases × 3 passes.
    assert_eq!(chosen.len(), 33, "{chosen:#?}");
    // Running a case again benchmarks nothing new.
    check_convs(&be, conv_cases(), REDUCTION);
    assert_eq!(cudnn.chosen().len(), 33);
}

/// `Σ|a||b|` per output element: `op` run in f64 on the inputs' magnitudes.
fn magnitude(op: &Op, ins: &[HostTensor], out: &[usize]) -> Vec<f64> {
    let abs: Vec<HostTensor> = ins
        .iter()
        .map(|t| {
            let v = t.to_f64_vec().iter().map(|v| v.abs()).collect();
            HostTensor::f64(t.shape.clone(), v).unwrap()
        })
        .collect();
    cpu_ref(op, &abs, out, DType::F32).to_f64_vec()
}

/// `|got − want| ≤ rel · Σ|a||b|` per element, where `Σ|a||b|` is the op run on the inputs'
/// magnitudes: the error of rounding every product's inputs, whatever the summation order.
fn check_bound(be: &CudaBackend, what: &str, op: &Op, ins: &[HostTensor], out: &[usize], rel: f64) {
    let ins = rounded(ins);
    let want = cpu_ref(op, &ins, out, DType::F32).to_f64_vec();
    let magnitude = magnitude(op, &ins, out);
    let got = run_on(be, op, &ins, out, DType::F32)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .to_f64_vec();
    for (i, ((g, w), m)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
        let bound = rel * m + 1e-6;
        assert!(
            (g - w).abs() <= bound,
            "{what}[{i}]: got {g}, want {w}, bound {bound} (Σ|a||b| = {m})"
        );
    }
}

/// TF32 keeps 10 of f32's 23 mantissa bits: each input is off by at most 2⁻¹¹ relative
/// (round to nearest) and each product by 2⁻¹⁰. GEMMs are held to 2⁻⁹ of `Σ|a||b|` (twice
/// the rounding, for the f32 sums), convolutions to 2⁻⁷ (cuDNN's Winograd and FFT
/// algorithms transform the operands before the products and lose up to 4× more).
#[test]
fn tf32_math_stays_within_its_rounding_bound() {
    let options = CudaOptions {
        tf32: true,
        ..CudaOptions::STRICT
    };
    let Some(be) = open("tf32_math", options) else {
        return;
    };
    let mut rng = rng("tf32");
    let (m, k, n) = (64, 512, 48);
    let a = uniform(&mut rng, &[m, k], -1.0, 1.0);
    let b = uniform(&mut rng, &[k, n], -1.0, 1.0);
    let mm = Op::Matmul(MatmulOp {
        trans_a: false,
        trans_b: false,
    });
    check_bound(&be, "tf32 matmul", &mm, &[a, b], &[m, n], 2f64.powi(-9));
    for c in conv_cases().into_iter().take(5) {
        let (attrs, ys) = (c.attrs(), c.output_shape());
        let x = uniform(&mut rng, &c.xs, -1.0, 1.0);
        let w = uniform(&mut rng, &c.ws, -0.5, 0.5);
        let dy = uniform(&mut rng, &ys, -1.0, 1.0);
        let what = format!("tf32 {:?} * {:?}", c.xs, c.ws);
        let rel = 2f64.powi(-7);
        let conv = |op| Op::Conv(op);
        check_bound(
            &be,
            &format!("{what} forward"),
            &conv(ConvOp::Conv2d(attrs)),
            &[x.clone(), w.clone()],
            &ys,
            rel,
        );
        check_bound(
            &be,
            &format!("{what} grad input"),
            &conv(ConvOp::Conv2dGradInput(attrs)),
            &[dy.clone(), w],
            &c.xs,
            rel,
        );
        check_bound(
            &be,
            &format!("{what} grad weight"),
            &conv(ConvOp::Conv2dGradWeight(attrs)),
            &[x, dy],
            &c.ws,
            rel,
        );
    }
}

#[test]
fn deterministic_algorithms_give_the_same_bits_twice() {
    let options = CudaOptions {
        deterministic: true,
        ..CudaOptions::STRICT
    };
    let Some(be) = open("deterministic_algorithms", options) else {
        return;
    };
    let mut rng = rng("deterministic");
    let attrs = Conv2dAttrs {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let x = uniform(&mut rng, &[4, 64, 38, 50], -1.0, 1.0);
    let dy = uniform(&mut rng, &[4, 64, 38, 50], -1.0, 1.0);
    let op = Op::Conv(ConvOp::Conv2dGradWeight(attrs));
    let first = check_op(
        &be,
        "wgrad",
        &op,
        &[x.clone(), dy.clone()],
        &[64, 64, 3, 3],
        DType::F32,
        REDUCTION,
    );
    let again = run_on(&be, &op, &[x, dy], &[64, 64, 3, 3], DType::F32).unwrap();
    let bits = |t: &HostTensor| {
        t.to_f64_vec()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&first), bits(&again));
}

/// f16 and bf16 convolutions run on cuDNN directly (half data, f32 accumulation: tensor
/// cores), not on widened copies. The CPU rounds an f32 result once; cuDNN rounds its
/// f32-accumulated result once too, then again after adding a bias. So each element is within
/// two half-precision roundings (2·2⁻¹¹ relative for f16, 2·2⁻⁸ for bf16) of the CPU's, plus
/// 2⁻¹⁴ of `Σ|a||b|` where the two f32 summation orders straddle a rounding boundary.
#[test]
fn half_convolutions_run_on_cudnn_within_two_roundings() {
    let Some(be) = open("half_convolutions", strict(ConvChoice::Cudnn)) else {
        return;
    };
    let mut rng = rng("half_conv");
    for half in [DType::F16, DType::BF16] {
        let unit = if half == DType::F16 {
            2f64.powi(-11)
        } else {
            2f64.powi(-8)
        };
        for c in conv_cases().into_iter().take(5) {
            let (attrs, ys) = (c.attrs(), c.output_shape());
            let h = |t: HostTensor| t.cast(half);
            let x = h(uniform(&mut rng, &c.xs, -1.0, 1.0));
            let w = h(uniform(&mut rng, &c.ws, -0.5, 0.5));
            let dy = h(uniform(&mut rng, &ys, -1.0, 1.0));
            let mut fwd = vec![x.clone(), w.clone()];
            if c.bias {
                fwd.push(h(uniform(&mut rng, &[c.ws[0]], -1.0, 1.0)));
            }
            let cases = [
                (ConvOp::Conv2d(attrs), fwd, ys),
                (ConvOp::Conv2dGradInput(attrs), vec![dy.clone(), w], c.xs),
                (ConvOp::Conv2dGradWeight(attrs), vec![x, dy], c.ws),
            ];
            for (op, ins, shape) in cases {
                let op = Op::Conv(op);
                let what = format!("{half:?} {} {:?} * {:?}", op.name(), c.xs, c.ws);
                let want = cpu_ref(&op, &ins, &shape, half).to_f64_vec();
                let magnitude = magnitude(&op, &ins, &shape);
                let got = run_on(&be, &op, &ins, &shape, half)
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .to_f64_vec();
                for (i, ((g, w), m)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
                    let bound = 2.0 * unit * w.abs() + 2f64.powi(-14) * m + 1e-7;
                    assert!((g - w).abs() <= bound, "{what}[{i}]: got {g}, want {w}");
                }
            }
        }
        let cudnn = be.cudnn().expect("opened with cuDNN");
        assert!(
            cudnn.chosen().iter().any(|a| a.key.dtype == half),
            "{half:?} convolutions were widened instead of run on cuDNN"
        );
    }
}
