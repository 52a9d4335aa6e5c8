//! What a benchmark ratio was measured on: the CPU model, the instruction sets the CPU offers
//! and the ones mmrun's kernels use, and the PyTorch build the peer ran (its version, its
//! dispatch level and the ISA oneDNN reports). A ratio means little without them: the same
//! binary against the same PyTorch gave 1.08× on one machine and 0.72× on another.

use std::process::Command;

/// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let Some(model) = field("model name").or_else(|| field("Model")) else {
        return "unknown".into();
    };
    let family = [field("cpu family"), field("model")];
    match family {
        [Some(f), Some(m)] => format!("{model} (family {f}, model {m})"),
        _ => model,
    }
}

/// The vector instruction sets this CPU offers, as the run-time detection sees them.
pub fn cpu_isa() -> Vec<&'static str> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) {
                    out.push($f);
                }
            )*};
        }
        probe!(
            "sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            out.push("neon");
        }
    }
    out
}

/// The instruction set mmrun's CPU convolutions and GEMMs run on in this process (the widest
/// the CPU has, or what `MMRUN_CPU_ISA` forces).
pub fn mmrun_isa() -> String {
    let isa = crate::backend::cpu::isa::active();
    if crate::backend::cpu::isa::forced() {
        format!(
            "{} (forced by {})",
            isa.describe(),
            crate::backend::cpu::isa::ENV
        )
    } else {
        isa.describe().to_string()
    }
}

/// The PyTorch the peer runs: version, ATen's CPU dispatch level, the ISA oneDNN reports
/// (`ONEDNN_VERBOSE`'s `isa:` line) and the BLAS it was built with; or why it cannot say.
pub fn torch_build(python: &str) -> Result<String, String> {
    const PROBE: &str = "import torch, json\n\
x = torch.randn(2, 64, 28, 28)\n\
torch.nn.functional.conv2d(x, torch.randn(64, 64, 3, 3), padding=1)\n\
cfg = torch.__config__.show()\n\
blas = next((p.split('=')[1] for p in cfg.replace(',', ' ').split() if p.startswith('BLAS_INFO=')), '?')\n\
print(json.dumps({'torch': torch.__version__, 'cap': torch.backends.cpu.get_cpu_capability(), 'blas': blas}))\n";
    let out = Command::new(python)
        .args(["-c", PROBE])
        .env("ONEDNN_VERBOSE", "1")
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("python failed").to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let isa = text
        .lines()
        .find_map(|l| l.split_once(",isa:").map(|(_, isa)| isa.trim().to_string()))
        .unwrap_or_else(|| "oneDNN not used".into());
    let json = text.lines().rfind(|l| l.starts_with('{')).unwrap_or("{}");
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("bad reply `{json}`: {e}"))?;
    Ok(format!(
        "torch {} (ATen CPU capability {}, oneDNN ISA: {isa}, BLAS {})",
        v["torch"].as_str().unwrap_or("?"),
        v["cap"].as_str().unwrap_or("?"),
        v["blas"].as_str().unwrap_or("?"),
    ))
}

/// The lines every CPU benchmark prints first: the machine, mmrun's kernels, and — with a
/// `python` to ask — the PyTorch build.
pub fn header(python: Option<&str>) -> Vec<String> {
    let mut lines = vec![
        format!("cpu: {}", cpu_model()),
        format!("cpu features: {}", cpu_isa().join(" ")),
        format!("mmrun cpu kernels: {}", mmrun_isa()),
        format!(
            "mmrun cpu elementwise: {}",
            crate::backend::cpu::fused::describe()
        ),
    ];
    if let Some(python) = python {
        lines.push(match torch_build(python) {
            Ok(b) => format!("peer: {b}"),
            Err(e) => format!("peer: PyTorch build unknown ({e})"),
        });
    }
    lines
}
