//! The benchmarks say what they measured on: the CPU model, its instruction sets, the ones
//! mmrun's kernels use, and the PyTorch build of the peer (version, ATen dispatch level,
//! oneDNN's ISA), so a ratio can be compared across machines.

use mmrun::bench::machine;
use std::process::Command;

#[test]
fn the_machine_is_named_in_the_benchmark_header() {
    if cfg!(target_os = "linux") {
        assert_ne!(machine::cpu_model(), "unknown");
    }
    let isa = machine::cpu_isa();
    if cfg!(target_arch = "x86_64") {
        assert!(isa.contains(&"sse4.2"), "{isa:?}");
    }
    // `--no-peer`: no python asked; the rest of the header and a real (tiny) measurement.
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args([
            "bench",
            "train",
            "--no-peer",
            "--iters",
            "1",
            "--warmup",
            "0",
        ])
        .args(["--size", "64", "--batch", "1", "--threads", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |p: &str| text.lines().find(|l| l.starts_with(p)).map(str::to_string);
    assert_eq!(
        line("cpu: "),
        Some(format!("cpu: {}", machine::cpu_model()))
    );
    assert!(
        line("cpu features: ").is_some() && line("mmrun cpu kernels: ").is_some(),
        "{text}"
    );
    assert!(line("peer: ").is_none(), "{text}");
}

#[test]
fn the_pytorch_build_is_read_from_torch_itself() {
    let b = match machine::torch_build("python3") {
        Ok(b) => b,
        Err(e) => return crate::support::skip_without_reference("torch_build", &e),
    };
    let version = Command::new("python3")
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert!(
        b.starts_with(&format!("torch {version} (ATen CPU capability ")),
        "{b}"
    );
    // Where oneDNN runs the convolution it names its ISA; `oneDNN not used` otherwise.
    assert!(b.contains("oneDNN ISA: ") && b.contains(", BLAS "), "{b}");
}

/// `mmrun bench ARGS…` (with `--format json` among them): its exit code, its stdout parsed as
/// one JSON object (stdout holds that object alone) and its stderr.
fn bench_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .arg("bench")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{stdout}\nstderr:\n{stderr}"));
    (out.status.code(), v, stderr)
}

/// The machine section names what `bench::machine` finds, field by field.
fn assert_machine(v: &serde_json::Value) {
    let m = &v["machine"];
    assert_eq!(m["cpu"], machine::cpu_model().as_str(), "{v}");
    assert_eq!(
        m["cpu_features"],
        serde_json::json!(machine::cpu_isa()),
        "{v}"
    );
    assert_eq!(m["mmrun_cpu_kernels"], machine::mmrun_isa(), "{v}");
}

#[test]
fn bench_train_json_reports_the_machine_settings_and_timings() {
    let (code, v, stderr) = bench_json(&[
        "train",
        "--no-peer",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--size",
        "64",
        "--batch",
        "1",
        "--threads",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{v}\n{stderr}");
    assert_eq!(v["area"], "train");
    assert_eq!(v["outcome"], "done");
    assert_machine(&v);
    // `--no-peer`: PyTorch was not asked for its build.
    assert!(v["machine"]["peer_build"].is_null(), "{v}");
    let s = &v["settings"];
    assert_eq!(
        (&s["batch"], &s["size"], &s["threads"], &s["iterations"]),
        (
            &1.into(),
            &serde_json::json!([64, 64]),
            &1.into(),
            &2.into()
        ),
        "{v}"
    );
    assert_eq!(s["peer"], false);
    let r = &v["results"];
    let per_iter = r["mmrun_s_per_iter"].as_f64().unwrap();
    assert!(per_iter > 0.0, "{v}");
    let each: Vec<f64> = serde_json::from_value(r["mmrun_s_per_iter_each"].clone()).unwrap();
    assert_eq!(each.len(), 2);
    assert!(each.iter().all(|&s| s > 0.0) && r["last_loss"].as_f64().unwrap() > 0.0);
    assert_eq!(r["pytorch_skipped"], "--no-peer");
    assert_eq!(r["load_average_before"].as_array().map(Vec::len), Some(3));
    let conv = &r["profile"]["conv fwd"];
    assert!(conv["ms_per_iter"].as_f64().unwrap() > 0.0 && conv["calls"].as_u64() > Some(0));
    // No peer, no ratio; nothing went wrong.
    assert_eq!(v["ratios"], serde_json::json!({}));
    assert_eq!(v["errors"], serde_json::json!([]));
    // The lines for people went to stderr.
    assert!(
        stderr.contains(&format!("cpu: {}\n", machine::cpu_model()))
            && stderr.contains("mmrun (cpu backend): "),
        "{stderr}"
    );
}

/// `bench fusion`: both executors ran every step, the same losses bit for bit, the chains
/// and both memory plans reported (about the same peak), and the two ratios.
#[test]
fn bench_fusion_json_compares_fused_chains_with_the_ops_one_by_one() {
    let (code, v, stderr) = bench_json(&[
        "fusion", "--iters", "2", "--size", "64", "--batch", "1", "--format", "json",
    ]);
    assert_eq!(code, Some(0), "{v}\n{stderr}");
    assert_eq!(
        (&v["area"], &v["outcome"]),
        (&"fusion".into(), &"done".into())
    );
    assert_machine(&v);
    let fusion = mmrun::backend::cpu::fused::describe();
    assert_eq!(v["machine"]["mmrun_cpu_elementwise"], fusion, "{v}");
    let r = &v["results"];
    for key in ["fused_step_s_each", "one_by_one_step_s_each"] {
        let each: Vec<f64> = serde_json::from_value(r[key].clone()).unwrap();
        assert!(
            each.len() == 2 && each.iter().all(|&s| s > 0.0),
            "{key}: {v}"
        );
    }
    if mmrun::backend::cpu::fused::enabled() {
        assert!(r["chains"].as_u64() > Some(0) && r["ops_fused"].as_u64() > r["chains"].as_u64());
    }
    // Chains run back to back, so fusing moves the planned peak by slot packing only.
    let peak = |k: &str| r[k].as_f64().unwrap();
    assert!(
        peak("peak_bytes_fused") <= 1.02 * peak("peak_bytes_one_by_one"),
        "{v}"
    );
    assert!(v["ratios"]["step"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        stderr.contains("losses: the same bits fused and one by one"),
        "{stderr}"
    );
}

#[test]
fn bench_recipe_json_times_the_check() {
    let (code, v, stderr) = bench_json(&[
        "recipe",
        "--iters",
        "3",
        "--processes",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{v}\n{stderr}");
    assert_eq!(
        (&v["area"], &v["outcome"]),
        (&"recipe".into(), &"done".into())
    );
    assert_machine(&v);
    assert_eq!(v["settings"]["iterations"], 3);
    assert_eq!(v["settings"]["processes"], 2);
    for k in [
        "mmrun_in_process_ms_per_check",
        "mmrun_process_ms_per_check",
        "peer_ms_per_load",
    ] {
        assert!(v["results"][k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
    for k in ["in_process_speedup_vs_peer", "process_speedup_vs_peer"] {
        assert!(v["ratios"][k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
    assert!(stderr.contains("in process   : "), "{stderr}");
}

#[test]
fn bench_json_reports_a_run_that_cannot_run() {
    // Bad settings: the error on stderr as in text, and the object says so.
    let (code, v, stderr) = bench_json(&["train", "--iters", "0", "--no-peer", "--format", "json"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        (&v["area"], &v["outcome"]),
        (&"train".into(), &"cannot_run".into())
    );
    let err = "--iters, --batch, --size and --threads must be at least 1";
    assert_eq!(v["errors"], serde_json::json!([err]));
    assert!(stderr.contains(&format!("error: {err}")), "{stderr}");
    assert_eq!(v["settings"]["iterations"], 0);
    let (code, v, _) = bench_json(&["recipe", "--iters", "0", "--format", "json"]);
    assert_eq!((code, &v["outcome"]), (Some(2), &"cannot_run".into()));
    // A missing recipe, the flag before the area (one shared `--format`).
    let (code, v, _) = bench_json(&["--format", "json", "recipe", "--recipe", "no/such.recipe"]);
    assert_eq!(code, Some(2));
    assert_eq!(v["outcome"], "cannot_run");
    assert_eq!(
        v["errors"],
        serde_json::json!(["cannot read `no/such.recipe`"])
    );
    if !cfg!(feature = "cuda") {
        let (code, v, _) = bench_json(&["cuda", "--format", "json"]);
        assert_eq!((code, &v["area"]), (Some(2), &"cuda".into()));
        assert_eq!(v["outcome"], "cannot_run");
        assert!(
            v["errors"][0].as_str().unwrap().contains("`cuda` feature"),
            "{v}"
        );
    }
}
