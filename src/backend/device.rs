//! Where graphs run: `--device cpu` (the reference backend) or `--device cuda:N` (feature
//! `cuda`). Owns parsing and opening a device — once the recipe is loaded and before any data
//! or model work, so a missing driver fails in seconds with a clear message — and handing its
//! backend to code that is generic over backends ([`Device::with`]), so nothing above
//! `backend` names a concrete one.
//!
//! Without the `cuda` feature, `Device::Cuda` holds a stand-in that cannot be built: the enum
//! and every match on it read the same in both builds.

use super::Backend;
use super::cpu::CpuBackend;
use super::cuda::CudaBackend;

/// An opened device.
#[derive(Clone, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA device (shared handles: cheap to clone).
    Cuda(CudaBackend),
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
    #[error("unknown device `{spec}`: expected `cpu` or `cuda:N`")]
    Unknown { spec: String },
    #[error(
        "device `{spec}`: this mmrun was built without the `cuda` feature \
         (rebuild with `cargo build --release --features cuda`)"
    )]
    NotBuilt { spec: String },
    /// No driver, no such device, or the device failed to open (the driver's words).
    #[error("device `{spec}`: {message}")]
    Unavailable { spec: String, message: String },
}

impl Device {
    /// Parses and opens a `--device` value: `cpu`, `cuda` or `cuda:N`. Refused: an unknown
    /// name, a build without the `cuda` feature, no driver, no such device.
    pub fn open(spec: &str) -> Result<Device, DeviceError> {
        match Self::parse(spec)? {
            None => Ok(Device::Cpu),
            Some(ordinal) => open_cuda(spec, ordinal),
        }
    }

    /// Reads a device spec without opening it: `None` for the CPU, the GPU ordinal otherwise.
    /// Lets a command refuse a misspelt `--device` before it reads anything else.
    pub fn parse(spec: &str) -> Result<Option<usize>, DeviceError> {
        match spec {
            "cpu" => Ok(None),
            "cuda" => Ok(Some(0)),
            _ => match spec.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Some(n)),
                _ => Err(DeviceError::Unknown { spec: spec.into() }),
            },
        }
    }

    /// `cpu` or `cuda`.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda(_) => "cuda",
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
        }
    }

    /// Runs `work` on this device's backend.
    // Without the `cuda` feature the CUDA arm holds a value that cannot exist.
    #[cfg_attr(not(feature = "cuda"), allow(unreachable_code))]
    pub fn with<W: WithBackend>(&self, work: W) -> W::Output {
        match self {
            Device::Cpu => work.run(CpuBackend),
            Device::Cuda(b) => work.run(b.clone()),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(spec: &str, _ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt { spec: spec.into() })
}

#[cfg(feature = "cuda")]
fn open_cuda(spec: &str, ordinal: usize) -> Result<Device, DeviceError> {
    // `CudaBackend::open` probes the driver first (cudarc would panic without libcuda).
    crate::backend::cuda::CudaBackend::open(ordinal)
        .map(Device::Cuda)
        .map_err(|e| DeviceError::Unavailable {
            spec: spec.into(),
            message: e.to_string(),
        })
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
        for bad in ["gpu", "cuda:x", "cuda:-1", "cuda0", ""] {
            let e = Device::open(bad).unwrap_err();
            assert_eq!(e, DeviceError::Unknown { spec: bad.into() });
            assert!(e.to_string().contains("unknown device"), "{bad}: {e}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_so() {
        let e = Device::open("cuda:0").unwrap_err().to_string();
        assert!(e.contains("without the `cuda` feature"), "{e}");
    }
}
