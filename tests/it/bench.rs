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
