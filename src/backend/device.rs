//! Where graphs run: `--device cpu` (the reference backend), `--device cuda:N` (feature
//! `cuda`) or `--device wgpu[:N|:NAME]` (feature `wgpu`: any Vulkan, Metal or DX12 adapter).
//! Owns parsing and opening a device — once the recipe is loaded and before any data
//! or model work, so a missing driver fails in seconds with a clear message — and handing its
//! backend to code that is generic over backends ([`Device::with`]), so nothing above
//! `backend` names a concrete one.
//!
//! Without the `cuda` (`wgpu`) feature, `Device::Cuda` (`Device::Wgpu`) holds a stand-in that
//! cannot be built: the enum and every match on it read the same in every build.

use super::Backend;
use super::cpu::CpuBackend;
use super::cuda::CudaBackend;
use super::wgpu::WgpuBackend;

/// An opened device.
#[derive(Clone, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA device (shared handles: cheap to clone).
    Cuda(CudaBackend),
    /// A wgpu adapter (shared handles: cheap to clone).
    Wgpu(WgpuBackend),
}

/// A `--device` value, read but not opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    /// The CUDA device of this ordinal.
    Cuda(usize),
    Wgpu(AdapterChoice),
}

/// Which adapter `--device wgpu[:SEL]` names (`mmrun devices` lists them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdapterChoice {
    /// `wgpu`: a real GPU before a CPU implementation, else the first adapter.
    #[default]
    Default,
    /// `wgpu:N`: the `N`th adapter in `mmrun devices`' order.
    Index(usize),
    /// `wgpu:NAME`: the first adapter whose name contains `NAME` (case-insensitive).
    Name(String),
}

