//! The CUDA instances of the whole-train-step checks (`tests/it/backend/train_step.rs`: small
//! RetinaNet and FCOS steps against the CPU backend, the runner for 3 iterations on
//! `--device cuda:0`), and the device-resident SGD loop of `mmrun bench cuda --retinanet`
//! checked against host SGD. Without a device every test but the error-message one prints why
//! it skipped.

use crate::backend::harness::{assert_close, cuda as backend, rng};
use crate::backend::train_step::{
    HW, fcos_parity, feeds, kept_steps_match_the_host, retinanet_parity, train_three,
};
use crate::model::detector::{TINY, detector};
use mmrun::backend::Device;
use mmrun::backend::cuda::optim::Sgd;
use mmrun::backend::cuda::{CudaBackend, probe};
use mmrun::engine::optim::OptimizerConfig;
use mmrun::engine::resident::Resident;
use mmrun::engine::{Executor, ParamSet};
use mmrun::ir::{DType, HostTensor};
use mmrun::model::net::GraphMode;
use std::collections::BTreeMap;

#[test]
fn retinanet_train_step_matches_cpu() {
    let test = "retinanet_train_step_matches_cpu";
    if let Some(be) = backend(test) {
        retinanet_parity(&be, test);
    }
}

#[test]
fn fcos_train_step_matches_cpu() {
    let test = "fcos_train_step_matches_cpu";
    if let Some(be) = backend(test) {
        fcos_parity(&be, test);
    }
}

#[test]
fn kept_steps_match_host_adamw() {
    let test = "kept_steps_match_host_adamw";
    if let Some(be) = backend(test) {
        kept_steps_match_the_host(&be, test);
    }
}

/// Two device-resident SGD steps (the bench's loop) against the same two steps done with
/// host gradients and torch's SGD formula on the host.
#[test]
fn resident_sgd_matches_host_sgd() {
    let test = "resident_sgd_matches_host_sgd";
    let Some(be) = backend(test) else { return };
    let d = detector("retinanet_r50_fpn_1x_coco.recipe", TINY);
    let mut rng = rng(test);
    let feeds = feeds(&d, &mut rng);
    let built = d.build(GraphMode::Train, 2, HW, DType::F32).unwrap();
    let init = ParamSet::init(&built.graph, 5);
    let hp = Sgd::MMDET;
    // Host: gradients from the CUDA executor's plain path, update in f64.
    let mut host = init.clone();
    let mut ex = Executor::new(built.graph.clone(), be.clone());
    let mut bufs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut host_losses = Vec::new();
    for _ in 0..2 {
        let mut out = ex.run(&host, &feeds).unwrap();
        host_losses.push(out.scalar("loss").unwrap());
        host.take_buffers(&mut out).unwrap();
        for (name, _) in &built.graph.grads {
            let g = out.grads[name].to_f64_vec();
            let p = host.get(name).unwrap();
            let shape = p.shape().to_vec();
            let mut v = p.value.to_f64_vec();
            let first = !bufs.contains_key(name);
            let b = bufs
                .entry(name.clone())
                .or_insert_with(|| vec![0.0; v.len()]);
            let (lr, m, wd) = (hp.lr as f64, hp.momentum as f64, hp.weight_decay as f64);
            for i in 0..v.len() {
                let gi = g[i] + wd * v[i];
                b[i] = if first { gi } else { m * b[i] + gi };
                v[i] -= lr * b[i];
            }
            host.set(name, &HostTensor::f64(shape, v).unwrap().cast(DType::F32))
                .unwrap();
        }
    }
    let mut store = init.clone();
    let sgd = OptimizerConfig::sgd(hp.lr.into(), hp.momentum.into(), hp.weight_decay.into());
    let (mut tr, _) = Resident::new(built.graph.clone(), be.clone(), &store, sgd).unwrap();
    let mut dev_losses = Vec::new();
    for _ in 0..2 {
        let (out, _) = tr.step(&mut store, &feeds).unwrap();
        dev_losses.push(out.scalar("loss").unwrap());
    }
    tr.download_params(&mut store).unwrap();
    assert_close(test, &dev_losses, &host_losses, 1e-5, 0.0);
    // Each parameter against max(its own max |value|, PARAM_FLOOR × the network's largest):
    // a BN bias that starts at 0 and moves by two near-cancelled gradients holds 5e-8 of
    // noise, whose last bits differ between the two gradient paths (seen on an H200).
    let floor = built
        .graph
        .grads
        .iter()
        .flat_map(|(name, _)| host.get(name).unwrap().value.to_f64_vec())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        * PARAM_FLOOR;
    for (name, _) in &built.graph.grads {
        let w = host.get(name).unwrap().value.to_f64_vec();
        let g = store.get(name).unwrap().value.to_f64_vec();
        let scale = w.iter().fold(floor, |m, v| m.max(v.abs()));
        for (i, (x, y)) in g.iter().zip(&w).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6 * scale + 1e-5 * y.abs(),
                "{test}: {name}[{i}]: got {x}, want {y} (scale {scale})"
            );
        }
    }
}

/// The floor of the per-parameter scale in `resident_sgd_matches_host_sgd`, relative to the
/// network's largest parameter.
const PARAM_FLOOR: f64 = 1e-3;

/// `--device cuda:0` without a usable device is a clear error before any work; with one, it
/// opens.
#[test]
fn device_cuda_opens_or_says_why() {
    match (probe(), Device::open("cuda:0").map_err(|e| e.to_string())) {
        (Ok(n), Ok(d)) if n > 0 => assert_eq!(d.name(), "cuda"),
        (Ok(0), Err(e)) => assert!(e.contains("no CUDA device 0"), "{e}"),
        (Err(_), Err(e)) => assert!(e.contains("device `cuda:0`") && e.contains("CUDA"), "{e}"),
        (p, d) => panic!("probe {p:?} but open {:?}", d.map(|d| d.name())),
    }
    let e = Device::open("cuda:zero").unwrap_err().to_string();
    assert!(e.contains("unknown device `cuda:zero`"), "{e}");
}

/// The quickstart (shrunk) trains 3 iterations through the real runner on the GPU.
#[test]
fn runner_trains_three_iterations_on_cuda() {
    let test = "runner_trains_three_iterations_on_cuda";
    let Some(be): Option<CudaBackend> = backend(test) else {
        return;
    };
    train_three(test, Device::Cuda(be));
}
