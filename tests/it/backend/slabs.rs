//! Tensors larger than one wgpu binding: the ops that split run a slab at a time
//! (`backend::wgpu::split`). An adapter opened with its bindings capped at 4 KiB (1024 f32)
//! runs ops over tensors a few times that size, each against the CPU reference in f64 and —
//! where every slab writes its own elements — against the uncapped adapter bit for bit. Slab
//! sizes are chosen so that some slabs start off the binding alignment (the scratch-copy path).
//! Batch statistics are merged across slabs, checked on data whose mean is far from 0.
//! The last tests use lavapipe's own 128 MiB limit on a ResNet stem's output at 2 × 800 × 1344,
//! and check what does not split is refused with the sizes.

use mmrun::backend::AdapterChoice;
use mmrun::backend::wgpu::WgpuBackend;
use mmrun::ir::op::*;
use mmrun::ir::{DType, HostTensor, numel};

use super::harness::{ELEMENTWISE, REDUCTION, check_op, rng, run_on, uniform};

/// The cap: 1024 f32 per binding.
const CAP: u64 = 4096;

/// The default adapter with its bindings capped at [`CAP`] (opened once), and the uncapped one.
fn adapters(test: &str) -> Option<(WgpuBackend, WgpuBackend)> {
    use std::sync::OnceLock;
    static CAPPED: OnceLock<WgpuBackend> = OnceLock::new();
    let whole = super::harness::wgpu(test)?;
    let capped = CAPPED.get_or_init(|| {
        WgpuBackend::open_with_max_binding(&AdapterChoice::Default, Some(CAP))
            .expect("the adapter that opened uncapped opens capped")
    });
    assert_eq!(capped.max_binding_bytes(), CAP);
    Some((capped.clone(), whole))
}

/// `op` on the capped adapter against the CPU in f64; `exact`: also the uncapped adapter's bits.
fn check(
    test: &str,
    op: Op,
    ins: &[HostTensor],
    out_shape: &[usize],
    out_dtype: DType,
    tol: (f64, f64),
    exact: bool,
) {
    let Some((capped, whole)) = adapters(test) else {
        return;
    };
    let biggest = ins
        .iter()
        .map(|t| numel(&t.shape))
        .chain([numel(out_shape)])
        .max()
        .unwrap_or(0);
    assert!(
        biggest * 4 > CAP as usize,
        "{test}: nothing is larger than the cap, nothing splits"
    );
    let got = check_op(&capped, test, &op, ins, out_shape, out_dtype, tol);
    if exact {
        let want = run_on(&whole, &op, ins, out_shape, out_dtype).expect("uncapped");
        assert_eq!(
            got.to_f64_vec(),
            want.to_f64_vec(),
            "{test}: slabs changed bits"
        );
    }
}

fn conv_attrs() -> Conv2dAttrs {
    Conv2dAttrs {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    }
}

#[test]
fn elementwise_ops_run_in_flat_windows() {
    let test = "elementwise_ops_run_in_flat_windows";
    let mut r = rng(test);
    let x = uniform(&mut r, &[3001], -2.0, 2.0);
    let dy = uniform(&mut r, &[3001], -1.0, 1.0);
    let s = [3001];
    let f32_ = DType::F32;
    check(
        test,
        Op::Unary(UnaryOp::Relu),
        std::slice::from_ref(&x),
        &s,
        f32_,
        ELEMENTWISE,
        true,
    );
    let grad = Op::Unary(UnaryOp::ReluGrad);
    check(
        test,
        grad,
        &[x.clone(), dy.clone()],
        &s,
        f32_,
        ELEMENTWISE,
        true,
    );
    check(
        test,
        Op::Binary(BinaryOp::Mul),
        &[x.clone(), dy],
        &s,
        f32_,
        ELEMENTWISE,
        true,
    );
    check(
        test,
        Op::Fill { value: 0.5 },
        &[],
        &s,
        f32_,
        ELEMENTWISE,
        true,
    );
    let cast = Op::Unary(UnaryOp::Cast(DType::I32));
    let big = uniform(&mut r, &[2500], -900.0, 900.0);
    check(test, cast, &[big], &[2500], DType::I32, (0.0, 0.0), true);
}

