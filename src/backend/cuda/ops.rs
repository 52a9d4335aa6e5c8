//! Safe, shape-checked f32 ops on device buffers: elementwise and activations, sum/mean,
//! max pooling and nearest upsampling (NCHW), batch norm and group norm (NCHW).
//! Shapes are passed explicitly (`[n, c, h, w]`); buffers may be longer than the tensor.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::device::{BLOCK, CudaDevice, MAX_PARTIALS};
use super::error::CudaError;
use super::kernels::Module;
use super::launch::{self, Arg};

/// Unary elementwise ops with a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    Relu,
    Sigmoid,
}

fn need(op: &'static str, what: &str, len: usize, want: usize) -> Result<(), CudaError> {
    if len < want {
        return Err(CudaError::shape(
            op,
            format!("{what} holds {len} elements, {want} needed"),
        ));
    }
    Ok(())
}

fn numel(op: &'static str, shape: &[usize]) -> Result<u32, CudaError> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| CudaError::shape(op, "size overflows"))?;
    u32::try_from(n).map_err(|_| CudaError::shape(op, format!("{n} elements exceed 2^32 - 1")))
}

/// torch's pooled size (floor mode, dilation 1).
pub fn pooled_len(
    op: &'static str,
    len: usize,
    k: usize,
    s: usize,
    p: usize,
) -> Result<usize, CudaError> {
    if k == 0 || s == 0 || 2 * p > k {
        return Err(CudaError::shape(
            op,
            "kernel and stride must be > 0 and pad <= kernel / 2",
        ));
    }
    (len + 2 * p)
        .checked_sub(k)
        .map(|v| v / s + 1)
        .ok_or_else(|| {
            CudaError::shape(
                op,
                format!("input {len} + padding is smaller than kernel {k}"),
            )
        })
}

impl CudaDevice {
    fn elementwise_cfg(&self, n: u32) -> LaunchConfig {
        self.grid_for(n as usize, 65535)
    }

    /// `y = op(x)` over `n` elements.
    pub fn unary_fwd(
        &self,
        op: Unary,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        n: usize,
    ) -> Result<(), CudaError> {
        let stem = match op {
            Unary::Relu => "relu_fwd",
            Unary::Sigmoid => "sigmoid_fwd",
        };
        let n32 = numel(stem, &[n])?;
        need(stem, "x", x.len(), n)?;
        need(stem, "y", y.len(), n)?;
        // SAFETY: x and y hold n elements.
        unsafe {
            launch::generic(
                self,
                Module::Elementwise,
                stem,
                self.elementwise_cfg(n32),
                &mut [Arg::In(x), Arg::Out(y), Arg::U32(n32)],
            )
        }
    }

    /// `dx` of `op` from the forward output `y` and `dy`.
    pub fn unary_bwd(
        &self,
        op: Unary,
        y: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
        n: usize,
    ) -> Result<(), CudaError> {
        let stem = match op {
            Unary::Relu => "relu_bwd",
            Unary::Sigmoid => "sigmoid_bwd",
        };
        let n32 = numel(stem, &[n])?;
        need(stem, "y", y.len(), n)?;
        need(stem, "dy", dy.len(), n)?;
        need(stem, "dx", dx.len(), n)?;
        // SAFETY: all hold n elements.
        unsafe {
            launch::generic(
                self,
                Module::Elementwise,
                stem,
                self.elementwise_cfg(n32),
                &mut [Arg::In(y), Arg::In(dy), Arg::Out(dx), Arg::U32(n32)],
            )
        }
    }

    /// `out = a + b` (`mul`: `a * b`) over `n` elements.
    pub fn binary(
        &self,
        mul: bool,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
        n: usize,
    ) -> Result<(), CudaError> {
        let stem = if mul { "mul_fwd" } else { "add_fwd" };
        let n32 = numel(stem, &[n])?;
        need(stem, "a", a.len(), n)?;
        need(stem, "b", b.len(), n)?;
        need(stem, "out", out.len(), n)?;
        // SAFETY: all hold n elements.
        unsafe {
            launch::generic(
                self,
                Module::Elementwise,
                stem,
                self.elementwise_cfg(n32),
                &mut [Arg::In(a), Arg::In(b), Arg::Out(out), Arg::U32(n32)],
            )
        }
    }

