//! `mmrun bench cuda`: each loss op of the graph (forward and gradient, f32) and its achieved
//! memory bandwidth on RetinaNet-sized inputs against the device-to-device copy bandwidth
//! measured in the same run, and (with
//! `--retinanet`) the RetinaNet R-50-FPN training step at batch 2 x 3 x 800 x 1344 on the
//! CUDA backend: parameters resident on the device, fused SGD-momentum update, a per-phase
//! profile on stderr and one TSV row (`retinanet<TAB>what<TAB>images/s<TAB>-`) last on stdout,
//! which `scripts/gpu-check` divides by torchvision's images/s. `--tsv` prints machine-readable
//! bandwidth rows for `scripts/gpu-check`.

/// Arguments of `mmrun bench cuda`.
#[derive(clap::Args)]
pub struct Args {
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Timed repetitions per kernel.
    #[arg(long, default_value_t = 20)]
    reps: u32,
    /// Print tab-separated rows (`bw<TAB>name<TAB>GB/s<TAB>ratio`) instead of a table.
    #[arg(long)]
    tsv: bool,
    /// Run the RetinaNet R-50-FPN training step (batch 2 x 800x1333) instead.
    #[arg(long)]
    retinanet: bool,
    /// The RetinaNet recipe (`--retinanet`).
    #[arg(long, default_value = "pipelines/retinanet_r50_fpn_1x_coco.recipe")]
    recipe: std::path::PathBuf,
    /// Timed training steps after 3 warm-up steps (`--retinanet`; fewer when a step is slow,
    /// so the run stays near a minute).
    #[arg(long, default_value_t = 10)]
    steps: u32,
    /// Strict f32 math (`runtime.tf32 = false`) instead of TF32 tensor cores (`--retinanet`;
    /// the convolution path follows `MMRUN_CUDA_CONV`).
    #[arg(long)]
    strict_f32: bool,
    /// Mixed precision (`runtime.precision = bf16`: convolutions on bf16 data through cuDNN,
    /// f32 master weights) instead of f32 (`--retinanet`).
    #[arg(long)]
    bf16: bool,
}

/// The settings every mode reports.
fn settings(args: &Args, report: &mut super::Report) {
    report.setting("device", args.device);
    report.setting("reps", args.reps);
    report.setting("retinanet", args.retinanet);
    if args.retinanet {
        report.setting("recipe", args.recipe.display().to_string());
        report.setting("steps", args.steps);
        report.setting("tf32", !args.strict_f32);
        report.setting("bf16", args.bf16);
    }
}

#[cfg(not(feature = "cuda"))]
pub fn run(args: Args, report: &mut super::Report) -> super::Outcome {
    settings(&args, report);
    report.error("this mmrun was built without the `cuda` feature (cargo build --features cuda)");
    super::Outcome::CannotRun
}

#[cfg(feature = "cuda")]
pub fn run(args: Args, report: &mut super::Report) -> super::Outcome {
    settings(&args, report);
    if args.retinanet {
        return match retinanet::run(&args, report) {
            Ok(row) => {
                report.line(row);
                super::Outcome::Done
            }
            Err(e) => {
                report.error(&e);
                // The last line is what scripts/gpu-check reads.
                report.line(format_args!("failed: {e}"));
                super::Outcome::CannotRun
            }
        };
    }
    match bandwidth::run(&args, report) {
        Ok(()) => super::Outcome::Done,
        Err(e) => {
            report.error(e);
            super::Outcome::CannotRun
        }
    }
}

#[cfg(feature = "cuda")]
mod bandwidth {
    use cudarc::driver::sys::CUevent_flags;

    use crate::backend::cuda::{CudaBackend, CudaBuffer, CudaDevice, CudaError};
    use crate::backend::{Backend, BackendError, TensorMut, TensorRef};
    use crate::ir::DType;
    use crate::ir::op::{IouKind, LossKind, LossOp};
    use crate::util::rng::Rng;

    /// Anchors x classes of RetinaNet at 800x1333, batch 2 (~120k anchors per image), rounded up.
    const ROWS: usize = 262_144;
    const CLS: usize = 80;
    const BOXES: usize = 4_194_304;

    struct Row {
        name: String,
        gbps: f64,
    }

