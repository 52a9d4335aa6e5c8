//! The nn op families on each backend (f32) against the CPU reference (f64): matmul,
//! convolution and its gradients, max pooling, nearest resizing and RoIAlign with their gradients, and
//! all six normalisation ops for batch and group norm, on the same f32-rounded random inputs
//! through `harness::check_op` (output poisoned, backend synchronised). Shapes are
//! ResNet/FPN-like with odd sizes.

use mmrun::ir::op::*;
use mmrun::ir::{DType, HostTensor, conv_out_size};

use super::harness::{REDUCTION, Suite, check_op, rng, uniform};

fn matmul_matches_cpu_with_transposes_and_batch<B: Suite>(be: &B) {
    let mut rng = rng("matmul");
    let (m, k, n) = (37, 300, 29);
    for batch in [None, Some(3)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let lead: Vec<usize> = batch.into_iter().collect();
            let shape = |r: usize, c: usize| [lead.clone(), vec![r, c]].concat();
            let sa = if ta { shape(k, m) } else { shape(m, k) };
            let sb = if tb { shape(n, k) } else { shape(k, n) };
            let a = uniform(&mut rng, &sa, -1.0, 1.0);
            let b = uniform(&mut rng, &sb, -1.0, 1.0);
            let op = Op::Matmul(MatmulOp {
                trans_a: ta,
                trans_b: tb,
            });
            check_op(
                be,
                &format!("matmul ta={ta} tb={tb} batch={batch:?}"),
                &op,
                &[a, b],
                &shape(m, n),
                DType::F32,
                REDUCTION,
            );
        }
    }
}

/// One convolution case: input shape, weight shape (`[k, c / g, r, s]`), stride, padding,
/// dilation, bias, groups.
pub(super) struct ConvCase {
    pub xs: [usize; 4],
    pub ws: [usize; 4],
    pub s: usize,
    pub p: usize,
    pub d: usize,
    pub bias: bool,
    pub g: usize,
}

impl ConvCase {
    /// The case's attributes (square stride, padding and dilation).
    pub fn attrs(&self) -> Conv2dAttrs {
        Conv2dAttrs {
            stride: [self.s, self.s],
            padding: [self.p, self.p],
            dilation: [self.d, self.d],
            groups: self.g,
        }
    }

    /// The output shape `[n, k, oh, ow]`.
    pub fn output_shape(&self) -> [usize; 4] {
        let o = |i: usize| conv_out_size(self.xs[i], self.ws[i], self.s, self.p, self.d).unwrap();
        [self.xs[0], self.ws[0], o(2), o(3)]
    }
}

pub(super) fn conv_cases() -> Vec<ConvCase> {
    let c = |xs, ws, s, p, d, bias| ConvCase {
        xs,
        ws,
        s,
        p,
        d,
        bias,
        g: 1,
    };
    vec![
        // ResNet stem: 7x7 stride 2 pad 3, no bias.
        c([2, 3, 45, 61], [16, 3, 7, 7], 2, 3, 1, false),
        // bottleneck 1x1 (the pointwise path, no im2col), with and without bias.
        c([2, 64, 19, 23], [32, 64, 1, 1], 1, 0, 1, false),
        c([2, 64, 19, 23], [24, 64, 1, 1], 1, 0, 1, true),
        // 3x3 stride 1 and stride 2 with padding; FPN output conv with bias.
        c([2, 32, 17, 21], [48, 32, 3, 3], 1, 1, 1, false),
        c([2, 32, 17, 21], [16, 32, 3, 3], 2, 1, 1, true),
        // strided 1x1 downsample shortcut, and a dilated 3x3.
        c([2, 64, 15, 15], [32, 64, 1, 1], 2, 0, 1, false),
        c([1, 8, 13, 11], [8, 8, 3, 3], 1, 2, 2, true),
        // Three images whose columns (~92 MiB each) make two im2col chunks (2 + 1 images).
        c([3, 32, 284, 284], [8, 32, 3, 3], 1, 1, 1, true),
    ]
}

fn conv2d_and_gradients_match_cpu<B: Suite>(be: &B) {
    check_convs(be, conv_cases(), REDUCTION);
}

/// Each case's convolution and both gradients against the CPU reference within `tol`.
pub(super) fn check_convs<B: Suite>(be: &B, cases: Vec<ConvCase>, tol: (f64, f64)) {
    let mut rng = rng("conv2d");
    for k in cases {
        let (attrs, ys) = (k.attrs(), k.output_shape());
        let what = format!(
            "{:?} * {:?} s{} p{} d{} g{}",
            k.xs, k.ws, k.s, k.p, k.d, k.g
        );
        let x = uniform(&mut rng, &k.xs, -1.0, 1.0);
        let w = uniform(&mut rng, &k.ws, -0.5, 0.5);
        let mut ins = vec![x.clone(), w.clone()];
        if k.bias {
            ins.push(uniform(&mut rng, &[k.ws[0]], -1.0, 1.0));
        }
        check_op(
            be,
            &format!("conv2d {what} bias={}", k.bias),
            &Op::Conv(ConvOp::Conv2d(attrs)),
            &ins,
            &ys,
            DType::F32,
            tol,
        );
        let dy = uniform(&mut rng, &ys, -1.0, 1.0);
        check_op(
            be,
            &format!("conv2d_grad_input {what}"),
            &Op::Conv(ConvOp::Conv2dGradInput(attrs)),
            &[dy.clone(), w],
            &k.xs,
            DType::F32,
            tol,
        );
        check_op(
            be,
            &format!("conv2d_grad_weight {what}"),
            &Op::Conv(ConvOp::Conv2dGradWeight(attrs)),
            &[x, dy],
            &k.ws,
            DType::F32,
            tol,
        );
    }
}

