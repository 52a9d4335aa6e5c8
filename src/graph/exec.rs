//! The executor: runs a planned graph on a backend, reading parameters from and writing
//! gradients and running statistics to a [`ParamStore`].

use super::builder::{Graph, NodeId};
use super::memory::MemoryPlan;
use super::op::Op;
use super::params::ParamStore;
use super::tensor::HostTensor;
use crate::backend::{Backend, BackendError, TensorMut, TensorRef};
use std::collections::BTreeMap;
use std::time::Instant;

/// Failures while running a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecError {
    #[error("missing input `{0}`")]
    MissingInput(String),
    #[error("input `{name}`: expected {expected}, got {got}")]
    BadInput {
        name: String,
        expected: String,
        got: String,
    },
    #[error("parameter store: {0}")]
    Store(String),
    #[error("node %{node} ({op}): {source}")]
    Backend {
        node: usize,
        op: &'static str,
        #[source]
        source: BackendError,
    },
}

/// Named results of one run (gradients go to the store).
#[derive(Clone, Debug, Default)]
pub struct RunOutputs {
    pub outputs: BTreeMap<String, HostTensor>,
}

impl RunOutputs {
    /// A scalar output as f64 (e.g. a loss).
    pub fn scalar(&self, name: &str) -> Option<f64> {
        let t = self.outputs.get(name)?;
        (t.numel() == 1).then(|| t.data.get_f64(0))
    }
}

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
    /// Parameters whose storage the running step has borrowed from the store
    /// ([`Backend::swap_storage`]; node, name), handed back when the step ends.
    lent: Vec<(usize, String)>,
    /// Per node: a parameter whose storage may be borrowed — not a buffer (running-statistics
    /// updates read those from the store mid-step) and the only node of its name (a second
    /// node would find the store holding the swapped-in spare).
    lendable: Vec<bool>,
}

