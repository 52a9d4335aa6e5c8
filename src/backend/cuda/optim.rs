//! Multi-tensor updates on the device: SGD with momentum, AdamW, loss-scale unscale with an
//! inf/NaN flag, and the global gradient L2 norm. Each is one kernel launch over every tensor
//! (a device table of pointers and lengths; gridDim.y indexes the tensor).

use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};

use super::device::{BLOCK, CudaDevice};
use super::error::CudaError;
use super::kernels::Module;
use super::launch::{self, Arg};

/// torch.optim.SGD hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl Sgd {
    /// mmdetection's detector default: lr 0.01 (for 16 images), momentum 0.9, weight decay 1e-4.
    pub const MMDET: Sgd = Sgd {
        lr: 0.01,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 1e-4,
        nesterov: false,
    };
}

/// torch.optim.AdamW hyper-parameters (amsgrad off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// Blocks per tensor along x: enough for the largest tensor, capped so the grid stays sane.
fn grid_x(max_len: usize) -> u32 {
    max_len.div_ceil(BLOCK as usize).clamp(1, 64) as u32
}

fn check_groups(op: &'static str, lens: &[usize], others: &[&[usize]]) -> Result<(), CudaError> {
    if lens.is_empty() {
        return Err(CudaError::shape(op, "no tensors"));
    }
    if lens.len() > 65535 {
        return Err(CudaError::shape(
            op,
            "more than 65535 tensors in one launch",
        ));
    }
    for o in others {
        if o.len() != lens.len() {
            return Err(CudaError::shape(op, "tensor lists differ in length"));
        }
        for (i, (a, b)) in lens.iter().zip(o.iter()).enumerate() {
            if b < a {
                return Err(CudaError::shape(
                    op,
                    format!("tensor {i}: state holds {b} < {a}"),
                ));
            }
        }
    }
    for (i, &l) in lens.iter().enumerate() {
        if u32::try_from(l).is_err() {
            return Err(CudaError::shape(
                op,
                format!("tensor {i} exceeds 2^32 - 1 elements"),
            ));
        }
    }
    Ok(())
}

impl CudaDevice {
    fn tables(
        &self,
        ptrs: &[u64],
        lens: &[usize],
    ) -> Result<(CudaSlice<u64>, CudaSlice<u32>), CudaError> {
        let lens: Vec<u32> = lens.iter().map(|&l| l as u32).collect();
        Ok((self.upload(ptrs)?, self.upload(&lens)?))
    }

