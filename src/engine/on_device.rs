//! An executor on whichever backend a user's [`Device`] holds: the one place above `backend`
//! that turns a device into a concrete executor, behind the object-safe [`RunGraph`].

use super::device_params::{self as kept, KeptStore};
use super::executor::{Executor, GraphRunError, LateFeeds, RunOutputs};
use super::optim::Optimizer;
use super::params::ParamSet;
use crate::backend::{Backend, Device, WithBackend};
use crate::graph::{Graph, NodeId};
use crate::ir::{HostData, HostTensor};
use std::collections::BTreeMap;

/// An [`Executor`] whatever its backend: what code that runs on a user's [`Device`] holds.
pub trait RunGraph {
    /// [`Executor::run`].
    fn run(
        &mut self,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<RunOutputs, GraphRunError>;
    /// [`Executor::run_with_late_feeds`].
    fn run_with_late_feeds(
        &mut self,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
        late: Option<LateFeeds<'_>>,
    ) -> Result<RunOutputs, GraphRunError>;
    /// [`Executor::recycle`].
    fn recycle(&mut self, storage: Vec<HostData>);
    /// The graph being run.
    fn graph(&self) -> &Graph;
    /// [`Executor::set_profile`].
    fn set_profile(&mut self, on: bool);
    /// [`Executor::profile`].
    fn profile(&self) -> Vec<(&'static str, f64, u64)>;
    /// [`Executor::node_profile`].
    fn node_profile(&self) -> Vec<(NodeId, f64, u64)>;
    /// [`Executor::describe_node`].
    fn describe_node(&self, id: NodeId) -> String;
    /// [`Executor::set_dist`].
    fn set_dist(&mut self, dist: Option<crate::dist::Dist>);
    /// A run on the values `store` keeps (uploading those it lacks), leaving the gradients on
    /// the device ([`crate::engine::device_params`]).
    fn run_kept(
        &mut self,
        store: &mut KeptStore,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
        late: Option<LateFeeds<'_>>,
    ) -> Result<RunOutputs, GraphRunError>;
    /// `Σ g²` of the last kept run's trainable gradients.
    fn kept_grad_sum_squares(
        &self,
        store: &mut KeptStore,
        params: &ParamSet,
    ) -> Result<f64, GraphRunError>;
    /// The first non-finite element of the last kept run's trainable gradients.
    fn kept_first_non_finite_grad(
        &self,
        params: &ParamSet,
    ) -> Result<Option<(String, f32)>, GraphRunError>;
    /// One optimizer step over `store`'s values from the last kept run's gradients.
    fn kept_update(
        &self,
        store: &mut KeptStore,
        optimizer: &mut Optimizer,
        params: &ParamSet,
        grad_scale: f64,
    ) -> Result<(), GraphRunError>;
    /// `store`'s trainable values back into `params`, and its optimizer state into `optimizer`
    /// when given.
    fn kept_download(
        &self,
        store: &mut KeptStore,
        params: &mut ParamSet,
        optimizer: Option<&mut Optimizer>,
    ) -> Result<(), GraphRunError>;
}

impl<B: Backend + 'static> RunGraph for Executor<B> {
    fn run(
        &mut self,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<RunOutputs, GraphRunError> {
        Executor::run(self, params, feeds)
    }
    fn run_with_late_feeds(
        &mut self,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
        late: Option<LateFeeds<'_>>,
    ) -> Result<RunOutputs, GraphRunError> {
        Executor::run_with_late_feeds(self, params, feeds, late)
    }
    fn recycle(&mut self, storage: Vec<HostData>) {
        Executor::recycle(self, storage)
    }
    fn graph(&self) -> &Graph {
        Executor::graph(self)
    }
    fn set_profile(&mut self, on: bool) {
        Executor::set_profile(self, on)
    }
    fn profile(&self) -> Vec<(&'static str, f64, u64)> {
        Executor::profile(self)
    }
    fn node_profile(&self) -> Vec<(NodeId, f64, u64)> {
        Executor::node_profile(self)
    }
    fn describe_node(&self, id: NodeId) -> String {
        Executor::describe_node(self, id)
    }
    fn set_dist(&mut self, dist: Option<crate::dist::Dist>) {
        Executor::set_dist(self, dist)
    }
    fn run_kept(
        &mut self,
        store: &mut KeptStore,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
        late: Option<LateFeeds<'_>>,
    ) -> Result<RunOutputs, GraphRunError> {
        kept::run(self, store, params, feeds, late)
    }
    fn kept_grad_sum_squares(
        &self,
        store: &mut KeptStore,
        params: &ParamSet,
    ) -> Result<f64, GraphRunError> {
        kept::grad_sum_squares(self, store, params)
    }
    fn kept_first_non_finite_grad(
        &self,
        params: &ParamSet,
    ) -> Result<Option<(String, f32)>, GraphRunError> {
        kept::first_non_finite_grad(self, params)
    }
    fn kept_update(
        &self,
        store: &mut KeptStore,
        optimizer: &mut Optimizer,
        params: &ParamSet,
        grad_scale: f64,
    ) -> Result<(), GraphRunError> {
        kept::update(self, store, optimizer, params, grad_scale)
    }
    fn kept_download(
        &self,
        store: &mut KeptStore,
        params: &mut ParamSet,
        optimizer: Option<&mut Optimizer>,
    ) -> Result<(), GraphRunError> {
        kept::download(self, store, params, optimizer)
    }
}

/// An executor of `graph` on `device`'s backend.
pub fn executor_on(device: &Device, graph: Graph) -> Box<dyn RunGraph> {
    struct Plan(Graph);
    impl WithBackend for Plan {
        type Output = Box<dyn RunGraph>;
        fn run<B: Backend + Clone + 'static>(self, backend: B) -> Box<dyn RunGraph> {
            Box::new(Executor::new(self.0, backend))
        }
    }
    device.with(Plan(graph))
}
