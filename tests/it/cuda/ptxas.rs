//! ptxas (from the `nvidia-cuda-nvcc-cu12` wheel, or `$PTXAS`) assembles every embedded PTX
//! module for sm_80 and sm_90 with `-Werror --warn-on-spills --warn-on-local-memory-usage`,
//! and `-v` reports no spill and no stack frame for any entry. Skips, saying why, when ptxas
//! is not installed.

use std::path::PathBuf;
use std::process::Command;

use mmrun::backend::cuda::kernels::Module;

/// `$PTXAS`, else `<site-packages>/nvidia/cuda_nvcc/bin/ptxas` found through python3.
fn find_ptxas() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("PTXAS") {
        return Ok(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import nvidia.cuda_nvcc as m; print(list(m.__path__)[0])",
        ])
        .output()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    if !out.status.success() {
        return Err("python package nvidia-cuda-nvcc-cu12 is not installed".into());
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let p = PathBuf::from(dir).join("bin").join("ptxas");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} does not exist", p.display()))
    }
}

/// Per entry: (name, registers, spill stores + loads, stack frame bytes).
fn parse_verbose(text: &str) -> Vec<(String, u32, u32, u32)> {
    let mut out = Vec::new();
    let mut name = String::new();
    let (mut spill, mut stack) = (0, 0);
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            name = rest.split('\'').next().unwrap_or("").to_string();
        } else if line.contains("bytes stack frame") {
            let nums: Vec<u32> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            // "N bytes stack frame, S bytes spill stores, L bytes spill loads"
            stack = nums.first().copied().unwrap_or(0);
            spill = nums.get(1).copied().unwrap_or(0) + nums.get(2).copied().unwrap_or(0);
        } else if let Some(rest) = line.split("Used ").nth(1) {
            let regs = rest
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(0);
            out.push((name.clone(), regs, spill, stack));
        }
    }
    out
}

#[test]
fn every_module_assembles_for_sm80_and_sm90_without_spills() {
    let ptxas = match find_ptxas() {
        Ok(p) => p,
        Err(why) => {
            let why =
                format!("ptxas not found ({why}); set PTXAS or pip install nvidia-cuda-nvcc-cu12");
            crate::support::skip_without_reference("ptxas", &why);
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for m in Module::ALL {
        let src = dir.path().join(m.file());
        std::fs::write(&src, m.ptx()).expect("write ptx");
        for arch in ["sm_80", "sm_90"] {
            let out = Command::new(&ptxas)
                .arg(format!("-arch={arch}"))
                .args([
                    "-Werror",
                    "--warn-on-spills",
                    "--warn-on-local-memory-usage",
                    "-v",
                ])
                .arg(&src)
                .arg("-o")
                .arg(dir.path().join("out.cubin"))
                .output()
                .expect("run ptxas");
            let text = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                failures.push(format!("{} {arch}: ptxas failed:\n{text}", m.file()));
                continue;
            }
            let entries = parse_verbose(&text);
            assert!(
                !entries.is_empty(),
                "{} {arch}: no -v report parsed:\n{text}",
                m.file()
            );
            for (name, regs, spill, stack) in entries {
                eprintln!(
                    "{arch} {:<32} {regs:>3} registers, {spill} spill bytes, {stack} stack bytes",
                    name
                );
                if spill > 0 || (m.is_loss() && stack > 0) {
                    failures.push(format!(
                        "{} {arch}: {name} spills ({spill} bytes, stack {stack})",
                        m.file()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn verbose_report_parser() {
    let text = "ptxas info    : Compiling entry function 'k_f32' for 'sm_80'\n\
                ptxas info    : Function properties for k_f32\n    \
                8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n\
                ptxas info    : Used 40 registers, used 1 barriers, 32 bytes smem\n";
    assert_eq!(parse_verbose(text), vec![("k_f32".to_string(), 40, 8, 8)]);
}
