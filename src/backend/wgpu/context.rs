//! The wgpu device a [`super::WgpuBackend`] runs on: adapter choice, the compiled WGSL
//! pipelines, and the one command encoder that a step's dispatches are recorded into.
//!
//! Every kernel has one binding layout (written down in `kernels/README.md`): binding 0 is a
//! read-only `array<u32>` of parameters ("meta"), bindings `1..=k` its `k` read-only inputs,
//! binding `k + 1` its read-write output. A binding is a window of a buffer ([`Bound`]), so a
//! tensor larger than the adapter's largest binding is processed a window at a time (see
//! `split`). Pipelines are compiled on first use and kept.
//! Dispatches are recorded into a pending encoder and submitted when the host needs a result
//! (a download), before a host write into a buffer (an upload into a used buffer), or every
//! [`MAX_PENDING`] dispatches (to bound what the encoder keeps alive).

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::backend::{AdapterChoice, BackendError};

/// Workgroup size of every grid-stride kernel (`WG` in the WGSL files).
pub(crate) const WG: u32 = 256;
/// Dispatches recorded before the encoder is submitted anyway.
const MAX_PENDING: usize = 256;

pub(crate) const NAME: &str = "wgpu";

/// A device failure as a backend error.
pub(crate) fn device_err(message: impl Into<String>) -> BackendError {
    BackendError::Device {
        backend: NAME,
        message: message.into(),
    }
}

/// The WGSL sources, one module per file of `kernels/wgsl/`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Module {
    Tensor,
    Gemm,
    Pool,
    Norm,
    Loss,
    LossCe,
    Optim,
    Half,
}

impl Module {
    /// The module's WGSL: `common.wgsl` (constants, exact `exp`/`log`) and then its own file.
    pub(crate) fn source(self) -> String {
        let own = match self {
            Module::Tensor => include_str!("../../../kernels/wgsl/tensor.wgsl"),
            Module::Gemm => include_str!("../../../kernels/wgsl/gemm.wgsl"),
            Module::Pool => include_str!("../../../kernels/wgsl/pool.wgsl"),
            Module::Norm => include_str!("../../../kernels/wgsl/norm.wgsl"),
            Module::Loss => include_str!("../../../kernels/wgsl/loss.wgsl"),
            Module::LossCe => include_str!("../../../kernels/wgsl/loss_ce.wgsl"),
            Module::Optim => include_str!("../../../kernels/wgsl/optim.wgsl"),
            Module::Half => include_str!("../../../kernels/wgsl/half.wgsl"),
        };
        format!(
            "{}\n{own}",
            include_str!("../../../kernels/wgsl/common.wgsl")
        )
    }
}

/// One kernel: its module, entry point and number of inputs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Kernel {
    pub module: Module,
    pub entry: &'static str,
    pub inputs: usize,
}

/// How a dispatch is sized.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Grid {
    /// A grid-stride loop over this many items, [`WG`] per workgroup.
    Items(usize),
    /// One workgroup per item (grid-stride over workgroups).
    Groups(usize),
    /// Explicit workgroup counts (2-D tiles); each must be within the device limit.
    Exact([u32; 3]),
}

/// A window of a buffer bound to one kernel binding: `size` bytes from byte `offset` (a multiple
/// of the adapter's storage offset alignment). The kernel indexes the window from 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bound<'a> {
    pub buf: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl<'a> From<&'a wgpu::Buffer> for Bound<'a> {
    /// The whole buffer.
    fn from(buf: &'a wgpu::Buffer) -> Self {
        Bound {
            buf,
            offset: 0,
            size: buf.size(),
        }
    }
}

/// The environment variable that lowers the largest storage binding asked of the adapter
/// (bytes, or with a KiB/MiB/GiB suffix): a Vulkan GPU that binds 4 GiB can then run as a DX12
/// one that binds 128 MiB, so the split paths can be exercised anywhere.
pub const MAX_BINDING_ENV: &str = "MMRUN_WGPU_MAX_BINDING";

/// A value of [`MAX_BINDING_ENV`] that is not a byte count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{MAX_BINDING_ENV}={0:?}: expected a number of bytes (a multiple of 4, at least 256), \
     optionally with a KiB, MiB or GiB suffix"
)]
pub struct MaxBindingError(String);