    /// Seconds per call of `f`, timed with CUDA events over `reps` calls after a warm-up.
    fn time(
        dev: &CudaDevice,
        reps: u32,
        mut f: impl FnMut() -> Result<(), CudaError>,
    ) -> Result<f64, CudaError> {
        let drv = |e| CudaError::Driver {
            context: "cuEvent",
            source: e,
        };
        f()?;
        dev.synchronize()?;
        let ctx = dev.context();
        let start = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(drv)?;
        let end = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(drv)?;
        start.record(dev.stream()).map_err(drv)?;
        for _ in 0..reps {
            f()?;
        }
        end.record(dev.stream()).map_err(drv)?;
        let ms = start.elapsed_ms(&end).map_err(drv)?;
        Ok(ms as f64 / 1e3 / reps as f64)
    }

    fn f32s(dev: &CudaDevice, v: Vec<f32>) -> Result<CudaBuffer, CudaError> {
        Ok(CudaBuffer::F32(dev.upload(&v)?))
    }

    fn normal(
        dev: &CudaDevice,
        rng: &mut Rng,
        n: usize,
        scale: f64,
    ) -> Result<CudaBuffer, CudaError> {
        f32s(
            dev,
            (0..n).map(|_| (scale * rng.normal_f64()) as f32).collect(),
        )
    }

    /// One loss kind's inputs on the device and the bytes its forward and gradient must move.
    struct Case {
        name: &'static str,
        kind: LossKind,
        /// (buffer, shape, dtype) of the two loss inputs.
        inputs: [(CudaBuffer, Vec<usize>, DType); 2],
        /// The loss's output shape (the shape of `dy`).
        out_shape: Vec<usize>,
        fwd_bytes: f64,
        grad_bytes: f64,
    }

    fn cases(dev: &CudaDevice, rng: &mut Rng) -> Result<Vec<Case>, CudaError> {
        let n = ROWS * CLS;
        // About one positive class in a hundred, as in a detector's dense targets.
        let onehot = |rng: &mut Rng| -> Vec<f32> {
            (0..n).map(|_| f32::from(rng.below(100) == 0)).collect()
        };
        let dense = |name, kind, rng: &mut Rng, target: Vec<f32>| -> Result<Case, CudaError> {
            Ok(Case {
                name,
                kind,
                inputs: [
                    (normal(dev, rng, n, 3.0)?, vec![ROWS, CLS], DType::F32),
                    (f32s(dev, target)?, vec![ROWS, CLS], DType::F32),
                ],
                out_shape: vec![ROWS, CLS],
                // x, t in, loss out; x, t, dy in, dx out.
                fwd_bytes: 12.0 * n as f64,
                grad_bytes: 16.0 * n as f64,
            })
        };
        let focal = LossKind::SigmoidFocal {
            alpha: 0.25,
            gamma: 2.0,
        };
        let focal_target = onehot(rng);
        let bce_target = onehot(rng);
        let mut out = vec![
            dense("sigmoid_focal", focal, rng, focal_target)?,
            dense("bce_with_logits", LossKind::BceWithLogits, rng, bce_target)?,
        ];
        let t: Vec<f32> = (0..n).map(|_| rng.normal_f64() as f32).collect();
        out.push(dense(
            "smooth_l1",
            LossKind::SmoothL1 { beta: 1.0 / 9.0 },
            rng,
            t,
        )?);
        let labels: Vec<i32> = (0..ROWS).map(|_| rng.below(CLS as u64) as i32).collect();
        out.push(Case {
            name: "cross_entropy",
            kind: LossKind::CrossEntropy {
                ignore_index: -100,
                label_smoothing: 0.0,
            },
            inputs: [
                (normal(dev, rng, n, 3.0)?, vec![ROWS, CLS], DType::F32),
                (
                    CudaBuffer::I32(dev.upload(&labels)?),
                    vec![ROWS],
                    DType::I32,
                ),
            ],
            out_shape: vec![ROWS],
            // logits and labels in, a loss per row out; then logits, labels, dy in, dx out.
            fwd_bytes: 4.0 * n as f64 + 8.0 * ROWS as f64,
            grad_bytes: 8.0 * n as f64 + 8.0 * ROWS as f64,
        });
        let boxes: Vec<f32> = (0..BOXES)
            .flat_map(|_| {
                let (x, y) = (rng.range_f64(0.0, 1000.0), rng.range_f64(0.0, 700.0));
                let (w, h) = (rng.range_f64(4.0, 300.0), rng.range_f64(4.0, 300.0));
                [x, y, x + w, y + h].map(|v| v as f32)
            })
            .collect();
        let pred: Vec<f32> = boxes.iter().map(|v| v + 5.0).collect();
        out.push(Case {
            name: "giou",
            kind: LossKind::Iou {
                kind: IouKind::GIoU,
                eps: 1e-6,
            },
            inputs: [
                (f32s(dev, pred)?, vec![BOXES, 4], DType::F32),
                (f32s(dev, boxes)?, vec![BOXES, 4], DType::F32),
            ],
            out_shape: vec![BOXES],
            // two boxes in, a loss out; two boxes and dy in, a box gradient out.
            fwd_bytes: 36.0 * BOXES as f64,
            grad_bytes: 52.0 * BOXES as f64,
        });
        Ok(out)
    }

