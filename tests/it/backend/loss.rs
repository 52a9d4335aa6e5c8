//! The loss family (`Backend::loss`) on each backend (f32) against the CPU reference (f64):
//! every `LossKind` × forward and every gradient the CPU reference defines (focal, BCE and
//! cross-entropy w.r.t. the logits; L1, smooth L1 and the IoU losses w.r.t. both inputs).
//! Random inputs each run (seed printed) plus the edge cases each formula has: ignored and
//! out-of-range labels, label smoothing, focal with alpha < 0 and gamma 0 / 1 / 1.5 / 2,
//! |d| at and near beta, identical, disjoint, touching and zero-area boxes.
//!
//! Tolerances: `|got - want| <= atol * max|want| + rtol * |want|`. The CUDA kernels use the
//! hardware `ex2`/`lg2` approximations (2^-22 relative) and f32 arithmetic, so transcendental
//! losses get (1e-4, 1e-5) — about 100x their expected error, far below any formula mistake;
//! L1 / smooth L1 (no transcendentals) get the elementwise f32 bound.

use mmrun::ir::op::{IouKind, LossKind, LossOp, Op};
use mmrun::ir::{DType, HostTensor};
use mmrun::util::rng::Rng;

use super::harness::{ELEMENTWISE, Suite, check_op, rng, run_on, uniform};

const TRANSCENDENTAL: (f64, f64) = (1e-4, 1e-5);

fn fwd(kind: &LossKind) -> Op {
    Op::Loss(LossOp::Forward(kind.clone()))
}

fn grad(kind: &LossKind, wrt: usize) -> Op {
    Op::Loss(LossOp::Grad {
        kind: kind.clone(),
        wrt,
    })
}

/// Targets for the sigmoid losses: half hard 0/1 labels, half soft probabilities.
fn targets(rng: &mut Rng, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| match rng.below(4) {
            0 => 0.0,
            1 => 1.0,
            _ => rng.uniform_f64(),
        })
        .collect();
    HostTensor::f64(shape.to_vec(), v).expect("len")
}

/// Forward, and the gradient w.r.t. each input in `wrts`, of one elementwise loss.
#[allow(clippy::too_many_arguments)]
fn check_elementwise<B: Suite>(
    be: &B,
    test: &str,
    kind: LossKind,
    a: HostTensor,
    b: HostTensor,
    wrts: &[usize],
    tol: (f64, f64),
    rng: &mut Rng,
) {
    let shape = a.shape.clone();
    let what = format!("{test} {kind:?}");
    check_op(
        be,
        &format!("{what} fwd"),
        &fwd(&kind),
        &[a.clone(), b.clone()],
        &shape,
        DType::F32,
        tol,
    );
    let dy = uniform(rng, &shape, -1.0, 1.0);
    for &w in wrts {
        check_op(
            be,
            &format!("{what} grad wrt {w}"),
            &grad(&kind, w),
            &[a.clone(), b.clone(), dy.clone()],
            &shape,
            DType::F32,
            tol,
        );
    }
}

fn sigmoid_focal_matches_cpu<B: Suite>(be: &B) {
    let test = "loss::sigmoid_focal";
    let mut r = rng(test);
    let shape = [160, 80];
    for (alpha, gamma) in [
        (0.25, 2.0),
        (-1.0, 2.0),
        (0.25, 0.0),
        (0.25, 1.5),
        (0.75, 1.0),
    ] {
        let x = uniform(&mut r, &shape, -9.0, 9.0);
        let t = targets(&mut r, &shape);
        let kind = LossKind::SigmoidFocal { alpha, gamma };
        check_elementwise(be, test, kind, x, t, &[0], TRANSCENDENTAL, &mut r);
    }
}

fn bce_with_logits_matches_cpu<B: Suite>(be: &B) {
    let test = "loss::bce_with_logits";
    let mut r = rng(test);
    let shape = [25_000];
    let x = uniform(&mut r, &shape, -12.0, 12.0);
    let t = targets(&mut r, &shape);
    check_elementwise(
        be,
        test,
        LossKind::BceWithLogits,
        x,
        t,
        &[0],
        TRANSCENDENTAL,
        &mut r,
    );
}

