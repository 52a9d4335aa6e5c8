//! The engine's view of a model's state: named flat `f32` buffers with their gradients.
//!
//! Optimizers, EMA, gradient clipping and checkpoints all work by parameter name over this
//! set, so none of them needs to know what layer a buffer belongs to. A model (or its adapter
//! over the graph executor's store) writes gradients into [`Param::grad`] during its train
//! step and reads [`Param::value`] during its forward pass.

use std::collections::HashMap;

/// What role a buffer plays; decides which paramwise multipliers apply (mmcv's rules).
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

/// One named buffer.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
    /// Frozen parameters (and buffers) get no update and no optimizer state.
    pub trainable: bool,
    pub value: Vec<f32>,
    /// Same length as `value` for trainable parameters, empty otherwise.
    pub grad: Vec<f32>,
}

impl Param {
    pub fn numel(&self) -> usize {
        self.value.len()
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
}

/// An ordered set of named buffers. Order is insertion order and is what checkpoints and
/// optimizers iterate in, so it must be the same on every run of the same model.
#[derive(Clone, Debug, Default)]
pub struct ParamSet {
    params: Vec<Param>,
    index: HashMap<String, usize>,
}

impl ParamSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a buffer; trainable kinds get a zeroed gradient.
    pub fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        kind: ParamKind,
        trainable: bool,
        value: Vec<f32>,
    ) -> Result<usize, ParamError> {
        if self.index.contains_key(name) {
            return Err(ParamError::Duplicate(name.to_string()));
        }
        let expected: usize = shape.iter().product();
        if expected != value.len() {
            return Err(ParamError::BadLength {
                name: name.to_string(),
                shape: shape.to_vec(),
                expected,
                found: value.len(),
            });
        }
        let trainable = trainable && kind != ParamKind::Buffer;
        let grad = if trainable {
            vec![0.0; value.len()]
        } else {
            Vec::new()
        };
        let i = self.params.len();
        self.params.push(Param {
            name: name.to_string(),
            shape: shape.to_vec(),
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

    /// Freeze or unfreeze a parameter by name (frozen: no grad buffer, no update).
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> bool {
        let Some(p) = self.get_mut(name) else {
            return false;
        };
        p.trainable = trainable && p.kind != ParamKind::Buffer;
        p.grad = if p.trainable {
            vec![0.0; p.value.len()]
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
}
