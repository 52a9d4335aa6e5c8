//! The bridge between the graph executor's `ParamStore` (core) and the engine's
//! [`ParamSet`]: a detector task keeps both, copies values into the store before a step and
//! gradients (and updated buffers such as BN running statistics) back after it. Copies are
//! linear in the parameter count, small next to a detector's convolutions.

use crate::engine::params::{ParamKind, ParamSet};
use crate::graph::ParamStore;

/// A parameter set mirroring `store` (same names, shapes, values, trainable flags).
/// `is_norm(name)` says which parameters belong to normalisation layers (for
/// `norm_decay_mult`); biases are the other parameters whose name ends in `bias`.
pub fn param_set_from_store(
    store: &ParamStore,
    is_norm: impl Fn(&str) -> bool,
) -> Result<ParamSet, String> {
    let mut set = ParamSet::new();
    for name in store.names() {
        let spec = store
            .spec(name)
            .ok_or_else(|| format!("`{name}` has no spec"))?;
        let value = store
            .f32(name)
            .ok_or_else(|| format!("`{name}` is not f32; the optimizer works on f32 parameters"))?;
        let kind = if spec.buffer {
            ParamKind::Buffer
        } else if is_norm(name) {
            ParamKind::Norm
        } else if name.ends_with("bias") {
            ParamKind::Bias
        } else {
            ParamKind::Weight
        };
        set.add(name, &spec.shape, kind, spec.trainable, value.to_vec())
            .map_err(|e| e.to_string())?;
    }
    Ok(set)
}

/// Copy every value of `set` into `store` (before a forward pass).
pub fn values_to_store(set: &ParamSet, store: &mut ParamStore) -> Result<(), String> {
    for p in set.iter() {
        let dst = store
            .f32_mut(&p.name)
            .ok_or_else(|| format!("the graph has no f32 parameter `{}`", p.name))?;
        if dst.len() != p.value.len() {
            return Err(format!(
                "`{}`: store has {} values, set {}",
                p.name,
                dst.len(),
                p.value.len()
            ));
        }
        dst.copy_from_slice(&p.value);
    }
    Ok(())
}

/// Copy the last step's gradients (zeros where the store has none) and the buffers the
/// forward pass updated from `store` into `set` (after a train step).
pub fn step_results_from_store(store: &ParamStore, set: &mut ParamSet) -> Result<(), String> {
    for p in set.iter_mut() {
        if p.kind == ParamKind::Buffer {
            let src = store
                .f32(&p.name)
                .ok_or_else(|| format!("the graph has no f32 buffer `{}`", p.name))?;
            p.value.copy_from_slice(src);
        } else if p.trainable {
            match store.grad_f32(&p.name) {
                Some(g) if g.len() == p.grad.len() => p.grad.copy_from_slice(g),
                Some(g) => {
                    return Err(format!(
                        "`{}`: gradient has {} values, parameter {}",
                        p.name,
                        g.len(),
                        p.grad.len()
                    ));
                }
                None => p.grad.iter_mut().for_each(|g| *g = 0.0),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{DType, Graph, Init, ParamSpec};

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

    #[test]
    fn mirrors_kinds_and_copies_both_ways() {
        let mut g = Graph::default();
        g.params.extend([
            spec("conv.weight", 4, true, false),
            spec("conv.bias", 2, true, false),
            spec("bn.weight", 2, true, false),
            spec("bn.running_mean", 2, false, true),
            spec("stem.weight", 3, false, false),
        ]);
        let mut store = ParamStore::init(&g, 0);
        let mut set = param_set_from_store(&store, |n| n.starts_with("bn.")).unwrap();
        let kind = |n| set.get(n).unwrap().kind;
        assert_eq!(kind("conv.bias"), ParamKind::Bias);
        assert_eq!(kind("bn.weight"), ParamKind::Norm);
        assert_eq!(kind("bn.running_mean"), ParamKind::Buffer);
        assert!(!set.get("stem.weight").unwrap().trainable);
        set.get_mut("conv.weight").unwrap().value = vec![1.0, 2.0, 3.0, 4.0];
        values_to_store(&set, &mut store).unwrap();
        assert_eq!(store.f32("conv.weight").unwrap(), [1.0, 2.0, 3.0, 4.0]);
        store.f32_mut("bn.running_mean").unwrap()[0] = 9.0;
        set.get_mut("conv.bias").unwrap().grad = vec![5.0, 5.0];
        step_results_from_store(&store, &mut set).unwrap();
        assert_eq!(set.get("bn.running_mean").unwrap().value, [9.0, 0.5]);
        // No gradient in the store yet: zeros, not stale values.
        assert_eq!(set.get("conv.bias").unwrap().grad, [0.0, 0.0]);
    }
}