#[test]
fn broadcasting_binaries_cut_their_first_long_axis() {
    let test = "broadcasting_binaries_cut_their_first_long_axis";
    let mut r = rng(test);
    // A bias over channels, whole in every slab; rows of 3 × 101 (not aligned: copies).
    let x = uniform(&mut r, &[7, 3, 101], -2.0, 2.0);
    let bias = uniform(&mut r, &[1, 3, 1], -1.0, 1.0);
    let add = Op::Binary(BinaryOp::Add);
    check(
        test,
        add.clone(),
        &[x, bias],
        &[7, 3, 101],
        DType::F32,
        ELEMENTWISE,
        true,
    );
    // A leading unit axis, and an operand of lower rank cut with the output.
    let a = uniform(&mut r, &[1, 9, 400], -2.0, 2.0);
    let b = uniform(&mut r, &[9, 1], -1.0, 1.0);
    check(
        test,
        Op::Binary(BinaryOp::Div),
        &[a, b],
        &[1, 9, 400],
        DType::F32,
        ELEMENTWISE,
        true,
    );
    let small = uniform(&mut r, &[6, 1, 40], -1.0, 1.0);
    let to = Op::Layout(LayoutOp::BroadcastTo);
    check(
        test,
        to,
        &[small],
        &[6, 7, 40],
        DType::F32,
        ELEMENTWISE,
        true,
    );
}

#[test]
fn sums_add_their_slabs_or_cut_the_kept_axis() {
    let test = "sums_add_their_slabs_or_cut_the_kept_axis";
    let mut r = rng(test);
    let x = uniform(&mut r, &[6, 5, 130], -2.0, 2.0);
    let sum = |axes: Vec<usize>, keepdim| Op::Reduce(ReduceOp::Sum { axes, keepdim });
    let f = DType::F32;
    check(
        test,
        sum(vec![0, 2], false),
        std::slice::from_ref(&x),
        &[5],
        f,
        REDUCTION,
        false,
    );
    check(
        test,
        sum(vec![1], false),
        std::slice::from_ref(&x),
        &[6, 130],
        f,
        REDUCTION,
        false,
    );
    check(
        test,
        sum(vec![0, 1, 2], true),
        &[x],
        &[1, 1, 1],
        f,
        REDUCTION,
        false,
    );
}

#[test]
fn layout_copies_cut_the_axis_before_the_one_they_move() {
    let test = "layout_copies_cut_the_axis_before_the_one_they_move";
    let mut r = rng(test);
    let f = DType::F32;
    let x = uniform(&mut r, &[6, 10, 31], -2.0, 2.0);
    let permute = Op::Layout(LayoutOp::Permute {
        perm: vec![0, 2, 1],
    });
    check(
        test,
        permute,
        std::slice::from_ref(&x),
        &[6, 31, 10],
        f,
        ELEMENTWISE,
        true,
    );
    let slice = Op::Layout(LayoutOp::Slice {
        axis: 2,
        start: 3,
        end: 29,
    });
    check(
        test,
        slice,
        std::slice::from_ref(&x),
        &[6, 10, 26],
        f,
        ELEMENTWISE,
        true,
    );
    let y = uniform(&mut r, &[6, 7, 31], -2.0, 2.0);
    let concat = Op::Layout(LayoutOp::Concat { axis: 1 });
    check(
        test,
        concat,
        &[x.clone(), y],
        &[6, 17, 31],
        f,
        ELEMENTWISE,
        true,
    );
    // A reshape is a buffer copy: it binds nothing and needs no slabs.
    check(
        test,
        Op::Layout(LayoutOp::Reshape),
        &[x],
        &[60, 31],
        f,
        ELEMENTWISE,
        true,
    );
}

#[test]
fn convolutions_and_pooling_run_per_image() {
    let test = "convolutions_and_pooling_run_per_image";
    let mut r = rng(test);
    let f = DType::F32;
    // 3 × 13 × 13 = 507 values per image: the second image starts off the alignment.
    let x = uniform(&mut r, &[5, 3, 13, 13], -1.0, 1.0);
    let wt = uniform(&mut r, &[4, 3, 3, 3], -0.5, 0.5);
    let bias = uniform(&mut r, &[4], -0.5, 0.5);
    let dy = uniform(&mut r, &[5, 4, 13, 13], -1.0, 1.0);
    let a = conv_attrs();
    let y = [5, 4, 13, 13];
    let fwd = Op::Conv(ConvOp::Conv2d(a));
    check(
        test,
        fwd,
        &[x.clone(), wt.clone(), bias],
        &y,
        f,
        REDUCTION,
        true,
    );
    let gi = Op::Conv(ConvOp::Conv2dGradInput(a));
    check(
        test,
        gi,
        &[dy.clone(), wt],
        &[5, 3, 13, 13],
        f,
        REDUCTION,
        true,
    );
    let gw = Op::Conv(ConvOp::Conv2dGradWeight(a));
    check(
        test,
        gw,
        &[x.clone(), dy],
        &[4, 3, 3, 3],
        f,
        REDUCTION,
        false,
    );
    let pool = PoolOp::MaxPool2d {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
    };
    let py = [5, 3, 7, 7];
    check(
        test,
        Op::Pool(pool),
        std::slice::from_ref(&x),
        &py,
        f,
        ELEMENTWISE,
        true,
    );
    let pool_grad = PoolOp::MaxPool2dGrad {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
    };
    let pdy = uniform(&mut r, &py, -1.0, 1.0);
    let x_shape = [5, 3, 13, 13];
    check(
        test,
        Op::Pool(pool_grad),
        &[x, pdy],
        &x_shape,
        f,
        ELEMENTWISE,
        true,
    );
    let small = uniform(&mut r, &[5, 3, 7, 7], -1.0, 1.0);
    let up = Op::Pool(PoolOp::UpsampleNearest);
    check(test, up, &[small], &[5, 3, 14, 14], f, ELEMENTWISE, true);
    let big = uniform(&mut r, &[5, 3, 14, 14], -1.0, 1.0);
    let up_grad = Op::Pool(PoolOp::UpsampleNearestGrad);
    check(test, up_grad, &[big], &[5, 3, 7, 7], f, ELEMENTWISE, true);
}

