//! Parameters kept on the device between training steps: values, optimizer state and the last
//! step's gradients stay where the step ran (`exec --device cuda|wgpu`), and the host's
//! [`ParamSet`] and [`Optimizer`] are brought up to date only when something reads them — a
//! checkpoint, an evaluation, the EMA hook. The runner decides when; [`DeviceParams`] is what
//! it and the hooks call. Per step the host sees the batch, the losses and one scalar (the
//! gradients' sum of squares, for the NaN guard and clipping), not every parameter twice.
//!
//! The buffers live in a [`KeptStore`], type-erased so that a train step holding executors of
//! several batch shapes as `dyn RunGraph` shares one store; the functions here are the
//! backend-generic work behind `RunGraph`'s `kept_*` methods.

use super::executor::{Executor, GraphRunError, LateFeeds, RunOutputs};
use super::optim::Optimizer;
use super::params::ParamSet;
use crate::backend::{Backend, BackendError, ParamUpdate, TensorMut, TensorRef};
use crate::ir::op::{BinaryOp, ReduceOp};
use crate::ir::{DType, HostTensor};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

/// What the runner and its hooks do with parameters a device keeps between steps.
pub trait DeviceParams {
    /// `Σ g²` over every trainable parameter's gradient from the last step (f32 sums on the
    /// device, one scalar read back; cached until the next step). Non-finite when a gradient
    /// holds an inf or NaN.
    fn grad_sum_squares(&mut self, params: &ParamSet) -> Result<f64, GraphRunError>;
    /// The first trainable parameter whose last gradient holds an inf or NaN, with that value
    /// (reads the gradients back: for after [`DeviceParams::grad_sum_squares`] was not finite).
    fn first_non_finite_grad(
        &mut self,
        params: &ParamSet,
    ) -> Result<Option<(String, f32)>, GraphRunError>;
    /// One optimizer step on the device from the last step's gradients, each multiplied by
    /// `grad_scale` first (clipping). Counts the optimizer's steps as [`Optimizer::step`].
    fn update(
        &mut self,
        optimizer: &mut Optimizer,
        params: &ParamSet,
        grad_scale: f64,
    ) -> Result<(), GraphRunError>;
    /// Copies the device's trainable values into `params`, and its optimizer state into
    /// `optimizer` when given.
    fn download(
        &mut self,
        params: &mut ParamSet,
        optimizer: Option<&mut Optimizer>,
    ) -> Result<(), GraphRunError>;
    /// The host's values or optimizer state changed (a checkpoint loaded, a hook wrote them):
    /// the next step uploads them again.
    fn invalidate(&mut self);
}

/// One backend's kept buffers, or none yet (the first kept run creates them).
#[derive(Default)]
pub struct KeptStore(Option<Box<dyn Any + Send>>);

impl KeptStore {
    /// Forgets every buffer: the next run uploads the host's values and state.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    fn get<B: Backend + 'static>(&mut self) -> &mut Kept<B> {
        if !self.0.as_ref().is_some_and(|k| k.is::<Kept<B>>()) {
            self.0 = Some(Box::new(Kept::<B> {
                values: BTreeMap::new(),
                state: BTreeMap::new(),
                zeros: None,
                sums: None,
            }));
        }
        (self.0.as_mut().and_then(|k| k.downcast_mut())).expect("made above")
    }
}

struct Kept<B: Backend + 'static> {
    /// Every parameter the graphs read except running statistics (re-read from the host each
    /// step, where the run returns them).
    values: BTreeMap<String, B::Buffer>,
    /// The optimizer's state of each trainable parameter.
    state: BTreeMap<String, Vec<B::Buffer>>,
    /// Zeros, and how many: the gradient of a trainable parameter a graph computes none for
    /// (the host path's zeros there).
    zeros: Option<(B::Buffer, usize)>,
    /// The work buffers of [`grad_sum_squares`], made once.
    sums: Option<SumBuffers<B>>,
}

/// Squares of the longest gradient, one parameter's sum, and the running total (two scalars
/// used in turn: an op does not write its own input).
struct SumBuffers<B: Backend + 'static> {
    squares: B::Buffer,
    len: usize,
    part: B::Buffer,
    acc: [B::Buffer; 2],
}

fn kept_err(what: &'static str) -> impl Fn(BackendError) -> GraphRunError {
    move |source| GraphRunError::Kept { what, source }
}

