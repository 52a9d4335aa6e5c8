//! The optimizer update (`Backend::update`) on each backend against the CPU's rules
//! (`backend::cpu::optim`, itself checked against torch.optim in `engine::optim`): SGD plain,
//! with momentum, dampening and nesterov, and AdamW, over several parameters of random
//! lengths with their own learning rates, decays and gradient scales (clipping), three steps from fresh state (state
//! poisoned with NaN, which a fresh update must ignore). Random lengths each run, seed printed.

use mmrun::backend::cpu::optim;
use mmrun::backend::{Backend, BackendError, ParamHyper, ParamUpdate, UpdateRule};
use mmrun::ir::{DType, HostTensor};
use mmrun::util::rng::Rng;

use super::harness::{Suite, assert_close, rng};

const RULES: [UpdateRule; 5] = [
    UpdateRule::Sgd {
        momentum: 0.0,
        dampening: 0.0,
        nesterov: false,
    },
    UpdateRule::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
    },
    UpdateRule::Sgd {
        momentum: 0.8,
        dampening: 0.25,
        nesterov: false,
    },
    UpdateRule::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
    },
    UpdateRule::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    },
];

fn values(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| rng.range_f64(lo, hi) as f32).collect()
}

fn up<B: Backend>(be: &B, v: &[f32]) -> B::Buffer {
    let t = HostTensor::f32(vec![v.len()], v.to_vec()).expect("length");
    be.upload(&t).expect("upload")
}

fn down<B: Backend>(be: &B, b: &B::Buffer, n: usize) -> Vec<f64> {
    let t = be.download(b, DType::F32, &[n]).expect("download");
    t.as_f32().expect("f32").iter().map(|&x| x as f64).collect()
}

/// One parameter on the host (the reference) and on the backend.
struct Case<Buf> {
    value: Vec<f32>,
    state: Vec<Vec<f32>>,
    lr: f64,
    wd: f64,
    grad_scale: f64,
    dev_value: Buf,
    dev_state: Vec<Buf>,
}

pub(super) fn update_matches_the_cpu_rules<B: Suite>(be: &B) {
    let mut rng = rng("update_matches_the_cpu_rules");
    for rule in RULES {
        let k = rule.state_buffers();
        let mut cases: Vec<Case<B::Buffer>> = (0..4)
            .map(|i| {
                let n = 1 + rng.below(if i == 0 { 5000 } else { 300 }) as usize;
                let value = values(&mut rng, n, -2.0, 2.0);
                let poison = vec![f32::NAN; n];
                Case {
                    dev_value: up(be, &value),
                    dev_state: (0..k).map(|_| up(be, &poison)).collect(),
                    state: vec![vec![0.0; n]; k],
                    value,
                    lr: [0.1, 0.02, 0.2, 0.0][i],
                    wd: [1e-4, 0.0, 0.05, 0.01][i],
                    grad_scale: [1.0, 0.37, 1.0, 0.8][i],
                }
            })
            .collect();
        for step in 1..=3u64 {
            let grads: Vec<Vec<f32>> = (cases.iter())
                .map(|c| values(&mut rng, c.value.len(), -1.5, 1.5))
                .collect();
            let dev_grads: Vec<B::Buffer> = grads.iter().map(|g| up(be, g)).collect();
            let hyper = |c: &Case<B::Buffer>| ParamHyper {
                lr: c.lr,
                weight_decay: c.wd,
                step,
                fresh: step == 1,
                grad_scale: c.grad_scale,
            };
            for (c, g) in cases.iter_mut().zip(&grads) {
                let h = hyper(c);
                let mut state: Vec<&mut [f32]> = c.state.iter_mut().map(|s| &mut s[..]).collect();
                optim::update(&rule, &mut c.value, g, &mut state, h);
            }
            let mut updates: Vec<ParamUpdate<'_, B::Buffer>> = cases
                .iter_mut()
                .zip(&dev_grads)
                .map(|(c, g)| ParamUpdate {
                    len: c.value.len(),
                    hyper: ParamHyper {
                        lr: c.lr,
                        weight_decay: c.wd,
                        step,
                        fresh: step == 1,
                        grad_scale: c.grad_scale,
                    },
                    value: &mut c.dev_value,
                    grad: g,
                    state: &mut c.dev_state,
                })
                .collect();
            be.update(&rule, &mut updates).expect("update");
            be.sync("update");
            for (i, c) in cases.iter().enumerate() {
                let n = c.value.len();
                let what = format!("{rule:?} step {step} parameter {i} ({n} values)");
                let want: Vec<f64> = c.value.iter().map(|&x| x as f64).collect();
                // A few ulp: devices may fuse multiply-adds, and WGSL's division and square
                // root are within 2.5 ulp, not correctly rounded.
                assert_close(&what, &down(be, &c.dev_value, n), &want, 4e-6, 1e-6);
                for (s, (dev, host)) in c.dev_state.iter().zip(&c.state).enumerate() {
                    let want: Vec<f64> = host.iter().map(|&x| x as f64).collect();
                    assert_close(
                        &format!("{what}, state {s}"),
                        &down(be, dev, n),
                        &want,
                        4e-6,
                        1e-6,
                    );
                }
            }
        }
    }
}

fn update_refuses_buffers_that_do_not_fit<B: Suite>(be: &B) {
    let rule = RULES[4];
    let v = [0.5f32; 8];
    let mut value = up(be, &v);
    let grad = up(be, &v[..4]);
    let mut state = vec![up(be, &v), up(be, &v)];
    let hyper = ParamHyper {
        lr: 0.1,
        weight_decay: 0.0,
        step: 1,
        fresh: true,
        grad_scale: 1.0,
    };
    let mut bad = [ParamUpdate {
        len: 8,
        value: &mut value,
        grad: &grad,
        state: &mut state,
        hyper,
    }];
    let e = be.update(&rule, &mut bad).expect_err("a short gradient");
    assert!(matches!(e, BackendError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("gradient holds 4"), "{e}");
    let mut one = vec![up(be, &v)];
    let mut bad = [ParamUpdate {
        len: 8,
        value: &mut value,
        grad: &grad,
        state: &mut one,
        hyper,
    }];
    let e = be
        .update(&rule, &mut bad)
        .expect_err("one state buffer for AdamW");
    assert!(e.to_string().contains("2 state buffers needed"), "{e}");
    be.sync("refused update");
    assert_eq!(down(be, &value, 8), vec![0.5; 8], "a refused update wrote");
}

super::suite!(
    update_matches_the_cpu_rules,
    update_refuses_buffers_that_do_not_fit
);
