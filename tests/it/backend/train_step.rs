//! Whole train-step graphs on every device backend: small RetinaNet and FCOS (the canonical
//! recipes shrunk with `--set`, as `model::` tests do) run one step on the CPU backend (f32)
//! and on the backend under test; every loss term must agree within 1e-3 relative, every
//! gradient within a tolerance relative to its own max |value| (floored at the network's
//! gradient scale), every updated running statistic too. Then the real runner trains the
//! quickstart for 3 iterations on the device. The CUDA instances live in `tests/it/cuda`
//! (beside its device-only checks); the wgpu ones are here (lavapipe on CI). The tolerances
//! themselves are checked against the CPU's own f32-vs-f64 error.

use super::harness::{Suite, assert_close, rng};
use crate::model::detector::{TINY, detector};
use mmrun::backend::Device;
use mmrun::backend::cpu::CpuBackend;
use mmrun::data::synth::{SynthOptions, generate};
use mmrun::engine::detector::build_task_on;
use mmrun::engine::job::{ExecOptions, execute};
use mmrun::engine::{Executor, ParamSet};
use mmrun::ir::{DType, HostTensor};
use mmrun::model::assign::ImageGt;
use mmrun::model::net::{Detector, GraphMode};
use mmrun::model::target::PaddedShapes;
use mmrun::recipe::CheckOptions;
use mmrun::util::rng::Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Loss terms: 1e-3 relative (the brief's bound; f32 sums over thousands of priors).
pub(crate) const LOSS_RTOL: f64 = 1e-3;
/// Gradients: |cpu - cuda| <= GRAD_TOL * max|cpu| per tensor. Both sides are f32 through a
/// dozen layers with different summation orders (GEMM blocking, block reductions).
pub(crate) const GRAD_TOL: f64 = 1e-3;

pub(crate) const HW: (usize, usize) = (64, 96);

/// Gradients are compared per tensor against their own largest |value|, but never against less
/// than `GRAD_FLOOR` of the largest gradient in the network. Some gradients are mathematically
/// zero: a stem channel that its ReLU passes everywhere feeds only train-mode BNs downstream, so
/// its BN bias gradient is a cancelled sum (1e-18 in f64) and holds nothing but f32 rounding
/// (1e-10). Measured against itself that rounding looks like a 1e8 error (seen with 4-channel
/// stems, where all channels can be such); against the network's scale it is what it is.
const GRAD_FLOOR: f64 = 1e-4;

/// The floor of every per-tensor scale: `GRAD_FLOOR` of the largest reference gradient.
pub(crate) fn grad_floor(reference: &BTreeMap<String, HostTensor>) -> f64 {
    let largest = reference
        .values()
        .flat_map(|g| g.to_f64_vec())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    GRAD_FLOOR * largest
}

/// Largest |got - want| over max(max |want|, floor).
pub(crate) fn grad_deviation(got: &[f64], want: &[f64], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "gradient lengths");
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale.max(f64::MIN_POSITIVE)
}

/// Two random images with random boxes, and their feeds through the detector's target builder.
pub(crate) fn feeds(d: &Detector, rng: &mut Rng) -> BTreeMap<String, HostTensor> {
    let (h, w) = HW;
    let gts: Vec<ImageGt> = (0..2)
        .map(|_| {
            let bboxes: Vec<[f32; 4]> = (0..3)
                .map(|_| {
                    let (x, y) = (
                        rng.range_f64(0.0, 0.6 * w as f64),
                        rng.range_f64(0.0, 0.6 * h as f64),
                    );
                    let (bw, bh) = (rng.range_f64(12.0, 40.0), rng.range_f64(12.0, 40.0));
                    [
                        x as f32,
                        y as f32,
                        (x + bw).min(w as f64) as f32,
                        (y + bh).min(h as f64) as f32,
                    ]
                })
                .collect();
            ImageGt {
                labels: (0..bboxes.len()).map(|_| rng.below(3) as usize).collect(),
                bboxes,
                bboxes_ignore: vec![],
            }
        })
        .collect();
    let meta = PaddedShapes {
        img_shape: HW,
        pad_shape: HW,
        batch_shape: HW,
    };
    let tb = d.target_builder();
    let targets: Vec<_> = gts
        .iter()
        .map(|g| {
            tb.targets(g, &meta, &mut mmrun::util::rng::Rng::seed(0))
                .unwrap()
        })
        .collect();
    let img: Vec<f32> = (0..2 * 3 * h * w)
        .map(|_| rng.range_f64(-2.0, 2.0) as f32)
        .collect();
    let img = HostTensor::f32(vec![2, 3, h, w], img).unwrap();
    (d.train_feeds(img, &targets, HW, &d.loss_normalisers(&targets))).unwrap()
}