/// Code generic over the backend, run by [`Device::with`] on the device's backend.
pub trait WithBackend {
    type Output;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Self::Output;
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a device spec cannot be used; each message names the spec as the user wrote it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{spec}`: expected `cpu`, `cuda:N` or `wgpu[:N|:NAME]`")]
    Unknown { spec: String },
    #[error(
        "device `{spec}`: this mmrun was built without the `{feature}` feature \
         (rebuild with `cargo build --release --features {feature}`)"
    )]
    NotBuilt { spec: String, feature: &'static str },
    /// No driver, no such device, or the device failed to open (the driver's words).
    #[error("device `{spec}`: {message}")]
    Unavailable { spec: String, message: String },
}

/// How a device may compute: the recipe's `runtime.tf32` and `runtime.deterministic`. Only
/// CUDA has a choice; the cpu and wgpu backends always compute strict f32, deterministically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// TF32 tensor cores for f32 convolutions and GEMMs.
    pub tf32: bool,
    /// Deterministic cuDNN algorithms only.
    pub deterministic: bool,
}

impl Device {
    /// Parses and opens a `--device` value with strict f32 math ([`DeviceOptions::default`]).
    pub fn open(spec: &str) -> Result<Device, DeviceError> {
        Self::open_with(spec, DeviceOptions::default())
    }

    /// Parses and opens a `--device` value: `cpu`, `cuda[:N]` or `wgpu[:N|:NAME]`. Refused:
    /// an unknown name, a build without the feature, no driver, no such device.
    pub fn open_with(spec: &str, options: DeviceOptions) -> Result<Device, DeviceError> {
        match Self::parse(spec)? {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => open_cuda(spec, ordinal, options),
            DeviceSpec::Wgpu(choice) => open_wgpu(spec, &choice),
        }
    }

    /// Reads a device spec without opening it. Lets a command refuse a misspelt `--device`
    /// before it reads anything else.
    pub fn parse(spec: &str) -> Result<DeviceSpec, DeviceError> {
        let unknown = || DeviceError::Unknown { spec: spec.into() };
        match spec {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            "wgpu" => Ok(DeviceSpec::Wgpu(AdapterChoice::Default)),
            _ => {
                if let Some(n) = spec.strip_prefix("cuda:") {
                    return n.parse().map(DeviceSpec::Cuda).map_err(|_| unknown());
                }
                match spec.strip_prefix("wgpu:") {
                    Some("") | None => Err(unknown()),
                    Some(sel) => Ok(DeviceSpec::Wgpu(match sel.parse() {
                        Ok(i) => AdapterChoice::Index(i),
                        Err(_) => AdapterChoice::Name(sel.to_string()),
                    })),
                }
            }
        }
    }

    /// `cpu`, `cuda` or `wgpu`.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda(_) => "cuda",
            Device::Wgpu(_) => "wgpu",
        }
    }

    /// The hardware in words, where there is more to say than the name (the wgpu adapter).
    pub fn describe(&self) -> Option<String> {
        match self {
            Device::Wgpu(b) => Some(b.adapter_and_limits()),
            Device::Cuda(b) => Some(b.describe()),
            Device::Cpu => None,
        }
    }

    /// The name, with the hardware in words where there is more to say (`wgpu (llvmpipe …)`).
    pub fn label(&self) -> String {
        match self.describe() {
            Some(d) => format!("{} ({d})", self.name()),
            None => self.name().to_string(),
        }
    }

    /// Bytes of memory this device can still give and where the number comes from, or `None`
    /// when it cannot tell.
    pub fn available_memory(&self) -> Option<(u64, &'static str)> {
        match self {
            Device::Cpu => host_memory_available(),
            Device::Cuda(b) => b
                .free_memory()
                .map(|free| (free, "free memory the CUDA driver reports")),
            // wgpu does not report free memory.
            Device::Wgpu(_) => None,
        }
    }

    /// Runs `work` on this device's backend.
    // Without a feature its arm holds a value that cannot exist.
    #[cfg_attr(not(all(feature = "cuda", feature = "wgpu")), allow(unreachable_code))]
    pub fn with<W: WithBackend>(&self, work: W) -> W::Output {
        match self {
            Device::Cpu => work.run(CpuBackend),
            Device::Cuda(b) => work.run(b.clone()),
            Device::Wgpu(b) => work.run(b.clone()),
        }
    }
}

/// One entry of [`list`]: what `--device` takes (`cpu`, `cuda:0..N`, `wgpu:N`; the bare
/// backend name when none can be used), whether it can be used, and what it is or why not.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub usable: bool,
    pub about: String,
}

impl Listed {
    fn new(name: impl Into<String>, usable: bool, about: impl Into<String>) -> Listed {
        Listed {
            name: name.into(),
            usable,
            about: about.into(),
        }
    }
}

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<10} {}", self.name, self.about)
    }
}

/// What `--device` can name on this machine: the CPU, the CUDA devices the driver reports,
/// the wgpu adapters (by the index and name `wgpu:N` / `wgpu:NAME` take). A backend this build
/// lacks, or whose driver is missing, has an entry saying so.
pub fn list() -> Vec<Listed> {
    let isa = crate::backend::cpu::isa::active();
    let about = format!(
        "the reference backend (always); {} (set {} to change)",
        isa.describe(),
        crate::backend::cpu::isa::ENV
    );
    let mut all = vec![Listed::new("cpu", true, about)];
    all.push(cuda_entry());
    all.extend(wgpu_entries());
    all
}

#[cfg(feature = "cuda")]
fn cuda_entry() -> Listed {
    match crate::backend::cuda::probe() {
        Ok(0) => Listed::new("cuda", false, "no device (the driver reports none)"),
        Ok(n) => Listed::new(format!("cuda:0..{}", n - 1), true, format!("{n} device(s)")),
        Err(e) => Listed::new("cuda", false, format!("unavailable: {e}")),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_entry() -> Listed {
    Listed::new("cuda", false, "not in this build (cargo feature `cuda`)")
}

#[cfg(feature = "wgpu")]
fn wgpu_entries() -> Vec<Listed> {
    let adapters = crate::backend::wgpu::adapters();
    if adapters.is_empty() {
        let why = "no adapter (no Vulkan, Metal or DX12 driver)";
        return vec![Listed::new("wgpu", false, why)];
    }
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let about = crate::backend::wgpu::describe(&a.get_info());
            Listed::new(format!("wgpu:{i}"), true, about)
        })
        .collect()
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_entries() -> Vec<Listed> {
    vec![Listed::new(
        "wgpu",
        false,
        "not in this build (cargo feature `wgpu`)",
    )]
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(spec: &str, _ordinal: usize, _options: DeviceOptions) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        spec: spec.into(),
        feature: "cuda",
    })
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu(spec: &str, _choice: &AdapterChoice) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        spec: spec.into(),
        feature: "wgpu",
    })
}

#[cfg(feature = "wgpu")]
fn open_wgpu(spec: &str, choice: &AdapterChoice) -> Result<Device, DeviceError> {
    WgpuBackend::open(choice)
        .map(Device::Wgpu)
        .map_err(|e| DeviceError::Unavailable {
            spec: spec.into(),
            message: e.to_string(),
        })
}

#[cfg(feature = "cuda")]
fn open_cuda(spec: &str, ordinal: usize, options: DeviceOptions) -> Result<Device, DeviceError> {
    use crate::backend::cuda::{CudaBackend, CudaOptions};
    let unavailable = |message: String| DeviceError::Unavailable {
        spec: spec.into(),
        message,
    };
    let options =
        CudaOptions::from_runtime(options.tf32, options.deterministic).map_err(unavailable)?;
    // `CudaBackend::open_with` probes the driver first (cudarc would panic without libcuda).
    CudaBackend::open_with(ordinal, options)
        .map(Device::Cuda)
        .map_err(|e| unavailable(e.to_string()))
}

/// The host's available memory: `MemAvailable` of `/proc/meminfo`, or less when a cgroup
/// (a container's memory limit) or this process's address-space limit (`ulimit -v`) leaves
/// less.
fn host_memory_available() -> Option<(u64, &'static str)> {
    let host = host_memory_unlimited()?;
    match address_space_left() {
        Some(left) if left < host.0 => Some((
            left,
            "the address-space limit (ulimit -v) less what this process maps",
        )),
        _ => Some(host),
    }
}

/// What `RLIMIT_AS` leaves this process (`None`: unlimited or unknown).
fn address_space_left() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mapped_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every platform
    let cur = limit.rlim_cur as u64;
    Some(cur.saturating_sub(mapped_kib.saturating_mul(1024)))
}

fn host_memory_unlimited() -> Option<(u64, &'static str)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    let host = kib.saturating_mul(1024);
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(current)) if max.saturating_sub(current) < host => Some((
            max.saturating_sub(current),
            "the cgroup's memory.max less memory.current",
        )),
        _ => Some((host, "MemAvailable in /proc/meminfo")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_opens_and_bad_names_are_refused() {
        assert!(matches!(Device::open("cpu"), Ok(Device::Cpu)));
        for bad in ["gpu", "cuda:x", "cuda:-1", "cuda0", "", "wgpu:", "wgpu0"] {
            let e = Device::open(bad).unwrap_err();
            assert_eq!(e, DeviceError::Unknown { spec: bad.into() });
            assert!(e.to_string().contains("unknown device"), "{bad}: {e}");
        }
    }

    #[test]
    fn wgpu_specs_name_an_adapter_by_index_or_name() {
        let wgpu = |c| Ok(DeviceSpec::Wgpu(c));
        assert_eq!(Device::parse("wgpu"), wgpu(AdapterChoice::Default));
        assert_eq!(Device::parse("wgpu:1"), wgpu(AdapterChoice::Index(1)));
        assert_eq!(
            Device::parse("wgpu:llvmpipe"),
            wgpu(AdapterChoice::Name("llvmpipe".into()))
        );
        assert_eq!(Device::parse("cuda:2"), Ok(DeviceSpec::Cuda(2)));
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn wgpu_without_the_feature_says_so() {
        let e = Device::open("wgpu").unwrap_err().to_string();
        assert!(e.contains("without the `wgpu` feature"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_so() {
        let e = Device::open("cuda:0").unwrap_err().to_string();
        assert!(e.contains("without the `cuda` feature"), "{e}");
    }
}
