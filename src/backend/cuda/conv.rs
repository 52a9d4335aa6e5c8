//! 2-D convolution (NCHW, groups = 1) as im2col (`kernels/conv.ptx`) + cuBLAS GEMM, forward
//! and both gradients. Chosen over cuDNN to keep the runtime dependencies at libcuda +
//! libcublas; one image at a time through a reused column buffer.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::blas::Blas;
use super::device::CudaDevice;
use super::error::CudaError;
use super::kernels::Module;
use super::launch::{self, Arg};

/// Stride, padding and dilation per spatial axis (torch `Conv2d` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

/// Checked geometry of one convolution.
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
}

impl Geo {
    fn new(
        op: &'static str,
        xs: [usize; 4],
        ws: [usize; 4],
        a: &Conv2d,
    ) -> Result<Self, CudaError> {
        let [n, c, h, w] = xs;
        let [oc, wc, kh, kw] = ws;
        if wc != c {
            return Err(CudaError::shape(
                op,
                format!("weight has {wc} input channels, input has {c}"),
            ));
        }
        if a.stride.contains(&0) || a.dilation.contains(&0) || kh == 0 || kw == 0 || oc == 0 {
            return Err(CudaError::shape(
                op,
                "stride, dilation, kernel and channels must be > 0",
            ));
        }
        let out = |len: usize, k: usize, s: usize, p: usize, d: usize| {
            (len + 2 * p)
                .checked_sub(d * (k - 1) + 1)
                .map(|v| v / s + 1)
                .ok_or_else(|| {
                    CudaError::shape(
                        op,
                        format!("input {len} is smaller than the dilated kernel"),
                    )
                })
        };
        let oh = out(h, kh, a.stride[0], a.padding[0], a.dilation[0])?;
        let ow = out(w, kw, a.stride[1], a.padding[1], a.dilation[1])?;
        let g = Geo {
            n,
            c,
            h,
            w,
            oc,
            kh,
            kw,
            oh,
            ow,
        };
        let biggest = [
            n * c * h * w,
            n * oc * oh * ow,
            g.ckk() * oh * ow,
            oc * g.ckk(),
        ];
        if biggest.iter().any(|&v| v > i32::MAX as usize) {
            return Err(CudaError::shape(op, "tensor exceeds 2^31 elements"));
        }
        Ok(g)
    }

    fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }

    fn hwo(&self) -> usize {
        self.oh * self.ow
    }

    fn args(&self, a: &Conv2d) -> [u32; 13] {
        [
            self.c,
            self.h,
            self.w,
            self.kh,
            self.kw,
            self.oh,
            self.ow,
            a.stride[0],
            a.stride[1],
            a.padding[0],
            a.padding[1],
            a.dilation[0],
            a.dilation[1],
        ]
        .map(|v| v as u32)
    }
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

fn grid(dev: &CudaDevice, n: usize) -> LaunchConfig {
    dev.grid_for(n, 65535)
}

impl Blas {
    fn im2col(
        &self,
        dev: &CudaDevice,
        g: &Geo,
        a: &Conv2d,
        x: &CudaSlice<f32>,
        img: usize,
        col: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        let plane = g.c * g.h * g.w;
        let xv = x.slice(img * plane..(img + 1) * plane);
        let mut args: Vec<Arg<'_, '_>> = vec![Arg::InView(&xv), Arg::Out(col)];
        args.extend(g.args(a).map(Arg::U32));
        // SAFETY: xv holds c*h*w elements, col ckk*oh*ow (allocated by the caller); sizes < 2^31.
        unsafe {
            launch::generic(
                dev,
                Module::Conv,
                "im2col_fwd",
                grid(dev, g.ckk() * g.hwo()),
                &mut args,
            )
        }
    }