    /// `out = alpha * x + beta * y` over `n` elements.
    pub fn axpby(
        &self,
        alpha: f32,
        x: &CudaSlice<f32>,
        beta: f32,
        y: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
        n: usize,
    ) -> Result<(), CudaError> {
        const OP: &str = "axpby_fwd";
        let n32 = numel(OP, &[n])?;
        need(OP, "x", x.len(), n)?;
        need(OP, "y", y.len(), n)?;
        need(OP, "out", out.len(), n)?;
        // SAFETY: all hold n elements.
        unsafe {
            launch::generic(
                self,
                Module::Elementwise,
                OP,
                self.elementwise_cfg(n32),
                &mut [
                    Arg::In(x),
                    Arg::In(y),
                    Arg::Out(out),
                    Arg::U32(n32),
                    Arg::F32(alpha),
                    Arg::F32(beta),
                ],
            )
        }
    }

    /// Sets the first `n` elements to `value`.
    pub fn fill(&self, y: &mut CudaSlice<f32>, value: f32, n: usize) -> Result<(), CudaError> {
        const OP: &str = "fill_fwd";
        let n32 = numel(OP, &[n])?;
        need(OP, "y", y.len(), n)?;
        // SAFETY: y holds n elements.
        unsafe {
            launch::generic(
                self,
                Module::Elementwise,
                OP,
                self.elementwise_cfg(n32),
                &mut [Arg::Out(y), Arg::U32(n32), Arg::F32(value)],
            )
        }
    }

    /// `out[0] = sum(x[..n])`, or the mean; deterministic (fixed-order two-pass reduction).
    pub fn sum(
        &self,
        x: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
        n: usize,
        mean: bool,
    ) -> Result<(), CudaError> {
        const OP: &str = "sum_fwd";
        let n32 = numel(OP, &[n])?;
        need(OP, "x", x.len(), n)?;
        need(OP, "out", out.len(), 1)?;
        let cfg = self.grid_for(n, MAX_PARTIALS);
        let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: x holds n elements; scratch holds MAX_PARTIALS >= grid partials.
        unsafe {
            launch::generic(
                self,
                Module::Reduce,
                OP,
                cfg,
                &mut [Arg::In(x), Arg::Out(&mut scratch), Arg::U32(n32)],
            )?;
            let scale = if mean { 1.0 / n.max(1) as f32 } else { 1.0 };
            launch::finish(self, &scratch, out, cfg.grid_dim.0, scale, false)
        }
    }

    /// Max pooling (square kernel `k`, stride `s`, padding `p`; torch semantics) of
    /// `x[n, c, h, w]` into `y` and the argmax plane index `idx`. Returns `(oh, ow)`.
    #[allow(clippy::too_many_arguments)]
    pub fn max_pool2d(
        &self,
        x: &CudaSlice<f32>,
        shape: [usize; 4],
        k: usize,
        s: usize,
        p: usize,
        y: &mut CudaSlice<f32>,
        idx: &mut CudaSlice<i32>,
    ) -> Result<(usize, usize), CudaError> {
        const OP: &str = "maxpool2d_fwd";
        let [n, c, h, w] = shape;
        let (oh, ow) = (pooled_len(OP, h, k, s, p)?, pooled_len(OP, w, k, s, p)?);
        let nin = numel(OP, &shape)?;
        let nout = numel(OP, &[n, c, oh, ow])?;
        need(OP, "x", x.len(), nin as usize)?;
        need(OP, "y", y.len(), nout as usize)?;
        need(OP, "idx", idx.len(), nout as usize)?;
        let u = |v: usize| Arg::U32(v as u32);
        // SAFETY: buffers hold the shapes' element counts; counts fit u32.
        unsafe {
            launch::generic(
                self,
                Module::Pool,
                OP,
                self.elementwise_cfg(nout),
                &mut [
                    Arg::In(x),
                    Arg::Out(y),
                    Arg::OutI32(idx),
                    u(n * c),
                    u(h),
                    u(w),
                    u(oh),
                    u(ow),
                    u(k),
                    u(s),
                    u(p),
                ],
            )?;
        }
        Ok((oh, ow))
    }

