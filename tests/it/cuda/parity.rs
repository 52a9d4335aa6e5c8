//! CPU backend (f64, `backend::cpu::loss` through `cpu_ref.rs`) vs CUDA kernels. Runs where a device is present (`scripts/gpu-check
//! run`); elsewhere every test prints why it skipped. Inputs are fresh random values each run
//! (seed printed; `MMRUN_SEED` replays one), every output buffer is poisoned with NaN before
//! its launch, and tolerances are per dtype (the reference sees the dtype-rounded inputs).
//! With `MMRUN_REQUIRE_GPU` set (as `scripts/gpu-check run` does), a missing device fails.

use cudarc::driver::CudaSlice;
use half::{bf16, f16};
use mmrun::backend::cuda::loss::Reduction;
use mmrun::backend::cuda::optim::{AdamW, Sgd};
use mmrun::backend::cuda::{CudaDevice, KernelFloat};
use mmrun::util::rng::Rng;

use super::cpu_ref as reference;
use super::ir_harness::{assert_close, open_or_skip, rng};
use super::reference::{LossOut, cases};

fn device(test: &str) -> Option<CudaDevice> {
    open_or_skip(test, CudaDevice::open)
}

/// Per-dtype tolerances: (rtol, atol relative to the largest reference value).
fn tol<T: KernelFloat>() -> (f64, f64) {
    match T::DTYPE {
        mmrun::backend::cuda::DType::F32 => (2e-4, 2e-5),
        mmrun::backend::cuda::DType::F16 => (2e-3, 1e-3),
        mmrun::backend::cuda::DType::BF16 => (1.6e-2, 8e-3),
    }
}

fn quantize<T: KernelFloat>(v: &[f64]) -> (Vec<T>, Vec<f64>) {
    let q: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
    let back = q.iter().map(|x| x.to_f64()).collect();
    (q, back)
}

