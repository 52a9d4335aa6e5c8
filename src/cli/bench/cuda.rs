//! `mmrun bench cuda`: each fused loss kernel's achieved memory bandwidth on large inputs
//! against the device-to-device copy bandwidth measured in the same run, and (with
//! `--retinanet`) the RetinaNet training step, which reports "skipped: …" until the detector
//! runs on the CUDA backend. `--tsv` prints machine-readable rows for `scripts/gpu-check`.

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
}

#[cfg(not(feature = "cuda"))]
pub fn run(_args: Args) -> u8 {
    eprintln!(
        "error: this mmrun was built without the `cuda` feature (cargo build --features cuda)"
    );
    crate::cli::EXIT_CANNOT_RUN
}

#[cfg(feature = "cuda")]
pub fn run(args: Args) -> u8 {
    if args.retinanet {
        // Honest placeholder for the peer comparison: the kernels exist, the step does not.
        println!(
            "skipped: the RetinaNet training step does not run on the CUDA backend yet \
             (the graph executor has no CUDA Backend implementation)"
        );
        return crate::cli::EXIT_OK;
    }
    match bandwidth::run(&args) {
        Ok(()) => crate::cli::EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            crate::cli::EXIT_CANNOT_RUN
        }
    }
}

#[cfg(feature = "cuda")]
mod bandwidth {
    use cudarc::driver::{CudaSlice, sys::CUevent_flags};
    use half::{bf16, f16};

    use crate::backend::cuda::loss::Reduction;
    use crate::backend::cuda::{CudaDevice, CudaError, KernelFloat};
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

    fn random<T: KernelFloat>(
        dev: &CudaDevice,
        rng: &mut Rng,
        n: usize,
        scale: f64,
    ) -> Result<CudaSlice<T>, CudaError> {
        let v: Vec<T> = (0..n)
            .map(|_| T::from_f64(scale * rng.normal_f64()))
            .collect();
        dev.upload(&v)
    }

    fn losses<T: KernelFloat>(
        dev: &CudaDevice,
        reps: u32,
        rng: &mut Rng,
        rows: &mut Vec<Row>,
    ) -> Result<(), CudaError> {
        let esz = std::mem::size_of::<T>() as f64;
        let dt = T::DTYPE.suffix();
        let n = ROWS * CLS;
        let logits = random::<T>(dev, rng, n, 3.0)?;
        let labels: Vec<i32> = (0..ROWS)
            .map(|_| rng.below(CLS as u64 + 1) as i32)
            .collect();
        let labels = dev.upload_raw(&labels)?;
        let row_w = dev.upload(&vec![1.0f32; ROWS])?;
        let mut grad = dev.zeros::<T>(n)?;
        let mut loss = dev.zeros::<f32>(1)?;
        // Bytes that must move: logits in, gradient out, labels and weights once per row.
        let bytes = n as f64 * 2.0 * esz + ROWS as f64 * 8.0;
        let s = time(dev, reps, || {
            dev.focal_loss(
                &logits,
                &labels,
                Some(&row_w),
                Some(&mut grad),
                &mut loss,
                (ROWS, CLS),
                2.0,
                0.25,
                Reduction::mean(),
            )
        })?;
        rows.push(Row {
            name: format!("focal_fwdbwd_{dt} {ROWS}x{CLS}"),
            gbps: bytes / s / 1e9,
        });
        let s = time(dev, reps, || {
            dev.cross_entropy(
                &logits,
                &labels,
                Some(&row_w),
                &mut grad,
                &mut loss,
                (ROWS, CLS),
                -100,
                Reduction::mean(),
            )
        })?;
        rows.push(Row {
            name: format!("ce_fwdbwd_{dt} {ROWS}x{CLS}"),
            gbps: bytes / s / 1e9,
        });
        // Pointwise: input + f32 target + f32 weight in, gradient out.
        let target = random::<f32>(dev, rng, n, 1.0)?;
        let w = dev.upload(&vec![1.0f32; n])?;
        let bytes = n as f64 * (2.0 * esz + 8.0);
        let s = time(dev, reps, || {
            dev.bce_with_logits(
                &logits,
                &target,
                Some(&w),
                &mut grad,
                &mut loss,
                n,
                Reduction::mean(),
            )
        })?;
        rows.push(Row {
            name: format!("bce_fwdbwd_{dt} {n}"),
            gbps: bytes / s / 1e9,
        });
        let s = time(dev, reps, || {
            dev.l1_loss(
                &logits,
                &target,
                Some(&w),
                &mut grad,
                &mut loss,
                n,
                Reduction::mean(),
            )
        })?;
        rows.push(Row {
            name: format!("l1_fwdbwd_{dt} {n}"),
            gbps: bytes / s / 1e9,
        });
        let s = time(dev, reps, || {
            dev.smooth_l1_loss(
                &logits,
                &target,
                Some(&w),
                &mut grad,
                &mut loss,
                n,
                1.0 / 9.0,
                Reduction::mean(),
            )
        })?;
        rows.push(Row {
            name: format!("smooth_l1_fwdbwd_{dt} {n}"),
            gbps: bytes / s / 1e9,
        });
        drop((target, w));
        // GIoU: 4 coordinates in (dtype) and out, 4 f32 target coordinates and a weight per box.
        let boxes: Vec<f64> = (0..BOXES)
            .flat_map(|_| {
                let (x, y) = (rng.range_f64(0.0, 1000.0), rng.range_f64(0.0, 700.0));
                let (w, h) = (rng.range_f64(4.0, 300.0), rng.range_f64(4.0, 300.0));
                [x, y, x + w, y + h]
            })
            .collect();
        let pred: Vec<T> = boxes.iter().map(|&v| T::from_f64(v + 5.0)).collect();
        let pred = dev.upload(&pred)?;
        let tgt: Vec<f32> = boxes.iter().map(|&v| v as f32).collect();
        let tgt = dev.upload(&tgt)?;
        let bw = dev.upload(&vec![1.0f32; BOXES])?;
        let mut bgrad = dev.zeros::<T>(4 * BOXES)?;
        let bytes = BOXES as f64 * (8.0 * esz + 20.0);
        let s = time(dev, reps, || {
            dev.giou_loss(
                &pred,
                &tgt,
                Some(&bw),
                &mut bgrad,
                &mut loss,
                BOXES,
                1e-6,
                Reduction::mean(),
            )
        })?;
        rows.push(Row {
            name: format!("giou_fwdbwd_{dt} {BOXES}"),
            gbps: bytes / s / 1e9,
        });
        Ok(())
    }