    /// Gradient of [`Self::max_pool2d`]: `dx[n, c, h, w]` from `dy` and the forward's `idx`.
    #[allow(clippy::too_many_arguments)]
    pub fn max_pool2d_bwd(
        &self,
        dy: &CudaSlice<f32>,
        idx: &CudaSlice<i32>,
        shape: [usize; 4],
        k: usize,
        s: usize,
        p: usize,
        dx: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        const OP: &str = "maxpool2d_bwd";
        let [n, c, h, w] = shape;
        let (oh, ow) = (pooled_len(OP, h, k, s, p)?, pooled_len(OP, w, k, s, p)?);
        let nin = numel(OP, &shape)?;
        let nout = numel(OP, &[n, c, oh, ow])?;
        need(OP, "dy", dy.len(), nout as usize)?;
        need(OP, "idx", idx.len(), nout as usize)?;
        need(OP, "dx", dx.len(), nin as usize)?;
        let u = |v: usize| Arg::U32(v as u32);
        // SAFETY: as max_pool2d.
        unsafe {
            launch::generic(
                self,
                Module::Pool,
                OP,
                self.elementwise_cfg(nin),
                &mut [
                    Arg::In(dy),
                    Arg::InI32(idx),
                    Arg::Out(dx),
                    u(n * c),
                    u(h),
                    u(w),
                    u(oh),
                    u(ow),
                    u(k),
                    u(s),
                    u(p),
                ],
            )
        }
    }

    /// Nearest upsampling (torch `interpolate(size=(oh, ow), mode="nearest")`) of
    /// `x[n, c, h, w]`; `bwd` runs the gradient instead (`x` is then `dy`, `y` is `dx`).
    pub fn upsample_nearest2d(
        &self,
        x: &CudaSlice<f32>,
        shape: [usize; 4],
        out_hw: (usize, usize),
        y: &mut CudaSlice<f32>,
        bwd: bool,
    ) -> Result<(), CudaError> {
        let op = if bwd {
            "upsample_nearest2d_bwd"
        } else {
            "upsample_nearest2d_fwd"
        };
        let [n, c, h, w] = shape;
        let (oh, ow) = out_hw;
        if h == 0 || w == 0 || oh == 0 || ow == 0 {
            return Err(CudaError::shape(op, "empty spatial size"));
        }
        let nin = numel(op, &shape)? as usize;
        let nout = numel(op, &[n, c, oh, ow])? as usize;
        let (src_len, dst_len) = if bwd { (nout, nin) } else { (nin, nout) };
        need(op, "input", x.len(), src_len)?;
        need(op, "output", y.len(), dst_len)?;
        // torch: scale = input_size / output_size, as f32.
        let (sh, sw) = (h as f32 / oh as f32, w as f32 / ow as f32);
        let u = |v: usize| Arg::U32(v as u32);
        // SAFETY: buffers hold the element counts checked above.
        unsafe {
            launch::generic(
                self,
                Module::Pool,
                op,
                self.elementwise_cfg(dst_len as u32),
                &mut [
                    Arg::In(x),
                    Arg::Out(y),
                    u(n * c),
                    u(h),
                    u(w),
                    u(oh),
                    u(ow),
                    Arg::F32(sh),
                    Arg::F32(sw),
                ],
            )
        }
    }
}

/// Statistics a norm forward leaves for its backward.
pub struct NormStats {
    pub mean: CudaSlice<f32>,
    pub invstd: CudaSlice<f32>,
}