fn max_pool_and_gradient_match_cpu<B: Suite>(be: &B) {
    let mut rng = rng("max pool");
    // ResNet's 3x3/2 pad 1 on odd sizes, a 2x2/2 window, FPN's 1x1/2 extra level.
    for (xs, k, s, p) in [
        ([2, 16, 33, 47], 3, 2, 1),
        ([2, 8, 20, 14], 2, 2, 0),
        ([2, 8, 25, 13], 1, 2, 0),
    ] {
        let oh = conv_out_size(xs[2], k, s, p, 1).unwrap();
        let ow = conv_out_size(xs[3], k, s, p, 1).unwrap();
        let ys = [xs[0], xs[1], oh, ow];
        let (kernel, stride, padding) = ([k, k], [s, s], [p, p]);
        let x = uniform(&mut rng, &xs, -1.0, 1.0);
        check_op(
            be,
            &format!("max_pool2d {xs:?} k{k} s{s} p{p}"),
            &Op::Pool(PoolOp::MaxPool2d {
                kernel,
                stride,
                padding,
            }),
            std::slice::from_ref(&x),
            &ys,
            DType::F32,
            REDUCTION,
        );
        let dy = uniform(&mut rng, &ys, -1.0, 1.0);
        check_op(
            be,
            &format!("max_pool2d_grad {xs:?} k{k} s{s} p{p}"),
            &Op::Pool(PoolOp::MaxPool2dGrad {
                kernel,
                stride,
                padding,
            }),
            &[x, dy],
            &xs,
            DType::F32,
            REDUCTION,
        );
    }
}

fn upsample_nearest_and_gradient_match_cpu<B: Suite>(be: &B) {
    let mut rng = rng("upsample");
    // x2 (FPN on even sizes), 84 -> 167 style odd sizes, and a ratio whose f32 rounds
    // below in/out (2 -> 82), where the host must pick the scale carefully.
    for (xs, big) in [
        ([2, 8, 13, 21], [26, 42]),
        ([1, 4, 84, 50], [167, 100]),
        ([2, 3, 2, 7], [82, 9]),
    ] {
        let ys = [xs[0], xs[1], big[0], big[1]];
        let x = uniform(&mut rng, &xs, -1.0, 1.0);
        check_op(
            be,
            &format!("upsample_nearest {xs:?} -> {ys:?}"),
            &Op::Pool(PoolOp::UpsampleNearest),
            &[x],
            &ys,
            DType::F32,
            REDUCTION,
        );
        let dy = uniform(&mut rng, &ys, -1.0, 1.0);
        check_op(
            be,
            &format!("upsample_nearest_grad {ys:?} -> {xs:?}"),
            &Op::Pool(PoolOp::UpsampleNearestGrad),
            &[dy],
            &xs,
            DType::F32,
            REDUCTION,
        );
    }
}

fn roi_align_and_gradient_match_cpu<B: Suite>(be: &B) {
    let mut rng = rng("roi_align");
    // Detectron2's/mmdetection's RoI head (7×7, 1/4 scale, adaptive and fixed sampling) and a
    // non-square, unaligned case; boxes inside, on and past the borders, degenerate.
    for (xs, out, scale, sampling_ratio, aligned) in [
        ([2, 8, 24, 20], [7, 7], 0.25, 0, true),
        ([2, 8, 24, 20], [7, 7], 0.25, 2, true),
        ([1, 5, 9, 14], [3, 5], 0.5, 1, false),
    ] {
        let (w, h) = (xs[3] as f64 / scale, xs[2] as f64 / scale);
        let k = 9;
        let mut rois = Vec::with_capacity(k * 5);
        for i in 0..k {
            let (x1, y1) = (rng.range_f64(-0.2 * w, w), rng.range_f64(-0.2 * h, h));
            let (bw, bh) = match i {
                0 => (0.0, 0.0),
                1 => (w, h),
                _ => (rng.range_f64(0.5, 0.6 * w), rng.range_f64(0.5, 0.6 * h)),
            };
            rois.extend([(i % xs[0]) as f64, x1, y1, x1 + bw, y1 + bh]);
        }
        let rois = HostTensor::f64(vec![k, 5], rois).unwrap();
        let attrs = RoiAlignAttrs {
            output: out,
            spatial_scale: scale,
            sampling_ratio,
            aligned,
        };
        let ys = [k, xs[1], out[0], out[1]];
        let x = uniform(&mut rng, &xs, -1.0, 1.0);
        let what = format!("roi_align {xs:?} {attrs:?}");
        check_op(
            be,
            &what,
            &Op::Pool(PoolOp::RoiAlign(attrs)),
            &[x, rois.clone()],
            &ys,
            DType::F32,
            REDUCTION,
        );
        let dy = uniform(&mut rng, &ys, -1.0, 1.0);
        check_op(
            be,
            &format!("{what} grad"),
            &Op::Pool(PoolOp::RoiAlignGrad(attrs)),
            &[rois, dy],
            &xs,
            DType::F32,
            REDUCTION,
        );
    }
}

