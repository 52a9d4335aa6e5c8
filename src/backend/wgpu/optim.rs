//! The optimizer update (`Backend::update`) on the device: SGD and AdamW as
//! `kernels/wgsl/optim.wgsl` computes them, two or three dispatches per parameter (state, then
//! value), all recorded into the pending encoder. The update is elementwise, so a parameter
//! larger than the adapter binds is updated a window at a time.

use super::context::{Grid, Kernel, Module};
use super::{WgpuBackend, WgpuBuffer, count, fbits, shape_err, unsupported, w};
use crate::backend::BackendError;
use crate::backend::optim::{ParamUpdate, UpdateRule, check_update};
use crate::ir::DType;

const fn kernel(entry: &'static str, inputs: usize) -> Kernel {
    Kernel {
        module: Module::Optim,
        entry,
        inputs,
    }
}

const SGD_MOMENTUM: Kernel = kernel("sgd_momentum", 2);
const SGD_APPLY: Kernel = kernel("sgd_apply", 2);
const ADAMW_EXP_AVG: Kernel = kernel("adamw_exp_avg", 1);
const ADAMW_EXP_AVG_SQ: Kernel = kernel("adamw_exp_avg_sq", 1);
const ADAMW_APPLY: Kernel = kernel("adamw_apply", 2);

pub(super) fn update(
    be: &WgpuBackend,
    rule: &UpdateRule,
    params: &mut [ParamUpdate<'_, WgpuBuffer>],
) -> Result<(), BackendError> {
    for p in params.iter() {
        check_update(rule, p, |b| b.len).map_err(|m| shape_err("update", m))?;
        count("update", &[p.len])?;
        let bufs = [&*p.value, p.grad].into_iter();
        if let Some(b) = bufs
            .chain(&p.state[..rule.state_buffers()])
            .find(|b| b.dtype != DType::F32)
        {
            return Err(unsupported("update", b.dtype));
        }
    }
    let slab = super::split::flat_slab(be.gpu());
    for p in params.iter() {
        for start in (0..p.len).step_by(slab) {
            update_window(be, rule, p, start, slab.min(p.len - start))?;
        }
    }
    Ok(())
}

/// Elements `start..start + n` of one parameter's update.
fn update_window(
    be: &WgpuBackend,
    rule: &UpdateRule,
    p: &ParamUpdate<'_, WgpuBuffer>,
    start: usize,
    n: usize,
) -> Result<(), BackendError> {
    let gpu = be.gpu();
    let h = p.hyper;
    let grid = Grid::Items(n);
    let gs = fbits(h.grad_scale);
    fn window(b: &WgpuBuffer, start: usize, n: usize) -> super::Bound<'_> {
        b.window(start, n)
    }
    let (value, grad) = (window(p.value, start, n), window(p.grad, start, n));
    match *rule {
        UpdateRule::Sgd {
            momentum,
            dampening,
            nesterov,
        } => {
            let wd = fbits(h.weight_decay);
            let mode = if momentum == 0.0 {
                gpu.dispatch(
                    SGD_APPLY,
                    &[w(n), fbits(-h.lr), wd, 0, 0, gs],
                    &[grad, grad],
                    value,
                    grid,
                )?;
                return Ok(());
            } else if nesterov {
                2
            } else {
                1
            };
            let buf = window(&p.state[0], start, n);
            let meta = [
                w(n),
                wd,
                fbits(momentum),
                fbits(1.0 - dampening),
                h.fresh as u32,
                gs,
            ];
            gpu.dispatch(SGD_MOMENTUM, &meta, &[grad, value], buf, grid)?;
            let meta = [w(n), fbits(-h.lr), wd, fbits(momentum), mode, gs];
            gpu.dispatch(SGD_APPLY, &meta, &[grad, buf], value, grid)?;
        }
        UpdateRule::AdamW { beta1, beta2, eps } => {
            // The bias corrections in f64, as the CPU (and Python) compute them.
            let step = h.step.min(i32::MAX as u64) as i32;
            let bc1 = 1.0 - beta1.powi(step);
            let bc2_sqrt = (1.0 - beta2.powi(step)).sqrt();
            let (m, v) = (window(&p.state[0], start, n), window(&p.state[1], start, n));
            let fresh = h.fresh as u32;
            gpu.dispatch(
                ADAMW_EXP_AVG,
                &[w(n), fbits(1.0 - beta1), fresh, gs],
                &[grad],
                m,
                grid,
            )?;
            let meta = [w(n), fbits(beta2), fbits(1.0 - beta2), fresh, gs];
            gpu.dispatch(ADAMW_EXP_AVG_SQ, &meta, &[grad], v, grid)?;
            let meta = [
                w(n),
                fbits(1.0 - h.lr * h.weight_decay),
                fbits(-(h.lr / bc1)),
                fbits(bc2_sqrt),
                fbits(eps),
            ];
            gpu.dispatch(ADAMW_APPLY, &meta, &[m, v], value, grid)?;
        }
    }
    Ok(())
}