    /// The graph-IR (unreduced) sigmoid focal loss through `CudaBackend::loss` on RetinaNet's
    /// anchors x classes: forward (logits, targets in; loss out: 12 bytes per element) and
    /// gradient (logits, targets, dy in; dx out: 16 bytes per element) as separate launches.
    fn ir_focal(
        device: usize,
        reps: u32,
        rng: &mut Rng,
        rows: &mut Vec<Row>,
    ) -> Result<(), CudaError> {
        use crate::backend::cuda::{CudaBackend, CudaBuffer};
        use crate::backend::{Backend, BackendError, TensorMut, TensorRef};
        use crate::graph::DType as GraphDType;
        use crate::graph::op::{LossKind, LossOp};
        let be = CudaBackend::open(device)?;
        let dev = be.device();
        let n = ROWS * CLS;
        let shape = [ROWS, CLS];
        let x = CudaBuffer::F32(random::<f32>(dev, rng, n, 3.0)?);
        // About one positive class in a hundred, as in a detector's dense targets.
        let t: Vec<f32> = (0..n).map(|_| f32::from(rng.below(100) == 0)).collect();
        let t = CudaBuffer::F32(dev.upload(&t)?);
        let dy = CudaBuffer::F32(random::<f32>(dev, rng, n, 1.0)?);
        let mut out = CudaBuffer::F32(dev.zeros::<f32>(n)?);
        let kind = LossKind::SigmoidFocal {
            alpha: 0.25,
            gamma: 2.0,
        };
        let r = |b| TensorRef {
            buf: b,
            shape: &shape,
            dtype: GraphDType::F32,
        };
        let ins = [r(&x), r(&t), r(&dy)];
        let berr = |e: BackendError| CudaError::shape("ir focal bench", e.to_string());
        let passes = [
            ("fwd", LossOp::Forward(kind.clone()), 2, 12.0),
            ("bwd", LossOp::Grad { kind, wrt: 0 }, 3, 16.0),
        ];
        for (pass, op, n_in, bytes) in passes {
            let s = time(dev, reps, || {
                let o = TensorMut {
                    buf: &mut out,
                    shape: &shape,
                    dtype: GraphDType::F32,
                };
                be.loss(&op, &ins[..n_in], o).map_err(berr)
            })?;
            rows.push(Row {
                name: format!("focal_elem_{pass}_f32 (graph IR) {n}"),
                gbps: bytes * n as f64 / s / 1e9,
            });
        }
        Ok(())
    }

    pub fn run(args: &super::Args) -> Result<(), CudaError> {
        let dev = CudaDevice::open(args.device)?;
        let name = dev.name()?;
        let reps = args.reps.max(1);
        // Device-to-device copy of 1 GiB: read + write bytes per second.
        let len = 1usize << 28;
        let src = dev.zeros::<f32>(len)?;
        let mut dst = dev.zeros::<f32>(len)?;
        let s = time(&dev, reps, || {
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
        losses::<f32>(&dev, reps, &mut rng, &mut rows)?;
        losses::<bf16>(&dev, reps, &mut rng, &mut rows)?;
        losses::<f16>(&dev, reps, &mut rng, &mut rows)?;
        ir_focal(args.device, reps, &mut rng, &mut rows)?;
        if args.tsv {
            println!("bw\tdevice-to-device copy ({name})\t{copy:.1}\t1.00");
            for r in &rows {
                println!("bw\t{}\t{:.1}\t{:.2}", r.name, r.gbps, r.gbps / copy);
            }
        } else {
            println!("device: {name}");
            println!("{:<40} {:>10} {:>9}", "kernel", "GB/s", "vs copy");
            println!(
                "{:<40} {:>10.1} {:>9}",
                "device-to-device copy", copy, "1.00"
            );
            for r in &rows {
                println!("{:<40} {:>10.1} {:>9.2}", r.name, r.gbps, r.gbps / copy);
            }
        }
        Ok(())
    }
}