#[test]
fn batched_matmul_runs_per_matrix() {
    let test = "batched_matmul_runs_per_matrix";
    let mut r = rng(test);
    let a = uniform(&mut r, &[6, 20, 8], -1.0, 1.0);
    let b = uniform(&mut r, &[6, 8, 13], -1.0, 1.0);
    let op = Op::Matmul(MatmulOp {
        trans_a: false,
        trans_b: false,
    });
    check(test, op, &[a, b], &[6, 20, 13], DType::F32, REDUCTION, true);
}

#[test]
fn batch_norm_and_its_gradients_run_per_image() {
    let test = "batch_norm_and_its_gradients_run_per_image";
    let mut r = rng(test);
    let f = DType::F32;
    let x = uniform(&mut r, &[5, 3, 13, 13], -2.0, 2.0);
    let dy = uniform(&mut r, &[5, 3, 13, 13], -1.0, 1.0);
    let mean = uniform(&mut r, &[1, 3], -0.5, 0.5);
    let var = uniform(&mut r, &[1, 3], 0.5, 2.0);
    let stats = HostTensor::f64(vec![2, 3], [mean.to_f64_vec(), var.to_f64_vec()].concat())
        .expect("length");
    let gamma = uniform(&mut r, &[3], 0.5, 1.5);
    let beta = uniform(&mut r, &[3], -0.5, 0.5);
    let (kind, eps) = (NormKind::Batch, 1e-5);
    let xs = [5, 3, 13, 13];
    let apply = Op::Norm(NormOp::Apply { kind, eps });
    let ins = [x.clone(), stats.clone(), gamma.clone(), beta];
    check(test, apply, &ins, &xs, f, ELEMENTWISE, true);
    let grad_ins = [x.clone(), stats.clone(), gamma, dy.clone()];
    let gx = Op::Norm(NormOp::ApplyGradX { kind, eps });
    check(test, gx, &grad_ins, &xs, f, ELEMENTWISE, true);
    let gs = Op::Norm(NormOp::ApplyGradStats { kind, eps });
    check(test, gs, &grad_ins, &[2, 3], f, REDUCTION, false);
    let ga = Op::Norm(NormOp::ApplyGradAffine { kind, eps });
    check(
        test,
        ga,
        &[x.clone(), stats.clone(), dy],
        &[2, 3],
        f,
        REDUCTION,
        false,
    );
    // Training-mode statistics: each slab's, merged; their gradient, scaled to the slab.
    let st = Op::Norm(NormOp::Stats(kind));
    let mean_shift = uniform(&mut r, &[5, 3, 13, 13], 3.0, 3.5);
    let shifted = HostTensor::f64(
        xs.to_vec(),
        (x.to_f64_vec().iter().zip(mean_shift.to_f64_vec()))
            .map(|(a, b)| a + b)
            .collect(),
    )
    .expect("length");
    check(test, st, &[shifted], &[2, 3], f, REDUCTION, false);
    let dstats = uniform(&mut r, &[2, 3], -1.0, 1.0);
    let sg = Op::Norm(NormOp::StatsGrad(kind));
    check(test, sg, &[x, stats, dstats], &xs, f, REDUCTION, false);
}