/// Runs all six norm ops of `kind` on `x` of shape `xs` (values in `[lo, hi)`).
fn check_norm_family<B: Suite>(
    be: &B,
    rng: &mut mmrun::util::rng::Rng,
    xs: &[usize],
    kind: NormKind,
    (lo, hi): (f64, f64),
) {
    let c = xs[1];
    let s = match kind {
        NormKind::Batch => c,
        NormKind::Group(g) => xs[0] * g,
    };
    let eps = 1e-5;
    let what = |op: &str| format!("{op} {kind:?} {xs:?}");
    let x = uniform(rng, xs, lo, hi);
    // Statistics with a positive variance row, as Stats produces.
    let stats = {
        let mean = uniform(rng, &[s], -0.5, 0.5).to_f64_vec();
        let var = uniform(rng, &[s], 0.05, 2.0).to_f64_vec();
        HostTensor::f64(vec![2, s], [mean, var].concat()).expect("len")
    };
    let gamma = uniform(rng, &[c], 0.5, 1.5);
    let beta = uniform(rng, &[c], -0.5, 0.5);
    let dy = uniform(rng, xs, -1.0, 1.0);
    let dstats = uniform(rng, &[2, s], -1.0, 1.0);
    let t = REDUCTION;
    check_op(
        be,
        &what("stats"),
        &Op::Norm(NormOp::Stats(kind)),
        std::slice::from_ref(&x),
        &[2, s],
        DType::F32,
        t,
    );
    check_op(
        be,
        &what("apply"),
        &Op::Norm(NormOp::Apply { kind, eps }),
        &[x.clone(), stats.clone(), gamma.clone(), beta],
        xs,
        DType::F32,
        t,
    );
    let grad_ins = [x.clone(), stats.clone(), gamma, dy.clone()];
    check_op(
        be,
        &what("apply_grad_x"),
        &Op::Norm(NormOp::ApplyGradX { kind, eps }),
        &grad_ins,
        xs,
        DType::F32,
        t,
    );
    check_op(
        be,
        &what("apply_grad_stats"),
        &Op::Norm(NormOp::ApplyGradStats { kind, eps }),
        &grad_ins,
        &[2, s],
        DType::F32,
        t,
    );
    check_op(
        be,
        &what("apply_grad_affine"),
        &Op::Norm(NormOp::ApplyGradAffine { kind, eps }),
        &[x.clone(), stats.clone(), dy],
        &[2, c],
        DType::F32,
        t,
    );
    check_op(
        be,
        &what("stats_grad"),
        &Op::Norm(NormOp::StatsGrad(kind)),
        &[x, stats, dstats],
        xs,
        DType::F32,
        t,
    );
}

fn batch_norm_family_matches_cpu<B: Suite>(be: &B) {
    let mut rng = rng("batch norm");
    // Odd sizes; one with more elements per channel than a block has threads; an offset
    // input (two-pass statistics); a [N, C] input (hw = 1).
    check_norm_family(be, &mut rng, &[3, 7, 9, 11], NormKind::Batch, (-1.0, 1.0));
    check_norm_family(be, &mut rng, &[2, 16, 50, 37], NormKind::Batch, (-1.0, 1.0));
    check_norm_family(be, &mut rng, &[2, 5, 13, 17], NormKind::Batch, (2.0, 4.0));
    check_norm_family(be, &mut rng, &[33, 6], NormKind::Batch, (-1.0, 1.0));
}

fn group_norm_family_matches_cpu<B: Suite>(be: &B) {
    let mut rng = rng("group norm");
    // 32 groups as mmdet's heads (2 and 8 channels per group), odd spatial sizes.
    check_norm_family(
        be,
        &mut rng,
        &[2, 64, 7, 5],
        NormKind::Group(32),
        (-1.0, 1.0),
    );
    check_norm_family(
        be,
        &mut rng,
        &[2, 256, 13, 9],
        NormKind::Group(32),
        (-1.0, 1.0),
    );
    check_norm_family(be, &mut rng, &[3, 6, 11, 3], NormKind::Group(3), (2.0, 4.0));
}

super::suite!(
    matmul_matches_cpu_with_transposes_and_batch,
    conv2d_and_gradients_match_cpu,
    max_pool_and_gradient_match_cpu,
    upsample_nearest_and_gradient_match_cpu,
    roi_align_and_gradient_match_cpu,
    batch_norm_family_matches_cpu,
    group_norm_family_matches_cpu,
);
