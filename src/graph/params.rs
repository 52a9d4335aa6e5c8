//! The named parameter store: trainable parameters, frozen parameters and buffers (BN running
//! statistics) as host tensors, plus the gradients of the last step. The optimizer updates
//! values by name; checkpoints read and write them as flat slices. Train and eval graphs built
//! with the same names share one store.

use super::builder::{Graph, ParamSpec};
use super::tensor::{HostData, HostTensor};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Entry {
    spec: ParamSpec,
    value: HostTensor,
    grad: Option<HostTensor>,
}

/// Parameters, buffers and gradients by name (sorted, so iteration order is stable).
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    entries: BTreeMap<String, Entry>,
}

impl ParamStore {
    /// A store with every parameter and buffer of `graph` initialised from `seed`.
    pub fn init(graph: &Graph, seed: u64) -> Self {
        let mut s = ParamStore::default();
        s.add_missing(graph, seed)
            .expect("an empty store accepts any graph");
        s
    }

    /// Adds (and initialises) the entries of `graph` not yet present; errors when an existing
    /// entry disagrees in shape.
    pub fn add_missing(&mut self, graph: &Graph, seed: u64) -> Result<(), String> {
        self.check(graph)?;
        for (name, spec) in &graph.params {
            if !self.entries.contains_key(name) {
                let vals = spec.init.sample(name, &spec.shape, seed);
                let value = HostTensor {
                    shape: spec.shape.clone(),
                    data: HostData::F64(vals).cast(spec.dtype),
                };
                self.entries.insert(
                    name.clone(),
                    Entry {
                        spec: spec.clone(),
                        value,
                        grad: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// Errors listing every parameter of `graph` that is missing or has another shape here.
    pub fn check(&self, graph: &Graph) -> Result<(), String> {
        let mut problems = Vec::new();
        for (name, spec) in &graph.params {
            if let Some(e) = self.entries.get(name)
                && e.value.shape != spec.shape
            {
                problems.push(format!(
                    "`{name}`: store has {:?}, graph wants {:?}",
                    e.value.shape, spec.shape
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// Names of the trainable parameters in sorted order.
    pub fn trainable_names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|(_, e)| e.spec.trainable)
            .map(|(k, _)| k.as_str())
    }

    /// The declaration of an entry.
    pub fn spec(&self, name: &str) -> Option<&ParamSpec> {
        self.entries.get(name).map(|e| &e.spec)
    }

    /// Whether an entry exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Current value.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.entries.get(name).map(|e| &e.value)
    }

    /// Current value, mutable (shape must not change).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut HostTensor> {
        self.entries.get_mut(name).map(|e| &mut e.value)
    }

    /// Replaces a value (e.g. from a checkpoint); the shape must match and the data is cast to
    /// the entry's dtype.
    pub fn set(&mut self, name: &str, value: &HostTensor) -> Result<(), String> {
        let e = self
            .entries
            .get_mut(name)
            .ok_or_else(|| format!("no parameter `{name}`"))?;
        if e.value.shape != value.shape {
            return Err(format!(
                "`{name}`: expected shape {:?}, got {:?}",
                e.value.shape, value.shape
            ));
        }
        e.value = value.cast(e.spec.dtype);
        Ok(())
    }

    /// Flat f32 data of a value (None if missing or not f32).
    pub fn f32(&self, name: &str) -> Option<&[f32]> {
        self.get(name)?.as_f32()
    }

    /// Flat mutable f32 data of a value.
    pub fn f32_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        self.get_mut(name)?.as_f32_mut()
    }

    /// Gradient of the last step (None before a step or for non-trainable entries).
    pub fn grad(&self, name: &str) -> Option<&HostTensor> {
        self.entries.get(name)?.grad.as_ref()
    }

    /// Flat f32 gradient.
    pub fn grad_f32(&self, name: &str) -> Option<&[f32]> {
        self.grad(name)?.as_f32()
    }

    /// A value and its gradient at once (for an optimizer updating in place).
    pub fn value_and_grad_mut(
        &mut self,
        name: &str,
    ) -> Option<(&mut HostTensor, Option<&HostTensor>)> {
        let e = self.entries.get_mut(name)?;
        Some((&mut e.value, e.grad.as_ref()))
    }

    /// The last step's gradient, mutable (to be overwritten in place).
    pub fn grad_mut(&mut self, name: &str) -> Option<&mut HostTensor> {
        self.entries.get_mut(name)?.grad.as_mut()
    }

    pub(crate) fn set_grad(&mut self, name: &str, grad: HostTensor) {
        if let Some(e) = self.entries.get_mut(name) {
            e.grad = Some(grad);
        }
    }

    /// Drops all gradients.
    pub fn clear_grads(&mut self) {
        for e in self.entries.values_mut() {
            e.grad = None;
        }
    }

    /// Elements of parameters (trainable and frozen, not buffers).
    pub fn num_params(&self) -> usize {
        self.entries
            .values()
            .filter(|e| !e.spec.buffer)
            .map(|e| e.value.numel())
            .sum()
    }

    /// Elements of trainable parameters.
    pub fn num_trainable(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.spec.trainable)
            .map(|e| e.value.numel())
            .sum()
    }
}