impl CudaDevice {
    fn per_block(&self, blocks: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Batch norm in training mode over `x[n, c, h, w]`: batch statistics, the affine
    /// output `y`, and (when given) running statistics updated with `momentum` as torch does.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_train(
        &self,
        x: &CudaSlice<f32>,
        shape: [usize; 4],
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        running: Option<(&mut CudaSlice<f32>, &mut CudaSlice<f32>)>,
        eps: f32,
        momentum: f32,
        y: &mut CudaSlice<f32>,
    ) -> Result<NormStats, CudaError> {
        const OP: &str = "batch_norm";
        let [n, c, h, w] = shape;
        let total = numel(OP, &shape)? as usize;
        if n * h * w < 2 || c == 0 || c > 65535 {
            return Err(CudaError::shape(
                OP,
                "expected more than 1 value per channel and 1..=65535 channels",
            ));
        }
        need(OP, "x", x.len(), total)?;
        need(OP, "y", y.len(), total)?;
        need(OP, "gamma", gamma.len(), c)?;
        need(OP, "beta", beta.len(), c)?;
        let mut st = NormStats {
            mean: self.zeros(c)?,
            invstd: self.zeros(c)?,
        };
        let u = |v: usize| Arg::U32(v as u32);
        // SAFETY: x holds n*c*h*w; stats and running buffers hold c; one block per channel.
        unsafe {
            let (rm, rv) = match running {
                Some((rm, rv)) => {
                    need(OP, "running_mean", rm.len(), c)?;
                    need(OP, "running_var", rv.len(), c)?;
                    (Arg::Out(rm), Arg::Out(rv))
                }
                None => (Arg::Null, Arg::Null),
            };
            launch::generic(
                self,
                Module::Norm,
                "batchnorm_stats",
                self.per_block(c),
                &mut [
                    Arg::In(x),
                    Arg::Out(&mut st.mean),
                    Arg::Out(&mut st.invstd),
                    rm,
                    rv,
                    u(n),
                    u(c),
                    u(h * w),
                    Arg::F32(eps),
                    Arg::F32(momentum),
                ],
            )?;
            launch::generic(
                self,
                Module::Norm,
                "batchnorm_fwd",
                self.elementwise_cfg(total as u32),
                &mut [
                    Arg::In(x),
                    Arg::In(&st.mean),
                    Arg::In(&st.invstd),
                    Arg::In(gamma),
                    Arg::In(beta),
                    Arg::Out(y),
                    u(n),
                    u(c),
                    u(h * w),
                ],
            )?;
        }
        Ok(st)
    }

