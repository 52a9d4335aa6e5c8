//! The device-level kernels a resident trainer and the convolution path call directly —
//! the multi-tensor optimizers, loss-scale unscale, the gradient norm, cuBLAS GEMM and the
//! im2col convolution — against f64 loops written from the torch definitions (the CPU
//! backend for the convolution). Fresh inputs each run (seed printed, `MMRUN_SEED` replays);
//! skipped without a GPU unless `MMRUN_REQUIRE_GPU` is set.

use cudarc::driver::CudaSlice;
use mmrun::backend::cuda::CudaDevice;
use mmrun::backend::cuda::blas::Blas;
use mmrun::backend::cuda::optim::{AdamW, Sgd};
use mmrun::util::rng::Rng;

use crate::backend::harness::{assert_close, open_or_skip, rng};

fn device(test: &str) -> Option<CudaDevice> {
    open_or_skip(test, CudaDevice::open)
}

fn normal(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal_f64() as f32 as f64).collect()
}

/// An output buffer filled with NaN, so a kernel that skips an element cannot pass.
fn poisoned(dev: &CudaDevice, n: usize) -> CudaSlice<f32> {
    dev.upload(&vec![f32::NAN; n]).expect("upload")
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn down(dev: &CudaDevice, s: &CudaSlice<f32>) -> Vec<f64> {
    dev.synchronize().expect("kernel fault");
    let host: Vec<f32> = dev.stream().clone_dtoh(s).expect("download");
    host.iter().map(|&x| x as f64).collect()
}

#[test]
fn optimizers_unscale_and_grad_norm_match() {
    let Some(dev) = device("optim parity") else {
        return;
    };
    let mut rng = rng("optim parity");
    let lens = [1usize, 300, 70_000, 4097];
    let p0: Vec<Vec<f64>> = lens.iter().map(|&l| normal(&mut rng, l)).collect();
    let g: Vec<Vec<f64>> = lens.iter().map(|&l| normal(&mut rng, l)).collect();
    let up = |v: &Vec<Vec<f64>>| {
        v.iter()
            .map(|t| dev.upload(&f32s(t)).unwrap())
            .collect::<Vec<_>>()
    };
    let dg = up(&g);
    let grefs: Vec<&CudaSlice<f32>> = dg.iter().collect();
    // SGD momentum: two steps (first initialises the buffer), weight decay, nesterov off.
    let hp = Sgd {
        lr: 0.02,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 1e-4,
        nesterov: false,
    };
    let mut dp = up(&p0);
    let mut bufs: Vec<CudaSlice<f32>> = lens.iter().map(|&l| poisoned(&dev, l)).collect();
    for first in [true, false] {
        let mut pr: Vec<&mut CudaSlice<f32>> = dp.iter_mut().collect();
        let mut br: Vec<&mut CudaSlice<f32>> = bufs.iter_mut().collect();
        dev.sgd_step(&mut pr, &grefs, &mut br, hp, first).unwrap();
    }
    for (k, l) in lens.iter().enumerate() {
        let (mut p, mut buf) = (p0[k].clone(), vec![0.0; *l]);
        for step in 0..2 {
            for i in 0..*l {
                let d = g[k][i] + 1e-4f32 as f64 * p[i];
                buf[i] = if step == 0 {
                    d
                } else {
                    0.9f32 as f64 * buf[i] + d
                };
                p[i] -= 0.02f32 as f64 * buf[i];
            }
        }
        assert_close(
            &format!("sgd tensor {k}"),
            &down(&dev, &dp[k]),
            &p,
            1e-5,
            1e-6,
        );
    }
    // AdamW: three steps.
    let hp = AdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.05,
    };
    let mut dp = up(&p0);
    let mut m: Vec<CudaSlice<f32>> = lens
        .iter()
        .map(|&l| dev.upload(&vec![0.0f32; l]).unwrap())
        .collect();
    let mut v: Vec<CudaSlice<f32>> = lens
        .iter()
        .map(|&l| dev.upload(&vec![0.0f32; l]).unwrap())
        .collect();
    for step in 1..=3 {
        let mut pr: Vec<&mut CudaSlice<f32>> = dp.iter_mut().collect();
        let mut mr: Vec<&mut CudaSlice<f32>> = m.iter_mut().collect();
        let mut vr: Vec<&mut CudaSlice<f32>> = v.iter_mut().collect();
        dev.adamw_step(&mut pr, &grefs, &mut mr, &mut vr, hp, step)
            .unwrap();
    }
    let (lr, b1, b2, eps, wd) = (
        1e-3f32 as f64,
        0.9f32 as f64,
        0.999f32 as f64,
        1e-8f32 as f64,
        0.05f32 as f64,
    );
    for (k, l) in lens.iter().enumerate() {
        let mut p = p0[k].clone();
        let (mut mm, mut vv) = (vec![0.0; *l], vec![0.0; *l]);
        for step in 1..=3 {
            let (bc1, bc2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
            for i in 0..*l {
                p[i] *= 1.0 - lr * wd;
                mm[i] = b1 * mm[i] + (1.0 - b1) * g[k][i];
                vv[i] = b2 * vv[i] + (1.0 - b2) * g[k][i] * g[k][i];
                p[i] -= lr / bc1 * mm[i] / (vv[i].sqrt() / bc2.sqrt() + eps);
            }
        }
        assert_close(
            &format!("adamw tensor {k}"),
            &down(&dev, &dp[k]),
            &p,
            1e-5,
            1e-6,
        );
    }
    // Global grad norm.
    let mut out = poisoned(&dev, 1);
    dev.grad_norm(&grefs, &mut out).unwrap();
    let norm = g.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    assert_close("grad_norm", &down(&dev, &out), &[norm], 1e-5, 0.0);
    // Unscale: finite grads stay finite and scale; one inf sets the flag.
    let mut dg2 = up(&g);
    let mut flag = poisoned(&dev, 1);
    {
        let mut gr: Vec<&mut CudaSlice<f32>> = dg2.iter_mut().collect();
        dev.unscale_grads(&mut gr, 1.0 / 1024.0, &mut flag).unwrap();
    }
    assert_eq!(down(&dev, &flag), vec![0.0], "no inf: flag stays 0");
    let want: Vec<f64> = g[2].iter().map(|v| v / 1024.0).collect();
    assert_close("unscale", &down(&dev, &dg2[2]), &want, 1e-7, 0.0);
    let mut bad = g[1].clone();
    bad[17] = f64::INFINITY;
    let mut dbad = dev.upload(&f32s(&bad)).unwrap();
    dev.unscale_grads(&mut [&mut dbad], 0.5, &mut flag).unwrap();
    assert_eq!(down(&dev, &flag), vec![1.0], "inf sets the flag");
}

#[test]
fn cublas_sgemm_matches() {
    let Some(dev) = device("gemm parity") else {
        return;
    };
    let blas = match Blas::new(&dev, false) {
        Ok(b) => b,
        Err(e) => panic!("cuBLAS must load on a GPU machine: {e}"),
    };
    let mut rng = rng("gemm parity");
    let (m, n, k) = (67, 45, 129);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = normal(&mut rng, m * k);
        let b = normal(&mut rng, k * n);
        let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
        let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
        let want: Vec<f64> = (0..m * n)
            .map(|ij| (0..k).map(|p| at(ij / n, p) * bt(p, ij % n)).sum())
            .collect();
        let (da, db) = (
            dev.upload(&f32s(&a)).unwrap(),
            dev.upload(&f32s(&b)).unwrap(),
        );
        let mut c = dev.upload(&vec![0.0f32; m * n]).unwrap();
        blas.sgemm((m, n, k), &da, ta, &db, tb, &mut c, 1.0, 0.0)
            .unwrap();
        // TF32 is off by default in cuBLAS for sgemm; allow f32 accumulation error.
        assert_close(
            &format!("sgemm ta={ta} tb={tb}"),
            &down(&dev, &c),
            &want,
            1e-4,
            1e-5,
        );
    }
}