/// At least `len` zeros on the device, made once (longer when a longer one is needed).
fn zeros<'a, B: Backend>(
    be: &B,
    zeros: &'a mut Option<(B::Buffer, usize)>,
    len: usize,
) -> Result<&'a B::Buffer, GraphRunError> {
    if zeros.as_ref().is_none_or(|(_, n)| *n < len) {
        let err = kept_err("allocating zeros on the device");
        let mut b = be.alloc(DType::F32, len).map_err(&err)?;
        let out = TensorMut {
            buf: &mut b,
            shape: &[len],
            dtype: DType::F32,
        };
        be.fill(out, 0.0).map_err(&err)?;
        *zeros = Some((b, len));
    }
    Ok(&zeros.as_ref().expect("made above").0)
}

/// The trainable parameters, by name: index in `params` and element count.
fn trainable(params: &ParamSet) -> BTreeMap<String, (usize, usize)> {
    (params.iter().enumerate())
        .filter(|(_, p)| p.trainable)
        .map(|(i, p)| (p.name.clone(), (i, p.numel())))
        .collect()
}

/// Uploads every parameter `exec`'s graph reads that is not kept yet (what the first kept
/// run does on its way).
pub(crate) fn upload<B: Backend + 'static>(
    exec: &Executor<B>,
    store: &mut KeptStore,
    params: &ParamSet,
) -> Result<(), GraphRunError> {
    let kept = store.get::<B>();
    for (name, spec) in &exec.graph().params {
        if spec.buffer || kept.values.contains_key(name) {
            continue;
        }
        let t = (params.value(name))
            .ok_or_else(|| GraphRunError::Params(format!("no parameter `{name}`")))?;
        let b = (exec.backend().upload(&t.cast(spec.dtype)))
            .map_err(kept_err("uploading the parameters to the device"))?;
        kept.values.insert(name.clone(), b);
    }
    Ok(())
}

/// Runs `exec` on the kept values (uploading those not kept yet), leaving the gradients on
/// the device.
pub(crate) fn run<B: Backend + 'static>(
    exec: &mut Executor<B>,
    store: &mut KeptStore,
    params: &ParamSet,
    feeds: &BTreeMap<String, HostTensor>,
    late: Option<LateFeeds<'_>>,
) -> Result<RunOutputs, GraphRunError> {
    let kept = store.get::<B>();
    for (name, spec) in &exec.graph().params {
        if spec.buffer {
            kept.values.remove(name);
        }
    }
    exec.run_resident(params, &mut kept.values, feeds, late)
}

/// `Σ g²` of the last run's trainable gradients.
pub(crate) fn grad_sum_squares<B: Backend + 'static>(
    exec: &Executor<B>,
    store: &mut KeptStore,
    params: &ParamSet,
) -> Result<f64, GraphRunError> {
    let be = exec.backend();
    let err = kept_err("summing the gradients' squares on the device");
    let longest = params.iter().map(|p| p.numel()).max().unwrap_or(0).max(1);
    let sums = &mut store.get::<B>().sums;
    if sums.as_ref().is_none_or(|s| s.len < longest) {
        let scalar = || be.alloc(DType::F32, 1).map_err(&err);
        *sums = Some(SumBuffers {
            squares: be.alloc(DType::F32, longest).map_err(&err)?,
            len: longest,
            part: scalar()?,
            acc: [scalar()?, scalar()?],
        });
    }
    let SumBuffers {
        squares, part, acc, ..
    } = sums.as_mut().expect("made above");
    let scalar: &[usize] = &[];
    let [a0, _] = &mut *acc;
    be.fill(
        TensorMut {
            buf: a0,
            shape: scalar,
            dtype: DType::F32,
        },
        0.0,
    )
    .map_err(&err)?;
    for (name, (_, n)) in trainable(params) {
        let Some(g) = exec.grad_buffer(&name) else {
            continue;
        };
        let shape = [n];
        let g = || TensorRef {
            buf: g,
            shape: &shape,
            dtype: DType::F32,
        };
        let sq = TensorMut {
            buf: &mut *squares,
            shape: &shape,
            dtype: DType::F32,
        };
        be.binary(BinaryOp::Mul, &[g(), g()], sq).map_err(&err)?;
        let sum = ReduceOp::Sum {
            axes: vec![0],
            keepdim: false,
        };
        let sq = TensorRef {
            buf: &*squares,
            shape: &shape,
            dtype: DType::F32,
        };
        let out = TensorMut {
            buf: &mut *part,
            shape: scalar,
            dtype: DType::F32,
        };
        be.reduce(&sum, &[sq], out).map_err(&err)?;
        let [a, b] = &mut *acc;
        let ins = [
            TensorRef {
                buf: &*a,
                shape: scalar,
                dtype: DType::F32,
            },
            TensorRef {
                buf: &*part,
                shape: scalar,
                dtype: DType::F32,
            },
        ];
        let out = TensorMut {
            buf: b,
            shape: scalar,
            dtype: DType::F32,
        };
        be.binary(BinaryOp::Add, &ins, out).map_err(&err)?;
        acc.swap(0, 1);
    }
    let total = be.download(&acc[0], DType::F32, scalar).map_err(&err)?;
    Ok(total.as_f32().map_or(f64::NAN, |v| v[0] as f64))
}