    fn multi_cfg(lens: &[usize]) -> LaunchConfig {
        let max = lens.iter().copied().max().unwrap_or(0);
        LaunchConfig {
            grid_dim: (grid_x(max), lens.len() as u32, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One SGD step over every parameter (torch semantics; `first` = the momentum buffers are
    /// uninitialised and take the first gradient as torch does).
    pub fn sgd_step(
        &self,
        params: &mut [&mut CudaSlice<f32>],
        grads: &[&CudaSlice<f32>],
        bufs: &mut [&mut CudaSlice<f32>],
        hp: Sgd,
        first: bool,
    ) -> Result<(), CudaError> {
        const OP: &str = "sgd_step";
        let lens: Vec<usize> = params.iter().map(|p| p.len()).collect();
        let gl: Vec<usize> = grads.iter().map(|g| g.len()).collect();
        let bl: Vec<usize> = bufs.iter().map(|b| b.len()).collect();
        if hp.momentum != 0.0 {
            check_groups(OP, &lens, &[&gl, &bl])?;
        } else {
            check_groups(OP, &lens, &[&gl])?;
        }
        let s = self.stream();
        let mut guards = Vec::new();
        let mut pp = Vec::new();
        for p in params.iter_mut() {
            let (ptr, g) = p.device_ptr_mut(s);
            pp.push(ptr);
            guards.push(g);
        }
        let mut gp = Vec::new();
        for g in grads {
            let (ptr, gd) = g.device_ptr(s);
            gp.push(ptr);
            guards.push(gd);
        }
        let mut bp = vec![0u64; lens.len()];
        if hp.momentum != 0.0 {
            for (slot, b) in bp.iter_mut().zip(bufs.iter_mut()) {
                let (ptr, g) = b.device_ptr_mut(s);
                *slot = ptr;
                guards.push(g);
            }
        }
        let (pt, lt) = self.tables(&pp, &lens)?;
        let gt = self.upload(&gp)?;
        let bt = self.upload(&bp)?;
        // SAFETY: tables hold valid pointers to tensors of at least lens[i] elements (checked),
        // one per gridDim.y; buffers stay alive (borrowed) until the guards drop after launch.
        let r = unsafe {
            launch::generic(
                self,
                Module::Optim,
                "sgd_multi",
                Self::multi_cfg(&lens),
                &mut [
                    Arg::InU64(&pt),
                    Arg::InU64(&gt),
                    Arg::InU64(&bt),
                    Arg::InU32(&lt),
                    Arg::F32(hp.lr),
                    Arg::F32(hp.momentum),
                    Arg::F32(hp.dampening),
                    Arg::F32(hp.weight_decay),
                    Arg::U32(hp.nesterov as u32),
                    Arg::U32(first as u32),
                ],
            )
        };
        drop(guards);
        r
    }

    /// One AdamW step; `step` counts from 1 (bias corrections as torch computes them).
    pub fn adamw_step(
        &self,
        params: &mut [&mut CudaSlice<f32>],
        grads: &[&CudaSlice<f32>],
        exp_avgs: &mut [&mut CudaSlice<f32>],
        exp_avg_sqs: &mut [&mut CudaSlice<f32>],
        hp: AdamW,
        step: u64,
    ) -> Result<(), CudaError> {
        const OP: &str = "adamw_step";
        if step == 0 {
            return Err(CudaError::shape(OP, "step counts from 1"));
        }
        let lens: Vec<usize> = params.iter().map(|p| p.len()).collect();
        let gl: Vec<usize> = grads.iter().map(|g| g.len()).collect();
        let ml: Vec<usize> = exp_avgs.iter().map(|b| b.len()).collect();
        let vl: Vec<usize> = exp_avg_sqs.iter().map(|b| b.len()).collect();
        check_groups(OP, &lens, &[&gl, &ml, &vl])?;
        let bc1 = 1.0 - (hp.beta1 as f64).powi(step.min(i32::MAX as u64) as i32);
        let bc2 = 1.0 - (hp.beta2 as f64).powi(step.min(i32::MAX as u64) as i32);
        let s = self.stream();
        let mut guards = Vec::new();
        let mut ptrs: [Vec<u64>; 4] = Default::default();
        for p in params.iter_mut() {
            let (ptr, g) = p.device_ptr_mut(s);
            ptrs[0].push(ptr);
            guards.push(g);
        }
        for p in grads {
            let (ptr, g) = p.device_ptr(s);
            ptrs[1].push(ptr);
            guards.push(g);
        }
        for p in exp_avgs.iter_mut() {
            let (ptr, g) = p.device_ptr_mut(s);
            ptrs[2].push(ptr);
            guards.push(g);
        }
        for p in exp_avg_sqs.iter_mut() {
            let (ptr, g) = p.device_ptr_mut(s);
            ptrs[3].push(ptr);
            guards.push(g);
        }
        let (pt, lt) = self.tables(&ptrs[0], &lens)?;
        let gt = self.upload(&ptrs[1])?;
        let mt = self.upload(&ptrs[2])?;
        let vt = self.upload(&ptrs[3])?;
        // SAFETY: as sgd_step.
        let r = unsafe {
            launch::generic(
                self,
                Module::Optim,
                "adamw_multi",
                Self::multi_cfg(&lens),
                &mut [
                    Arg::InU64(&pt),
                    Arg::InU64(&gt),
                    Arg::InU64(&mt),
                    Arg::InU64(&vt),
                    Arg::InU32(&lt),
                    Arg::F32(hp.lr),
                    Arg::F32(hp.beta1),
                    Arg::F32(hp.beta2),
                    Arg::F32(hp.eps),
                    Arg::F32(hp.weight_decay),
                    Arg::F32(bc1 as f32),
                    Arg::F32(bc2.sqrt() as f32),
                ],
            )
        };
        drop(guards);
        r
    }

    /// Multiplies every gradient by `inv_scale`; sets `found_inf[0] = 1.0` if any element was
    /// inf or NaN (zeroed here first), as torch's `_amp_foreach_non_finite_check_and_unscale_`.
    pub fn unscale_grads(
        &self,
        grads: &mut [&mut CudaSlice<f32>],
        inv_scale: f32,
        found_inf: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        use super::error::DriverContext;
        const OP: &str = "unscale_grads";
        let lens: Vec<usize> = grads.iter().map(|g| g.len()).collect();
        check_groups(OP, &lens, &[])?;
        if found_inf.is_empty() {
            return Err(CudaError::shape(OP, "found_inf needs 1 element"));
        }
        self.stream().memset_zeros(found_inf).ctx("cuMemsetD8")?;
        let s = self.stream();
        let mut guards = Vec::new();
        let mut ptrs = Vec::new();
        for p in grads.iter_mut() {
            let (ptr, g) = p.device_ptr_mut(s);
            ptrs.push(ptr);
            guards.push(g);
        }
        let (pt, lt) = self.tables(&ptrs, &lens)?;
        // SAFETY: as sgd_step; found_inf holds 1 element.
        let r = unsafe {
            launch::generic(
                self,
                Module::Scale,
                "unscale_multi",
                Self::multi_cfg(&lens),
                &mut [
                    Arg::InU64(&pt),
                    Arg::InU32(&lt),
                    Arg::Out(found_inf),
                    Arg::F32(inv_scale),
                ],
            )
        };
        drop(guards);
        r
    }

    /// The L2 norm of all gradients together (`clip_grad_norm_`'s total norm) into `out[0]`.
    pub fn grad_norm(
        &self,
        grads: &[&CudaSlice<f32>],
        out: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        const OP: &str = "grad_norm";
        let lens: Vec<usize> = grads.iter().map(|g| g.len()).collect();
        check_groups(OP, &lens, &[])?;
        if out.is_empty() {
            return Err(CudaError::shape(OP, "out needs 1 element"));
        }
        let cfg = Self::multi_cfg(&lens);
        let n_partials = cfg.grid_dim.0 * cfg.grid_dim.1;
        let mut partial = self.zeros::<f32>(n_partials as usize)?;
        let s = self.stream();
        let mut guards = Vec::new();
        let mut ptrs = Vec::new();
        for p in grads {
            let (ptr, g) = p.device_ptr(s);
            ptrs.push(ptr);
            guards.push(g);
        }
        let (pt, lt) = self.tables(&ptrs, &lens)?;
        // SAFETY: as sgd_step; partial holds gridDim.x * gridDim.y elements.
        unsafe {
            launch::generic(
                self,
                Module::Reduce,
                "sumsq_multi_fwd",
                cfg,
                &mut [Arg::InU64(&pt), Arg::InU32(&lt), Arg::Out(&mut partial)],
            )?;
        }
        drop(guards);
        // SAFETY: partial holds n_partials elements, out 1.
        unsafe { launch::finish(self, &partial, out, n_partials, 1.0, true) }
    }
}