    /// Each loss op of the graph (`CudaBackend::loss`) on RetinaNet-sized inputs: the forward
    /// and the gradient w.r.t. the first input, as the step graph launches them.
    fn losses(
        be: &CudaBackend,
        reps: u32,
        rng: &mut Rng,
        rows: &mut Vec<Row>,
    ) -> Result<(), CudaError> {
        let dev = be.device();
        let berr = |e: BackendError| CudaError::shape("loss bench", e.to_string());
        for case in cases(dev, rng)? {
            let numel: usize = case.out_shape.iter().product();
            let dy = normal(dev, rng, numel, 1.0)?;
            let in_shape = &case.inputs[0].1;
            let mut fwd_out = CudaBuffer::F32(dev.zeros::<f32>(numel)?);
            let mut grad_out = CudaBuffer::F32(dev.zeros::<f32>(in_shape.iter().product())?);
            let mut ins: Vec<TensorRef<'_, CudaBuffer>> = case
                .inputs
                .iter()
                .map(|(buf, shape, dtype)| TensorRef {
                    buf,
                    shape,
                    dtype: *dtype,
                })
                .collect();
            let fwd = LossOp::Forward(case.kind.clone());
            let s = time(dev, reps, || {
                let o = TensorMut {
                    buf: &mut fwd_out,
                    shape: &case.out_shape,
                    dtype: DType::F32,
                };
                be.loss(&fwd, &ins, o).map_err(berr)
            })?;
            rows.push(Row {
                name: format!("{} fwd", case.name),
                gbps: case.fwd_bytes / s / 1e9,
            });
            ins.push(TensorRef {
                buf: &dy,
                shape: &case.out_shape,
                dtype: DType::F32,
            });
            let grad = LossOp::Grad {
                kind: case.kind.clone(),
                wrt: 0,
            };
            let s = time(dev, reps, || {
                let o = TensorMut {
                    buf: &mut grad_out,
                    shape: in_shape,
                    dtype: DType::F32,
                };
                be.loss(&grad, &ins, o).map_err(berr)
            })?;
            rows.push(Row {
                name: format!("{} grad", case.name),
                gbps: case.grad_bytes / s / 1e9,
            });
        }
        Ok(())
    }

    pub fn run(args: &super::Args, report: &mut crate::bench::Report) -> Result<(), CudaError> {
        let be = CudaBackend::open(args.device)?;
        let dev = be.device();
        let name = dev.name()?;
        let reps = args.reps.max(1);
        // Device-to-device copy of 1 GiB: read + write bytes per second.
        let len = 1usize << 28;
        let src = dev.zeros::<f32>(len)?;
        let mut dst = dev.zeros::<f32>(len)?;
        let s = time(dev, reps, || {
            dev.stream()
                .memcpy_dtod(&src, &mut dst)
                .map_err(|e| CudaError::Driver {
                    context: "cuMemcpyDtoD",
                    source: e,
                })
        })?;
        let copy = 2.0 * (len * 4) as f64 / s / 1e9;
        drop((src, dst));
        let mut rows = Vec::new();
        let mut rng = Rng::seed(0xbe7c4);
        losses(&be, reps, &mut rng, &mut rows)?;
        report.machine("device", &name);
        report.result("copy_gb_per_s", copy);
        let mut ops = serde_json::Map::new();
        for r in &rows {
            ops.insert(r.name.clone(), serde_json::json!({ "gb_per_s": r.gbps }));
            report.ratio(
                &format!("{}_vs_copy", r.name.replace(' ', "_")),
                r.gbps / copy,
            );
        }
        report.result("loss_ops", ops);
        if args.tsv {
            report.line(format_args!(
                "bw\tdevice-to-device copy ({name})\t{copy:.1}\t1.00"
            ));
            for r in &rows {
                report.line(format_args!(
                    "bw\t{}\t{:.1}\t{:.2}",
                    r.name,
                    r.gbps,
                    r.gbps / copy
                ));
            }
        } else {
            report.line(format_args!("device: {name}"));
            report.line(format_args!(
                "{:<40} {:>10} {:>9}",
                "loss op (f32)", "GB/s", "vs copy"
            ));
            report.line(format_args!(
                "{:<40} {:>10.1} {:>9}",
                "device-to-device copy", copy, "1.00"
            ));
            for r in &rows {
                report.line(format_args!(
                    "{:<40} {:>10.1} {:>9.2}",
                    r.name,
                    r.gbps,
                    r.gbps / copy
                ));
            }
        }
        Ok(())
    }
}

