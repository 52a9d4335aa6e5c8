//! The bridge between the graph executor's `ParamStore` (core) and the engine's
//! [`ParamSet`]: a detector task keeps both. For a train step ([`step_through_store`]) the
//! parameter values are lent to the store and taken back by swapping storage, and the
//! gradients come back the same way
//! (a detector's parameters are tens of MB: two copies each way cost RetinaNet R18-FPN 25 ms
//! per step); buffers (BN running statistics) are copied. Evaluation copies the values in.

use crate::engine::params::{Param, ParamKind, ParamSet};
use crate::graph::{HostData, ParamStore};

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

/// The store's f32 storage of `p`'s value, when it has `p`'s length.
fn value_storage<'a>(store: &'a mut ParamStore, p: &Param) -> Option<&'a mut Vec<f32>> {
    match &mut store.get_mut(&p.name)?.data {
        HostData::F32(v) if v.len() == p.value.len() => Some(v),
        _ => None,
    }
}

/// Lends the parameter values of `set` to `store` for a train step, by swapping storage
/// (`set` holds the store's old values meanwhile), and copies the buffers in. Every name and
/// length is checked first: on error nothing has moved. [`return_values`] undoes the swap.
fn lend_values(set: &mut ParamSet, store: &mut ParamStore) -> Result<(), String> {
    for p in set.iter() {
        if value_storage(store, p).is_none() {
            return Err(format!(
                "the graph has no f32 parameter `{}` of {} values",
                p.name,
                p.value.len()
            ));
        }
    }
    for p in set.iter_mut() {
        let v = value_storage(store, p).expect("checked above");
        if p.kind == ParamKind::Buffer {
            v.copy_from_slice(&p.value);
        } else {
            std::mem::swap(v, &mut p.value);
        }
    }
    Ok(())
}

/// One train step's passage through `store`: lends `set`'s values ([`lend_values`]), runs
/// `step` on the store, takes the values back whatever `step` returned ([`return_values`]),
/// then moves the gradients and copies the updated buffers into `set`
/// ([`step_results_from_store`]).
pub fn step_through_store<R, E: From<String>>(
    set: &mut ParamSet,
    store: &mut ParamStore,
    step: impl FnOnce(&mut ParamStore) -> Result<R, E>,
) -> Result<R, E> {
    lend_values(set, store)?;
    let out = step(store);
    return_values(set, store);
    let out = out?;
    step_results_from_store(store, set)?;
    Ok(out)
}

/// Takes back the values [`lend_values`] lent (after the step, whatever its outcome).
fn return_values(set: &mut ParamSet, store: &mut ParamStore) {
    for p in set.iter_mut() {
        if p.kind != ParamKind::Buffer
            && let Some(v) = value_storage(store, p)
        {
            std::mem::swap(v, &mut p.value);
        }
    }
}

/// Moves the last step's gradients (zeros where the store has none) and copies the buffers
/// the forward pass updated from `store` into `set` (after a train step). A gradient moves by
/// swapping storage with `set`'s previous one, which the store's next step overwrites.
fn step_results_from_store(store: &mut ParamStore, set: &mut ParamSet) -> Result<(), String> {
    for p in set.iter_mut() {
        if p.kind == ParamKind::Buffer {
            let src = store
                .f32(&p.name)
                .ok_or_else(|| format!("the graph has no f32 buffer `{}`", p.name))?;
            p.value.copy_from_slice(src);
        } else if p.trainable {
            if let Some(HostData::F32(g)) = store.grad_mut(&p.name).map(|g| &mut g.data)
                && g.len() == p.grad.len()
            {
                std::mem::swap(g, &mut p.grad);
                continue;
            }
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
    use crate::graph::{DType, Graph, HostTensor, Init, ParamSpec};

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
        step_results_from_store(&mut store, &mut set).unwrap();
        assert_eq!(set.get("bn.running_mean").unwrap().value, [9.0, 0.5]);
        // No gradient in the store yet: zeros, not stale values.
        assert_eq!(set.get("conv.bias").unwrap().grad, [0.0, 0.0]);
    }

    /// A train step's passage: values lent and taken back (the store's own storage returns
    /// to it), buffers copied both ways, gradients swapped out; a set naming a parameter the
    /// store lacks moves nothing.
    #[test]
    fn lends_values_and_takes_gradients_by_swapping() {
        let mut g = Graph::default();
        g.params.extend([
            spec("conv.weight", 2, true, false),
            spec("bn.running_mean", 2, false, true),
        ]);
        let mut store = ParamStore::init(&g, 0);
        let mut set = param_set_from_store(&store, |n| n.starts_with("bn.")).unwrap();
        set.get_mut("conv.weight").unwrap().value = vec![1.0, 2.0];
        set.get_mut("bn.running_mean").unwrap().value = vec![3.0, 4.0];
        lend_values(&mut set, &mut store).unwrap();
        assert_eq!(store.f32("conv.weight").unwrap(), [1.0, 2.0]);
        assert_eq!(store.f32("bn.running_mean").unwrap(), [3.0, 4.0]);
        // The step: a gradient and a running-statistics update.
        store.set_grad(
            "conv.weight",
            HostTensor::f32(vec![2], vec![7.0, 8.0]).unwrap(),
        );
        store.f32_mut("bn.running_mean").unwrap()[1] = 6.0;
        return_values(&mut set, &mut store);
        assert_eq!(set.get("conv.weight").unwrap().value, [1.0, 2.0]);
        assert_eq!(
            store.f32("conv.weight").unwrap(),
            [0.5, 0.5],
            "the store's own storage"
        );
        step_results_from_store(&mut store, &mut set).unwrap();
        assert_eq!(set.get("conv.weight").unwrap().grad, [7.0, 8.0]);
        assert_eq!(set.get("bn.running_mean").unwrap().value, [3.0, 6.0]);
        // A parameter the store lacks: an error naming it, nothing moved.
        let mut other = ParamSet::new();
        other
            .add("conv.weight", &[2], ParamKind::Weight, true, vec![9.0, 9.0])
            .unwrap();
        other
            .add("head.weight", &[1], ParamKind::Weight, true, vec![1.0])
            .unwrap();
        let e = lend_values(&mut other, &mut store).unwrap_err();
        assert!(e.contains("head.weight"), "{e}");
        assert_eq!(store.f32("conv.weight").unwrap(), [0.5, 0.5]);
        assert_eq!(other.get("conv.weight").unwrap().value, [9.0, 9.0]);
    }
}