fn l1_matches_cpu_including_zero_difference<B: Suite>(be: &B) {
    let test = "loss::l1";
    let mut r = rng(test);
    let shape = [100, 128];
    let a = uniform(&mut r, &shape, -3.0, 3.0);
    let mut b = uniform(&mut r, &shape, -3.0, 3.0);
    // Every 7th element has d = 0 exactly: the gradient there is 0, as torch.
    let av = a.as_f64().expect("f64").to_vec();
    let bv = b.as_f64_mut().expect("f64");
    for i in (0..bv.len()).step_by(7) {
        bv[i] = av[i];
    }
    check_elementwise(be, test, LossKind::L1, a, b, &[0, 1], ELEMENTWISE, &mut r);
}

fn smooth_l1_matches_cpu_at_and_near_beta<B: Suite>(be: &B) {
    let test = "loss::smooth_l1";
    let mut r = rng(test);
    // beta = 0.25 is a power of two, so b + beta and b - beta are exact in f32 for the
    // dyadic b used below: |d| = beta exactly takes the linear branch on both sides.
    for beta in [0.25, 1.0 / 9.0, 1.0] {
        let shape = [12_000];
        let a = uniform(&mut r, &shape, -2.0, 2.0);
        let mut b = uniform(&mut r, &shape, -2.0, 2.0);
        let av = a.as_f64().expect("f64").to_vec();
        let bv = b.as_f64_mut().expect("f64");
        for (i, bi) in bv.iter_mut().enumerate() {
            match i % 10 {
                // |d| == beta (exact for beta = 0.25; within f32 rounding otherwise)
                0 => *bi = av[i] - beta,
                1 => *bi = av[i] + beta,
                // just inside and just outside beta
                2 => *bi = av[i] - beta * (1.0 - 1e-3),
                3 => *bi = av[i] + beta * (1.0 + 1e-3),
                4 => *bi = av[i],
                _ => {}
            }
        }
        let kind = LossKind::SmoothL1 { beta };
        check_elementwise(be, test, kind, a, b, &[0, 1], ELEMENTWISE, &mut r);
    }
    // Dyadic values: d = ±beta exactly in f32 and f64.
    let a = HostTensor::f64(vec![4], vec![0.75, 0.25, 0.5, -0.5]).expect("len");
    let b = HostTensor::f64(vec![4], vec![0.5, 0.5, 0.5, -0.25]).expect("len");
    let kind = LossKind::SmoothL1 { beta: 0.25 };
    let got = check_op(
        be,
        "smooth_l1 |d| = beta",
        &fwd(&kind),
        &[a.clone(), b.clone()],
        &[4],
        DType::F32,
        ELEMENTWISE,
    );
    // |d| = beta: linear branch |d| - beta/2 = 0.125 (equal to the quadratic one there).
    assert_eq!(got.to_f64_vec(), vec![0.125, 0.125, 0.0, 0.125]);
}

/// Labels uniform in `[-1, k]` (both ends out of range), some equal to `ignore`.
fn labels(rng: &mut Rng, n: usize, k: usize, ignore: i64) -> HostTensor {
    let v = (0..n)
        .map(|_| match rng.below(10) {
            0 => ignore as i32,
            1 => -1,
            2 => k as i32,
            _ => rng.below(k as u64) as i32,
        })
        .collect();
    HostTensor::i32(vec![n], v).expect("len")
}