impl<B: Backend> Executor<B> {
    /// Plans `graph` for `backend`.
    pub fn new(graph: Graph, backend: B) -> Self {
        let plan = MemoryPlan::new(&graph);
        let slots = (0..plan.slots.len()).map(|_| None).collect();
        let param_name = |op: &Op| match op {
            Op::Param { name } => Some(name.clone()),
            _ => None,
        };
        let mut uses: BTreeMap<String, usize> = BTreeMap::new();
        for name in graph.nodes.iter().filter_map(|n| param_name(&n.op)) {
            *uses.entry(name).or_default() += 1;
        }
        let lendable = graph
            .nodes
            .iter()
            .map(|n| {
                param_name(&n.op).is_some_and(|name| {
                    uses[&name] == 1 && graph.params.get(&name).is_some_and(|p| !p.buffer)
                })
            })
            .collect();
        Executor {
            graph,
            plan,
            backend,
            slots,
            timings: None,
            node_timings: Vec::new(),
            param_bufs: BTreeMap::new(),
            lent: Vec::new(),
            lendable,
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

    fn be(&self, node: usize, source: BackendError) -> ExecError {
        ExecError::Backend {
            node,
            op: self.graph.nodes[node].op.name(),
            source,
        }
    }

    /// Runs the graph: feeds by input name; parameters read from `store`; gradients (if the
    /// graph has them) and running statistics written back to `store`.
    pub fn run(
        &mut self,
        store: &mut ParamStore,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<RunOutputs, ExecError> {
        store.check(&self.graph).map_err(ExecError::Store)?;
        let mut ext: BTreeMap<usize, B::Buffer> = BTreeMap::new();
        let out = self.run_bound(store, None, feeds, &mut ext, &mut Vec::new());
        self.keep_param_bufs(store, ext);
        let out = out?;
        let t0 = self.timings.is_some().then(Instant::now);
        self.take_grads(store)?;
        record(&mut self.timings, "download", t0);
        Ok(out)
    }

    /// [`Executor::download_grads`], but swapping storage with the last step's gradients
    /// where the backend can (those slots then hold last step's, to be overwritten).
    fn take_grads(&mut self, store: &mut ParamStore) -> Result<(), ExecError> {
        for (name, id) in &self.graph.grads {
            let node = &self.graph.nodes[id.0];
            let slot = self.plan.slot_of[id.0].and_then(|s| self.slots[s].as_mut());
            if let (Some(g), Some(buf)) = (store.grad_mut(name), slot)
                && g.dtype() == node.dtype
                && g.shape == node.shape
                && self.backend.swap_storage(g, buf)
            {
                continue;
            }
            self.download_grad(store, name, id.0)?;
        }
        Ok(())
    }

    /// Hands the borrowed parameter storage back to `store` and keeps the parameter buffers
    /// of a finished run for the next one to refill.
    fn keep_param_bufs(&mut self, store: &mut ParamStore, mut ext: BTreeMap<usize, B::Buffer>) {
        for (i, name) in std::mem::take(&mut self.lent) {
            if let (Some(t), Some(b)) = (store.get_mut(&name), ext.get_mut(&i)) {
                let swapped = self.backend.swap_storage(t, b);
                debug_assert!(swapped, "a lent buffer swaps back");
            }
        }
        for (i, b) in ext {
            if matches!(self.graph.nodes[i].op, Op::Param { .. }) {
                self.param_bufs.insert(i, b);
            }
        }
    }

    /// The run shared by [`Executor::run`] and [`Executor::run_resident`]: binds feeds and
    /// parameters (from `resident` when given, recording in `taken` which node holds which
    /// resident buffer; else uploaded from `store`), executes the schedule and downloads the
    /// outputs. Gradients stay in their slots.
    fn run_bound(
        &mut self,
        store: &mut ParamStore,
        mut resident: Option<&mut BTreeMap<String, B::Buffer>>,
        feeds: &BTreeMap<String, HostTensor>,
        ext: &mut BTreeMap<usize, B::Buffer>,
        taken: &mut Vec<(usize, String)>,
    ) -> Result<RunOutputs, ExecError> {
        let schedule = self.plan.schedule.clone();
        for &NodeId(i) in &schedule {
            let t0 = self.timings.is_some().then(Instant::now);
            let node = &self.graph.nodes[i];
            let buf = match &node.op {
                Op::Input { name } => {
                    let t = feeds
                        .get(name)
                        .ok_or_else(|| ExecError::MissingInput(name.clone()))?;
                    if t.shape != node.shape || t.dtype() != node.dtype {
                        return Err(ExecError::BadInput {
                            name: name.clone(),
                            expected: format!("{}{:?}", node.dtype, node.shape),
                            got: format!("{}{:?}", t.dtype(), t.shape),
                        });
                    }
                    self.backend.upload(t).map_err(|e| self.be(i, e))?
                }
                Op::Param { name } => {
                    let kept = resident.as_deref_mut().and_then(|r| r.remove(name));
                    if resident.is_some() {
                        taken.push((i, name.clone()));
                    }
                    match kept {
                        Some(b) => b,
                        None => {
                            // The CPU backend borrows a parameter's storage for the step
                            // (handed back in `keep_param_bufs`).
                            let mut cached = self.param_bufs.remove(&i);
                            let lent = self.lendable[i]
                                && match (store.get_mut(name), cached.as_mut()) {
                                    (Some(t), Some(b)) => self.backend.swap_storage(t, b),
                                    _ => false,
                                };
                            if lent {
                                self.lent.push((i, name.clone()));
                            }
                            let t = store.get(name).ok_or_else(|| {
                                ExecError::Store(format!("no parameter `{name}`"))
                            })?;
                            // Else upload straight from the store (a clone first would copy
                            // every parameter twice per step on the CPU backend), into the
                            // last run's buffer when there is one.
                            let cast;
                            let t = if t.dtype() == node.dtype {
                                t
                            } else {
                                cast = t.cast(node.dtype);
                                &cast
                            };
                            let up = match cached {
                                Some(b) if lent => Ok(b),
                                Some(mut b) => self.backend.upload_into(t, &mut b).map(|()| b),
                                None => self.backend.upload(t),
                            };
                            up.map_err(|e| self.be(i, e))?
                        }
                    }
                }
                _ => continue,
            };
            record(&mut self.timings, "upload", t0);
            ext.insert(i, buf);
        }
        for &NodeId(i) in &schedule {
            if ext.contains_key(&i) {
                continue;
            }
            let t0 = self.timings.is_some().then(Instant::now);
            self.exec_node(i, ext, store)?;
            if let Some(t0) = t0 {
                let e = &mut self.node_timings[i];
                e.0 += t0.elapsed().as_secs_f64();
                e.1 += 1;
            }
        }
        let mut out = RunOutputs::default();
        for (name, id) in &self.graph.outputs {
            let t0 = self.timings.is_some().then(Instant::now);
            let t = self.fetch(id.0, ext)?;
            record(&mut self.timings, "download", t0);
            out.outputs.insert(name.clone(), t);
        }
        Ok(out)
    }

    fn fetch(&self, i: usize, ext: &BTreeMap<usize, B::Buffer>) -> Result<HostTensor, ExecError> {
        let node = &self.graph.nodes[i];
        let buf = match ext.get(&i) {
            Some(b) => b,
            None => self.slots[self.plan.slot_of[i].expect("executed nodes have slots")]
                .as_ref()
                .expect("slot filled by its producer"),
        };
        self.backend
            .download(buf, node.dtype, &node.shape)
            .map_err(|e| self.be(i, e))
    }

    fn exec_node(
        &mut self,
        i: usize,
        ext: &BTreeMap<usize, B::Buffer>,
        store: &mut ParamStore,
    ) -> Result<(), ExecError> {
        let node = &self.graph.nodes[i];
        if let Op::UpdateRunningStats {
            mean,
            var,
            momentum,
            count,
        } = &node.op
        {
            let stats = self.fetch(node.inputs[0].0, ext)?.to_f64_vec();
            let c = stats.len() / 2;
            let unbias = *count as f64 / (*count as f64 - 1.0);
            for (name, row, factor) in [(mean, 0, 1.0), (var, 1, unbias)] {
                let t = store
                    .get_mut(name)
                    .ok_or_else(|| ExecError::Store(format!("no buffer `{name}`")))?;
                let old = t.to_f64_vec();
                let new: Vec<f64> = (0..c)
                    .map(|k| (1.0 - momentum) * old[k] + momentum * stats[row * c + k] * factor)
                    .collect();
                let dt = t.dtype();
                *t = HostTensor::f64(t.shape.clone(), new)
                    .expect("same length")
                    .cast(dt);
            }
            return Ok(());
        }
        let s = self.plan.slot_of[i].expect("executed nodes have slots");
        let (sdt, slen) = self.plan.slots[s];
        let mut out_buf = match self.slots[s].take() {
            Some(b) => b,
            None => self.backend.alloc(sdt, slen).map_err(|e| self.be(i, e))?,
        };
        let result = {
            let mut ins = Vec::with_capacity(node.inputs.len());
            for j in &node.inputs {
                let jn = &self.graph.nodes[j.0];
                let buf = match ext.get(&j.0) {
                    Some(b) => b,
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
                Op::Input { .. } | Op::Param { .. } | Op::UpdateRunningStats { .. } => {
                    unreachable!("handled before dispatch")
                }
            }
        };
        self.slots[s] = Some(out_buf);
        result.map_err(|e| self.be(i, e))
    }

    /// Turn per-op timing on (cleared) or off. Off by default; when off, `run` reads no clock
    /// and behaves exactly as without profiling.
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
        format!(
            "{} {} {} -> {:?} {:?}",
            n.op.name(),
            n.scope,
            ins.join(" "),
            n.shape,
            n.op
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
    /// parameter name; one missing is uploaded from `store` and kept there) and gradients are
    /// left on the backend: read them with [`Executor::grad_buffer`] or copy them into `store`
    /// with [`Executor::download_grads`]. Running statistics still go to `store`.
    ///
    /// Whoever updates a resident buffer in place owns the consistency: `store`'s copy of that
    /// parameter is stale until downloaded.
    pub fn run_resident(
        &mut self,
        store: &mut ParamStore,
        resident: &mut BTreeMap<String, B::Buffer>,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<RunOutputs, ExecError> {
        store.check(&self.graph).map_err(ExecError::Store)?;
        let mut ext: BTreeMap<usize, B::Buffer> = BTreeMap::new();
        let mut taken: Vec<(usize, String)> = Vec::new();
        let result = self.run_bound(store, Some(&mut *resident), feeds, &mut ext, &mut taken);
        // Hand the parameter buffers back whatever happened, so a failed run loses no
        // device-side update.
        for (i, name) in taken {
            if let Some(b) = ext.remove(&i) {
                resident.entry(name).or_insert(b);
            }
        }
        self.keep_param_bufs(store, ext);
        result
    }

    /// The gradient of parameter `name` computed by the last run, where it lies on the
    /// backend (the buffer may be longer than the parameter). Valid until the next run.
    pub fn grad_buffer(&self, name: &str) -> Option<&B::Buffer> {
        let (_, id) = self.graph.grads.iter().find(|(n, _)| n == name)?;
        self.slots[self.plan.slot_of[id.0]?].as_ref()
    }

    /// Downloads the last run's gradients into `store` (what [`Executor::run`] does itself).
    pub fn download_grads(&self, store: &mut ParamStore) -> Result<(), ExecError> {
        for (name, id) in &self.graph.grads {
            self.download_grad(store, name, id.0)?;
        }
        Ok(())
    }

    /// Downloads the gradient of `name` (node `i`) into `store`: in place into the last
    /// step's gradient when it has this dtype and shape.
    fn download_grad(&self, store: &mut ParamStore, name: &str, i: usize) -> Result<(), ExecError> {
        let buf = self.plan.slot_of[i]
            .and_then(|s| self.slots[s].as_ref())
            .ok_or_else(|| {
                ExecError::Store(format!(
                    "the gradient of `{name}` was not computed on the backend (no run yet?)"
                ))
            })?;
        let node = &self.graph.nodes[i];
        let dt = store.spec(name).map(|s| s.dtype).unwrap_or(node.dtype);
        if let Some(g) = store.grad_mut(name)
            && g.dtype() == node.dtype
            && dt == node.dtype
            && g.shape == node.shape
        {
            return self
                .backend
                .download_into(buf, g)
                .map_err(|e| self.be(i, e));
        }
        let t = self.fetch(i, &BTreeMap::new())?;
        store.set_grad(name, if t.dtype() == dt { t } else { t.cast(dt) });
        Ok(())
    }
}
