//! Parity of the non-loss kernels (elementwise, reductions, pooling, upsampling, norms,
//! optimizers, loss-scale unscale, cuBLAS GEMM) against f64 loops written from the torch
//! definitions. Same rules as the loss parity: fresh inputs, poisoned outputs, skip without GPU.

use mmrun::backend::cuda::blas::Blas;
use mmrun::backend::cuda::ops::Unary;

use super::*;

fn normal(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal_f64() as f32 as f64).collect()
}

#[test]
fn elementwise_and_sum_match() {
    let Some(dev) = device("elementwise parity") else {
        return;
    };
    let mut rng = rng("elementwise parity");
    let n = 100_000 + rng.below(100_000) as usize;
    let (a, b) = (normal(&mut rng, n), normal(&mut rng, n));
    let (da, db) = (
        dev.upload(&f32s(&a)).unwrap(),
        dev.upload(&f32s(&b)).unwrap(),
    );
    let mut y = poisoned::<f32>(&dev, n);
    dev.unary_fwd(Unary::Relu, &da, &mut y, n).unwrap();
    let relu: Vec<f64> = a.iter().map(|v| v.max(0.0)).collect();
    assert_close("relu_fwd", &down(&dev, &y), &relu, 0.0, 0.0);
    let mut dx = poisoned::<f32>(&dev, n);
    dev.unary_bwd(Unary::Relu, &y, &db, &mut dx, n).unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| if relu[i] > 0.0 { b[i] } else { 0.0 })
        .collect();
    assert_close("relu_bwd", &down(&dev, &dx), &want, 0.0, 0.0);
    dev.unary_fwd(Unary::Sigmoid, &da, &mut y, n).unwrap();
    let sig: Vec<f64> = a.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    assert_close("sigmoid_fwd", &down(&dev, &y), &sig, 1e-6, 1e-7);
    dev.unary_bwd(Unary::Sigmoid, &y, &db, &mut dx, n).unwrap();
    let y_host = down(&dev, &y);
    let want: Vec<f64> = (0..n)
        .map(|i| b[i] * y_host[i] * (1.0 - y_host[i]))
        .collect();
    assert_close("sigmoid_bwd", &down(&dev, &dx), &want, 1e-6, 1e-7);
    let mut out = poisoned::<f32>(&dev, n);
    dev.binary(false, &da, &db, &mut out, n).unwrap();
    assert_close(
        "add",
        &down(&dev, &out),
        &(0..n).map(|i| a[i] + b[i]).collect::<Vec<_>>(),
        1e-7,
        0.0,
    );
    dev.binary(true, &da, &db, &mut out, n).unwrap();
    assert_close(
        "mul",
        &down(&dev, &out),
        &(0..n).map(|i| a[i] * b[i]).collect::<Vec<_>>(),
        1e-7,
        0.0,
    );
    dev.axpby(0.5, &da, -2.0, &db, &mut out, n).unwrap();
    assert_close(
        "axpby",
        &down(&dev, &out),
        &(0..n).map(|i| 0.5 * a[i] - 2.0 * b[i]).collect::<Vec<_>>(),
        1e-6,
        1e-7,
    );
    dev.fill(&mut out, 3.5, n).unwrap();
    assert_close("fill", &down(&dev, &out), &vec![3.5; n], 0.0, 0.0);
    let mut s = poisoned::<f32>(&dev, 1);
    dev.sum(&da, &mut s, n, false).unwrap();
    let total: f64 = a.iter().sum();
    let abs: f64 = a.iter().map(|v| v.abs()).sum();
    assert!((down(&dev, &s)[0] - total).abs() <= 1e-6 * abs, "sum");
    dev.sum(&da, &mut s, n, true).unwrap();
    assert!(
        (down(&dev, &s)[0] - total / n as f64).abs() <= 1e-6 * abs / n as f64 + 1e-9,
        "mean"
    );
}

