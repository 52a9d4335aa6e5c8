//! The shared backend suite's harness: one op run on a backend under test in f32 and on the
//! CPU backend in f64 (the reference), compared element by element.
//!
//! Every backend runs the same suite (`suite!` in `mod.rs`): the CPU always (its f32 path
//! against its f64 path), CUDA where a device is present (without one each CUDA test prints
//! why it skipped — unless `MMRUN_REQUIRE_GPU` is set, as `scripts/gpu-check run` does, where
//! a missing device fails). Inputs are fresh random values each run (seed printed;
//! `MMRUN_SEED` replays one); the output buffer is poisoned (NaN, `i32::MIN`) before the op, so
//! an element the op forgets to write fails; a device backend is synchronised and checked
//! after every op.

use mmrun::backend::cpu::CpuBackend;
use mmrun::backend::{Backend, BackendError, TensorMut, TensorRef};
use mmrun::ir::op::Op;
use mmrun::ir::{DType, HostData, HostTensor, numel};
use mmrun::util::rng::Rng;

/// A backend the suite runs on.
pub trait Suite: Backend {
    /// Waits for the work queued so far; a device fault panics naming `what`.
    fn sync(&self, what: &str);
    /// Whether results and inputs below f32's smallest normal may be read as 0 (WGSL allows
    /// it, and lavapipe does it).
    const FLUSHES_SUBNORMALS: bool = false;
}

impl Suite for CpuBackend {
    fn sync(&self, _what: &str) {}
}

#[cfg(feature = "cuda")]
impl Suite for mmrun::backend::cuda::CudaBackend {
    fn sync(&self, what: &str) {
        self.device()
            .synchronize()
            .unwrap_or_else(|e| panic!("{what} faulted: {e}"));
    }
}

#[cfg(feature = "wgpu")]
impl Suite for mmrun::backend::wgpu::WgpuBackend {
    const FLUSHES_SUBNORMALS: bool = true;
    fn sync(&self, what: &str) {
        self.synchronize()
            .unwrap_or_else(|e| panic!("{what} faulted: {e}"));
    }
}

/// The wgpu backend on the default adapter, shared by every test (opened once), or `None`
/// after printing why the test skips — or a panic under `MMRUN_REQUIRE_WGPU`, as `.ci/run`
/// sets where it installed lavapipe.
#[cfg(feature = "wgpu")]
pub fn wgpu(test: &str) -> Option<mmrun::backend::wgpu::WgpuBackend> {
    use mmrun::backend::wgpu::{OpenError, WgpuBackend};
    use std::sync::OnceLock;
    static OPENED: OnceLock<Result<WgpuBackend, OpenError>> = OnceLock::new();
    match OPENED.get_or_init(|| WgpuBackend::open(&mmrun::backend::AdapterChoice::Default)) {
        Ok(b) => Some(b.clone()),
        Err(why) => {
            if std::env::var_os("MMRUN_REQUIRE_WGPU").is_some() {
                panic!("{test}: MMRUN_REQUIRE_WGPU is set but no wgpu adapter opened: {why}");
            }
            eprintln!("skipped {test}: {why}");
            None
        }
    }
}

/// The CUDA backend on device 0, or `None` after printing why the test skips.
#[cfg(feature = "cuda")]
pub fn cuda(test: &str) -> Option<mmrun::backend::cuda::CudaBackend> {
    open_or_skip(test, mmrun::backend::cuda::CudaBackend::open)
}