/// [`MAX_BINDING_ENV`] read and checked, once per process: the cap, if one is set.
pub fn max_binding_from_env() -> Result<Option<u64>, MaxBindingError> {
    static SETTING: std::sync::OnceLock<Result<Option<u64>, MaxBindingError>> =
        std::sync::OnceLock::new();
    let read = || match std::env::var(MAX_BINDING_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(MaxBindingError(v.to_string_lossy().into_owned()))
        }
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => parse_bytes(&v).map(Some).ok_or(MaxBindingError(v)),
    };
    SETTING.get_or_init(read).clone()
}

/// `4096`, `64KiB`, `128 MiB`, `1GiB` as bytes; `None` unless a multiple of 4 of at least 256.
fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    let bytes = num.parse::<u64>().ok()?.checked_mul(scale)?;
    (bytes >= 256 && bytes.is_multiple_of(4)).then_some(bytes)
}

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
}

/// An opened adapter and device.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// The largest binding in bytes: the adapter's, or less under [`MAX_BINDING_ENV`].
    max_binding: u64,
    layouts: Mutex<HashMap<usize, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    modules: Mutex<HashMap<Module, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(Module, &'static str), Arc<wgpu::ComputePipeline>>>,
    pending: Mutex<Pending>,
    /// The first error wgpu reported outside an error scope (a device lost, a validation error
    /// in a submission); [`Gpu::check`] turns it into a backend error.
    uncaptured: Arc<Mutex<Option<String>>>,
}

/// The adapters wgpu sees (every backend it was built with), in a stable order.
pub fn adapters() -> Vec<wgpu::Adapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// One line per adapter: index, name, type, backend and driver.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    let driver = if info.driver_info.is_empty() {
        info.driver.clone()
    } else {
        format!("{} {}", info.driver, info.driver_info)
    };
    format!(
        "{} ({:?}, {:?}, driver {})",
        info.name,
        info.device_type,
        info.backend,
        driver.trim()
    )
}

/// Why no wgpu device opened (`--device wgpu[:N|:NAME]`).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// wgpu sees no adapter at all.
    #[error(
        "wgpu finds no adapter (no Vulkan, Metal or DX12 driver; on Debian \
         `apt-get install mesa-vulkan-drivers` gives the lavapipe CPU adapter)"
    )]
    NoAdapter,
    /// `wgpu:N` past the adapters wgpu sees.
    #[error("there is no adapter {index}; wgpu sees {}", seen.join(", "))]
    NoIndex {
        /// The index asked for.
        index: usize,
        /// The adapters there are, as `wgpu:N (name)`.
        seen: Vec<String>,
    },
    /// `wgpu:NAME` that no adapter's name contains.
    #[error("no adapter's name contains `{name}`; wgpu sees {}", seen.join(", "))]
    NoName {
        /// The name asked for.
        name: String,
        /// The adapters there are, as `wgpu:N (name)`.
        seen: Vec<String>,
    },
    /// [`MAX_BINDING_ENV`] is not a byte count.
    #[error(transparent)]
    MaxBinding(#[from] MaxBindingError),
    /// The adapter refused a device with the limits asked for.
    #[error("{adapter}: {source}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
}