/// One train step on both backends from the same parameters; compares everything it writes.
#[cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]
fn parity<B: Suite + Clone + 'static>(
    be: &B,
    test: &str,
    recipe: &str,
    sets: &[&str],
    losses: &[&str],
) {
    let name = be.name();
    let d = detector(recipe, sets);
    let mut rng = rng(test);
    let feeds = feeds(&d, &mut rng);
    let built = d.build(GraphMode::Train, 2, HW, DType::F32).unwrap();
    let store = ParamSet::init(&built.graph, rng.below(1 << 30));
    let want = Executor::new(built.graph.clone(), CpuBackend)
        .run(&store, &feeds)
        .unwrap();
    let got = Executor::new(built.graph.clone(), be.clone())
        .run(&store, &feeds)
        .unwrap_or_else(|e| panic!("{test}: {name} run: {e}"));
    be.sync(test);
    for &k in losses {
        let (w, g) = (want.scalar(k).unwrap(), got.scalar(k).unwrap());
        eprintln!("{test}: {k}: cpu {w:.6}, {name} {g:.6}");
        assert!(w.is_finite() && w > 0.0, "{test}: {k} = {w} on the cpu");
        assert!(
            (g - w).abs() <= LOSS_RTOL * w.abs(),
            "{test}: {k}: {name} {g}, cpu {w}"
        );
    }
    let mut checked = 0;
    let floor = grad_floor(&want.grads);
    for (name, _) in &built.graph.grads {
        let w = want.grads[name].to_f64_vec();
        let g = (got.grads.get(name))
            .unwrap_or_else(|| panic!("{test}: no {} gradient of {name}", be.name()))
            .to_f64_vec();
        let dev = grad_deviation(&g, &w, floor);
        assert!(dev <= GRAD_TOL, "{test}: d{name}: deviation {dev:.2e}");
        checked += 1;
    }
    // Running statistics (BN in train mode) went through the device's batch statistics.
    assert!(
        want.buffers.keys().eq(got.buffers.keys()),
        "{test}: the same running statistics are updated"
    );
    for (name, w) in &want.buffers {
        let (w, g) = (w.to_f64_vec(), got.buffers[name].to_f64_vec());
        assert_close(&format!("{test}: {name}"), &g, &w, 1e-4, 1e-5);
    }
    assert!(checked > 20, "{test}: only {checked} gradients");
    eprintln!("{test}: {checked} gradients within {GRAD_TOL} of their max |value|");
}

/// The tiny FCOS: GIoU box loss, a GN head, centre sampling, centerness.
pub(crate) fn fcos_sets() -> Vec<&'static str> {
    let mut sets = TINY.to_vec();
    sets.push("model.bbox_head.loss_bbox := giou_loss { loss_weight = 1.0 }");
    sets.push("model.bbox_head.norm_cfg := group_norm { num_groups = 2 }");
    sets.push("model.bbox_head.center_sampling = true");
    sets.push("model.bbox_head.norm_on_bbox = true");
    sets
}

/// The same through `Device::Cpu`: checks this test's plumbing where there is no GPU.
#[test]
fn runner_trains_three_iterations_on_the_cpu_device() {
    train_three(
        "runner_trains_three_iterations_on_the_cpu_device",
        Device::Cpu,
    );
}

