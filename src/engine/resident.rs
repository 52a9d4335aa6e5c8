//! A device-resident training loop for one train graph on any backend: the parameters are
//! uploaded once and stay on the device, gradients are consumed where they were computed, and
//! the optimizer's update runs there (`Backend::update`) — the machinery `exec` uses on a GPU
//! (`engine::device_params`), without the runner. Used by `mmrun bench cuda --retinanet`, which
//! times each phase after a device synchronisation, so [`StepTimes`] is a per-phase profile
//! rather than an overlapped pipeline.

use super::device_params::{self as kept, KeptStore};
use super::executor::{Executor, GraphRunError, RunOutputs};
use super::optim::{OptimError, Optimizer, OptimizerConfig};
use super::params::{ParamError, ParamSet};
use crate::backend::{Backend, BackendError};
use crate::graph::Graph;
use crate::ir::HostTensor;
use std::collections::BTreeMap;
use std::time::Instant;

/// Seconds spent in each phase of one step.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTimes {
    /// Forward + backward on the device (batch upload and loss download included).
    pub compute: f64,
    /// The optimizer's update.
    pub optimizer: f64,
}

/// Why the resident loop could not start or step.
#[derive(Debug, thiserror::Error)]
pub enum ResidentError {
    /// The optimizer refused the parameters or its settings.
    #[error(transparent)]
    Optimizer(#[from] OptimError),
    /// A run, the update or a read-back failed.
    #[error(transparent)]
    Run(#[from] GraphRunError),
    /// Waiting for the device failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The run's running statistics did not fit the parameters.
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// A train graph with its parameters, gradients and optimizer state on one device.
pub struct Resident<B: Backend + 'static> {
    exec: Executor<B>,
    store: KeptStore,
    optimizer: Optimizer,
}

impl<B: Backend + 'static> Resident<B> {
    /// Plans `graph` on `backend` and uploads every parameter of `params` it reads. Returns the
    /// trainer and the seconds the upload took.
    pub fn new(
        graph: Graph,
        backend: B,
        params: &ParamSet,
        optimizer: OptimizerConfig,
    ) -> Result<(Self, f64), ResidentError> {
        let optimizer = Optimizer::new(optimizer, params)?;
        let exec = Executor::new(graph, backend);
        let mut store = KeptStore::default();
        let t0 = Instant::now();
        kept::upload(&exec, &mut store, params)?;
        exec.backend().synchronize()?;
        let upload = t0.elapsed().as_secs_f64();
        let trainer = Resident {
            exec,
            store,
            optimizer,
        };
        Ok((trainer, upload))
    }

    /// The executor (for [`Executor::download_grads`] and the graph).
    pub fn executor(&self) -> &Executor<B> {
        &self.exec
    }

    /// The executor, mutable (to turn its per-node profile on for a step).
    pub fn executor_mut(&mut self) -> &mut Executor<B> {
        &mut self.exec
    }

    /// One training step: forward + backward, then the update of every trainable parameter on
    /// the device. `params` receives running statistics only.
    pub fn step(
        &mut self,
        params: &mut ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<(RunOutputs, StepTimes), ResidentError> {
        let t0 = Instant::now();
        let mut out = kept::run(&mut self.exec, &mut self.store, params, feeds, None)?;
        params.take_buffers(&mut out)?;
        self.exec.backend().synchronize()?;
        let t1 = Instant::now();
        kept::update(
            &self.exec,
            &mut self.store,
            &mut self.optimizer,
            params,
            1.0,
        )?;
        self.exec.backend().synchronize()?;
        let times = StepTimes {
            compute: (t1 - t0).as_secs_f64(),
            optimizer: t1.elapsed().as_secs_f64(),
        };
        Ok((out, times))
    }

    /// Copies the device's trainable values (and the optimizer's state) into `params`.
    pub fn download_params(&mut self, params: &mut ParamSet) -> Result<(), ResidentError> {
        kept::download(
            &self.exec,
            &mut self.store,
            params,
            Some(&mut self.optimizer),
        )?;
        Ok(())
    }
}