/// The first trainable gradient element that is not finite, read back parameter by parameter.
pub(crate) fn first_non_finite_grad<B: Backend + 'static>(
    exec: &Executor<B>,
    params: &ParamSet,
) -> Result<Option<(String, f32)>, GraphRunError> {
    let err = kept_err("reading a gradient back from the device");
    for p in params.iter().filter(|p| p.trainable) {
        let Some(g) = exec.grad_buffer(&p.name) else {
            continue;
        };
        let t = (exec.backend())
            .download(g, DType::F32, &[p.numel()])
            .map_err(&err)?;
        if let Some(v) = t.as_f32().and_then(|v| v.iter().find(|g| !g.is_finite())) {
            return Ok(Some((p.name.clone(), *v)));
        }
    }
    Ok(None)
}

/// One optimizer step over the kept values from the last run's gradients.
pub(crate) fn update<B: Backend + 'static>(
    exec: &Executor<B>,
    store: &mut KeptStore,
    optimizer: &mut Optimizer,
    params: &ParamSet,
    grad_scale: f64,
) -> Result<(), GraphRunError> {
    let be = exec.backend();
    let err = kept_err("updating the parameters on the device");
    let kept = store.get::<B>();
    let rule = optimizer.rule();
    let need = rule.state_buffers();
    let trainable = trainable(params);
    // The state a parameter has on the host is uploaded once; one without any starts fresh.
    let mut fresh = BTreeSet::new();
    for (name, &(index, n)) in &trainable {
        if kept.state.get(name).is_some_and(|s| s.len() >= need) {
            continue;
        }
        let host = optimizer.state_of(index);
        let bufs = if host.len() >= need {
            (host.iter().take(need))
                .map(|v| be.upload(&HostTensor::f32(vec![n], v.clone()).expect("length")))
                .collect::<Result<Vec<_>, _>>()
        } else {
            fresh.insert(index);
            (0..need).map(|_| be.alloc(DType::F32, n)).collect()
        };
        kept.state.insert(name.clone(), bufs.map_err(&err)?);
    }
    let plan: BTreeMap<usize, _> = (optimizer.plan_update(|i| fresh.contains(&i), grad_scale))
        .into_iter()
        .collect();
    let longest = trainable.values().map(|&(_, n)| n).max().unwrap_or(0);
    let zeros = zeros(be, &mut kept.zeros, longest)?;
    let mut updates = Vec::with_capacity(trainable.len());
    for ((name, value), (state_name, state)) in (kept.values.iter_mut())
        .filter(|(name, _)| trainable.contains_key(*name))
        .zip(kept.state.iter_mut())
    {
        let (index, len) = trainable[name];
        if name != state_name {
            return Err(GraphRunError::NoValue(format!(
                "the optimizer state of `{name}`"
            )));
        }
        updates.push(ParamUpdate {
            len,
            value,
            grad: exec.grad_buffer(name).unwrap_or(zeros),
            state,
            hyper: plan[&index],
        });
    }
    if updates.len() != trainable.len() {
        return Err(GraphRunError::NoValue(
            "a trainable parameter's value (no step ran)".into(),
        ));
    }
    be.update(&rule, &mut updates).map_err(&err)
}

/// The kept trainable values into `params`, the kept optimizer state into `optimizer` when
/// given.
pub(crate) fn download<B: Backend + 'static>(
    exec: &Executor<B>,
    store: &mut KeptStore,
    params: &mut ParamSet,
    mut optimizer: Option<&mut Optimizer>,
) -> Result<(), GraphRunError> {
    let be = exec.backend();
    let err = kept_err("reading the parameters back from the device");
    let kept = store.get::<B>();
    for (name, (index, n)) in trainable(params) {
        if let Some(buf) = kept.values.get(&name) {
            let shape = params.at(index).shape().to_vec();
            let t = be.download(buf, DType::F32, &shape).map_err(&err)?;
            params
                .set(&name, &t)
                .map_err(|e| GraphRunError::Params(e.to_string()))?;
        }
        if let (Some(optimizer), Some(bufs)) = (optimizer.as_deref_mut(), kept.state.get(&name)) {
            let host = (bufs.iter())
                .map(|b| {
                    let t = be.download(b, DType::F32, &[n])?;
                    Ok(t.as_f32().map(<[f32]>::to_vec).unwrap_or_default())
                })
                .collect::<Result<Vec<_>, BackendError>>()
                .map_err(&err)?;
            optimizer.set_state_of(index, host);
        }
    }
    Ok(())
}