/// The RetinaNet R-50-FPN training step on the CUDA backend (see the module docs).
#[cfg(feature = "cuda")]
mod retinanet {
    use crate::backend::cuda::optim::Sgd;
    use crate::backend::cuda::{CudaBackend, CudaOptions};
    use crate::engine::optim::OptimizerConfig;
    use crate::engine::resident::Resident;
    use crate::engine::{Executor, ParamSet};
    use crate::ir::{DType, HostTensor};
    use crate::model::assign::ImageGt;
    use crate::model::config::DetectorConfig;
    use crate::model::net::{Detector, GraphMode};
    use crate::model::target::PaddedShapes;
    use crate::recipe::{CheckOptions, load};
    use crate::util::rng::Rng;
    use std::time::Instant;

    const BATCH: usize = 2;
    /// 800 x 1333 resized (mmdetection's `img_scale`), padded to the size divisor 32.
    const IMG: (usize, usize) = (800, 1333);
    const PAD: (usize, usize) = (800, 1344);
    const WARMUP: u32 = 3;
    /// Wall-clock the timed steps aim for: a slow step gets fewer repetitions.
    const TIMED_BUDGET_S: f64 = 60.0;

    /// A few random boxes per image (as scripts/gpu_check_torch.py draws them).
    fn gts(rng: &mut Rng, num_classes: usize) -> Vec<ImageGt> {
        (0..BATCH)
            .map(|_| {
                let (h, w) = (IMG.0 as f64, IMG.1 as f64);
                let bboxes = (0..5)
                    .map(|_| {
                        let (x, y) = (rng.range_f64(0.0, 0.7 * w), rng.range_f64(0.0, 0.7 * h));
                        let (bw, bh) = (rng.range_f64(16.0, 216.0), rng.range_f64(16.0, 216.0));
                        [
                            x as f32,
                            y as f32,
                            (x + bw).min(w) as f32,
                            (y + bh).min(h) as f32,
                        ]
                    })
                    .collect();
                let labels = (0..5)
                    .map(|_| rng.below(num_classes as u64) as usize)
                    .collect();
                ImageGt {
                    bboxes,
                    labels,
                    bboxes_ignore: vec![],
                }
            })
            .collect()
    }

