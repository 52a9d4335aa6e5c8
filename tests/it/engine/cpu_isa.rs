//! `MMRUN_CPU_ISA` and `MMRUN_CPU_FUSE` through the binary: the instruction set of the CPU
//! backend's matrix kernels, forced from the environment, is named by the run, recorded in its
//! log, and trains to the same losses as the default path within f32 rounding; fused
//! elementwise chains, on by default, train to exactly the losses of the ops one by one; a
//! value that cannot be honoured stops the run before any work.

use super::detector::{dataset, overrides};
use mmrun::backend::cpu::isa::CpuIsa;
use std::path::Path;

/// `mmrun ARGS` with `MMRUN_CPU_ISA` set to `isa` (unset for `None`).
fn mmrun_with(isa: Option<&str>, args: &[&str]) -> (i32, String) {
    crate::bin::mmrun_env(args, &[("MMRUN_CPU_ISA", isa)])
}

/// Three quickstart iterations in `work` on `isa`: the logged losses and the run's text.
fn three_iterations(isa: Option<&str>, root: &Path, work: &Path) -> (Vec<f64>, String) {
    three_iterations_with(&[("MMRUN_CPU_ISA", isa)], root, work)
}

/// Three quickstart iterations in `work` with `env`: the logged losses and the run's text.
fn three_iterations_with(
    env: &[(&str, Option<&str>)],
    root: &Path,
    work: &Path,
) -> (Vec<f64>, String) {
    let mut args = vec![
        "exec".to_string(),
        "pipelines/quickstart.recipe".into(),
        "--work-dir".into(),
        work.display().to_string(),
        "--max-iters".into(),
        "3".into(),
    ];
    for s in overrides(root, 10) {
        args.extend(["--set".to_string(), s]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, text) = crate::bin::mmrun_env(&args, env);
    assert_eq!(code, 0, "{env:?}: {text}");
    let losses = super::detector::log_records(work)
        .iter()
        .filter(|r| r["mode"] == "train")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    (losses, text)
}

/// The `env_info` of the run's mmdetection-format log (its first line).
fn env_info(work: &Path) -> String {
    let log = std::fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".log.json"))
        .expect("a <timestamp>.log.json in the work dir");
    let first = std::fs::read_to_string(log).unwrap();
    let meta: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    meta["env_info"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_forced_instruction_set_is_named_logged_and_trains_like_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let widest = CpuIsa::widest();
    let (reference, text) = three_iterations(None, &root, &dir.path().join("auto"));
    assert!(
        text.contains(&format!("device: cpu ({};", widest.describe())),
        "{text}"
    );
    assert_eq!(reference.len(), 3, "{text}");
    let mut forced: Vec<CpuIsa> = [CpuIsa::Avx2, CpuIsa::Scalar]
        .into_iter()
        .filter(|i| i.available() && *i != widest)
        .collect();
    forced.push(CpuIsa::Scalar);
    forced.dedup();
    for isa in forced {
        let work = dir.path().join(isa.name());
        let (losses, text) = three_iterations(Some(isa.name()), &root, &work);
        assert!(
            text.contains(&format!("device: cpu ({};", isa.describe())),
            "{text}"
        );
        assert!(
            env_info(&work).contains(&format!("CPU kernels: {}", isa.describe())),
            "{}",
            env_info(&work)
        );
        // Another blocking of each dot product moves the last bits only: the same losses to
        // f32 rounding, grown over three steps of training.
        for (i, (a, b)) in losses.iter().zip(&reference).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{} iteration {}: loss {a} against the default path's {b}",
                isa.name(),
                i + 1
            );
        }
        assert_eq!(losses.len(), reference.len());
    }
}

#[test]
fn an_instruction_set_the_cpu_cannot_honour_stops_the_run_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let unavailable = [CpuIsa::Avx512, CpuIsa::Neon]
        .into_iter()
        .find(|i| !i.available())
        .expect("no CPU has both AVX-512 and NEON");
    for (value, says) in [
        (
            "sse9",
            "MMRUN_CPU_ISA=\"sse9\": expected one of auto, avx512, avx2, neon, scalar",
        ),
        (unavailable.name(), "this CPU cannot run it"),
    ] {
        let work = dir.path().join(value);
        let (code, text) = mmrun_with(
            Some(value),
            &[
                "exec",
                "pipelines/quickstart.recipe",
                "--work-dir",
                work.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 2, "{value}: {text}");
        assert!(text.contains(says), "{value}: {text}");
        assert!(!work.exists(), "{value}: the work dir was made");
    }
    let (code, text) = mmrun_with(Some("scalar"), &["devices"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("cpu ") && text.contains("scalar: no vector"),
        "{text}"
    );
    let (code, text) = mmrun_with(Some("scalar"), &["devices", "--format", "json"]);
    assert_eq!(code, 0, "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let cpu = &v["devices"][0];
    assert_eq!(
        (&cpu["name"], &cpu["usable"]),
        (&"cpu".into(), &true.into())
    );
    assert!(cpu["about"].as_str().unwrap().contains("scalar"), "{v}");
}

#[test]
fn fused_chains_train_to_the_same_bits_as_the_ops_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let fuse = |v| [("MMRUN_CPU_FUSE", v)];
    let on = dir.path().join("fused");
    let (fused, text) = three_iterations_with(&fuse(None), &root, &on);
    if cfg!(feature = "jit") {
        assert!(
            text.contains("fused elementwise chains on (cranelift"),
            "{text}"
        );
        assert!(env_info(&on).contains("CPU elementwise: fused elementwise chains on"));
    }
    let off = dir.path().join("one_by_one");
    let (one_by_one, text) = three_iterations_with(&fuse(Some("off")), &root, &off);
    assert!(
        text.contains("fused elementwise chains off (MMRUN_CPU_FUSE)"),
        "{text}"
    );
    assert_eq!(fused.len(), 3);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&fused),
        bits(&one_by_one),
        "{fused:?} against {one_by_one:?}"
    );

    let work = dir.path().join("bad");
    let (code, text) = crate::bin::mmrun_env(
        &[
            "exec",
            "pipelines/quickstart.recipe",
            "--work-dir",
            work.to_str().unwrap(),
        ],
        &fuse(Some("sometimes")),
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("MMRUN_CPU_FUSE=\"sometimes\": expected on or off"),
        "{text}"
    );
    assert!(!work.exists(), "the work dir was made");
}
