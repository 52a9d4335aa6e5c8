//! The executor: runs a planned graph on a backend against a [`ParamSet`]. It reads the
//! parameters by reference and returns what the run produced — outputs, gradients, updated
//! running statistics — as values ([`RunOutputs`]); it never writes into the parameters. The
//! runner moves a train run's results in with [`ParamSet::take_run`].
//!
//! On a host-memory backend (the CPU) parameters and feeds are read in place
//! ([`Backend::host_buffer`]) and gradients leave their buffers without a copy
//! ([`Backend::take_host`]); other backends upload and download. Some inputs may be fed
//! half-way through a run ([`LateFeeds`]).
//!
//! A little over 600 lines: the run loop, its bindings and the resident variant share private
//! state and are read together; what can stand alone (`late`) is out.

mod late;

pub use late::LateFeeds;

use super::params::ParamSet;
use crate::backend::{Backend, BackendError, TensorMut, TensorRef};
use crate::graph::{Graph, MemoryPlan, NodeId, fuse_elementwise};
use crate::ir::op::Op;
use crate::ir::{DType, HostData, HostTensor, numel};
use std::collections::BTreeMap;
use std::time::Instant;

/// Failures while running a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphRunError {
    #[error("missing input `{0}`")]
    MissingInput(String),
    #[error("input `{name}`: expected {expected}, got {got}")]
    BadInput {
        name: String,
        expected: String,
        got: String,
    },
    #[error("parameters: {0}")]
    Params(String),
    #[error("{0} has no value on the backend (no run yet?)")]
    NoValue(String),
    #[error("node %{node} ({op}): {source}")]
    Backend {
        node: usize,
        op: &'static str,
        #[source]
        source: BackendError,
    },
    /// The feeds a run asked for half-way ([`LateFeeds`]) could not be made.
    #[error("feeds made during the run: {0}")]
    Late(String),
    /// Parameters kept on the device between steps could not be read, checked or updated.
    #[error("{what}: {source}")]
    Kept {
        what: &'static str,
        #[source]
        source: BackendError,
    },
    /// The ranks of a data-parallel run could not average a value (sync batch norm).
    #[error("node %{node} (all_reduce_mean): {source}")]
    Dist {
        node: usize,
        #[source]
        source: crate::dist::DistError,
    },
}

/// What one run produced.
#[derive(Clone, Debug, Default)]
pub struct RunOutputs {
    /// The graph's outputs by name (losses, head maps).
    pub outputs: BTreeMap<String, HostTensor>,
    /// Gradients by parameter name, in the graph's dtype (a train graph's; empty after
    /// [`Executor::run_resident`], which leaves them on the backend).
    pub grads: BTreeMap<String, HostTensor>,
    /// Running statistics the run updated (BN in train mode), by buffer name.
    pub buffers: BTreeMap<String, HostTensor>,
}

impl RunOutputs {
    /// A scalar output as f64 (e.g. a loss).
    pub fn scalar(&self, name: &str) -> Option<f64> {
        let t = self.outputs.get(name)?;
        (t.numel() == 1).then(|| t.data.get_f64(0))
    }
}

/// A node's buffer during a run: one the run owns (an upload) or one it reads in place (a
/// host tensor of the caller's, a resident parameter).
enum Bound<'a, T> {
    Owned(T),
    Borrowed(&'a T),
}

impl<T> Bound<'_, T> {
    fn get(&self) -> &T {
        match self {
            Bound::Owned(b) => b,
            Bound::Borrowed(b) => b,
        }
    }
}

/// The feed `name` for input `node`, of the node's shape and dtype.
fn checked_feed<'t>(
    feeds: &'t BTreeMap<String, HostTensor>,
    name: &str,
    node: &crate::graph::Node,
) -> Result<&'t HostTensor, GraphRunError> {
    let t = (feeds.get(name)).ok_or_else(|| GraphRunError::MissingInput(name.to_string()))?;
    if t.shape != node.shape || t.dtype() != node.dtype {
        return Err(GraphRunError::BadInput {
            name: name.to_string(),
            expected: format!("{}{:?}", node.dtype, node.shape),
            got: format!("{}{:?}", t.dtype(), t.shape),
        });
    }
    Ok(t)
}

