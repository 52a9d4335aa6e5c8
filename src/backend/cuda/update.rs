//! The optimizer update (`Backend::update`) on the GPU: `optim.rs`'s multi-tensor SGD and AdamW
//! kernels, one launch per run of parameters that share their hyper-parameters (the paramwise
//! multipliers split a model into a few such runs). A `grad_scale` other than 1 (gradient
//! clipping) scales copies of the run's gradients first, with the unscale kernel.

use super::backend::{CudaBackend, CudaBuffer, device_err, drv};
use super::optim::{AdamW, Sgd};
use crate::backend::BackendError;
use crate::backend::optim::{ParamHyper, ParamUpdate, UpdateRule, check_update};
use cudarc::driver::CudaSlice;

fn invalid(message: String) -> BackendError {
    BackendError::Invalid {
        backend: "cuda",
        op: "update",
        message,
    }
}

fn f32_slice(b: &CudaBuffer) -> Result<&CudaSlice<f32>, BackendError> {
    match b {
        CudaBuffer::F32(s) => Ok(s),
        _ => Err(invalid("an update's buffers hold f32".into())),
    }
}

fn f32_slice_mut(b: &mut CudaBuffer) -> Result<&mut CudaSlice<f32>, BackendError> {
    match b {
        CudaBuffer::F32(s) => Ok(s),
        _ => Err(invalid("an update's buffers hold f32".into())),
    }
}

pub(super) fn update(
    be: &CudaBackend,
    rule: &UpdateRule,
    params: &mut [ParamUpdate<'_, CudaBuffer>],
) -> Result<(), BackendError> {
    let need = rule.state_buffers();
    for p in params.iter() {
        check_update(rule, p, CudaBuffer::len).map_err(invalid)?;
        // The multi-tensor kernels update whole slices.
        if p.value.len() != p.len {
            return Err(invalid(format!(
                "a value buffer of {} elements for a parameter of {}",
                p.value.len(),
                p.len
            )));
        }
    }
    let mut rest = &mut params[..];
    while !rest.is_empty() {
        let h = rest[0].hyper;
        let run = rest.iter().take_while(|p| p.hyper == h).count();
        let (group, tail) = rest.split_at_mut(run);
        rest = tail;
        let mut values = Vec::with_capacity(run);
        let mut grads = Vec::with_capacity(run);
        let mut state: Vec<Vec<&mut CudaSlice<f32>>> = (0..need).map(|_| Vec::new()).collect();
        for p in group.iter_mut() {
            values.push(f32_slice_mut(p.value)?);
            grads.push(f32_slice(p.grad)?);
            for (k, s) in p.state[..need].iter_mut().enumerate() {
                state[k].push(f32_slice_mut(s)?);
            }
        }
        if h.grad_scale != 1.0 {
            let dev = be.device();
            let mut scaled = (grads.iter())
                .map(|g| dev.stream().clone_dtod(*g).map_err(drv))
                .collect::<Result<Vec<_>, _>>()?;
            let mut flag = dev.stream().alloc_zeros::<f32>(1).map_err(drv)?;
            let mut refs: Vec<&mut CudaSlice<f32>> = scaled.iter_mut().collect();
            dev.unscale_grads(&mut refs, h.grad_scale as f32, &mut flag)
                .map_err(device_err)?;
            let grads: Vec<&CudaSlice<f32>> = scaled.iter().collect();
            launch(be, rule, h, &mut values, &grads, &mut state)?;
        } else {
            launch(be, rule, h, &mut values, &grads, &mut state)?;
        }
    }
    Ok(())
}

fn launch(
    be: &CudaBackend,
    rule: &UpdateRule,
    h: ParamHyper,
    values: &mut [&mut CudaSlice<f32>],
    grads: &[&CudaSlice<f32>],
    state: &mut [Vec<&mut CudaSlice<f32>>],
) -> Result<(), BackendError> {
    let dev = be.device();
    match *rule {
        UpdateRule::Sgd {
            momentum,
            dampening,
            nesterov,
        } => {
            let hp = Sgd {
                lr: h.lr as f32,
                momentum: momentum as f32,
                dampening: dampening as f32,
                weight_decay: h.weight_decay as f32,
                nesterov,
            };
            let mut none = Vec::new();
            let bufs = state.first_mut().unwrap_or(&mut none);
            dev.sgd_step(values, grads, bufs, hp, h.fresh)
                .map_err(device_err)
        }
        UpdateRule::AdamW { beta1, beta2, eps } => {
            let [m, v] = state else {
                return Err(invalid("AdamW takes two state buffers".into()));
            };
            if h.fresh {
                for s in m.iter_mut().chain(v.iter_mut()) {
                    dev.stream().memset_zeros(&mut **s).map_err(drv)?;
                }
            }
            let hp = AdamW {
                lr: h.lr as f32,
                beta1: beta1 as f32,
                beta2: beta2 as f32,
                eps: eps as f32,
                weight_decay: h.weight_decay as f32,
            };
            dev.adamw_step(values, grads, m, v, hp, h.step)
                .map_err(device_err)
        }
    }
}