    /// Runs the benchmark; `Ok` is the TSV row.
    pub fn run(args: &super::Args, report: &mut crate::bench::Report) -> Result<String, String> {
        let opts = CheckOptions {
            no_fs: true,
            ..Default::default()
        };
        let r = load(&args.recipe, &[], &opts)
            .map_err(|_| format!("{}: the recipe does not check", args.recipe.display()))?;
        let cfg = DetectorConfig::from_value(&r.config["model"]).map_err(|e| e.to_string())?;
        let precision = if args.bf16 {
            crate::ir::Precision::Bf16
        } else {
            crate::ir::Precision::Fp32
        };
        let det = Detector::new(cfg)
            .map_err(|e| e.to_string())?
            .with_precision(precision);
        let options = CudaOptions::from_runtime(!args.strict_f32, false)?;
        let backend = CudaBackend::open_with(args.device, options).map_err(|e| e.to_string())?;
        let name = backend.device().name().map_err(|e| e.to_string())?;
        crate::errln!("retinanet: {}", backend.describe());
        report.machine("cuda_backend", backend.describe());
        report.machine("device", &name);
        report.setting("batch", BATCH);
        report.setting("image_size", [IMG.0, IMG.1]);
        report.setting("padded_size", [PAD.0, PAD.1]);
        report.setting("warmup", WARMUP);

        let t = Instant::now();
        let built = det
            .build(GraphMode::Train, BATCH, PAD, DType::F32)
            .map_err(|e| format!("building the train graph: {e}"))?;
        let mut rng = Rng::seed(0x7e71a);
        let meta = PaddedShapes {
            img_shape: IMG,
            pad_shape: PAD,
            batch_shape: PAD,
        };
        let tb = det.target_builder();
        let targets = gts(&mut rng, det.num_classes())
            .iter()
            .map(|g| {
                (tb.targets(g, &meta, &mut crate::util::rng::Rng::seed(0)))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Normalised pixels: roughly unit scale, zero in the padding as the loader leaves it.
        let mut img = vec![0f32; BATCH * 3 * PAD.0 * PAD.1];
        for (k, v) in img.iter_mut().enumerate() {
            if k % PAD.1 < IMG.1 {
                *v = rng.range_f64(-2.0, 2.0) as f32;
            }
        }
        let img = HostTensor::f32(vec![BATCH, 3, PAD.0, PAD.1], img).map_err(|e| e.to_string())?;
        let feeds = det
            .train_feeds(img, &targets, PAD, &det.loss_normalisers(&targets))
            .map_err(|e| e.to_string())?;
        let mut params = ParamSet::init(&built.graph, 1);
        crate::errln!(
            "retinanet: graph of {} nodes, {} parameters ({} trainable tensors), built in {:.1} s",
            built.graph.nodes.len(),
            built.graph.num_params(),
            built.graph.grads.len(),
            t.elapsed().as_secs_f64()
        );

        // The executor's plain path (what `mmrun exec --device cuda` runs): every parameter
        // up and every gradient down per step. One run warms it up, the second is timed.
        let mut plain = Executor::new(built.graph.clone(), backend.clone());
        plain.run(&params, &feeds).map_err(|e| e.to_string())?;
        let t = Instant::now();
        plain.run(&params, &feeds).map_err(|e| e.to_string())?;
        let plain_s = t.elapsed().as_secs_f64();
        drop(plain);

        // mmdetection's RetinaNet optimizer.
        let hp = Sgd::MMDET;
        let sgd = OptimizerConfig::sgd(hp.lr.into(), hp.momentum.into(), hp.weight_decay.into());
        let (mut trainer, upload_s) =
            Resident::new(built.graph, backend.clone(), &params, sgd).map_err(|e| e.to_string())?;
        let mut first = 0.0;
        for i in 0..WARMUP {
            let (out, times) = trainer
                .step(&mut params, &feeds)
                .map_err(|e| e.to_string())?;
            if i == 0 {
                first = times.compute + times.optimizer;
            }
            let loss = out.scalar("loss").unwrap_or(f64::NAN);
            if !loss.is_finite() {
                return Err(format!("warm-up step {i}: the loss is {loss}"));
            }
        }
        let t = Instant::now();
        trainer
            .executor()
            .download_grads()
            .map_err(|e| e.to_string())?;
        let download_s = t.elapsed().as_secs_f64();

        let steps = (TIMED_BUDGET_S / first.max(1e-3))
            .floor()
            .clamp(1.0, args.steps.max(1) as f64) as u32;
        let (mut compute, mut optimizer) = (0.0, 0.0);
        let mut loss = f64::NAN;
        let t = Instant::now();
        for _ in 0..steps {
            let (out, times) = trainer
                .step(&mut params, &feeds)
                .map_err(|e| e.to_string())?;
            compute += times.compute;
            optimizer += times.optimizer;
            loss = out.scalar("loss").unwrap_or(f64::NAN);
        }
        let total = t.elapsed().as_secs_f64();
        if !loss.is_finite() {
            return Err(format!("the loss is {loss} after {steps} timed steps"));
        }
        let ips = (BATCH as u32 * steps) as f64 / total;
        let n = steps as f64;
        crate::errln!(
            "retinanet: {WARMUP} warm-up + {steps} timed steps, batch {BATCH} x 3 x {} x {} on {name}, loss {loss:.4}",
            PAD.0,
            PAD.1
        );
        crate::errln!("retinanet: per-phase profile (ms):");
        crate::errln!(
            "  param upload (all, once)      {:9.1}   (the plain path pays it every step)",
            upload_s * 1e3
        );
        crate::errln!(
            "  graph compute / step          {:9.1}   (batch upload + forward + backward + loss download)",
            compute / n * 1e3
        );
        crate::errln!(
            "  grad download (all, once)     {:9.1}   (the plain path pays it every step)",
            download_s * 1e3
        );
        crate::errln!(
            "  optimizer (update) / step     {:9.1}",
            optimizer / n * 1e3
        );
        crate::errln!(
            "  resident step                 {:9.1}   -> {ips:.2} images/s",
            total / n * 1e3
        );
        crate::errln!(
            "  plain Executor::run step      {:9.1}   (upload + compute + download, no optimizer) -> {:.2} images/s",
            plain_s * 1e3,
            BATCH as f64 / plain_s
        );
        node_profile(&mut trainer, &mut params, &feeds)?;
        if let Some(cudnn) = backend.cudnn() {
            algorithm_table(cudnn);
        }
        report.setting("timed_steps", steps);
        report.result("last_loss", loss);
        report.result("param_upload_once_ms", upload_s * 1e3);
        report.result("graph_compute_ms_per_step", compute / n * 1e3);
        report.result("grad_download_once_ms", download_s * 1e3);
        report.result("optimizer_ms_per_step", optimizer / n * 1e3);
        report.result("resident_step_ms", total / n * 1e3);
        report.result("mmrun_images_per_s", ips);
        report.result("plain_step_ms", plain_s * 1e3);
        report.result("plain_images_per_s", BATCH as f64 / plain_s);
        let math = match (args.bf16, args.strict_f32) {
            (true, _) => "bf16 mixed precision",
            (false, true) => "strict f32",
            (false, false) => "TF32",
        };
        let conv = if backend.cudnn().is_some() {
            "cuDNN"
        } else {
            "im2col"
        };
        Ok(format!(
            "retinanet\tmmrun cuda {math}, {conv} convs, resident params, device SGD ({name})\t{ips:.2}\t-"
        ))
    }

    /// One more step with every node timed between device synchronisations: the slowest
    /// nodes with their shapes, and the time per op kind, on stderr.
    fn node_profile(
        trainer: &mut Resident<CudaBackend>,
        params: &mut ParamSet,
        feeds: &std::collections::BTreeMap<String, HostTensor>,
    ) -> Result<(), String> {
        trainer.executor_mut().set_profile(true);
        trainer.step(params, feeds).map_err(|e| e.to_string())?;
        let ex = trainer.executor();
        let nodes = ex.node_profile();
        let total: f64 = nodes.iter().map(|n| n.1).sum();
        crate::errln!(
            "retinanet: per-node profile of one step (each node synchronised: {:.1} ms in all):",
            total * 1e3
        );
        for (id, s, _) in nodes.iter().take(15) {
            crate::errln!("  {:8.3} ms  {}", s * 1e3, ex.describe_node(*id));
        }
        crate::errln!("retinanet: time per op:");
        for (op, s, n) in ex.profile().iter().take(12) {
            crate::errln!("  {:8.3} ms  {op} ({n} calls)", s * 1e3);
        }
        trainer.executor_mut().set_profile(false);
        Ok(())
    }

    /// The algorithm cuDNN's benchmark chose for each convolution shape of the step, with its
    /// time, on stderr (`scripts/gpu-check` shows it).
    fn algorithm_table(cudnn: &crate::backend::cuda::cudnn::Cudnn) {
        let mut rows = cudnn.chosen();
        rows.sort_by_key(|r| (format!("{:?}", r.key.pass), r.key.x, r.key.w, r.key.stride));
        let total: f32 = rows.iter().map(|r| r.time_ms).sum();
        crate::errln!(
            "retinanet: cuDNN {} algorithms for {} convolution shapes (benchmark time {total:.1} ms in all):",
            cudnn.version(),
            rows.len()
        );
        for r in rows {
            let k = r.key;
            crate::errln!(
                "  {:<15} {:<4} x {:?} w {:?} s{} p{} d{} g{}  {:<22} {:>8.3} ms  ws {:>7.1} MiB{}",
                format!("{:?}", k.pass),
                k.dtype.name(),
                k.x,
                k.w,
                k.stride[0],
                k.padding[0],
                k.dilation[0],
                k.groups,
                r.algo,
                r.time_ms,
                r.workspace as f64 / (1 << 20) as f64,
                if r.tensor_ops { "  tensor ops" } else { "" }
            );
        }
    }
}
