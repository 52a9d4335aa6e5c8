//! Where the detector's graphs run: `--device cpu` (the reference backend) or `--device cuda:N`
//! (feature `cuda`). Owns parsing and opening the device — before any recipe or data work, so a
//! missing driver fails in milliseconds with a clear message — and [`DeviceExecutor`], the
//! one executor type the detector task holds whatever the backend.
//!
//! The CPU path is the plain `Executor<CpuBackend>`: one enum match per graph run is all the
//! indirection it gains.

use crate::backend::cpu::CpuBackend;
use crate::graph::{ExecError, Executor, Graph, HostTensor, ParamStore, RunOutputs};
use std::collections::BTreeMap;

/// An opened device the detector's graphs run on.
#[derive(Clone, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA device (shared handles: cheap to clone).
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaBackend),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Device {
    /// Parses and opens a `--device` value: `cpu`, `cuda` or `cuda:N`. `Err` is a message for
    /// the user: an unknown name, a build without the `cuda` feature, no driver, no such device.
    pub fn open(spec: &str) -> Result<Device, String> {
        match Self::parse(spec)? {
            None => Ok(Device::Cpu),
            Some(ordinal) => Self::open_cuda(spec, ordinal),
        }
    }

    /// Reads a device spec without opening it: `None` for the CPU, the GPU ordinal otherwise.
    /// Lets a command refuse a misspelt `--device` before it reads anything else.
    pub fn parse(spec: &str) -> Result<Option<usize>, String> {
        match spec {
            "cpu" => Ok(None),
            "cuda" => Ok(Some(0)),
            _ => match spec.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Some(n)),
                _ => Err(format!(
                    "unknown device `{spec}`: expected `cpu` or `cuda:N`"
                )),
            },
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn open_cuda(spec: &str, _ordinal: usize) -> Result<Device, String> {
        Err(format!(
            "device `{spec}`: this mmrun was built without the `cuda` feature \
             (rebuild with `cargo build --release --features cuda`)"
        ))
    }

    #[cfg(feature = "cuda")]
    fn open_cuda(spec: &str, ordinal: usize) -> Result<Device, String> {
        // `CudaBackend::open` probes the driver first (cudarc would panic without libcuda).
        crate::backend::cuda::CudaBackend::open(ordinal)
            .map(Device::Cuda)
            .map_err(|e| format!("device `{spec}`: {e}"))
    }

    /// `cpu` or `cuda`.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => "cuda",
        }
    }

    /// Bytes of memory this device can still give and where the number comes from, or `None`
    /// when it cannot tell.
    pub fn available_memory(&self) -> Option<(u64, &'static str)> {
        match self {
            Device::Cpu => host_memory_available(),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => b
                .device()
                .context()
                .mem_get_info()
                .ok()
                .map(|(free, _)| (free as u64, "free memory the CUDA driver reports")),
        }
    }

    /// An executor of `graph` on this device.
    pub fn executor(&self, graph: Graph) -> DeviceExecutor {
        match self {
            Device::Cpu => DeviceExecutor::Cpu(Executor::new(graph, CpuBackend)),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => DeviceExecutor::Cuda(Executor::new(graph, b.clone())),
        }
    }
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

/// An [`Executor`] on whichever backend the task runs on.
pub enum DeviceExecutor {
    Cpu(Executor<CpuBackend>),
    #[cfg(feature = "cuda")]
    Cuda(Executor<crate::backend::cuda::CudaBackend>),
}

impl DeviceExecutor {
    /// [`Executor::run`] on the backend held.
    pub fn run(
        &mut self,
        store: &mut ParamStore,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<RunOutputs, ExecError> {
        match self {
            DeviceExecutor::Cpu(e) => e.run(store, feeds),
            #[cfg(feature = "cuda")]
            DeviceExecutor::Cuda(e) => e.run(store, feeds),
        }
    }

    /// The graph being run.
    pub fn graph(&self) -> &Graph {
        match self {
            DeviceExecutor::Cpu(e) => e.graph(),
            #[cfg(feature = "cuda")]
            DeviceExecutor::Cuda(e) => e.graph(),
        }
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
            assert!(e.contains("unknown device"), "{bad}: {e}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_so() {
        let e = Device::open("cuda:0").unwrap_err();
        assert!(e.contains("without the `cuda` feature"), "{e}");
    }
}