#[test]
fn losses_run_a_slab_of_items_at_a_time() {
    let test = "losses_run_a_slab_of_items_at_a_time";
    let mut r = rng(test);
    let f = DType::F32;
    let x = uniform(&mut r, &[601, 5], -3.0, 3.0);
    let t = uniform(&mut r, &[601, 5], 0.0, 1.0);
    let focal = LossKind::SigmoidFocal {
        alpha: 0.25,
        gamma: 2.0,
    };
    let tol = (1e-4, 1e-6);
    check(
        test,
        Op::Loss(LossOp::Forward(focal.clone())),
        &[x.clone(), t.clone()],
        &[601, 5],
        f,
        tol,
        true,
    );
    let dy = uniform(&mut r, &[601, 5], -1.0, 1.0);
    let grad = Op::Loss(LossOp::Grad {
        kind: focal,
        wrt: 0,
    });
    check(test, grad, &[x, t, dy], &[601, 5], f, tol, true);
    // Cross-entropy: logits [N, K], labels [N] i32, a loss per row.
    let logits = uniform(&mut r, &[1100, 7], -3.0, 3.0);
    let labels: Vec<i32> = (0..1100).map(|_| r.below(7) as i32).collect();
    let labels = HostTensor::i32(vec![1100], labels).expect("length");
    let ce = LossKind::CrossEntropy {
        ignore_index: -100,
        label_smoothing: 0.0,
    };
    check(
        test,
        Op::Loss(LossOp::Forward(ce)),
        &[logits, labels],
        &[1100],
        f,
        tol,
        true,
    );
}

#[test]
fn parameters_larger_than_a_binding_update_in_windows() {
    let Some((capped, _)) = adapters("parameters_larger_than_a_binding_update_in_windows") else {
        return;
    };
    // Parameters of up to 5000 values against windows of 1024.
    super::optim::update_matches_the_cpu_rules(&capped);
}

#[test]
fn ops_that_do_not_split_are_refused_with_the_sizes() {
    let test = "ops_that_do_not_split_are_refused_with_the_sizes";
    let Some((capped, _)) = adapters(test) else {
        return;
    };
    let mut r = rng(test);
    // Group statistics interleave the images (`[2, N·G]`): refused, with the size.
    let x = uniform(&mut r, &[5, 3, 13, 13], -1.0, 1.0);
    let stats = Op::Norm(NormOp::Stats(NormKind::Group(3)));
    let e = run_on(
        &capped,
        &stats,
        std::slice::from_ref(&x),
        &[2, 15],
        DType::F32,
    )
    .expect_err("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("a tensor of 10140 bytes exceeds what the adapter binds (4096 bytes)"),
        "{msg}"
    );
    // A weight every slab needs whole, larger than a binding.
    let wide = uniform(&mut r, &[40, 3, 3, 3], -1.0, 1.0);
    let conv = Op::Conv(ConvOp::Conv2d(conv_attrs()));
    let e = run_on(&capped, &conv, &[x, wide], &[5, 40, 13, 13], DType::F32).expect_err("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("[40, 3, 3, 3] (4320 bytes) is bound whole by each slab"),
        "{msg}"
    );
    // One image alone is larger than a binding.
    let one = uniform(&mut r, &[2, 3, 20, 20], -1.0, 1.0);
    let wt = uniform(&mut r, &[2, 3, 3, 3], -1.0, 1.0);
    let e = run_on(&capped, &conv, &[one, wt], &[2, 2, 20, 20], DType::F32).expect_err("refused");
    assert!(e.to_string().contains("cannot be split further"), "{e}");
}

/// lavapipe binds 128 MiB: a ResNet stem's output for two 800 × 1344 images (137.6 MB) through
/// the frozen norm's bias, the ReLU and the max pool, against the CPU.
#[test]
fn a_stem_output_at_full_resolution_runs_on_an_adapter_that_binds_128_mib() {
    let test = "a_stem_output_at_full_resolution_runs_on_an_adapter_that_binds_128_mib";
    let Some(be) = super::harness::wgpu(test) else {
        return;
    };
    let shape = [2, 64, 400, 672];
    if (numel(&shape) * 4) as u64 <= be.max_binding_bytes() {
        eprintln!(
            "skipped {test}: this adapter binds {} bytes",
            be.max_binding_bytes()
        );
        return;
    }
    let mut r = rng(test);
    let x = uniform(&mut r, &shape, -2.0, 2.0);
    let bias = uniform(&mut r, &[1, 64, 1, 1], -1.0, 1.0);
    let add = Op::Binary(BinaryOp::Add);
    let y = check_op(&be, test, &add, &[x, bias], &shape, DType::F32, ELEMENTWISE);
    let relu = Op::Unary(UnaryOp::Relu);
    let y = check_op(
        &be,
        test,
        &relu,
        &[y.cast(DType::F64)],
        &shape,
        DType::F32,
        ELEMENTWISE,
    );
    let y = y.cast(DType::F64);
    let pool = Op::Pool(PoolOp::MaxPool2d {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
    });
    let pooled = [2, 64, 200, 336];
    check_op(&be, test, &pool, &[y], &pooled, DType::F32, ELEMENTWISE);
}
