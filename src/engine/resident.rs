//! A device-resident SGD training loop for one train graph on the CUDA backend: parameters
//! are uploaded once and stay on the GPU, gradients are consumed where they were computed, and
//! the momentum update is the fused multi-tensor `sgd_multi` kernel — nothing crosses PCIe per
//! step but the batch and the loss scalars. Used by `mmrun bench cuda --retinanet`; the runner
//! itself keeps parameters on the host (its optimizer hooks, EMA and checkpoints read them
//! there) and uploads them each step.
//!
//! Each phase is timed after a device synchronisation, so [`StepTimes`] is a per-phase profile
//! rather than an overlapped pipeline.

use crate::backend::cuda::optim::Sgd;
use crate::backend::cuda::{CudaBackend, CudaBuffer};
use crate::backend::{Backend, BackendError};
use crate::engine::params::ParamError;
use crate::engine::{Executor, ParamSet, RunOutputs};
use crate::graph::Graph;
use crate::ir::HostTensor;
use cudarc::driver::CudaSlice;
use std::collections::BTreeMap;
use std::time::Instant;

/// Seconds spent in each phase of one step.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTimes {
    /// Forward + backward on the device (batch upload and loss download included).
    pub compute: f64,
    /// The fused SGD-momentum update.
    pub optimizer: f64,
}

/// A train graph with its parameters, gradients and momentum buffers on one GPU.
pub struct ResidentSgd {
    exec: Executor<CudaBackend>,
    params: BTreeMap<String, CudaBuffer>,
    momentum: BTreeMap<String, CudaSlice<f32>>,
    trainable: Vec<String>,
    hp: Sgd,
    steps: u64,
}

/// Why the device's parameter values could not be copied into a parameter set.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The copy from the device failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The parameter set refused the value (no such parameter, or another shape or dtype).
    #[error(transparent)]
    Param(#[from] ParamError),
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl ResidentSgd {
    /// Plans `graph` on `backend` and uploads every parameter of `params` it reads. Returns the
    /// trainer and the seconds the upload took.
    pub fn new(
        graph: Graph,
        backend: CudaBackend,
        params: &ParamSet,
        hp: Sgd,
    ) -> Result<(Self, f64), String> {
        let t0 = Instant::now();
        let mut resident = BTreeMap::new();
        for (name, spec) in &graph.params {
            let t = params
                .value(name)
                .ok_or_else(|| format!("no parameter `{name}` in the parameter set"))?;
            let t = if t.dtype() == spec.dtype {
                t.clone()
            } else {
                t.cast(spec.dtype)
            };
            resident.insert(name.clone(), backend.upload(&t).map_err(err)?);
        }
        backend.device().synchronize().map_err(err)?;
        let upload = t0.elapsed().as_secs_f64();
        let trainable: Vec<String> = graph.grads.iter().map(|(n, _)| n.clone()).collect();
        let mut momentum = BTreeMap::new();
        for n in &trainable {
            let len = resident.get(n).map_or(0, CudaBuffer::len);
            momentum.insert(n.clone(), backend.device().zeros::<f32>(len).map_err(err)?);
        }
        let exec = Executor::new(graph, backend);
        Ok((
            ResidentSgd {
                exec,
                params: resident,
                momentum,
                trainable,
                hp,
                steps: 0,
            },
            upload,
        ))
    }

    /// The executor (for [`Executor::download_grads`] and the graph).
    pub fn executor(&self) -> &Executor<CudaBackend> {
        &self.exec
    }

    /// One training step: forward + backward, then the SGD update of every trainable
    /// parameter on the device. `params` receives running statistics only.
    pub fn step(
        &mut self,
        params: &mut ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<(RunOutputs, StepTimes), String> {
        let dev = self.exec.backend().device().clone();
        let t0 = Instant::now();
        // Running statistics are updated in `params` on the host: re-read them each step.
        for (name, spec) in &self.exec.graph().params {
            if spec.buffer {
                self.params.remove(name);
            }
        }
        let mut out = self
            .exec
            .run_resident(params, &mut self.params, feeds, None)
            .map_err(err)?;
        params.take_buffers(&mut out).map_err(err)?;
        dev.synchronize().map_err(err)?;
        let t1 = Instant::now();
        let mut ps = Vec::with_capacity(self.trainable.len());
        let mut gs = Vec::with_capacity(self.trainable.len());
        let mut bs = Vec::with_capacity(self.trainable.len());
        // BTreeMap iteration is name-ordered in all three maps: zip them by filtering.
        let grads: BTreeMap<&str, &CudaSlice<f32>> = self
            .trainable
            .iter()
            .map(|n| match self.exec.grad_buffer(n) {
                Some(CudaBuffer::F32(g)) => Ok((n.as_str(), g)),
                _ => Err(format!("no f32 gradient of `{n}` on the device")),
            })
            .collect::<Result<_, _>>()?;
        for ((name, p), (bname, b)) in self
            .params
            .iter_mut()
            .filter(|(n, _)| grads.contains_key(n.as_str()))
            .zip(self.momentum.iter_mut())
        {
            if name != bname {
                return Err(format!("momentum buffers out of step at `{name}`"));
            }
            match p {
                CudaBuffer::F32(p) => ps.push(p),
                _ => return Err(format!("parameter `{name}` is not f32 on the device")),
            }
            gs.push(grads[name.as_str()]);
            bs.push(b);
        }
        if ps.len() != self.trainable.len() {
            return Err("a trainable parameter is missing on the device".into());
        }
        if !ps.is_empty() {
            dev.sgd_step(&mut ps, &gs, &mut bs, self.hp, self.steps == 0)
                .map_err(err)?;
        }
        dev.synchronize().map_err(err)?;
        self.steps += 1;
        let times = StepTimes {
            compute: (t1 - t0).as_secs_f64(),
            optimizer: t1.elapsed().as_secs_f64(),
        };
        Ok((out, times))
    }

    /// Copies the device's parameter values into `params` (e.g. to compare with a host run).
    pub fn download_params(&self, params: &mut ParamSet) -> Result<(), DownloadError> {
        let be = self.exec.backend();
        for (name, buf) in &self.params {
            let spec = &self.exec.graph().params[name];
            let t = be.download(buf, spec.dtype, &spec.shape)?;
            params.set(name, &t)?;
        }
        Ok(())
    }
}