#[test]
fn pooling_and_upsampling_match() {
    let Some(dev) = device("pool parity") else {
        return;
    };
    let mut rng = rng("pool parity");
    // ResNet stem pool: k3 s2 p1, odd size.
    let (n, c, h, w) = (2, 5, 37, 51);
    let x = normal(&mut rng, n * c * h * w);
    let dx_in = dev.upload(&f32s(&x)).unwrap();
    let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let mut y = poisoned::<f32>(&dev, n * c * oh * ow);
    let mut idx = dev.upload_raw(&vec![-7i32; n * c * oh * ow]).unwrap();
    dev.max_pool2d(&dx_in, [n, c, h, w], 3, 2, 1, &mut y, &mut idx)
        .unwrap();
    let mut want_y = vec![0.0; n * c * oh * ow];
    let mut want_i = vec![0i32; n * c * oh * ow];
    for pl in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let mut best = (f64::NEG_INFINITY, 0i32);
                for di in 0..3 {
                    for dj in 0..3 {
                        let (hh, ww) = ((2 * i + di) as isize - 1, (2 * j + dj) as isize - 1);
                        if hh < 0 || ww < 0 || hh >= h as isize || ww >= w as isize {
                            continue;
                        }
                        let v = x[pl * h * w + hh as usize * w + ww as usize];
                        if v > best.0 {
                            best = (v, (hh as usize * w + ww as usize) as i32);
                        }
                    }
                }
                want_y[pl * oh * ow + i * ow + j] = best.0;
                want_i[pl * oh * ow + i * ow + j] = best.1;
            }
        }
    }
    assert_close("maxpool2d_fwd", &down(&dev, &y), &want_y, 0.0, 0.0);
    dev.synchronize().unwrap();
    assert_eq!(
        dev.stream().clone_dtoh(&idx).unwrap(),
        want_i,
        "maxpool2d_fwd indices"
    );
    let dy = normal(&mut rng, n * c * oh * ow);
    let ddy = dev.upload(&f32s(&dy)).unwrap();
    let mut dx = poisoned::<f32>(&dev, n * c * h * w);
    dev.max_pool2d_bwd(&ddy, &idx, [n, c, h, w], 3, 2, 1, &mut dx)
        .unwrap();
    let mut want = vec![0.0; n * c * h * w];
    for (o, &i) in want_i.iter().enumerate() {
        want[(o / (oh * ow)) * h * w + i as usize] += dy[o];
    }
    assert_close("maxpool2d_bwd", &down(&dev, &dx), &want, 1e-6, 1e-7);
    // Nearest upsampling: x2 and the FPN case of a non-integer ratio (84 -> 167).
    for (ih, iw, oh, ow) in [(25, 42, 50, 84), (50, 84, 100, 167), (7, 9, 5, 4)] {
        let (n, c) = (2, 3);
        let x = normal(&mut rng, n * c * ih * iw);
        let dxs = dev.upload(&f32s(&x)).unwrap();
        let mut y = poisoned::<f32>(&dev, n * c * oh * ow);
        dev.upsample_nearest2d(&dxs, [n, c, ih, iw], (oh, ow), &mut y, false)
            .unwrap();
        let (sh, sw) = (ih as f32 / oh as f32, iw as f32 / ow as f32);
        let src = |o: usize, s: f32, len: usize| ((o as f32 * s).floor() as usize).min(len - 1);
        let mut want = vec![0.0; n * c * oh * ow];
        let dy = normal(&mut rng, n * c * oh * ow);
        let mut want_dx = vec![0.0; n * c * ih * iw];
        for pl in 0..n * c {
            for i in 0..oh {
                for j in 0..ow {
                    let s = pl * ih * iw + src(i, sh, ih) * iw + src(j, sw, iw);
                    want[pl * oh * ow + i * ow + j] = x[s];
                    want_dx[s] += dy[pl * oh * ow + i * ow + j];
                }
            }
        }
        assert_close("upsample_nearest2d_fwd", &down(&dev, &y), &want, 0.0, 0.0);
        let ddy = dev.upload(&f32s(&dy)).unwrap();
        let mut dx = poisoned::<f32>(&dev, n * c * ih * iw);
        dev.upsample_nearest2d(&ddy, [n, c, ih, iw], (oh, ow), &mut dx, true)
            .unwrap();
        assert_close(
            "upsample_nearest2d_bwd",
            &down(&dev, &dx),
            &want_dx,
            1e-6,
            1e-7,
        );
    }
}

