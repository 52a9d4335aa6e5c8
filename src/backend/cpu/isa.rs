//! Which vector instruction set the CPU backend's matrix kernels run on: the widest the CPU
//! offers, or the one `MMRUN_CPU_ISA` names. Chosen once per process, at the first kernel
//! call or when the CLI validates the variable at start-up.
//!
//! On the packed micro-kernel path (every GEMM but the smallest) the vector width does not
//! reorder any sum: each output is one chain of fused multiply-adds over k, in depth blocks
//! sized from the caches and the micro-kernel's height. Where those blocks come out the same,
//! AVX2 and AVX-512 agree bit for bit (they did on every shape tried on a Zen 4). Tiny GEMMs
//! (m·n ≤ 256 with both operands contiguous along k) and matrix-vector products add across
//! lanes, so their order does follow the width; the scalar path rounds each product before
//! adding it. No path depends on the thread count. Forcing a narrower path (`avx2` on an
//! AVX-512 machine) is how a speed ratio is compared across machines.

use std::sync::OnceLock;

/// The environment variable that forces an instruction set.
pub const ENV: &str = "MMRUN_CPU_ISA";

/// An instruction set the GEMM micro-kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuIsa {
    /// AVX-512F: 16 f32 lanes (x86-64).
    Avx512,
    /// AVX2 with FMA: 8 f32 lanes (x86-64).
    Avx2,
    /// NEON: 4 f32 lanes (aarch64).
    Neon,
    /// Plain scalar code: any CPU.
    Scalar,
}

impl CpuIsa {
    /// The spelling `MMRUN_CPU_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            CpuIsa::Avx512 => "avx512",
            CpuIsa::Avx2 => "avx2",
            CpuIsa::Neon => "neon",
            CpuIsa::Scalar => "scalar",
        }
    }

    /// A label for reports: the instruction set and whose micro-kernels run on it.
    pub fn describe(self) -> &'static str {
        match self {
            CpuIsa::Avx512 => "AVX-512F: the gemm crate's micro-kernels, 16 f32 lanes",
            CpuIsa::Avx2 => "AVX2/FMA: the gemm crate's micro-kernels, 8 f32 lanes",
            CpuIsa::Neon => "NEON: the gemm crate's micro-kernels, 4 f32 lanes",
            CpuIsa::Scalar => "scalar: no vector instructions",
        }
    }

    const ALL: [CpuIsa; 4] = [CpuIsa::Avx512, CpuIsa::Avx2, CpuIsa::Neon, CpuIsa::Scalar];

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            CpuIsa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            CpuIsa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            CpuIsa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            CpuIsa::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The widest set this CPU offers.
    pub fn widest() -> CpuIsa {
        CpuIsa::ALL
            .into_iter()
            .find(|i| i.available())
            .unwrap_or(CpuIsa::Scalar)
    }

    /// The set a value of `MMRUN_CPU_ISA` asks for (`auto`, or empty, for the widest), or why
    /// it cannot be had here.
    pub fn parse(value: &str) -> Result<CpuIsa, IsaError> {
        let v = value.trim().to_ascii_lowercase();
        if v.is_empty() || v == "auto" {
            return Ok(CpuIsa::widest());
        }
        let wanted = match v.as_str() {
            "avx512" | "avx-512" | "avx512f" => CpuIsa::Avx512,
            "avx2" | "fma" => CpuIsa::Avx2,
            "neon" => CpuIsa::Neon,
            "scalar" => CpuIsa::Scalar,
            _ => return Err(IsaError::Unknown(value.to_string())),
        };
        if wanted.available() {
            Ok(wanted)
        } else {
            Err(IsaError::Unavailable(wanted))
        }
    }
}

/// Why `MMRUN_CPU_ISA` cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    #[error("{ENV}={0:?}: expected one of auto, avx512, avx2, neon, scalar")]
    Unknown(String),
    #[error("{ENV}={}: this CPU cannot run it (it can run: {})", .0.name(), usable())]
    Unavailable(CpuIsa),
}

fn usable() -> String {
    let names: Vec<_> = CpuIsa::ALL
        .into_iter()
        .filter(|i| i.available())
        .map(CpuIsa::name)
        .collect();
    names.join(", ")
}

static CHOSEN: OnceLock<Result<CpuIsa, IsaError>> = OnceLock::new();

/// `MMRUN_CPU_ISA` read and checked, once per process.
fn chosen() -> &'static Result<CpuIsa, IsaError> {
    CHOSEN.get_or_init(|| match std::env::var(ENV) {
        Ok(v) => CpuIsa::parse(&v),
        Err(std::env::VarError::NotPresent) => Ok(CpuIsa::widest()),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(IsaError::Unknown(v.to_string_lossy().into_owned()))
        }
    })
}

/// The instruction set `MMRUN_CPU_ISA` picks (the widest when unset), read once per process.
/// The CLI calls this before any work so a bad value stops the run with its message.
pub fn from_env() -> Result<CpuIsa, IsaError> {
    chosen().clone()
}

/// Whether `MMRUN_CPU_ISA` names a set (not `auto`) that this process honours.
pub fn forced() -> bool {
    let named = std::env::var(ENV).is_ok_and(|v| {
        let v = v.trim();
        !v.is_empty() && !v.eq_ignore_ascii_case("auto")
    });
    named && chosen().is_ok()
}

/// The instruction set kernels run on. A value of `MMRUN_CPU_ISA` that cannot be honoured is
/// refused by the CLI before any kernel runs; a library caller that skipped that check gets
/// the widest set rather than a panic inside a kernel.
pub fn active() -> CpuIsa {
    // Called by every GEMM: no allocation, no clone.
    match chosen() {
        Ok(isa) => *isa,
        Err(_) => CpuIsa::widest(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_refusals() {
        assert_eq!(CpuIsa::parse("").unwrap(), CpuIsa::widest());
        assert_eq!(CpuIsa::parse(" Auto ").unwrap(), CpuIsa::widest());
        assert_eq!(CpuIsa::parse("scalar").unwrap(), CpuIsa::Scalar);
        let e = CpuIsa::parse("sse9").unwrap_err();
        assert!(e.to_string().contains("MMRUN_CPU_ISA=\"sse9\""), "{e}");
        for isa in CpuIsa::ALL {
            match CpuIsa::parse(isa.name()) {
                Ok(got) => assert!(got == isa && isa.available()),
                Err(e) => {
                    assert!(!isa.available());
                    assert!(e.to_string().contains("cannot run it"), "{e}");
                }
            }
        }
    }
}