pub(crate) fn train_three(test: &str, device: Device) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shapes");
    let opts = SynthOptions {
        images: 12,
        seed: 3,
        size: Some((96, 96)),
        val_fraction: 0.25,
        ..Default::default()
    };
    generate(&root, &opts).unwrap();
    let small = "[load_image, load_annotations, resize { scale = [64, 64], keep_ratio = true }, \
        normalize { mean = [127.5, 127.5, 127.5], std = [64.0, 64.0, 64.0], to_rgb = true }, \
        pad { size_divisor = 32 }]";
    let r = root.display();
    let sets = vec![
        format!("data.train.pipeline={small}"),
        format!("data.val.pipeline={small}"),
        format!("data.train.ann_file=\"{r}/annotations/instances_train.json\""),
        format!("data.train.img_prefix=\"{r}/train/\""),
        format!("data.val.ann_file=\"{r}/annotations/instances_val.json\""),
        format!("data.val.img_prefix=\"{r}/val/\""),
        "data.samples_per_gpu=2".into(),
        "hooks.log.every=1 iters".into(),
    ];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/quickstart.recipe");
    let (_, plan) =
        mmrun::plan::load(&path, &sets, &CheckOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let (mut task, params) = build_task_on(
        &plan.model,
        &plan.data,
        plan.training.runtime.seed,
        plan.metric,
        device,
        plan.training.runtime.precision,
        None,
    )
    .unwrap();
    let work = dir.path().join("work");
    let opts = ExecOptions {
        work_dir: Some(work.clone()),
        resume: None,
        stop_at_iter: Some(3),
        ..Default::default()
    };
    execute(&plan.training, &plan.config, task.as_mut(), params, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let losses: Vec<f64> = std::fs::read_to_string(work.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["mode"] == "train")
        .map(|r| r["loss"].as_f64().unwrap_or(f64::NAN))
        .collect();
    eprintln!("{test}: losses {losses:?}");
    assert_eq!(losses.len(), 3, "one log record per iteration");
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
}

/// The tolerances above leave room: the CPU's own f32 step is compared with its f64 step (the
/// same parameters, rounded inputs) and must be within half of them. A GPU whose f32 error is
/// of the same kind (summation order, rounding) then passes; one that is wrong does not.
#[test]
fn cpu_f32_error_is_well_inside_the_tolerances() {
    let test = "cpu_f32_error_is_well_inside_the_tolerances";
    let mut rng = rng(test);
    let fcos = fcos_sets();
    let nets: [(&str, &[&str], &[&str]); 2] = [
        (
            "retinanet_r50_fpn_1x_coco.recipe",
            TINY,
            &["loss_cls", "loss_bbox"],
        ),
        (
            "fcos_r50_fpn_gn-head_1x_coco.recipe",
            &fcos,
            &["loss_cls", "loss_bbox", "loss_centerness"],
        ),
    ];
    for (recipe, sets, losses) in nets {
        let d = detector(recipe, sets);
        let feeds = feeds(&d, &mut rng);
        let g32 = d.build(GraphMode::Train, 2, HW, DType::F32).unwrap().graph;
        let g64 = d.build(GraphMode::Train, 2, HW, DType::F64).unwrap().graph;
        let store = ParamSet::init(&g32, rng.below(1 << 30));
        let feeds64: BTreeMap<String, HostTensor> = feeds
            .iter()
            .map(|(k, t)| {
                let dt = g64.nodes[g64.inputs[k].0].dtype;
                (
                    k.clone(),
                    if t.dtype() == dt {
                        t.clone()
                    } else {
                        t.cast(dt)
                    },
                )
            })
            .collect();
        let o32 = Executor::new(g32.clone(), CpuBackend)
            .run(&store, &feeds)
            .unwrap();
        let o64 = Executor::new(g64, CpuBackend)
            .run(&store, &feeds64)
            .unwrap();
        for &k in losses {
            let (a, b) = (o32.scalar(k).unwrap(), o64.scalar(k).unwrap());
            assert!(
                (a - b).abs() <= 0.5 * LOSS_RTOL * b.abs(),
                "{recipe} {k}: f32 {a}, f64 {b}"
            );
        }
        let mut worst = (0.0f64, String::new());
        let floor = grad_floor(&o64.grads);
        for (name, _) in &g32.grads {
            let a = o32.grads[name].to_f64_vec();
            let b = o64.grads[name].to_f64_vec();
            let dev = grad_deviation(&a, &b, floor);
            if dev > worst.0 {
                worst = (dev, name.clone());
            }
        }
        eprintln!(
            "{test}: {recipe}: worst gradient deviation {:.2e} of max |value| ({})",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= 0.5 * GRAD_TOL,
            "{recipe}: {}: {:.2e}",
            worst.1,
            worst.0
        );
    }
}

/// The tiny RetinaNet's step on `be` against the CPU's.
#[cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]
pub(crate) fn retinanet_parity<B: Suite + Clone + 'static>(be: &B, test: &str) {
    let losses = ["loss_cls", "loss_bbox", "loss"];
    parity(be, test, "retinanet_r50_fpn_1x_coco.recipe", TINY, &losses);
}