    /// `y[n, oc, oh, ow] = conv2d(x, w) + bias`; returns the output shape.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &self,
        dev: &CudaDevice,
        x: &CudaSlice<f32>,
        xs: [usize; 4],
        wt: &CudaSlice<f32>,
        ws: [usize; 4],
        bias: Option<&CudaSlice<f32>>,
        a: &Conv2d,
        y: &mut CudaSlice<f32>,
    ) -> Result<[usize; 4], CudaError> {
        const OP: &str = "conv2d";
        let g = Geo::new(OP, xs, ws, a)?;
        need(OP, "x", x.len(), g.n * g.c * g.h * g.w)?;
        need(OP, "weight", wt.len(), g.oc * g.ckk())?;
        need(OP, "y", y.len(), g.n * g.oc * g.hwo())?;
        let ones = match bias {
            Some(b) => {
                need(OP, "bias", b.len(), g.oc)?;
                Some(dev.upload(&vec![1.0f32; g.hwo()])?)
            }
            None => None,
        };
        let mut col = dev.zeros::<f32>(g.ckk() * g.hwo())?;
        for img in 0..g.n {
            self.im2col(dev, &g, a, x, img, &mut col)?;
            let out = g.oc * g.hwo();
            let mut yv = y.slice_mut(img * out..(img + 1) * out);
            self.sgemm(
                (g.oc, g.hwo(), g.ckk()),
                wt,
                false,
                &col,
                false,
                &mut yv,
                1.0,
                0.0,
            )?;
            if let (Some(b), Some(ones)) = (bias, &ones) {
                // y += bias[oc, 1] @ ones[1, hwo]
                self.sgemm((g.oc, g.hwo(), 1), b, false, ones, false, &mut yv, 1.0, 1.0)?;
            }
        }
        Ok([g.n, g.oc, g.oh, g.ow])
    }

    /// `dx` from `dy[n, oc, oh, ow]` and the weight.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_bwd_input(
        &self,
        dev: &CudaDevice,
        dy: &CudaSlice<f32>,
        wt: &CudaSlice<f32>,
        ws: [usize; 4],
        xs: [usize; 4],
        a: &Conv2d,
        dx: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        const OP: &str = "conv2d_bwd_input";
        let g = Geo::new(OP, xs, ws, a)?;
        need(OP, "dy", dy.len(), g.n * g.oc * g.hwo())?;
        need(OP, "weight", wt.len(), g.oc * g.ckk())?;
        need(OP, "dx", dx.len(), g.n * g.c * g.h * g.w)?;
        let mut col = dev.zeros::<f32>(g.ckk() * g.hwo())?;
        let plane = g.c * g.h * g.w;
        for img in 0..g.n {
            let out = g.oc * g.hwo();
            let dyv = dy.slice(img * out..(img + 1) * out);
            // col[ckk, hwo] = w^T[ckk, oc] @ dy[oc, hwo]
            self.sgemm(
                (g.ckk(), g.hwo(), g.oc),
                wt,
                true,
                &dyv,
                false,
                &mut col,
                1.0,
                0.0,
            )?;
            let mut dxv = dx.slice_mut(img * plane..(img + 1) * plane);
            let mut args: Vec<Arg<'_, '_>> = vec![Arg::In(&col), Arg::OutView(&mut dxv)];
            args.extend(g.args(a).map(Arg::U32));
            // SAFETY: col holds ckk*oh*ow, dxv c*h*w elements; sizes < 2^31.
            unsafe {
                launch::generic(dev, Module::Conv, "col2im_bwd", grid(dev, plane), &mut args)?
            };
        }
        Ok(())
    }

    /// `dw[oc, c, kh, kw] = sum over images of dy @ im2col(x)^T` (overwrites `dw`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_bwd_weight(
        &self,
        dev: &CudaDevice,
        x: &CudaSlice<f32>,
        xs: [usize; 4],
        dy: &CudaSlice<f32>,
        ws: [usize; 4],
        a: &Conv2d,
        dw: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        const OP: &str = "conv2d_bwd_weight";
        let g = Geo::new(OP, xs, ws, a)?;
        need(OP, "x", x.len(), g.n * g.c * g.h * g.w)?;
        need(OP, "dy", dy.len(), g.n * g.oc * g.hwo())?;
        need(OP, "dw", dw.len(), g.oc * g.ckk())?;
        let mut col = dev.zeros::<f32>(g.ckk() * g.hwo())?;
        for img in 0..g.n {
            self.im2col(dev, &g, a, x, img, &mut col)?;
            let out = g.oc * g.hwo();
            let dyv = dy.slice(img * out..(img + 1) * out);
            let beta = if img == 0 { 0.0 } else { 1.0 };
            // dw[oc, ckk] (+)= dy[oc, hwo] @ col^T[hwo, ckk]
            self.sgemm(
                (g.oc, g.ckk(), g.hwo()),
                &dyv,
                false,
                &col,
                true,
                dw,
                1.0,
                beta,
            )?;
        }
        Ok(())
    }
}