    /// Backward of [`Self::batch_norm_train`]: `dx`, `dgamma`, `dbeta`.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_bwd(
        &self,
        dy: &CudaSlice<f32>,
        x: &CudaSlice<f32>,
        shape: [usize; 4],
        st: &NormStats,
        gamma: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
        dgamma: &mut CudaSlice<f32>,
        dbeta: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        const OP: &str = "batch_norm_bwd";
        let [n, c, h, w] = shape;
        let total = numel(OP, &shape)? as usize;
        if c == 0 || c > 65535 {
            return Err(CudaError::shape(OP, "1..=65535 channels"));
        }
        for (what, len) in [("dy", dy.len()), ("x", x.len()), ("dx", dx.len())] {
            need(OP, what, len, total)?;
        }
        for (what, len) in [
            ("gamma", gamma.len()),
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
            ("mean", st.mean.len()),
        ] {
            need(OP, what, len, c)?;
        }
        let u = |v: usize| Arg::U32(v as u32);
        // SAFETY: lengths checked above; one block per channel for the reduction.
        unsafe {
            launch::generic(
                self,
                Module::Norm,
                "batchnorm_bwd_reduce",
                self.per_block(c),
                &mut [
                    Arg::In(dy),
                    Arg::In(x),
                    Arg::In(&st.mean),
                    Arg::In(&st.invstd),
                    Arg::Out(dgamma),
                    Arg::Out(dbeta),
                    u(n),
                    u(c),
                    u(h * w),
                ],
            )?;
            launch::generic(
                self,
                Module::Norm,
                "batchnorm_bwd",
                self.elementwise_cfg(total as u32),
                &mut [
                    Arg::In(dy),
                    Arg::In(x),
                    Arg::In(&st.mean),
                    Arg::In(&st.invstd),
                    Arg::In(gamma),
                    Arg::In(dgamma),
                    Arg::In(dbeta),
                    Arg::Out(dx),
                    u(n),
                    u(c),
                    u(h * w),
                ],
            )
        }
    }

    /// Group norm forward over `x[n, c, h, w]` with `groups` dividing `c`.
    #[allow(clippy::too_many_arguments)]
    pub fn group_norm(
        &self,
        x: &CudaSlice<f32>,
        shape: [usize; 4],
        groups: usize,
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        eps: f32,
        y: &mut CudaSlice<f32>,
    ) -> Result<NormStats, CudaError> {
        const OP: &str = "group_norm";
        let [n, c, h, w] = shape;
        let total = numel(OP, &shape)? as usize;
        if groups == 0 || c % groups != 0 || n * groups > i32::MAX as usize {
            return Err(CudaError::shape(
                OP,
                format!("{groups} groups do not divide {c} channels"),
            ));
        }
        need(OP, "x", x.len(), total)?;
        need(OP, "y", y.len(), total)?;
        need(OP, "gamma", gamma.len(), c)?;
        need(OP, "beta", beta.len(), c)?;
        let g = n * groups;
        let mut st = NormStats {
            mean: self.zeros(g)?,
            invstd: self.zeros(g)?,
        };
        let u = |v: usize| Arg::U32(v as u32);
        // SAFETY: lengths checked; one block per (sample, group).
        unsafe {
            launch::generic(
                self,
                Module::Norm,
                "groupnorm_stats",
                self.per_block(g),
                &mut [
                    Arg::In(x),
                    Arg::Out(&mut st.mean),
                    Arg::Out(&mut st.invstd),
                    u(c),
                    u(h * w),
                    u(groups),
                    Arg::F32(eps),
                ],
            )?;
            launch::generic(
                self,
                Module::Norm,
                "groupnorm_fwd",
                self.elementwise_cfg(total as u32),
                &mut [
                    Arg::In(x),
                    Arg::In(&st.mean),
                    Arg::In(&st.invstd),
                    Arg::In(gamma),
                    Arg::In(beta),
                    Arg::Out(y),
                    u(n),
                    u(c),
                    u(h * w),
                    u(groups),
                ],
            )?;
        }
        Ok(st)
    }

    /// Backward of [`Self::group_norm`]: `dx`, `dgamma`, `dbeta`.
    #[allow(clippy::too_many_arguments)]
    pub fn group_norm_bwd(
        &self,
        dy: &CudaSlice<f32>,
        x: &CudaSlice<f32>,
        shape: [usize; 4],
        groups: usize,
        st: &NormStats,
        gamma: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
        dgamma: &mut CudaSlice<f32>,
        dbeta: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        const OP: &str = "group_norm_bwd";
        let [n, c, h, w] = shape;
        let total = numel(OP, &shape)? as usize;
        if groups == 0 || c % groups != 0 || c > 65535 {
            return Err(CudaError::shape(
                OP,
                format!("{groups} groups do not divide {c} channels"),
            ));
        }
        for (what, len) in [("dy", dy.len()), ("x", x.len()), ("dx", dx.len())] {
            need(OP, what, len, total)?;
        }
        for (what, len) in [
            ("gamma", gamma.len()),
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
        ] {
            need(OP, what, len, c)?;
        }
        let g = n * groups;
        need(OP, "stats", st.mean.len().min(st.invstd.len()), g)?;
        let mut s1 = self.zeros::<f32>(g)?;
        let mut s2 = self.zeros::<f32>(g)?;
        let u = |v: usize| Arg::U32(v as u32);
        // SAFETY: lengths checked; reductions launch one block per group / per channel.
        unsafe {
            launch::generic(
                self,
                Module::Norm,
                "groupnorm_bwd_reduce",
                self.per_block(g),
                &mut [
                    Arg::In(dy),
                    Arg::In(x),
                    Arg::In(&st.mean),
                    Arg::In(gamma),
                    Arg::Out(&mut s1),
                    Arg::Out(&mut s2),
                    u(c),
                    u(h * w),
                    u(groups),
                ],
            )?;
            launch::generic(
                self,
                Module::Norm,
                "groupnorm_bwd",
                self.elementwise_cfg(total as u32),
                &mut [
                    Arg::In(dy),
                    Arg::In(x),
                    Arg::In(&st.mean),
                    Arg::In(&st.invstd),
                    Arg::In(gamma),
                    Arg::In(&s1),
                    Arg::In(&s2),
                    Arg::Out(dx),
                    u(n),
                    u(c),
                    u(h * w),
                    u(groups),
                ],
            )?;
            launch::generic(
                self,
                Module::Norm,
                "groupnorm_param_grad",
                self.per_block(c),
                &mut [
                    Arg::In(dy),
                    Arg::In(x),
                    Arg::In(&st.mean),
                    Arg::In(&st.invstd),
                    Arg::Out(dgamma),
                    Arg::Out(dbeta),
                    u(n),
                    u(c),
                    u(h * w),
                    u(groups),
                ],
            )
        }
    }
}