/// Buffers bound to the graph's input and parameter nodes for one run, by node.
type Bindings<'a, T> = BTreeMap<usize, Bound<'a, T>>;

/// Runs one graph repeatedly on one backend, keeping its planned buffers between runs.
pub struct Executor<B: Backend> {
    graph: Graph,
    plan: MemoryPlan,
    backend: B,
    slots: Vec<Option<B::Buffer>>,
    /// Opt-in timing of host↔backend copies (`upload`/`download`); `None` when off, so that an
    /// unprofiled run reads no clock.
    timings: Option<BTreeMap<&'static str, (f64, u64)>>,
    /// Seconds and calls per executed node when profiling is on (per-op totals derive from it).
    node_timings: Vec<(f64, u64)>,
    /// The last run's parameter uploads by node, refilled in place by the next run
    /// ([`Backend::upload_into`]) instead of allocated again.
    param_bufs: BTreeMap<usize, B::Buffer>,
    /// Host storage handed back by [`Executor::recycle`], by dtype and length: the slots
    /// whose gradients a run gave away are refilled from it instead of allocated (fresh
    /// pages cost a fault each on first touch).
    spare: BTreeMap<(DType, usize), Vec<B::Buffer>>,
    /// The ranks [`Op::AllReduceMean`] averages over; `None` in one process.
    dist: Option<crate::dist::Dist>,
}

impl<B: Backend> Executor<B> {
    /// Plans `graph` for `backend`, its elementwise chains fused where the backend runs them
    /// in one pass ([`Backend::fusable`]).
    pub fn new(graph: Graph, backend: B) -> Self {
        let graph = fuse_elementwise(graph, |op, dtype| backend.fusable(op, dtype));
        Self::unfused(graph, backend)
    }

    /// Plans `graph` as it is, every op run alone: what a fused run must equal bit for bit.
    pub fn unfused(graph: Graph, backend: B) -> Self {
        let plan = MemoryPlan::new(&graph);
        let slots = (0..plan.slots.len()).map(|_| None).collect();
        Executor {
            graph,
            plan,
            backend,
            slots,
            timings: None,
            node_timings: Vec::new(),
            param_bufs: BTreeMap::new(),
            spare: BTreeMap::new(),
            dist: None,
        }
    }

