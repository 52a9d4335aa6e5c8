//! The one parameter store: every parameter and buffer (BN running statistics) of a model by
//! name, with its value, its role and the gradient of the last step.
//!
//! The runner owns it. The [`Executor`](super::Executor) reads values from it by reference
//! and hands back what a run produced — outputs, gradients, updated running statistics — as
//! values; [`ParamSet::take_run`] moves those in. Optimizers, EMA, gradient clipping and
//! checkpoints then work by name over the same set, so none of them needs to know what layer
//! a parameter belongs to.
//!
//! Values keep the dtype the graph declared (the gradient checks run in f64); what the engine
//! updates — optimizers, EMA, checkpoints — reads f32 through [`Param::values`], and
//! [`ParamSet::require_f32`] says so before a run starts.

use super::executor::RunOutputs;
use crate::graph::Graph;
use crate::ir::{DType, HostData, HostTensor};
use std::collections::HashMap;

/// What role a parameter plays; decides which paramwise multipliers apply (mmcv's rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A weight of a non-normalisation layer (conv, linear).
    Weight,
    /// A bias of a non-normalisation layer (`bias_lr_mult`, `bias_decay_mult` apply).
    Bias,
    /// A weight or bias of a normalisation layer (`norm_decay_mult` applies).
    Norm,
    /// A state buffer that is saved but never trained (BN running mean/var).
    Buffer,
}

impl ParamKind {
    /// The role of a graph parameter by mmdetection's module names: normalisation layers are
    /// `bn*`, `gn*`, `*norm*` and a downsample branch's `downsample.1`; biases are the other
    /// names ending in `bias`.
    pub fn of(name: &str, buffer: bool) -> ParamKind {
        let norm = name
            .split('.')
            .any(|part| part.starts_with("bn") || part.starts_with("gn") || part.contains("norm"))
            || name.contains("downsample.1.");
        if buffer {
            ParamKind::Buffer
        } else if norm {
            ParamKind::Norm
        } else if name.ends_with("bias") {
            ParamKind::Bias
        } else {
            ParamKind::Weight
        }
    }
}

/// One named parameter or buffer.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    /// Frozen parameters (and buffers) get no gradient, no update and no optimizer state.
    pub trainable: bool,
    /// The value, in the dtype its graph declared.
    pub value: HostTensor,
    /// The last step's gradient in f32: as long as the value for trainable parameters (zeros
    /// before the first step), empty otherwise.
    pub grad: Vec<f32>,
}

impl Param {
    pub fn shape(&self) -> &[usize] {
        &self.value.shape
    }

    pub fn numel(&self) -> usize {
        self.value.numel()
    }

    /// The value as f32. Every set the engine trains is f32 ([`ParamSet::require_f32`]); a
    /// set of another dtype (a gradient check) is read through [`Param::value`] instead.
    pub fn values(&self) -> &[f32] {
        self.value.as_f32().expect("engine parameters are f32")
    }

    /// The value as mutable f32 (see [`Param::values`]).
    pub fn values_mut(&mut self) -> &mut [f32] {
        self.value.as_f32_mut().expect("engine parameters are f32")
    }
}

/// Errors from building or addressing a parameter set.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamError {
    #[error("parameter `{0}` is defined twice")]
    Duplicate(String),
    #[error("parameter `{name}` has shape {shape:?} ({expected} values) but {found} values")]
    BadLength {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    #[error("no parameter `{0}`")]
    Missing(String),
    #[error("`{name}`: the parameters hold shape {have:?}, the graph wants {want:?}")]
    Shape {
        name: String,
        have: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("parameter `{name}` is {dtype}; the optimizer and checkpoints work on f32")]
    NotF32 { name: String, dtype: DType },
}

/// An ordered set of named parameters. Order is insertion order (name order for a set made
/// from a graph) and is what checkpoints and optimizers iterate in, so it is the same on every
/// run of the same model.
#[derive(Clone, Debug, Default)]
pub struct ParamSet {
    params: Vec<Param>,
    index: HashMap<String, usize>,
}