fn poisoned<T: KernelFloat>(dev: &CudaDevice, n: usize) -> CudaSlice<T> {
    dev.upload(&vec![T::from_f64(f64::NAN); n]).expect("upload")
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn down<T: KernelFloat>(dev: &CudaDevice, s: &CudaSlice<T>) -> Vec<f64> {
    dev.synchronize().expect("kernel fault");
    let host: Vec<T> = dev.stream().clone_dtoh(s).expect("download");
    host.iter().map(|x| x.to_f64()).collect()
}

fn check_loss<T: KernelFloat>(
    name: &str,
    dev: &CudaDevice,
    loss: &CudaSlice<f32>,
    grad: &CudaSlice<T>,
    want: &LossOut,
) {
    let (rtol, atol) = tol::<T>();
    let got_loss = down(dev, loss)[0];
    assert_close(
        &format!("{name} {:?} loss", T::DTYPE),
        &[got_loss],
        &[want.loss],
        2e-4,
        0.0,
    );
    let got = down(dev, grad);
    assert_close(
        &format!("{name} {:?} grad", T::DTYPE),
        &got[..want.grad.len()],
        &want.grad,
        rtol,
        atol,
    );
}

fn losses<T: KernelFloat>(dev: &CudaDevice, rng: &mut Rng) {
    let up32 = |v: &[f64]| dev.upload(&f32s(v)).expect("upload");
    // Sigmoid focal, fused, with and without weights, gamma 2 (fast path) and 1.5 (general).
    for (gamma, weighted) in [(2.0, true), (1.5, false)] {
        let rows = 1000 + rng.below(3000) as usize;
        let c = cases::cls(rng, rows, 80, None);
        let (q, xq) = quantize::<T>(&c.logits);
        let x = dev.upload(&q).expect("upload");
        let labels = dev.upload_raw(&c.labels).expect("upload");
        let w = up32(&c.row_w);
        let red = Reduction {
            mean: true,
            avg_factor: Some(37.5),
            loss_weight: 1.0,
        };
        let scale = red.scale(0).expect("scale");
        let mut grad = poisoned::<T>(dev, xq.len());
        let mut loss = poisoned::<f32>(dev, 1);
        let wq: Vec<f64> = c.row_w.iter().map(|&v| v as f32 as f64).collect();
        dev.focal_loss(
            &x,
            &labels,
            weighted.then_some(&w),
            Some(&mut grad),
            &mut loss,
            (c.n_rows, c.n_cls),
            gamma as f32,
            0.25,
            red,
        )
        .expect("focal launch");
        let want = reference::focal(
            &xq,
            &c.labels,
            weighted.then_some(&wq[..]),
            c.n_cls,
            gamma,
            0.25,
            scale as f32 as f64,
        );
        check_loss("focal_fwdbwd", dev, &loss, &grad, &want);
        // The forward-only entry agrees with the fused one.
        let mut loss2 = poisoned::<f32>(dev, 1);
        dev.focal_loss(
            &x,
            &labels,
            weighted.then_some(&w),
            None,
            &mut loss2,
            (c.n_rows, c.n_cls),
            gamma as f32,
            0.25,
            red,
        )
        .expect("focal fwd launch");
        assert_close(
            "focal_fwd loss",
            &down(dev, &loss2),
            &[want.loss],
            2e-4,
            0.0,
        );
    }
    // Cross-entropy with ignored rows.
    let c = cases::cls(rng, 2000, 81, Some(-100));
    let (q, xq) = quantize::<T>(&c.logits);
    let x = dev.upload(&q).expect("upload");
    let labels: Vec<i32> = c
        .labels
        .iter()
        .map(|&l| if l == 81 { 80 } else { l })
        .collect();
    let lab = dev.upload_raw(&labels).expect("upload");
    let w = up32(&c.row_w);
    let wq: Vec<f64> = c.row_w.iter().map(|&v| v as f32 as f64).collect();
    let mut grad = poisoned::<T>(dev, xq.len());
    let mut loss = poisoned::<f32>(dev, 1);
    dev.cross_entropy(
        &x,
        &lab,
        Some(&w),
        &mut grad,
        &mut loss,
        (c.n_rows, c.n_cls),
        -100,
        Reduction::mean(),
    )
    .expect("ce launch");
    let want = reference::cross_entropy(
        &xq,
        &labels,
        Some(&wq),
        c.n_cls,
        -100,
        (1.0f32 / c.n_rows as f32) as f64,
    );
    check_loss("ce_fwdbwd", dev, &loss, &grad, &want);
    // Pointwise losses.
    let n = 10_000 + rng.below(50_000) as usize;
    let p = cases::pointwise(rng, n, true);
    let (q, xq) = quantize::<T>(&p.x);
    let (x, t, w) = (dev.upload(&q).expect("upload"), up32(&p.t), up32(&p.w));
    let tq: Vec<f64> = p.t.iter().map(|&v| v as f32 as f64).collect();
    let wq: Vec<f64> = p.w.iter().map(|&v| v as f32 as f64).collect();
    let scale = (1.0f32 / n as f32) as f64;
    let mut grad = poisoned::<T>(dev, n);
    let mut loss = poisoned::<f32>(dev, 1);
    dev.bce_with_logits(&x, &t, Some(&w), &mut grad, &mut loss, n, Reduction::mean())
        .expect("bce launch");
    check_loss(
        "bce_fwdbwd",
        dev,
        &loss,
        &grad,
        &reference::bce(&xq, &tq, Some(&wq), scale),
    );
    let p = cases::pointwise(rng, n, false);
    let (q, xq) = quantize::<T>(&p.x);
    // Targets at the dtype's values, so exact ties (sign(0)) survive the rounding.
    let tq: Vec<f64> = p.t.iter().map(|&v| T::from_f64(v).to_f64()).collect();
    let (x, t, w) = (dev.upload(&q).expect("upload"), up32(&tq), up32(&p.w));
    let wq: Vec<f64> = p.w.iter().map(|&v| v as f32 as f64).collect();
    let mut grad = poisoned::<T>(dev, n);
    let mut loss = poisoned::<f32>(dev, 1);
    dev.l1_loss(&x, &t, Some(&w), &mut grad, &mut loss, n, Reduction::mean())
        .expect("l1 launch");
    check_loss(
        "l1_fwdbwd",
        dev,
        &loss,
        &grad,
        &reference::l1(&xq, &tq, Some(&wq), scale),
    );
    let mut grad = poisoned::<T>(dev, n);
    let mut loss = poisoned::<f32>(dev, 1);
    dev.smooth_l1_loss(
        &x,
        &t,
        None,
        &mut grad,
        &mut loss,
        n,
        1.0 / 9.0,
        Reduction::sum(),
    )
    .expect("smooth l1 launch");
    check_loss(
        "smooth_l1_fwdbwd",
        dev,
        &loss,
        &grad,
        &reference::smooth_l1(&xq, &tq, None, (1.0f32 / 9.0) as f64, 1.0),
    );
    // GIoU against the mmdetection formula (the CPU backend places eps as torchvision).
    let nb = 5000 + rng.below(20_000) as usize;
    let b = cases::boxes(rng, nb);
    let (q, xq) = quantize::<T>(&b.x);
    let tq: Vec<f64> = b.t.iter().map(|&v| v as f32 as f64).collect();
    let (x, t, w) = (dev.upload(&q).expect("upload"), up32(&tq), up32(&b.w));
    let wq: Vec<f64> = b.w.iter().map(|&v| v as f32 as f64).collect();
    let mut grad = poisoned::<T>(dev, 4 * nb);
    let mut loss = poisoned::<f32>(dev, 1);
    let red = Reduction {
        mean: true,
        avg_factor: None,
        loss_weight: 2.0,
    };
    dev.giou_loss(&x, &t, Some(&w), &mut grad, &mut loss, nb, 1e-6, red)
        .expect("giou launch");
    let scale = red.scale(nb).expect("scale") as f32 as f64;
    check_loss(
        "giou_fwdbwd",
        dev,
        &loss,
        &grad,
        &super::reference::giou(&xq, &tq, Some(&wq), (1e-6f32) as f64, scale),
    );
}

#[test]
fn loss_kernels_match_the_f64_reference_f32() {
    let Some(dev) = device("loss parity f32") else {
        return;
    };
    losses::<f32>(&dev, &mut rng("loss parity f32"));
}

#[test]
fn loss_kernels_match_the_f64_reference_f16() {
    let Some(dev) = device("loss parity f16") else {
        return;
    };
    losses::<f16>(&dev, &mut rng("loss parity f16"));
}

#[test]
fn loss_kernels_match_the_f64_reference_bf16() {
    let Some(dev) = device("loss parity bf16") else {
        return;
    };
    losses::<bf16>(&dev, &mut rng("loss parity bf16"));
}

#[test]
fn loss_reduction_is_bit_identical_across_runs() {
    let Some(dev) = device("loss determinism") else {
        return;
    };
    let c = cases::cls(&mut rng("loss determinism"), 50_000, 80, None);
    let x = dev.upload(&f32s(&c.logits)).expect("upload");
    let labels = dev.upload_raw(&c.labels).expect("upload");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut grad = poisoned::<f32>(&dev, c.logits.len());
        let mut loss = poisoned::<f32>(&dev, 1);
        dev.focal_loss(
            &x,
            &labels,
            None,
            Some(&mut grad),
            &mut loss,
            (c.n_rows, c.n_cls),
            2.0,
            0.25,
            Reduction::mean(),
        )
        .expect("focal launch");
        runs.push(down(&dev, &loss)[0].to_bits());
    }
    assert!(
        runs.windows(2).all(|w| w[0] == w[1]),
        "loss bits differ: {runs:?}"
    );
}

#[path = "parity_ops.rs"]
mod ops;