/// `open(0)` when the driver reports a device; otherwise prints why `test` skips and gives
/// `None` — or panics under `MMRUN_REQUIRE_GPU`, where a skip would hide a broken setup.
#[cfg(feature = "cuda")]
pub fn open_or_skip<T, E: std::fmt::Display>(
    test: &str,
    open: impl FnOnce(usize) -> Result<T, E>,
) -> Option<T> {
    let why = match mmrun::backend::cuda::probe() {
        Ok(0) => "the driver reports no CUDA device".to_string(),
        Ok(_) => match open(0) {
            Ok(b) => return Some(b),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    if std::env::var_os("MMRUN_REQUIRE_GPU").is_some() {
        panic!("{test}: MMRUN_REQUIRE_GPU is set but no device opened: {why}");
    }
    eprintln!("skipped {test}: {why}");
    None
}

/// A seeded RNG for one test (seed printed, `MMRUN_SEED` replays).
pub fn rng(test: &str) -> Rng {
    Rng::seed(crate::support::fresh_seed(test))
}

/// An f64 tensor of uniform values in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64) -> HostTensor {
    let v = (0..numel(shape)).map(|_| rng.range_f64(lo, hi)).collect();
    HostTensor::f64(shape.to_vec(), v).expect("length matches")
}

/// Runs one op on any backend (the executor's dispatch, for a single node).
pub fn run_op<B: Backend>(
    b: &B,
    op: &Op,
    ins: &[TensorRef<'_, B::Buffer>],
    out: TensorMut<'_, B::Buffer>,
) -> Result<(), BackendError> {
    match op {
        Op::Fill { value } => b.fill(out, *value),
        Op::Unary(o) => b.unary(o, ins, out),
        Op::Binary(o) => b.binary(*o, ins, out),
        Op::Reduce(o) => b.reduce(o, ins, out),
        Op::Layout(o) => b.layout(o, ins, out),
        Op::Matmul(o) => b.matmul(o, ins, out),
        Op::Conv(o) => b.conv(o, ins, out),
        Op::Pool(o) => b.pool(o, ins, out),
        Op::Norm(o) => b.norm(o, ins, out),
        Op::Loss(o) => b.loss(o, ins, out),
        Op::Fused(f) => b.fused(f, ins, out),
        other => panic!("run_op: `{}` is not a backend op", other.name()),
    }
}

/// The CPU reference: float inputs are given in f64 and stay f64 (i32 inputs as they are).
pub fn cpu_ref(op: &Op, ins: &[HostTensor], out_shape: &[usize], out_dtype: DType) -> HostTensor {
    let cpu = CpuBackend;
    let bufs: Vec<HostData> = ins.iter().map(|t| t.data.clone()).collect();
    let refs: Vec<TensorRef<'_, HostData>> = ins
        .iter()
        .zip(&bufs)
        .map(|(t, b)| TensorRef {
            buf: b,
            shape: &t.shape,
            dtype: t.dtype(),
        })
        .collect();
    let dt = if out_dtype == DType::F32 {
        DType::F64
    } else {
        out_dtype
    };
    let mut out = HostData::zeros(dt, numel(out_shape));
    run_op(
        &cpu,
        op,
        &refs,
        TensorMut {
            buf: &mut out,
            shape: out_shape,
            dtype: dt,
        },
    )
    .unwrap_or_else(|e| panic!("cpu reference of {}: {e}", op.name()));
    HostTensor::new(out_shape.to_vec(), out).expect("length matches")
}

/// Runs `op` on the backend under test: f64 inputs are rounded to f32 (what [`rounded`] gives
/// the reference), the output is poisoned first, the backend is synchronised after.
pub fn run_on<B: Suite>(
    be: &B,
    op: &Op,
    ins: &[HostTensor],
    out_shape: &[usize],
    out_dtype: DType,
) -> Result<HostTensor, BackendError> {
    let dev_ins: Vec<HostTensor> = ins.iter().map(to_device_dtype).collect();
    let bufs: Vec<B::Buffer> = dev_ins
        .iter()
        .map(|t| be.upload(t))
        .collect::<Result<_, _>>()?;
    let refs: Vec<TensorRef<'_, B::Buffer>> = dev_ins
        .iter()
        .zip(&bufs)
        .map(|(t, b)| TensorRef {
            buf: b,
            shape: &t.shape,
            dtype: t.dtype(),
        })
        .collect();
    let mut out = be.upload(&poison(out_dtype, numel(out_shape)))?;
    run_op(
        be,
        op,
        &refs,
        TensorMut {
            buf: &mut out,
            shape: out_shape,
            dtype: out_dtype,
        },
    )?;
    be.sync(op.name());
    be.download(&out, out_dtype, out_shape)
}

/// f64 → f32 (what the backend under test holds); other dtypes unchanged.
pub fn to_device_dtype(t: &HostTensor) -> HostTensor {
    if t.dtype() == DType::F64 {
        t.cast(DType::F32)
    } else {
        t.clone()
    }
}

/// The inputs as the backend under test sees them, back in f64 (so the reference sees rounded inputs).
pub fn rounded(ins: &[HostTensor]) -> Vec<HostTensor> {
    ins.iter()
        .map(|t| {
            if t.dtype() == DType::F64 {
                t.cast(DType::F32).cast(DType::F64)
            } else {
                t.clone()
            }
        })
        .collect()
}

fn poison(dtype: DType, n: usize) -> HostTensor {
    let n = n.max(1);
    match dtype {
        DType::F32 => HostTensor::f32(vec![n], vec![f32::NAN; n]).expect("len"),
        DType::I32 => HostTensor::i32(vec![n], vec![i32::MIN; n]).expect("len"),
        d => HostTensor::zeros(d, vec![n]),
    }
}

/// `|got - want| <= atol * max|want| + rtol * |want|` element by element; NaN fails.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol * scale + rtol * w.abs();
        assert!(ok, "{what}[{i}]: got {g}, want {w} (max |want| {scale})");
    }
}

/// The whole check of one op: the backend under test in f32 (poisoned output) against the
/// CPU f64 reference computed on the f32-rounded inputs. Returns the result for extra checks.
pub fn check_op<B: Suite>(
    be: &B,
    what: &str,
    op: &Op,
    ins: &[HostTensor],
    out_shape: &[usize],
    out_dtype: DType,
    (rtol, atol): (f64, f64),
) -> HostTensor {
    let want = cpu_ref(op, &rounded(ins), out_shape, out_dtype);
    let got = run_on(be, op, ins, out_shape, out_dtype)
        .unwrap_or_else(|e| panic!("{what}: {} {}: {e}", be.name(), op.name()));
    assert_close(what, &got.to_f64_vec(), &want.to_f64_vec(), rtol, atol);
    got
}

/// f32 tolerances for elementwise ops and for reductions / GEMM-like ops.
pub const ELEMENTWISE: (f64, f64) = (1e-5, 1e-6);
pub const REDUCTION: (f64, f64) = (2e-4, 2e-5);