impl ParamSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every parameter and buffer `graph` declares, initialised from `seed` (each value depends
    /// only on the seed and its name), in name order, with its role from [`ParamKind::of`].
    pub fn init(graph: &Graph, seed: u64) -> Self {
        let mut set = ParamSet::new();
        for (name, spec) in &graph.params {
            let value = HostTensor {
                shape: spec.shape.clone(),
                data: HostData::F64(spec.init.sample(name, &spec.shape, seed)).cast(spec.dtype),
            };
            let kind = ParamKind::of(name, spec.buffer);
            set.insert(name, kind, spec.trainable, value)
                .expect("a graph declares each parameter once, with its shape");
        }
        set
    }

    /// Add an f32 parameter; trainable kinds get a zeroed gradient.
    pub fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        kind: ParamKind,
        trainable: bool,
        value: Vec<f32>,
    ) -> Result<usize, ParamError> {
        let expected: usize = shape.iter().product();
        if expected != value.len() {
            return Err(ParamError::BadLength {
                name: name.to_string(),
                shape: shape.to_vec(),
                expected,
                found: value.len(),
            });
        }
        let value = HostTensor {
            shape: shape.to_vec(),
            data: HostData::F32(value),
        };
        self.insert(name, kind, trainable, value)
    }

    fn insert(
        &mut self,
        name: &str,
        kind: ParamKind,
        trainable: bool,
        value: HostTensor,
    ) -> Result<usize, ParamError> {
        if self.index.contains_key(name) {
            return Err(ParamError::Duplicate(name.to_string()));
        }
        let trainable = trainable && kind != ParamKind::Buffer;
        let grad = if trainable {
            vec![0.0; value.numel()]
        } else {
            Vec::new()
        };
        let i = self.params.len();
        self.params.push(Param {
            name: name.to_string(),
            kind,
            trainable,
            value,
            grad,
        });
        self.index.insert(name.to_string(), i);
        Ok(i)
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Param> {
        self.params.iter()
    }
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Param> {
        self.params.iter_mut()
    }
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.index.get(name).map(|&i| &self.params[i])
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Param> {
        self.index.get(name).map(|&i| &mut self.params[i])
    }
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
    pub fn at(&self, i: usize) -> &Param {
        &self.params[i]
    }
    pub fn at_mut(&mut self, i: usize) -> &mut Param {
        &mut self.params[i]
    }

    /// The value of `name` as f32 (`None`: no such parameter, or not f32).
    pub fn f32(&self, name: &str) -> Option<&[f32]> {
        self.value(name)?.as_f32()
    }

    /// The value of `name`, as the executor reads it.
    pub fn value(&self, name: &str) -> Option<&HostTensor> {
        self.get(name).map(|p| &p.value)
    }

    /// Replaces the value of `name` (pretrained weights, a device's copy); the shape must
    /// match and the data is cast to the parameter's dtype.
    pub fn set(&mut self, name: &str, value: &HostTensor) -> Result<(), ParamError> {
        let p = self
            .get_mut(name)
            .ok_or_else(|| ParamError::Missing(name.to_string()))?;
        if p.value.shape != value.shape {
            return Err(ParamError::Shape {
                name: name.to_string(),
                have: p.value.shape.clone(),
                want: value.shape.clone(),
            });
        }
        p.value = value.cast(p.value.dtype());
        Ok(())
    }

    /// Errors naming every parameter of `graph` this set lacks or holds in another shape.
    pub fn check(&self, graph: &Graph) -> Result<(), Vec<ParamError>> {
        let problems: Vec<ParamError> = (graph.params.iter())
            .filter_map(|(name, spec)| match self.get(name) {
                None => Some(ParamError::Missing(name.clone())),
                Some(p) if p.value.shape != spec.shape => Some(ParamError::Shape {
                    name: name.clone(),
                    have: p.value.shape.clone(),
                    want: spec.shape.clone(),
                }),
                Some(_) => None,
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Errors on the first parameter that is not f32 (what optimizers and checkpoints need).
    pub fn require_f32(&self) -> Result<(), ParamError> {
        match self.params.iter().find(|p| p.value.dtype() != DType::F32) {
            Some(p) => Err(ParamError::NotF32 {
                name: p.name.clone(),
                dtype: p.value.dtype(),
            }),
            None => Ok(()),
        }
    }

    /// Takes what a train run produced: its gradients (moved when f32, zeros for a trainable
    /// parameter the run computed none for) and its updated running statistics. `run` keeps
    /// its outputs. Returns the storage of the gradients it replaced, for the executor to
    /// reuse ([`Executor::recycle`](super::Executor::recycle)).
    pub fn take_run(&mut self, run: &mut RunOutputs) -> Result<Vec<HostData>, ParamError> {
        self.take_buffers(run)?;
        let mut grads = std::mem::take(&mut run.grads);
        let mut replaced = Vec::new();
        for p in self.params.iter_mut().filter(|p| p.trainable) {
            let expected = p.value.numel();
            match grads.remove(&p.name).map(|g| g.data) {
                Some(HostData::F32(g)) if g.len() == expected => {
                    replaced.push(HostData::F32(std::mem::replace(&mut p.grad, g)));
                }
                Some(other) if other.len() == expected => {
                    if let HostData::F32(g) = other.cast(DType::F32) {
                        p.grad = g;
                    }
                }
                Some(other) => {
                    return Err(ParamError::BadLength {
                        name: p.name.clone(),
                        shape: p.value.shape.clone(),
                        expected,
                        found: other.len(),
                    });
                }
                None => p.grad.iter_mut().for_each(|g| *g = 0.0),
            }
        }
        match grads.into_keys().next() {
            Some(name) => Err(ParamError::Missing(name)),
            None => Ok(replaced),
        }
    }

    /// Takes the running statistics a run updated (all a resident run returns: its gradients
    /// stay on the device).
    pub fn take_buffers(&mut self, run: &mut RunOutputs) -> Result<(), ParamError> {
        for (name, value) in std::mem::take(&mut run.buffers) {
            let p = self
                .get_mut(&name)
                .ok_or_else(|| ParamError::Missing(name.clone()))?;
            if p.value.shape != value.shape {
                return Err(ParamError::Shape {
                    name,
                    have: p.value.shape.clone(),
                    want: value.shape,
                });
            }
            let dtype = p.value.dtype();
            p.value = if value.dtype() == dtype {
                value
            } else {
                value.cast(dtype)
            };
        }
        Ok(())
    }

    /// Freeze or unfreeze a parameter by name (frozen: no grad buffer, no update).
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> bool {
        let Some(p) = self.get_mut(name) else {
            return false;
        };
        p.trainable = trainable && p.kind != ParamKind::Buffer;
        p.grad = if p.trainable {
            vec![0.0; p.numel()]
        } else {
            Vec::new()
        };
        true
    }

    /// Zero every gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.grad.iter_mut().for_each(|g| *g = 0.0);
        }
    }

    /// Number of trainable scalars.
    pub fn trainable_numel(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.numel())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Init, ParamSpec};

    #[test]
    fn rejects_duplicates_and_bad_lengths() {
        let mut s = ParamSet::new();
        s.add("a.weight", &[2, 2], ParamKind::Weight, true, vec![0.0; 4])
            .unwrap();
        assert_eq!(
            s.add("a.weight", &[1], ParamKind::Weight, true, vec![0.0]),
            Err(ParamError::Duplicate("a.weight".into()))
        );
        assert!(matches!(
            s.add("b", &[3], ParamKind::Bias, true, vec![0.0; 2]),
            Err(ParamError::BadLength { .. })
        ));
        s.add(
            "bn.running_mean",
            &[2],
            ParamKind::Buffer,
            true,
            vec![0.0; 2],
        )
        .unwrap();
        assert!(!s.get("bn.running_mean").unwrap().trainable);
        assert!(s.set_trainable("a.weight", false));
        assert!(s.get("a.weight").unwrap().grad.is_empty());
    }

    fn spec(name: &str, n: usize, trainable: bool, buffer: bool) -> (String, ParamSpec) {
        (
            name.to_string(),
            ParamSpec {
                name: name.to_string(),
                shape: vec![n],
                dtype: DType::F32,
                init: Init::Constant(0.5),
                trainable,
                buffer,
            },
        )
    }

    /// A set made from a graph: roles by name, frozen flags from the specs; a run's
    /// gradients move in (zeros for one the run did not compute), its statistics are copied.
    #[test]
    fn made_from_a_graph_and_takes_a_run() {
        let mut g = Graph::default();
        g.params.extend([
            spec("conv.weight", 2, true, false),
            spec("conv.bias", 2, true, false),
            spec("bn.weight", 2, true, false),
            spec("bn.running_mean", 2, false, true),
            spec("stem.weight", 3, false, false),
        ]);
        let mut set = ParamSet::init(&g, 0);
        let kind = |s: &ParamSet, n| s.get(n).unwrap().kind;
        assert_eq!(kind(&set, "conv.bias"), ParamKind::Bias);
        assert_eq!(kind(&set, "bn.weight"), ParamKind::Norm);
        assert_eq!(kind(&set, "bn.running_mean"), ParamKind::Buffer);
        assert!(!set.get("stem.weight").unwrap().trainable);
        assert!(set.check(&g).is_ok());
        set.get_mut("conv.bias").unwrap().grad = vec![5.0, 5.0];
        let mut run = RunOutputs::default();
        run.grads.insert(
            "conv.weight".into(),
            HostTensor::f32(vec![2], vec![7.0, 8.0]).unwrap(),
        );
        run.buffers.insert(
            "bn.running_mean".into(),
            HostTensor::f32(vec![2], vec![3.0, 6.0]).unwrap(),
        );
        set.take_run(&mut run).unwrap();
        assert_eq!(set.get("conv.weight").unwrap().grad, [7.0, 8.0]);
        assert_eq!(set.get("conv.bias").unwrap().grad, [0.0, 0.0]);
        assert_eq!(set.get("bn.running_mean").unwrap().values(), [3.0, 6.0]);
        // A gradient of a parameter the set lacks is an error naming it.
        run.grads.insert(
            "head.weight".into(),
            HostTensor::f32(vec![1], vec![1.0]).unwrap(),
        );
        let e = set.take_run(&mut run).unwrap_err();
        assert_eq!(e, ParamError::Missing("head.weight".into()));
        g.params.extend([spec("conv.weight", 3, true, false)]);
        assert!(matches!(
            &set.check(&g).unwrap_err()[..],
            [ParamError::Shape { .. }]
        ));
    }
}