#[test]
fn conv2d_im2col_cublas_matches_the_cpu_backend() {
    use mmrun::backend::cpu::conv as cpu;
    use mmrun::backend::cuda::im2col::Conv2d;
    use mmrun::ir::op::Conv2dAttrs;
    let Some(dev) = device("conv parity") else {
        return;
    };
    let blas = Blas::new(&dev, false).expect("cuBLAS must load on a GPU machine");
    let mut rng = rng("conv parity");
    // ResNet stem (7x7 s2 p3), a 3x3 s1 p1 with dilation 2, a strided 1x1.
    for (xs, ws, s, p, d) in [
        ([2, 3, 23, 29], [8, 3, 7, 7], 2, 3, 1),
        ([2, 6, 15, 13], [5, 6, 3, 3], 1, 2, 2),
        ([3, 8, 9, 10], [4, 8, 1, 1], 2, 0, 1),
    ] {
        let a = Conv2d {
            stride: [s, s],
            padding: [p, p],
            dilation: [d, d],
        };
        let ca = Conv2dAttrs {
            stride: [s, s],
            padding: [p, p],
            dilation: [d, d],
            groups: 1,
        };
        let nx: usize = xs.iter().product();
        let nw: usize = ws.iter().product();
        let x = normal(&mut rng, nx);
        let w = normal(&mut rng, nw);
        let b = normal(&mut rng, ws[0]);
        let (dxs, dws, dbs) = (
            dev.upload(&f32s(&x)).unwrap(),
            dev.upload(&f32s(&w)).unwrap(),
            dev.upload(&f32s(&b)).unwrap(),
        );
        let oh = (xs[2] + 2 * p - d * (ws[2] - 1) - 1) / s + 1;
        let ow = (xs[3] + 2 * p - d * (ws[3] - 1) - 1) / s + 1;
        let ys = [xs[0], ws[0], oh, ow];
        let ny: usize = ys.iter().product();
        let mut y = poisoned(&dev, ny);
        let got_shape = blas
            .conv2d(&dev, &dxs, xs, &dws, ws, Some(&dbs), &a, &mut y)
            .unwrap();
        assert_eq!(got_shape, ys);
        let mut want = vec![0.0; ny];
        cpu::conv2d(&x, &xs, &w, &ws, Some(&b), &ca, &mut want, &ys);
        assert_close(
            &format!("conv2d {xs:?} {ws:?}"),
            &down(&dev, &y),
            &want,
            1e-4,
            1e-5,
        );
        let dy = normal(&mut rng, ny);
        let ddy = dev.upload(&f32s(&dy)).unwrap();
        let mut dx = poisoned(&dev, nx);
        blas.conv2d_bwd_input(&dev, &ddy, &dws, ws, xs, &a, &mut dx)
            .unwrap();
        let mut want = vec![0.0; nx];
        cpu::conv2d_grad_input(&dy, &ys, &w, &ws, &ca, &mut want, &xs);
        assert_close(
            &format!("conv2d dx {xs:?} {ws:?}"),
            &down(&dev, &dx),
            &want,
            1e-4,
            1e-5,
        );
        let mut dw = poisoned(&dev, nw);
        blas.conv2d_bwd_weight(&dev, &dxs, xs, &ddy, ws, &a, &mut dw)
            .unwrap();
        let mut want = vec![0.0; nw];
        cpu::conv2d_grad_weight(&x, &xs, &dy, &ys, &ca, &mut want, &ws);
        assert_close(
            &format!("conv2d dw {xs:?} {ws:?}"),
            &down(&dev, &dw),
            &want,
            1e-4,
            1e-5,
        );
    }
}