    /// The graph being run.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Its memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn be(&self, node: usize, source: BackendError) -> GraphRunError {
        GraphRunError::Backend {
            node,
            op: self.graph.nodes[node].op.name(),
            source,
        }
    }

    /// Runs the graph: feeds by input name, parameters read from `params`. Returns the
    /// outputs, the gradients (a train graph's) and the updated running statistics.
    pub fn run(
        &mut self,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<RunOutputs, GraphRunError> {
        self.run_with_late_feeds(params, feeds, None)
    }

    /// [`Executor::run`] with some inputs fed half-way ([`LateFeeds`]).
    pub fn run_with_late_feeds(
        &mut self,
        params: &ParamSet,
        feeds: &BTreeMap<String, HostTensor>,
        late: Option<LateFeeds<'_>>,
    ) -> Result<RunOutputs, GraphRunError> {
        self.check(params)?;
        let mut bound = Bindings::new();
        let out = self.run_bound(params, None, feeds, late, &mut bound);
        self.keep_param_bufs(bound);
        self.spare.clear();
        let mut out = out?;
        let t0 = self.timings.is_some().then(Instant::now);
        out.grads = self.take_grads()?;
        record(&mut self.timings, "download", t0);
        Ok(out)
    }

    /// Hands host storage back for the next run's buffers to reuse: what a train step no
    /// longer needs, such as the gradients [`ParamSet::take_run`] displaced. Storage the
    /// backend cannot use, or the next run does not need, is dropped.
    pub fn recycle(&mut self, storage: impl IntoIterator<Item = HostData>) {
        for data in storage {
            let key = (data.dtype(), data.len());
            if let Some(b) = self.backend.adopt_host(data) {
                self.spare.entry(key).or_default().push(b);
            }
        }
    }

    fn check(&self, params: &ParamSet) -> Result<(), GraphRunError> {
        params.check(&self.graph).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            GraphRunError::Params(list.join("; "))
        })
    }

    /// The run's gradients, each leaving its slot without a copy where the backend can
    /// ([`Backend::take_host`]; the next run refills the slot from [`Executor::recycle`]'s
    /// storage or allocates it). A gradient that shares its slot with another gradient, or
    /// fills only part of it, is copied.
    fn take_grads(&mut self) -> Result<BTreeMap<String, HostTensor>, GraphRunError> {
        let mut per_slot: BTreeMap<usize, usize> = BTreeMap::new();
        for (_, id) in &self.graph.grads {
            if let Some(s) = self.plan.slot_of[id.0] {
                *per_slot.entry(s).or_default() += 1;
            }
        }
        let mut grads = BTreeMap::new();
        for (name, id) in &self.graph.grads {
            let node = &self.graph.nodes[id.0];
            let t = match self.plan.slot_of[id.0] {
                Some(s) if per_slot[&s] == 1 && self.plan.slots[s].1 == numel(&node.shape) => {
                    let buf = self.slots[s]
                        .take()
                        .ok_or_else(|| self.not_computed(name))?;
                    self.backend
                        .take_host(buf, node.dtype, &node.shape)
                        .map_err(|e| self.be(id.0, e))?
                }
                _ => self.fetch(id.0, &Bindings::new())?,
            };
            grads.insert(name.clone(), t);
        }
        Ok(grads)
    }

    fn not_computed(&self, name: &str) -> GraphRunError {
        GraphRunError::NoValue(format!("the gradient of `{name}`"))
    }

    /// Keeps the parameter buffers a finished run uploaded, for the next run to refill.
    fn keep_param_bufs(&mut self, bound: Bindings<'_, B::Buffer>) {
        for (i, b) in bound {
            if let (Bound::Owned(b), Op::Param { .. }) = (b, &self.graph.nodes[i].op) {
                self.param_bufs.insert(i, b);
            }
        }
    }

    /// The run shared by [`Executor::run`] and [`Executor::run_resident`]: binds feeds and
    /// parameters (from `resident` when given, else read in place or uploaded from `params`),
    /// executes the schedule and downloads the outputs. Gradients stay in their slots.
    fn run_bound<'a>(
        &mut self,
        params: &'a ParamSet,
        resident: Option<&'a BTreeMap<String, B::Buffer>>,
        feeds: &'a BTreeMap<String, HostTensor>,
        mut late: Option<LateFeeds<'_>>,
        bound: &mut Bindings<'a, B::Buffer>,
    ) -> Result<RunOutputs, GraphRunError> {
        let schedule = self.plan.schedule.clone();
        let is_late = |name: &str, late: &Option<LateFeeds<'_>>| {
            late.as_ref()
                .is_some_and(|l| l.names.iter().any(|n| n == name))
        };
        for &NodeId(i) in &schedule {
            let t0 = self.timings.is_some().then(Instant::now);
            let node = &self.graph.nodes[i];
            let buf = match &node.op {
                Op::Input { name } if is_late(name, &late) => continue,
                Op::Input { name } => {
                    let t = checked_feed(feeds, name, node)?;
                    match self.backend.host_buffer(t) {
                        Some(b) => Bound::Borrowed(b),
                        None => Bound::Owned(self.backend.upload(t).map_err(|e| self.be(i, e))?),
                    }
                }
                Op::Param { name } => match resident.and_then(|r| r.get(name)) {
                    Some(b) => Bound::Borrowed(b),
                    None => {
                        let name = name.clone();
                        self.bind_param(i, &name, params)?
                    }
                },
                _ => continue,
            };
            record(&mut self.timings, "upload", t0);
            bound.insert(i, buf);
        }
        let mut buffers = BTreeMap::new();
        for &NodeId(i) in &schedule {
            if bound.contains_key(&i) {
                continue;
            }
            if let Op::Input { name } = &self.graph.nodes[i].op {
                // The first late input: everything scheduled before it has run.
                let l = late
                    .take()
                    .ok_or_else(|| GraphRunError::MissingInput(name.clone()))?;
                self.bind_late(l, bound)?;
                continue;
            }
            // A device queues work: profiling waits for it before and after each node, so
            // the time is the node's kernels, not its launch.
            let synced = |ex: &Self| {
                ex.backend
                    .synchronize()
                    .map_err(|source| GraphRunError::Backend {
                        node: i,
                        op: ex.graph.nodes[i].op.name(),
                        source,
                    })
            };
            let t0 = match self.timings.is_some() {
                true => {
                    synced(self)?;
                    Some(Instant::now())
                }
                false => None,
            };
            self.exec_node(i, bound, params, &mut buffers)?;
            if let Some(t0) = t0 {
                synced(self)?;
                let e = &mut self.node_timings[i];
                e.0 += t0.elapsed().as_secs_f64();
                e.1 += 1;
            }
        }
        let mut out = RunOutputs {
            buffers,
            ..RunOutputs::default()
        };
        for (name, id) in &self.graph.outputs {
            let t0 = self.timings.is_some().then(Instant::now);
            let t = self.fetch(id.0, bound)?;
            record(&mut self.timings, "download", t0);
            out.outputs.insert(name.clone(), t);
        }
        Ok(out)
    }

    /// Binds parameter node `i`: its value read in place where the backend can and the dtype
    /// is the node's, else uploaded (into the last run's buffer when there is one).
    fn bind_param<'a>(
        &mut self,
        i: usize,
        name: &str,
        params: &'a ParamSet,
    ) -> Result<Bound<'a, B::Buffer>, GraphRunError> {
        let node_dtype = self.graph.nodes[i].dtype;
        let t = params
            .value(name)
            .ok_or_else(|| GraphRunError::Params(format!("no parameter `{name}`")))?;
        if t.dtype() == node_dtype
            && let Some(b) = self.backend.host_buffer(t)
        {
            return Ok(Bound::Borrowed(b));
        }
        let cast;
        let t = if t.dtype() == node_dtype {
            t
        } else {
            cast = t.cast(node_dtype);
            &cast
        };
        let up = match self.param_bufs.remove(&i) {
            Some(mut b) => self.backend.upload_into(t, &mut b).map(|()| b),
            None => self.backend.upload(t),
        };
        up.map(Bound::Owned).map_err(|e| self.be(i, e))
    }

    fn fetch(
        &self,
        i: usize,
        bound: &Bindings<'_, B::Buffer>,
    ) -> Result<HostTensor, GraphRunError> {
        let node = &self.graph.nodes[i];
        let buf = match bound.get(&i) {
            Some(b) => b.get(),
            None => (self.plan.slot_of[i].and_then(|s| self.slots[s].as_ref()))
                .ok_or_else(|| GraphRunError::NoValue(format!("node %{i}")))?,
        };
        self.backend
            .download(buf, node.dtype, &node.shape)
            .map_err(|e| self.be(i, e))
    }

    /// Executes node `i`. A running-statistics update reads the buffer's value as this run
    /// left it (`buffers`, else `params`) and puts the new value in `buffers`.
    fn exec_node(
        &mut self,
        i: usize,
        bound: &Bindings<'_, B::Buffer>,
        params: &ParamSet,
        buffers: &mut BTreeMap<String, HostTensor>,
    ) -> Result<(), GraphRunError> {
        let node = &self.graph.nodes[i];
        if let Op::UpdateRunningStats {
            mean,
            var,
            momentum,
            count,
        } = &node.op
        {
            let stats = self.fetch(node.inputs[0].0, bound)?.to_f64_vec();
            let c = stats.len() / 2;
            let unbias = *count as f64 / (*count as f64 - 1.0);
            for (name, row, factor) in [(mean, 0, 1.0), (var, 1, unbias)] {
                let t = match buffers.get(name.as_str()) {
                    Some(t) => t,
                    None => params
                        .value(name)
                        .ok_or_else(|| GraphRunError::Params(format!("no buffer `{name}`")))?,
                };
                let old = t.to_f64_vec();
                let new: Vec<f64> = (0..c)
                    .map(|k| (1.0 - momentum) * old[k] + momentum * stats[row * c + k] * factor)
                    .collect();
                let updated = HostTensor::f64(t.shape.clone(), new)
                    .expect("same length")
                    .cast(t.dtype());
                buffers.insert(name.clone(), updated);
            }
            return Ok(());
        }
        let s = self.plan.slot_of[i].expect("executed nodes have slots");
        let (sdt, slen) = self.plan.slots[s];
        let mut out_buf = match self.slots[s].take() {
            Some(b) => b,
            None => match self.spare.get_mut(&(sdt, slen)).and_then(Vec::pop) {
                Some(b) => b,
                None => self.backend.alloc(sdt, slen).map_err(|e| self.be(i, e))?,
            },
        };
        if let Op::AllReduceMean = &node.op {
            let result = self.all_reduce_mean(i, bound, &mut out_buf, sdt, slen);
            self.slots[s] = Some(out_buf);
            return result;
        }
        let result = {
            let mut ins = Vec::with_capacity(node.inputs.len());
            for j in &node.inputs {
                let jn = &self.graph.nodes[j.0];
                let buf = match bound.get(&j.0) {
                    Some(b) => b.get(),
                    None => self.slots[self.plan.slot_of[j.0].expect("inputs were executed")]
                        .as_ref()
                        .expect("inputs are computed before use"),
                };
                ins.push(TensorRef {
                    buf,
                    shape: &jn.shape,
                    dtype: jn.dtype,
                });
            }
            let out = TensorMut {
                buf: &mut out_buf,
                shape: &node.shape,
                dtype: node.dtype,
            };
            let b = &self.backend;
            match &node.op {
                Op::Fill { value } => b.fill(out, *value),
                Op::Unary(op) => b.unary(op, &ins, out),
                Op::Binary(op) => b.binary(*op, &ins, out),
                Op::Reduce(op) => b.reduce(op, &ins, out),
                Op::Layout(op) => b.layout(op, &ins, out),
                Op::Matmul(op) => b.matmul(op, &ins, out),
                Op::Conv(op) => b.conv(op, &ins, out),
                Op::Pool(op) => b.pool(op, &ins, out),
                Op::Norm(op) => b.norm(op, &ins, out),
                Op::Loss(op) => b.loss(op, &ins, out),
                Op::Fused(f) => b.fused(f, &ins, out),
                Op::Input { .. }
                | Op::Param { .. }
                | Op::UpdateRunningStats { .. }
                | Op::AllReduceMean => {
                    unreachable!("handled before dispatch")
                }
            }
        };
        self.slots[s] = Some(out_buf);
        result.map_err(|e| self.be(i, e))
    }

    /// Average over the ranks in the executor (a host round trip; the values are batch-norm
    /// statistics, `[3, C]`): node `i`'s input, averaged, into its slot buffer `out` of `slen`
    /// elements of `dtype` (padded, so the slot keeps its size for the nodes sharing it).
    fn all_reduce_mean(
        &mut self,
        i: usize,
        bound: &Bindings<'_, B::Buffer>,
        out: &mut B::Buffer,
        dtype: DType,
        slen: usize,
    ) -> Result<(), GraphRunError> {
        let mut v = self
            .fetch(self.graph.nodes[i].inputs[0].0, bound)?
            .to_f64_vec();
        if let Some(d) = &self.dist {
            (d.all_reduce_sum_f64(&mut v))
                .map_err(|source| GraphRunError::Dist { node: i, source })?;
            let w = d.world() as f64;
            v.iter_mut().for_each(|x| *x /= w);
        }
        v.resize(slen, 0.0);
        let padded = HostTensor::f64(vec![slen], v)
            .expect("length set above")
            .cast(dtype);
        self.backend
            .upload_into(&padded, out)
            .map_err(|e| self.be(i, e))
    }

    /// Average [`Op::AllReduceMean`] nodes over `dist`'s ranks (sync batch norm in a
    /// data-parallel run).
    pub fn set_dist(&mut self, dist: Option<crate::dist::Dist>) {
        self.dist = dist;
    }

    /// Turn per-op timing on (cleared) or off. Off by default; when off, `run` reads no clock
    /// and behaves exactly as without profiling. On, every node is timed between two backend
    /// synchronisations (a device's queue is drained around it).
    pub fn set_profile(&mut self, on: bool) {
        self.timings = on.then(BTreeMap::new);
        self.node_timings = vec![(0.0, 0); if on { self.graph.nodes.len() } else { 0 }];
    }

    /// The profile per node (seconds, calls), slowest first: which convolution, at which
    /// shape, inside which scope (see [`Executor::describe_node`]).
    pub fn node_profile(&self) -> Vec<(NodeId, f64, u64)> {
        let mut v: Vec<_> = (self.node_timings.iter().enumerate())
            .filter(|(_, t)| t.1 > 0)
            .map(|(i, &(s, n))| (NodeId(i), s, n))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// One line naming a node for a profile: op, scope, input shapes → output shape, attributes.
    pub fn describe_node(&self, id: NodeId) -> String {
        let n = &self.graph.nodes[id.0];
        let ins: Vec<String> = (n.inputs.iter())
            .map(|x| format!("{:?}", self.graph.nodes[x.0].shape))
            .collect();
        let op = match &n.op {
            Op::Fused(f) => format!("{{{}}}", f.describe()),
            op => format!("{op:?}"),
        };
        format!(
            "{} {} {} -> {:?} {op}",
            n.op.name(),
            n.scope,
            ins.join(" "),
            n.shape,
        )
    }

    /// Seconds and calls per op name since profiling was turned on, slowest first; host↔backend
    /// copies appear as `upload` and `download`. Empty when profiling is off.
    pub fn profile(&self) -> Vec<(&'static str, f64, u64)> {
        let mut by_name = self.timings.clone().unwrap_or_default();
        for (id, s, n) in self.node_profile() {
            let e = by_name.entry(self.graph.nodes[id.0].op.name()).or_default();
            e.0 += s;
            e.1 += n;
        }
        let mut v: Vec<_> = by_name.into_iter().map(|(k, (s, n))| (k, s, n)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

/// Adds the time since `start` to `name` when profiling is on (`start` is `None` when off).
fn record(
    timings: &mut Option<BTreeMap<&'static str, (f64, u64)>>,
    name: &'static str,
    start: Option<Instant>,
) {
    if let (Some(t), Some(start)) = (timings.as_mut(), start) {
        let e = t.entry(name).or_insert((0.0, 0));
        e.0 += start.elapsed().as_secs_f64();
        e.1 += 1;
    }
}

/// Opt-in device residency (benchmarks, device-side optimizers): parameters stay on the
/// backend between runs and gradients are read where they were computed, instead of uploading
/// every parameter and downloading every gradient per run as [`Executor::run`] does.
impl<B: Backend> Executor<B> {
    /// Like [`Executor::run`], but each parameter is read from `resident` (backend buffers by
    /// parameter name; one missing is uploaded from `params` first and kept there) and
    /// gradients are left on the backend: read them with [`Executor::grad_buffer`] or
    /// download them with [`Executor::download_grads`]. Running statistics come back as
    /// values, as from [`Executor::run`].
    ///
    /// Whoever updates a resident buffer in place owns the consistency: `params`' copy of
    /// that parameter is stale until downloaded.
    pub fn run_resident(
        &mut self,
        params: &ParamSet,
        resident: &mut BTreeMap<String, B::Buffer>,
        feeds: &BTreeMap<String, HostTensor>,
        late: Option<LateFeeds<'_>>,
    ) -> Result<RunOutputs, GraphRunError> {
        self.check(params)?;
        for &NodeId(i) in &self.plan.schedule {
            let node = &self.graph.nodes[i];
            if let Op::Param { name } = &node.op
                && !resident.contains_key(name)
            {
                let t = params
                    .value(name)
                    .ok_or_else(|| GraphRunError::Params(format!("no parameter `{name}`")))?;
                let t = t.cast(node.dtype);
                let b = self.backend.upload(&t).map_err(|e| self.be(i, e))?;
                resident.insert(name.clone(), b);
            }
        }
        let mut bound = Bindings::new();
        let out = self.run_bound(params, Some(&*resident), feeds, late, &mut bound);
        self.keep_param_bufs(bound);
        out
    }

    /// The gradient of parameter `name` computed by the last run, where it lies on the
    /// backend (the buffer may be longer than the parameter). Valid until the next run.
    pub fn grad_buffer(&self, name: &str) -> Option<&B::Buffer> {
        let (_, id) = self.graph.grads.iter().find(|(n, _)| n == name)?;
        self.slots[self.plan.slot_of[id.0]?].as_ref()
    }

    /// Downloads the last run's gradients (what [`Executor::run`] returns itself).
    pub fn download_grads(&self) -> Result<BTreeMap<String, HostTensor>, GraphRunError> {
        let mut grads = BTreeMap::new();
        for (name, id) in &self.graph.grads {
            if self.grad_buffer(name).is_none() {
                return Err(self.not_computed(name));
            }
            grads.insert(name.clone(), self.fetch(id.0, &Bindings::new())?);
        }
        Ok(grads)
    }
}
