//! How a run on CUDA computes, through the binary: `runtime.tf32` and `runtime.deterministic`
//! reach the backend and the run's `device:` line says what they chose, as does the
//! convolution path (`MMRUN_CUDA_CONV`); a bad path stops the run before any work, with or
//! without a GPU.

use crate::bin::{mmrun, mmrun_env};
use crate::engine::detector::{dataset, log_records, overrides};
use std::path::Path;

#[test]
fn a_convolution_path_that_is_not_a_choice_stops_the_run_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("bad");
    let args = [
        "exec",
        "pipelines/quickstart.recipe",
        "--device",
        "cuda",
        "--work-dir",
        work.to_str().unwrap(),
    ];
    let (code, text) = mmrun_env(&args, &[("MMRUN_CUDA_CONV", Some("cuDNN"))]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("MMRUN_CUDA_CONV=\"cuDNN\": expected `auto`, `cudnn` or `im2col`"),
        "{text}"
    );
    assert!(!work.exists(), "the work dir was made");
}

#[test]
fn tf32_is_a_runtime_setting_check_reads() {
    let check = |set: &str| mmrun(&["check", "pipelines/quickstart.recipe", "--set", set]);
    let (code, text) = check("runtime.tf32=false");
    assert_eq!(code, 0, "{text}");
    let (code, text) = check("runtime.tf32=3");
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("tf32"), "{text}");
    let (code, text) = mmrun(&["explain", "--reference"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("`tf32`") && l.contains("TF32 tensor cores")),
        "the reference lists runtime.tf32"
    );
}

/// Three quickstart iterations on `cuda` with `sets` and `env`: the logged losses and the
/// run's text, or `None` where no device opens (the run's own error says why).
fn three_on_cuda(
    root: &Path,
    work: &Path,
    sets: &[&str],
    env: &[(&str, Option<&str>)],
) -> Option<(Vec<f64>, String)> {
    three_on("cuda", root, work, sets, env)
}

/// [`three_on_cuda`] on any device.
fn three_on(
    device: &str,
    root: &Path,
    work: &Path,
    sets: &[&str],
    env: &[(&str, Option<&str>)],
) -> Option<(Vec<f64>, String)> {
    let mut args: Vec<String> = ["exec", "pipelines/quickstart.recipe", "--device", device]
        .map(String::from)
        .into();
    args.extend(["--work-dir".into(), work.display().to_string()]);
    args.extend(["--max-iters".into(), "3".into()]);
    for s in overrides(root, 10)
        .into_iter()
        .chain(sets.iter().map(|s| s.to_string()))
    {
        args.extend(["--set".into(), s]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, text) = mmrun_env(&args, env);
    if code != 0
        && text.contains("device `cuda`")
        && std::env::var_os("MMRUN_REQUIRE_GPU").is_none()
    {
        eprintln!("skipped: {text}");
        return None;
    }
    assert_eq!(code, 0, "{text}");
    let losses = log_records(work)
        .iter()
        .filter(|r| r["mode"] == "train")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    Some((losses, text))
}

/// Strict f32 through cuDNN and through im2col train to the same losses (different
/// summation orders: 1e-4 relative), and each run's device line names its path; the
/// recipe's default (TF32) says so too.
#[test]
fn exec_on_cuda_names_its_math_and_convolution_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let strict = ["runtime.tf32=false", "runtime.deterministic=true"];
    let Some((cudnn, text)) = three_on_cuda(&root, &dir.path().join("a"), &strict, &[]) else {
        return;
    };
    assert!(text.contains("strict f32 (runtime.tf32 = false)"), "{text}");
    assert!(
        text.contains("deterministic only") || text.contains("im2col"),
        "{text}"
    );
    let im2col_env = [("MMRUN_CUDA_CONV", Some("im2col"))];
    let (im2col, text) = three_on_cuda(&root, &dir.path().join("b"), &strict, &im2col_env)
        .expect("the device opened once");
    assert!(text.contains("convolutions: im2col + cuBLAS"), "{text}");
    assert_eq!(cudnn.len(), 3);
    for (a, b) in cudnn.iter().zip(&im2col) {
        assert!((a - b).abs() <= 1e-4 * b.abs(), "{cudnn:?} vs {im2col:?}");
    }
    let (tf32, text) =
        three_on_cuda(&root, &dir.path().join("c"), &[], &[]).expect("the device opened once");
    assert!(text.contains("TF32 tensor cores allowed"), "{text}");
    assert!(tf32.iter().all(|l| l.is_finite()), "{tf32:?}");
}

/// bf16 and f16 (half-precision storage, f32 arithmetic: `backend::cuda::half`) train the
/// shortened quickstart on the GPU with the CPU's losses in the same precision, in strict f32
/// math. Tolerance 1e-3 relative: a summation order that differs from the CPU's can move an
/// activation across a half-precision rounding boundary (one bf16 step is 2⁻⁸ relative), and
/// the loss averages thousands of them.
#[test]
fn mixed_precision_trains_on_cuda_with_the_cpu_losses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    for precision in ["bf16", "fp16"] {
        let p = format!("runtime.precision={precision}");
        let sets = ["runtime.tf32=false", p.as_str()];
        let at = dir.path().join(precision);
        let Some((gpu, text)) = three_on_cuda(&root, &at.join("cuda"), &sets, &[]) else {
            return;
        };
        let (cpu, _) = three_on("cpu", &root, &at.join("cpu"), &sets, &[]).expect("the cpu runs");
        assert_eq!(gpu.len(), 3, "{text}");
        for (c, g) in cpu.iter().zip(&gpu) {
            assert!(
                (c - g).abs() <= 1e-3 * c.abs(),
                "{precision}: cpu {cpu:?}, cuda {gpu:?}"
            );
        }
    }
}