/// The tiny FCOS's step on `be` against the CPU's.
#[cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]
pub(crate) fn fcos_parity<B: Suite + Clone + 'static>(be: &B, test: &str) {
    let sets = fcos_sets();
    let losses = ["loss_cls", "loss_bbox", "loss_centerness", "loss"];
    parity(
        be,
        test,
        "fcos_r50_fpn_gn-head_1x_coco.recipe",
        &sets,
        &losses,
    );
}

/// Two steps of the tiny RetinaNet with its parameters, AdamW's moments and the gradients kept
/// on `be` (`engine::resident`, on `engine::device_params`: what `exec` runs on a GPU) against
/// the same two steps on the host: the CPU backend's gradients and `Optimizer::step`, with
/// paramwise multipliers. The losses agree within [`LOSS_RTOL`], every parameter within
/// [`GRAD_TOL`] of the network's largest.
pub(crate) fn kept_steps_match_the_host<B: Suite + Clone + 'static>(be: &B, test: &str) {
    use mmrun::engine::optim::{Optimizer, OptimizerConfig, Paramwise};
    use mmrun::engine::resident::Resident;
    let d = detector("retinanet_r50_fpn_1x_coco.recipe", TINY);
    let mut rng = rng(test);
    let feeds = feeds(&d, &mut rng);
    let built = d.build(GraphMode::Train, 2, HW, DType::F32).unwrap();
    let init = ParamSet::init(&built.graph, 7);
    let config = OptimizerConfig::Adamw {
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.05,
        amsgrad: false,
        paramwise: Paramwise {
            bias_lr_mult: 2.0,
            norm_decay_mult: 0.0,
            ..Default::default()
        },
    };
    let mut host = init.clone();
    let mut optimizer = Optimizer::new(config.clone(), &host).unwrap();
    let mut ex = Executor::new(built.graph.clone(), CpuBackend);
    let mut device = init.clone();
    let (mut kept, _) = Resident::new(built.graph.clone(), be.clone(), &device, config).unwrap();
    for step in 1..=2 {
        let mut out = ex.run(&host, &feeds).unwrap();
        host.take_run(&mut out).unwrap();
        optimizer.step(&mut host);
        let (dev, _) = kept.step(&mut device, &feeds).unwrap();
        let (want, got) = (out.scalar("loss").unwrap(), dev.scalar("loss").unwrap());
        assert_close(
            &format!("{test}: loss at step {step}"),
            &[got],
            &[want],
            LOSS_RTOL,
            0.0,
        );
    }
    kept.download_params(&mut device).unwrap();
    let largest = (host.iter())
        .flat_map(|p| p.values().iter().map(|v| v.abs()))
        .fold(0f32, f32::max) as f64;
    let mut worst = (0f64, String::new());
    for p in host.iter().filter(|p| p.trainable) {
        let q = device.get(&p.name).unwrap();
        for (a, b) in p.values().iter().zip(q.values()) {
            let dev = (*a as f64 - *b as f64).abs() / largest;
            if dev > worst.0 {
                worst = (dev, p.name.clone());
            }
        }
    }
    eprintln!(
        "{test}: worst parameter deviation {:.2e} of the largest ({})",
        worst.0, worst.1
    );
    assert!(worst.0 <= GRAD_TOL, "{}: {:.2e}", worst.1, worst.0);
}

#[test]
fn kept_steps_match_the_host_on_the_cpu() {
    let test = "kept_steps_match_the_host_on_the_cpu";
    kept_steps_match_the_host(&CpuBackend, test);
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use super::*;
    use crate::backend::harness::wgpu as backend;

    #[test]
    fn kept_steps_match_the_host_on_wgpu() {
        let test = "wgpu::kept_steps_match_the_host_on_wgpu";
        if let Some(be) = backend(test) {
            super::kept_steps_match_the_host(&be, test);
        }
    }

    #[test]
    fn retinanet_train_step_matches_cpu() {
        let test = "wgpu::retinanet_train_step_matches_cpu";
        if let Some(be) = backend(test) {
            retinanet_parity(&be, test);
        }
    }

    #[test]
    fn fcos_train_step_matches_cpu() {
        let test = "wgpu::fcos_train_step_matches_cpu";
        if let Some(be) = backend(test) {
            fcos_parity(&be, test);
        }
    }

    /// The quickstart (shrunk) trains 3 iterations through the real runner on the adapter.
    #[test]
    fn runner_trains_three_iterations_on_wgpu() {
        let test = "runner_trains_three_iterations_on_wgpu";
        if let Some(be) = backend(test) {
            train_three(test, Device::Wgpu(be));
        }
    }
}