fn cross_entropy_matches_cpu_with_ignored_rows_and_smoothing<B: Suite>(be: &B) {
    let test = "loss::cross_entropy";
    let mut r = rng(test);
    // K = 81 (three column sweeps per lane), K = 3 (most lanes idle), K = 1000 (long rows).
    let cases = [
        (600, 81, -100, 0.0),
        (600, 81, 7, 0.1),
        (257, 3, 1, 0.2),
        (40, 1000, -100, 0.05),
    ];
    for (n, k, ignore_index, label_smoothing) in cases {
        let kind = LossKind::CrossEntropy {
            ignore_index,
            label_smoothing,
        };
        let what = format!("{test} n={n} k={k} ignore={ignore_index} eps={label_smoothing}");
        let x = uniform(&mut r, &[n, k], -6.0, 6.0);
        let lab = labels(&mut r, n, k, ignore_index);
        let got = check_op(
            be,
            &format!("{what} fwd"),
            &fwd(&kind),
            &[x.clone(), lab.clone()],
            &[n],
            DType::F32,
            TRANSCENDENTAL,
        );
        // Ignored and out-of-range rows are exactly 0.
        let lv = lab.as_i32().expect("i32");
        for (i, v) in got.to_f64_vec().iter().enumerate() {
            let l = lv[i] as i64;
            if l == ignore_index || l < 0 || l >= k as i64 {
                assert_eq!(*v, 0.0, "{what}: row {i} (label {l}) must be 0");
            }
        }
        let dy = uniform(&mut r, &[n], -1.0, 1.0);
        check_op(
            be,
            &format!("{what} grad"),
            &grad(&kind, 0),
            &[x, lab, dy],
            &[n, k],
            DType::F32,
            TRANSCENDENTAL,
        );
    }
}

/// Random aligned box pairs: widths/heights in [0.5, 60], targets jittered so most overlap.
fn boxes(rng: &mut Rng, n: usize) -> (HostTensor, HostTensor) {
    let (mut p, mut t) = (Vec::with_capacity(4 * n), Vec::with_capacity(4 * n));
    for _ in 0..n {
        let (x, y) = (rng.range_f64(0.0, 200.0), rng.range_f64(0.0, 200.0));
        let (w, h) = (rng.range_f64(0.5, 60.0), rng.range_f64(0.5, 60.0));
        p.extend([x, y, x + w, y + h]);
        let (dx, dy) = (rng.range_f64(-20.0, 20.0), rng.range_f64(-20.0, 20.0));
        let (tw, th) = (w * rng.range_f64(0.5, 1.5), h * rng.range_f64(0.5, 1.5));
        t.extend([x + dx, y + dy, x + dx + tw, y + dy + th]);
    }
    (
        HostTensor::f64(vec![n, 4], p).expect("len"),
        HostTensor::f64(vec![n, 4], t).expect("len"),
    )
}

fn check_iou<B: Suite>(
    be: &B,
    what: &str,
    kind: IouKind,
    p: &HostTensor,
    t: &HostTensor,
    r: &mut Rng,
) {
    let n = p.shape[0];
    let loss = LossKind::Iou { kind, eps: 1e-7 };
    let ins = [p.clone(), t.clone()];
    check_op(
        be,
        &format!("{what} {kind:?} fwd"),
        &fwd(&loss),
        &ins,
        &[n],
        DType::F32,
        TRANSCENDENTAL,
    );
    // |dy| in [0.5, 1): a row whose dy is near zero would shrink the tolerance's scale below
    // the f32 resolution of the rows that set it (the partial-overlap pair of the edge cases).
    let dy: Vec<f64> = (0..n)
        .map(|_| r.range_f64(0.5, 1.0) * if r.below(2) == 0 { -1.0 } else { 1.0 })
        .collect();
    let dy = HostTensor::f64(vec![n], dy).expect("len");
    for w in [0, 1] {
        check_op(
            be,
            &format!("{what} {kind:?} grad wrt {w}"),
            &grad(&loss, w),
            &[p.clone(), t.clone(), dy.clone()],
            &[n, 4],
            DType::F32,
            TRANSCENDENTAL,
        );
    }
}

/// Rows of xyxy boxes.
type Boxes = Vec<[f64; 4]>;

fn rows(v: &[[f64; 4]]) -> HostTensor {
    HostTensor::f64(vec![v.len(), 4], v.iter().flatten().copied().collect()).expect("len")
}