impl Gpu {
    /// Opens the chosen adapter with the largest buffer limits it allows, its bindings capped at
    /// `max_binding` bytes where that is lower.
    pub fn open(choice: &AdapterChoice, max_binding: Option<u64>) -> Result<Gpu, OpenError> {
        let list = adapters();
        if list.is_empty() {
            return Err(OpenError::NoAdapter);
        }
        let names = || {
            list.iter()
                .enumerate()
                .map(|(i, a)| format!("wgpu:{i} ({})", a.get_info().name))
                .collect::<Vec<_>>()
        };
        let adapter = match choice {
            AdapterChoice::Default => {
                // Prefer a real GPU over a CPU implementation, then take the first.
                let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
                    wgpu::DeviceType::DiscreteGpu => 0,
                    wgpu::DeviceType::IntegratedGpu => 1,
                    wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
                    wgpu::DeviceType::Cpu => 3,
                };
                list.iter().min_by_key(|a| rank(a)).expect("non-empty")
            }
            AdapterChoice::Index(i) => list.get(*i).ok_or_else(|| OpenError::NoIndex {
                index: *i,
                seen: names(),
            })?,
            AdapterChoice::Name(n) => {
                let want = n.to_lowercase();
                list.iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&want))
                    .ok_or_else(|| OpenError::NoName {
                        name: n.clone(),
                        seen: names(),
                    })?
            }
        };
        let info = adapter.get_info();
        let have = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: have.max_storage_buffer_binding_size,
            max_buffer_size: have.max_buffer_size,
            min_storage_buffer_offset_alignment: have.min_storage_buffer_offset_alignment,
            max_storage_buffers_per_shader_stage: have.max_storage_buffers_per_shader_stage.min(8),
            ..wgpu::Limits::default()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("mmrun"),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|source| {
                OpenError::RequestDevice {
                    adapter: info.name.clone(),
                    source,
                }
            })?;
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
            s.get_or_insert_with(|| e.to_string());
        }));
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(max_binding.unwrap_or(u64::MAX));
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            max_binding,
            layouts: Mutex::default(),
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            pending: Mutex::new(Pending {
                encoder: None,
                dispatches: 0,
            }),
            uncaptured,
        })
    }

    /// The largest window, in bytes, one binding may hold.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

    /// The alignment, in bytes, of a binding's offset.
    pub(crate) fn binding_alignment(&self) -> u64 {
        u64::from(self.limits.min_storage_buffer_offset_alignment).max(4)
    }

    /// The error wgpu reported since the last check, if any.
    pub(crate) fn check(&self) -> Result<(), BackendError> {
        let mut s = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        match s.take() {
            Some(e) => Err(device_err(e)),
            None => Ok(()),
        }
    }

    fn layout(&self, inputs: usize) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        let mut map = self.layouts.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(inputs)
            .or_insert_with(|| {
                let entry = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                };
                let mut entries = vec![entry(0, true)];
                entries.extend((1..=inputs as u32).map(|b| entry(b, true)));
                entries.push(entry(inputs as u32 + 1, false));
                let bgl = self
                    .device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: None,
                        entries: &entries,
                    });
                let pl = self
                    .device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: None,
                        bind_group_layouts: &[Some(&bgl)],
                        immediate_size: 0,
                    });
                (bgl, pl)
            })
            .clone()
    }

    /// The compiled pipeline of `k` (compiled on first use; a WGSL error is a backend error).
    pub(crate) fn pipeline(&self, k: Kernel) -> Result<Arc<wgpu::ComputePipeline>, BackendError> {
        if let Some(p) = self
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(k.module, k.entry))
        {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            mods.entry(k.module)
                .or_insert_with(|| {
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(k.entry),
                            source: wgpu::ShaderSource::Wgsl(k.module.source().into()),
                        })
                })
                .clone()
        };
        let (_, layout) = self.layout(k.inputs);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.entry),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(k.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(device_err(format!(
                "kernel `{}` of {:?}: {e}",
                k.entry, k.module
            )));
        }
        let p = Arc::new(pipeline);
        self.pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((k.module, k.entry), p.clone());
        Ok(p)
    }

    /// Records one dispatch of `k`: `meta` at binding 0, `ins` after it, `out` last.
    pub(crate) fn dispatch(
        &self,
        k: Kernel,
        meta: &[u32],
        ins: &[Bound<'_>],
        out: Bound<'_>,
        grid: Grid,
    ) -> Result<(), BackendError> {
        debug_assert_eq!(ins.len(), k.inputs, "{}: inputs", k.entry);
        let groups = match grid {
            Grid::Items(0) | Grid::Groups(0) => return Ok(()),
            Grid::Items(n) => [
                (n.div_ceil(WG as usize)).min(self.max_groups()) as u32,
                1,
                1,
            ],
            Grid::Groups(n) => [n.min(self.max_groups()) as u32, 1, 1],
            Grid::Exact(g) => {
                if g.iter().any(|&d| d as usize > self.max_groups()) {
                    return Err(device_err(format!(
                        "{}: {g:?} workgroups exceed the device limit",
                        k.entry
                    )));
                }
                if g.contains(&0) {
                    return Ok(());
                }
                g
            }
        };
        for b in ins.iter().chain([&out]) {
            self.check_binding(k, b)?;
        }
        let pipeline = self.pipeline(k)?;
        let (bgl, _) = self.layout(k.inputs);
        let meta = if meta.is_empty() { &[0u32][..] } else { meta };
        let meta_buf = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(meta),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: meta_buf.as_entire_binding(),
        }];
        for (i, b) in ins.iter().chain([&out]).enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buf,
                    offset: b.offset,
                    size: NonZeroU64::new(b.size),
                }),
            });
        }
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &bgl,
            entries: &entries,
        });
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        {
            let enc = pending.encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        pending.dispatches += 1;
        if pending.dispatches >= MAX_PENDING {
            self.submit(&mut pending);
        }
        Ok(())
    }

    /// A binding the adapter takes: within the buffer and the largest binding, aligned.
    fn check_binding(&self, k: Kernel, b: &Bound<'_>) -> Result<(), BackendError> {
        if b.size > self.max_binding {
            return Err(device_err(format!(
                "kernel `{}`: a tensor of {} bytes exceeds what the adapter binds ({} bytes), \
                 and this op does not split along its first axis",
                k.entry, b.size, self.max_binding
            )));
        }
        if b.size == 0
            || !b.offset.is_multiple_of(self.binding_alignment())
            || b.offset.saturating_add(b.size) > b.buf.size()
        {
            return Err(device_err(format!(
                "kernel `{}`: window of {} bytes at {} of a {}-byte buffer cannot be bound",
                k.entry,
                b.size,
                b.offset,
                b.buf.size()
            )));
        }
        Ok(())
    }

    /// Records a copy of `bytes` bytes from the start of `src`'s window to the start of `dst`'s.
    pub(crate) fn copy(
        &self,
        src: Bound<'_>,
        dst: Bound<'_>,
        bytes: u64,
    ) -> Result<(), BackendError> {
        if bytes == 0 {
            return Ok(());
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let enc = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        enc.copy_buffer_to_buffer(src.buf, src.offset, dst.buf, dst.offset, bytes);
        Ok(())
    }

    fn max_groups(&self) -> usize {
        self.limits.max_compute_workgroups_per_dimension as usize
    }

    fn submit(&self, pending: &mut Pending) {
        if let Some(enc) = pending.encoder.take() {
            self.queue.submit([enc.finish()]);
        }
        pending.dispatches = 0;
    }

    /// Submits what is recorded so far.
    pub(crate) fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.submit(&mut pending);
    }

    /// Submits and waits for everything recorded; reports any device error since the last check.
    pub(crate) fn finish(&self) -> Result<(), BackendError> {
        self.flush();
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| device_err(e.to_string()))?;
        self.check()
    }

    /// A storage buffer of `bytes` bytes (at least 4), checked against the device's limits.
    pub(crate) fn buffer(&self, bytes: u64, what: &str) -> Result<wgpu::Buffer, BackendError> {
        self.check_size(bytes, what)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(4),
            usage: storage_usage(),
            mapped_at_creation: false,
        }))
    }

    /// A storage buffer holding `data` (at least 4 bytes).
    pub(crate) fn buffer_init(
        &self,
        data: &[u8],
        what: &str,
    ) -> Result<wgpu::Buffer, BackendError> {
        self.check_size(data.len() as u64, what)?;
        let zero = [0u8; 4];
        let contents = if data.is_empty() { &zero[..] } else { data };
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents,
                usage: storage_usage(),
            }))
    }

    fn check_size(&self, bytes: u64, what: &str) -> Result<(), BackendError> {
        let max = self.limits.max_buffer_size;
        if bytes > max {
            return Err(device_err(format!(
                "{what}: a buffer of {bytes} bytes exceeds the adapter's largest ({max} bytes)"
            )));
        }
        Ok(())
    }

    /// Writes `data` at the start of `dst`'s window after everything recorded so far has been
    /// submitted (queue writes land before the next submission, so a recorded read must go
    /// first).
    pub(crate) fn write(&self, dst: Bound<'_>, data: &[u8]) {
        self.flush();
        if !data.is_empty() {
            self.queue.write_buffer(dst.buf, dst.offset, data);
        }
    }

    /// The first `bytes` bytes of `src`'s window, after everything recorded so far has run.
    pub(crate) fn read(&self, src: Bound<'_>, bytes: u64) -> Result<Vec<u8>, BackendError> {
        if bytes == 0 {
            self.finish()?;
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.copy(src, (&staging).into(), bytes)?;
        self.flush();
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| device_err(e.to_string()))?;
        self.check()?;
        rx.recv()
            .map_err(|_| device_err("the download was dropped"))?
            .map_err(|e| device_err(format!("mapping a download: {e}")))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| device_err(format!("reading a download: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_counts_read_with_binary_suffixes_and_refuse_the_rest() {
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("64KiB"), Some(64 << 10));
        assert_eq!(parse_bytes(" 128 MiB "), Some(128 << 20));
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        for bad in [
            "",
            "12 MB",
            "1.5MiB",
            "-4",
            "255",
            "1026",
            "99999999999999999999GiB",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }
}