/// f64 normalisation over index sets: (y, dx, dgamma, dbeta) for groups of element indices.
fn norm_ref(
    x: &[f64],
    dy: &[f64],
    groups: &[Vec<usize>],
    chan: impl Fn(usize) -> usize,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut dg, mut db) = (vec![0.0; gamma.len()], vec![0.0; gamma.len()]);
    for g in groups {
        let m = g.len() as f64;
        let mean = g.iter().map(|&i| x[i]).sum::<f64>() / m;
        let var = g.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / m;
        let inv = 1.0 / (var + eps).sqrt();
        let gx: Vec<f64> = g.iter().map(|&i| dy[i] * gamma[chan(i)]).collect();
        let mg = gx.iter().sum::<f64>() / m;
        let mgx = g
            .iter()
            .zip(&gx)
            .map(|(&i, v)| v * (x[i] - mean) * inv)
            .sum::<f64>()
            / m;
        for (k, &i) in g.iter().enumerate() {
            let xh = (x[i] - mean) * inv;
            y[i] = xh * gamma[chan(i)] + beta[chan(i)];
            dx[i] = inv * (gx[k] - mg - xh * mgx);
            dg[chan(i)] += dy[i] * xh;
            db[chan(i)] += dy[i];
        }
    }
    (y, dx, dg, db)
}

