use super::*;
use crate::ir::conv_out_size;
use crate::util::rng::Rng;

/// Direct 7-loop convolution and its input and weight gradients, the definition.
fn naive(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    a: &Conv2dAttrs,
    ys: &[usize],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; ys.iter().product()];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let (cg, cog) = (xs[1] / a.groups, ws[0] / a.groups);
    for n in 0..xs[0] {
        for co in 0..ws[0] {
            let g = co / cog;
            for oh in 0..ys[2] {
                for ow in 0..ys[3] {
                    let yi = ((n * ws[0] + co) * ys[2] + oh) * ys[3] + ow;
                    for ci in 0..cg {
                        for i in 0..ws[2] {
                            for j in 0..ws[3] {
                                let ih = (oh * a.stride[0] + i * a.dilation[0]) as isize
                                    - a.padding[0] as isize;
                                let iw = (ow * a.stride[1] + j * a.dilation[1]) as isize
                                    - a.padding[1] as isize;
                                if ih < 0 || iw < 0 || ih >= xs[2] as isize || iw >= xs[3] as isize
                                {
                                    continue;
                                }
                                let xi = ((n * xs[1] + g * cg + ci) * xs[2] + ih as usize) * xs[3]
                                    + iw as usize;
                                let wi = ((co * cg + ci) * ws[2] + i) * ws[3] + j;
                                y[yi] += x[xi] * w[wi];
                                dx[xi] += dy[yi] * w[wi];
                                dw[wi] += dy[yi] * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

/// (Ci, Co, k, stride, padding, dilation, groups, H=W): every path of the module.
type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

const CASES: &[Case] = &[
    // 3×3 stride 1: forward im2col, input gradient through the flipped-weight forward.
    (16, 8, 3, 1, 1, 1, 1, 17),
    // Stride 2 with groups: input gradient through GEMM + col2im.
    (32, 8, 3, 2, 1, 1, 2, 16),
    // 1×1 stride 1 unpadded: direct GEMM on the NCHW planes, no im2col.
    (24, 6, 1, 1, 0, 1, 1, 19),
    // 1×1 stride 2 (ResNet downsample).
    (12, 10, 1, 2, 0, 1, 1, 15),
    // Dilation 2 with padding 2 and 3 groups.
    (12, 6, 3, 1, 2, 2, 3, 15),
    // Dilation with stride 2 and a padding larger than the reach of the kernel (col2im path).
    (6, 4, 3, 2, 3, 2, 1, 11),
    // 7×7 stride 2 on 3 channels (the stem).
    (3, 8, 7, 2, 3, 1, 1, 20),
    // Depthwise: many small steps, run as parallel tasks.
    (16, 16, 3, 1, 1, 1, 16, 10),
    // 64×3×3 taps over 64² pixels: two bands of output pixels.
    (64, 2, 3, 1, 1, 1, 1, 64),
    // Stride 2 over 124² input: col2im over two bands.
    (64, 2, 3, 2, 1, 1, 1, 124),
];

fn attrs(&(_, _, _, s, p, d, g, _): &Case) -> Conv2dAttrs {
    Conv2dAttrs {
        stride: [s, s],
        padding: [p, p],
        dilation: [d, d],
        groups: g,
    }
}

fn shapes(c: &Case) -> [[usize; 4]; 3] {
    let &(ci, co, k, s, p, d, g, hw) = c;
    let ho = conv_out_size(hw, k, s, p, d).unwrap();
    [[2, ci, hw, hw], [co, ci / g, k, k], [2, co, ho, ho]]
}

fn rand<T: Float>(rng: &mut Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(rng.range_f64(-1.0, 1.0)))
        .collect()
}

/// Random input, weight, bias and output gradient of one case.
fn random_operands(rng: &mut Rng, c: &Case) -> [Vec<f64>; 4] {
    let [xs, ws, ys] = shapes(c);
    [
        rand(rng, xs.iter().product()),
        rand(rng, ws.iter().product()),
        rand(rng, ws[0]),
        rand(rng, ys.iter().product()),
    ]
}

/// The definition's forward (with bias), input gradient and weight gradient of one case.
fn reference(c: &Case, x: &[f64], w: &[f64], b: &[f64], dy: &[f64]) -> [Vec<f64>; 3] {
    let [xs, ws, ys] = shapes(c);
    let (mut y, dx, dw) = naive(x, &xs, w, &ws, &attrs(c), &ys, dy);
    let hwo = ys[2] * ys[3];
    for (i, v) in y.iter_mut().enumerate() {
        *v += b[(i / hwo) % ws[0]];
    }
    [y, dx, dw]
}

/// Forward (with bias), input gradient and weight gradient of one case.
fn run<T: Float>(c: &Case, x: &[T], w: &[T], b: &[T], dy: &[T]) -> [Vec<T>; 3] {
    let a = attrs(c);
    let [xs, ws, ys] = shapes(c);
    let mut y = vec![T::ZERO; dy.len()];
    conv2d(x, &xs, w, &ws, Some(b), &a, &mut y, &ys);
    // Poisoned outputs: every element must be overwritten.
    let mut dx = vec![T::from_f64(f64::NAN); x.len()];
    conv2d_grad_input(dy, &ys, w, &ws, &a, &mut dx, &xs);
    let mut dw = vec![T::from_f64(f64::NAN); w.len()];
    conv2d_grad_weight(x, &xs, dy, &ys, &a, &mut dw, &ws);
    [y, dx, dw]
}

#[test]
fn every_path_matches_the_definition() {
    let mut rng = Rng::seed(11);
    let mut multi_band = 0;
    let mut unfolds = Vec::new();
    for c in CASES {
        let a = attrs(c);
        let [xs, ws, ys] = shapes(c);
        let geo = Geo::new(&xs, &ws, &ys, &a);
        multi_band += usize::from(geo.bands(BAND_ELEMS).1 > 1);
        unfolds.push(WeightGradUnfold::of(&geo));
        let [x, w, b, dy] = random_operands(&mut rng, c);
        let [y_ref, dx_ref, dw_ref] = reference(c, &x, &w, &b, &dy);
        let [y, dx, dw] = run(c, &x, &w, &b, &dy);
        for (what, got, want) in [
            ("y", &y, &y_ref),
            ("dx", &dx, &dx_ref),
            ("dw", &dw, &dw_ref),
        ] {
            for (u, v) in got.iter().zip(want.iter()) {
                assert!(
                    (u - v).abs() < 1e-12 * (1.0 + v.abs()),
                    "{what}: {u} vs {v} for {c:?}"
                );
            }
        }
    }
    assert!(multi_band >= 2, "no case used several bands");
    for mode in [
        WeightGradUnfold::Direct,
        WeightGradUnfold::Columns,
        WeightGradUnfold::Rows,
    ] {
        assert!(unfolds.contains(&mode), "no case unfolds as {mode:?}");
    }
}

/// The documented guarantee: the same bits whatever the thread count, including when the
/// thread count switches between parallel GEMMs and parallel tasks.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = Rng::seed(5);
    let cases: Vec<Case> = [
        // Large enough that the gemm crate itself splits the GEMMs across threads.
        (64, 64, 3, 1, 1, 1, 1, 32),
        (64, 64, 3, 2, 1, 1, 1, 32),
        (64, 96, 1, 1, 0, 1, 1, 32),
        (64, 64, 1, 2, 0, 1, 1, 32),
        // One tile per image: parallel GEMMs even with 2 threads.
        (128, 128, 3, 1, 1, 1, 1, 8),
        // The Winograd path (forward, input and weight gradients).
        (128, 128, 3, 1, 1, 1, 1, 24),
        (128, 128, 3, 2, 1, 1, 1, 8),
        // Steps that run as tasks with 2 threads but as parallel GEMMs with 1 or 4.
        (32, 32, 3, 1, 1, 1, 4, 24),
    ]
    .into_iter()
    .chain(CASES.iter().copied())
    .collect();
    for c in &cases {
        let [xs, ws, ys] = shapes(c);
        let x: Vec<f32> = rand(&mut rng, xs.iter().product());
        let w: Vec<f32> = rand(&mut rng, ws.iter().product());
        let b: Vec<f32> = rand(&mut rng, ws[0]);
        let dy: Vec<f32> = rand(&mut rng, ys.iter().product());
        let results: Vec<Vec<Vec<u32>>> = [1, 2, 4]
            .into_iter()
            .map(|t| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap();
                pool.install(|| run(c, &x, &w, &b, &dy))
                    .iter()
                    .map(|v| v.iter().map(|f| f.to_bits()).collect())
                    .collect()
            })
            .collect();
        assert!(
            results[1..].iter().all(|r| *r == results[0]),
            "thread count changed the bits for {c:?}"
        );
    }
}

/// The Winograd path (f32 3×3 stride 1) against the f64 definition: every padding it takes,
/// edge tiles (odd sizes), a 2×2 output, and scratch small enough for many chunks of tiles
/// (the weight gradient accumulates across them), called directly; the first case (enough
/// channels and tiles) also through the dispatch, where the input gradient reaches it through
/// the flipped-weight forward.
#[test]
fn winograd_matches_the_definition() {
    let mut rng = Rng::seed(23);
    let cases: &[Case] = &[
        (128, 130, 3, 1, 1, 1, 1, 17),
        (16, 24, 3, 1, 1, 1, 1, 13),
        (20, 16, 3, 1, 0, 1, 1, 17),
        (16, 18, 3, 1, 2, 1, 1, 12),
        (32, 17, 3, 1, 1, 1, 1, 2),
    ];
    for (i, c) in cases.iter().enumerate() {
        let a = attrs(c);
        let [xs, ws, ys] = shapes(c);
        let dispatched = winograd::applies::<f32>(&Geo::new(&xs, &ws, &ys, &a));
        assert_eq!(dispatched, i == 0, "{c:?}");
        let [x, w, b, dy] = random_operands(&mut rng, c);
        let [y_ref, dx_ref, dw_ref] = reference(c, &x, &w, &b, &dy);
        let f = |v: &[f64]| -> Vec<f32> { v.iter().map(|&u| u as f32).collect() };
        let (x32, w32, b32, dy32) = (f(&x), f(&w), f(&b), f(&dy));
        let mut results = vec![run(c, &x32, &w32, &b32, &dy32)];
        // Scratch for 1 and for 3 tiles per chunk.
        for tiles in [1, 3] {
            let geo = Geo::new(&xs, &ws, &ys, &a);
            let elems = tiles * 16 * (geo.c + geo.co);
            let mut y = vec![f32::NAN; dy.len()];
            winograd::conv2d(&x32, &w32, Some(&b32), &geo, &mut y, elems);
            let mut dw = vec![f32::NAN; w.len()];
            winograd::conv2d_grad_weight(&x32, &dy32, &geo, &mut dw, elems);
            results.push([y, results[0][1].clone(), dw]);
        }
        for [y, dx, dw] in &results {
            for (what, got, want) in [("y", y, &y_ref), ("dx", dx, &dx_ref), ("dw", dw, &dw_ref)] {
                let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for (u, v) in got.iter().zip(want.iter()) {
                    assert!(
                        (*u as f64 - v).abs() <= 1e-5 * scale,
                        "{what}: {u} vs {v} (max |want| {scale}) for {c:?}"
                    );
                }
            }
        }
    }
}