fn iou_losses_match_cpu<B: Suite>(be: &B) {
    let test = "loss::iou";
    let mut r = rng(test);
    let (p, t) = boxes(&mut r, 5000);
    for kind in [IouKind::IoU, IouKind::GIoU, IouKind::DIoU, IouKind::CIoU] {
        check_iou(be, "random", kind, &p, &t, &mut r);
    }
}

fn iou_losses_match_cpu_on_edge_boxes<B: Suite>(be: &B) {
    let test = "loss::iou_edges";
    let mut r = rng(test);
    let b = [10.0, 20.0, 50.0, 45.0];
    // Each case on its own: a huge gradient in one (eps-sized denominators) would otherwise
    // set the absolute tolerance of the others.
    let cases: Vec<(&str, Boxes, Boxes)> = vec![
        // Identical pairs have loss ~1e-10 in f64, but f32 resolves 1 - iou only to
        // ~1e-7: a unit-box pair that overlaps partly sets an O(1) scale for the tolerance.
        (
            "identical",
            vec![b, [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]],
            vec![b, [0.0, 0.0, 1.0, 1.0], [0.5, 0.2, 1.4, 1.3]],
        ),
        (
            "disjoint",
            vec![b, [0.0, 0.0, 2.0, 3.0]],
            vec![[60.0, 70.0, 80.0, 75.0], [5.0, -9.0, 6.0, -1.0]],
        ),
        (
            "touching",
            vec![b, b],
            vec![[50.0, 20.0, 70.0, 45.0], [10.0, 45.0, 50.0, 60.0]],
        ),
        (
            "shared edges",
            vec![b, b],
            vec![[10.0, 25.0, 40.0, 45.0], [0.0, 20.0, 50.0, 30.0]],
        ),
        (
            "zero width",
            vec![[30.0, 20.0, 30.0, 45.0], b],
            vec![b, [30.0, 20.0, 30.0, 45.0]],
        ),
    ];
    for (what, p, t) in &cases {
        for kind in [IouKind::IoU, IouKind::GIoU, IouKind::DIoU, IouKind::CIoU] {
            check_iou(be, what, kind, &rows(p), &rows(t), &mut r);
        }
    }
    // Zero height (CIoU's w/h is infinite there, torchvision gives NaN: GIoU/DIoU only) and
    // zero-area points.
    let flat = vec![[10.0, 30.0, 50.0, 30.0], [5.0, 5.0, 5.0, 5.0]];
    let other = vec![b, [5.0, 5.0, 5.0, 5.0]];
    for kind in [IouKind::GIoU, IouKind::DIoU] {
        check_iou(be, "zero area", kind, &rows(&flat), &rows(&other), &mut r);
    }
}

fn invalid_ops_are_errors_not_launches<B: Suite>(be: &B) {
    let x = HostTensor::f64(vec![2, 3], vec![0.0; 6]).expect("len");
    let dy = HostTensor::f64(vec![2, 3], vec![1.0; 6]).expect("len");
    let focal = LossKind::SigmoidFocal {
        alpha: 0.25,
        gamma: 2.0,
    };
    // No gradient w.r.t. the focal targets (the CPU reference defines none).
    let e = run_on(
        be,
        &grad(&focal, 1),
        &[x.clone(), x.clone(), dy],
        &[2, 3],
        DType::F32,
    );
    assert!(e.is_err(), "focal wrt 1 must be refused");
    // Mismatched shapes.
    let y = HostTensor::f64(vec![3, 2], vec![0.0; 6]).expect("len");
    let e = run_on(be, &fwd(&LossKind::L1), &[x, y], &[2, 3], DType::F32);
    assert!(e.is_err(), "L1 with mismatched shapes must be refused");
}

super::suite!(
    sigmoid_focal_matches_cpu,
    bce_with_logits_matches_cpu,
    l1_matches_cpu_including_zero_difference,
    smooth_l1_matches_cpu_at_and_near_beta,
    cross_entropy_matches_cpu_with_ignored_rows_and_smoothing,
    iou_losses_match_cpu,
    iou_losses_match_cpu_on_edge_boxes,
    invalid_ops_are_errors_not_launches,
);