#[test]
fn batch_and_group_norm_match() {
    let Some(dev) = device("norm parity") else {
        return;
    };
    let mut rng = rng("norm parity");
    let (n, c, h, w) = (3, 16, 13, 11);
    let total = n * c * h * w;
    let x: Vec<f64> = normal(&mut rng, total)
        .iter()
        .map(|v| 3.0 * v + 1.0)
        .collect();
    let x: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
    let dy = normal(&mut rng, total);
    let gamma = normal(&mut rng, c);
    let beta = normal(&mut rng, c);
    let (dxs, ddy) = (
        dev.upload(&f32s(&x)).unwrap(),
        dev.upload(&f32s(&dy)).unwrap(),
    );
    let (dg_in, db_in) = (
        dev.upload(&f32s(&gamma)).unwrap(),
        dev.upload(&f32s(&beta)).unwrap(),
    );
    let hw = h * w;
    // Batch norm: groups = channels across the batch.
    let groups: Vec<Vec<usize>> = (0..c)
        .map(|ch| {
            (0..n)
                .flat_map(|b| (0..hw).map(move |s| (b * c + ch) * hw + s))
                .collect()
        })
        .collect();
    let (wy, wdx, wdg, wdb) = norm_ref(&x, &dy, &groups, |i| (i / hw) % c, &gamma, &beta, 1e-5);
    let mut y = poisoned::<f32>(&dev, total);
    let mut rm = dev.upload(&vec![0.0f32; c]).unwrap();
    let mut rv = dev.upload(&vec![1.0f32; c]).unwrap();
    let st = dev
        .batch_norm_train(
            &dxs,
            [n, c, h, w],
            &dg_in,
            &db_in,
            Some((&mut rm, &mut rv)),
            1e-5,
            0.1,
            &mut y,
        )
        .unwrap();
    assert_close("batchnorm_fwd", &down(&dev, &y), &wy, 1e-5, 1e-5);
    let m = (n * hw) as f64;
    let want_rm: Vec<f64> = groups
        .iter()
        .map(|g| 0.1 * g.iter().map(|&i| x[i]).sum::<f64>() / m)
        .collect();
    let want_rv: Vec<f64> = groups
        .iter()
        .zip(&want_rm)
        .map(|(g, rm)| {
            let mean = rm / 0.1;
            0.9 + 0.1 * g.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / (m - 1.0)
        })
        .collect();
    assert_close(
        "batchnorm running_mean",
        &down(&dev, &rm),
        &want_rm,
        1e-5,
        1e-6,
    );
    assert_close(
        "batchnorm running_var",
        &down(&dev, &rv),
        &want_rv,
        1e-5,
        1e-6,
    );
    let (mut dx, mut dg, mut db) = (
        poisoned::<f32>(&dev, total),
        poisoned::<f32>(&dev, c),
        poisoned::<f32>(&dev, c),
    );
    dev.batch_norm_bwd(
        &ddy,
        &dxs,
        [n, c, h, w],
        &st,
        &dg_in,
        &mut dx,
        &mut dg,
        &mut db,
    )
    .unwrap();
    assert_close("batchnorm_bwd dx", &down(&dev, &dx), &wdx, 1e-4, 1e-5);
    assert_close("batchnorm_bwd dgamma", &down(&dev, &dg), &wdg, 1e-4, 1e-5);
    assert_close("batchnorm_bwd dbeta", &down(&dev, &db), &wdb, 1e-4, 1e-5);
    // Group norm, 4 groups.
    let gcount = 4;
    let len = c / gcount * hw;
    let groups: Vec<Vec<usize>> = (0..n * gcount)
        .map(|g| (g * len..(g + 1) * len).collect())
        .collect();
    let (wy, wdx, wdg, wdb) = norm_ref(&x, &dy, &groups, |i| (i / hw) % c, &gamma, &beta, 1e-5);
    let st = dev
        .group_norm(&dxs, [n, c, h, w], gcount, &dg_in, &db_in, 1e-5, &mut y)
        .unwrap();
    assert_close("groupnorm_fwd", &down(&dev, &y), &wy, 1e-5, 1e-5);
    let (mut dx, mut dg, mut db) = (
        poisoned::<f32>(&dev, total),
        poisoned::<f32>(&dev, c),
        poisoned::<f32>(&dev, c),
    );
    dev.group_norm_bwd(
        &ddy,
        &dxs,
        [n, c, h, w],
        gcount,
        &st,
        &dg_in,
        &mut dx,
        &mut dg,
        &mut db,
    )
    .unwrap();
    assert_close("groupnorm_bwd dx", &down(&dev, &dx), &wdx, 1e-4, 1e-5);
    assert_close("groupnorm dgamma", &down(&dev, &dg), &wdg, 1e-4, 1e-5);
    assert_close("groupnorm dbeta", &down(&dev, &db), &wdb, 1e-4, 1e-5);
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
    let mut bufs: Vec<CudaSlice<f32>> = lens.iter().map(|&l| poisoned::<f32>(&dev, l)).collect();
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
    let mut out = poisoned::<f32>(&dev, 1);
    dev.grad_norm(&grefs, &mut out).unwrap();
    let norm = g.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    assert_close("grad_norm", &down(&dev, &out), &[norm], 1e-5, 0.0);
    // Unscale: finite grads stay finite and scale; one inf sets the flag.
    let mut dg2 = up(&g);
    let mut flag = poisoned::<f32>(&dev, 1);
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
    let blas = match Blas::new(&dev) {
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
    use mmrun::backend::cuda::conv::Conv2d;
    use mmrun::ir::op::Conv2dAttrs;
    let Some(dev) = device("conv parity") else {
        return;
    };
    let blas = Blas::new(&dev).expect("cuBLAS must load on a GPU machine");
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
        let mut y = poisoned::<f32>(&dev, ny);
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
        let mut dx = poisoned::<f32>(&dev, nx);
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
        let mut dw = poisoned::<f32>(&dev, nw);
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
