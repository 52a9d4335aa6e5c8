//! 2-D convolution (NCHW, groups = 1) as im2col (`kernels/conv.ptx`) + cuBLAS GEMM, forward
//! and both gradients: the path when libcudnn does not load (or `MMRUN_CUDA_CONV=im2col`),
//! needing only libcuda + libcublas, and a second reference for `cudnn.rs`.
//!
//! Images are unfolded together: one im2col (or col2im) launch covers as many images as keep
//! the column buffer under [`COL_CAP_BYTES`] (the kernels treat `b` images of `c` channels
//! as `b * c` channels, since images are contiguous), then one GEMM per image on views of it
//! (`Blas` exposes plain `sgemm`; a strided-batched GEMM would fold those into one launch).
//! Column buffers are allocated uninitialised: im2col writes every element, and GEMMs with
//! `beta = 0` do not read their output. A 1×1 stride-1 unpadded convolution has `col == x`,
//! so it skips im2col/col2im and runs its GEMMs on the images directly.

use cudarc::driver::{CudaSlice, CudaView, LaunchConfig};

use super::blas::Blas;
use super::device::CudaDevice;
use super::error::{CudaError, DriverContext};
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

    /// 1×1, stride 1, no padding: the column matrix of an image is the image itself.
    fn is_pointwise(&self, a: &Conv2d) -> bool {
        self.kh == 1 && self.kw == 1 && a.stride == [1, 1] && a.padding == [0, 0]
    }

    /// Elements of one image's column matrix `[c·kh·kw, oh·ow]`.
    fn col_len(&self) -> usize {
        self.ckk() * self.hwo()
    }

    /// im2col/col2im arguments for `images` consecutive images unfolded as one (their
    /// `images * c` channels are contiguous).
    fn args(&self, a: &Conv2d, images: usize) -> [u32; 13] {
        [
            images * self.c,
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

/// Column buffers stay under this size; more images than fit are unfolded chunk by chunk.
pub const COL_CAP_BYTES: usize = 256 << 20;

/// Images unfolded per im2col launch: as many as keep `images * col_len` f32 under
/// [`COL_CAP_BYTES`], at least one (a single image's columns may exceed the cap), at most `n`.
pub fn images_per_chunk(n: usize, col_len: usize) -> usize {
    let per_image = col_len.max(1).saturating_mul(std::mem::size_of::<f32>());
    (COL_CAP_BYTES / per_image).clamp(1, n.max(1))
}

/// The output shape `[n, oc, oh, ow]` of a convolution of `x` by `w`, or why the shapes do
/// not convolve (channels differ, kernel larger than the padded input, over 2^31 elements).
pub fn output_shape(
    op: &'static str,
    xs: [usize; 4],
    ws: [usize; 4],
    a: &Conv2d,
) -> Result<[usize; 4], CudaError> {
    let g = Geo::new(op, xs, ws, a)?;
    Ok([g.n, g.oc, g.oh, g.ow])
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

/// An uninitialised device buffer of `len` f32 (the caller overwrites all of it before any read).
fn scratch(dev: &CudaDevice, len: usize) -> Result<CudaSlice<f32>, CudaError> {
    // SAFETY: the contents are unspecified; every caller fully writes the buffer before reading.
    unsafe { dev.stream().alloc::<f32>(len.max(1)) }.ctx("cuMemAlloc (conv columns)")
}

impl Blas {
    /// Unfolds images `first..first + images` of `x` into `col[images, ckk, hwo]`.
    #[allow(clippy::too_many_arguments)]
    fn im2col(
        &self,
        dev: &CudaDevice,
        g: &Geo,
        a: &Conv2d,
        x: &CudaSlice<f32>,
        first: usize,
        images: usize,
        col: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        let plane = g.c * g.h * g.w;
        let xv = x.slice(first * plane..(first + images) * plane);
        let mut args: Vec<Arg<'_, '_>> = vec![Arg::InView(&xv), Arg::Out(col)];
        args.extend(g.args(a, images).map(Arg::U32));
        // SAFETY: xv holds images*c*h*w elements, col at least images*ckk*oh*ow (the caller
        // sized it by `images_per_chunk`, under 2^26 elements, or one image under 2^31).
        unsafe {
            launch::generic(
                dev,
                Module::Conv,
                "im2col_fwd",
                grid(dev, images * g.col_len()),
                &mut args,
            )
        }
    }

    /// Calls `f(image, columns)` for every image in order, where `columns` is that image's
    /// `[ckk, hwo]` matrix: unfolded chunk by chunk into one scratch buffer (see
    /// [`images_per_chunk`]), or the image itself for a pointwise convolution.
    fn each_unfolded(
        &self,
        dev: &CudaDevice,
        g: &Geo,
        a: &Conv2d,
        x: &CudaSlice<f32>,
        mut f: impl FnMut(usize, CudaView<'_, f32>) -> Result<(), CudaError>,
    ) -> Result<(), CudaError> {
        let (plane, cl) = (g.c * g.h * g.w, g.col_len());
        if g.is_pointwise(a) {
            return (0..g.n).try_for_each(|img| f(img, x.slice(img * plane..(img + 1) * plane)));
        }
        let chunk = images_per_chunk(g.n, cl);
        let mut col = scratch(dev, chunk * cl)?;
        for first in (0..g.n).step_by(chunk) {
            let images = chunk.min(g.n - first);
            self.im2col(dev, g, a, x, first, images, &mut col)?;
            for b in 0..images {
                f(first + b, col.slice(b * cl..(b + 1) * cl))?;
            }
        }
        Ok(())
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
        let (plane, out) = (g.c * g.h * g.w, g.oc * g.hwo());
        need(OP, "x", x.len(), g.n * plane)?;
        need(OP, "weight", wt.len(), g.oc * g.ckk())?;
        need(OP, "y", y.len(), g.n * out)?;
        let ones = match bias {
            Some(b) => {
                need(OP, "bias", b.len(), g.oc)?;
                let mut ones = scratch(dev, g.hwo())?;
                super::tensor::fill_f32(dev, &mut ones, 1.0, g.hwo())?;
                Some(ones)
            }
            None => None,
        };
        self.each_unfolded(dev, &g, a, x, |img, src| {
            let mut yv = y.slice_mut(img * out..(img + 1) * out);
            // y[oc, hwo] = w[oc, ckk] @ col[ckk, hwo]
            self.sgemm(
                (g.oc, g.hwo(), g.ckk()),
                wt,
                false,
                &src,
                false,
                &mut yv,
                1.0,
                0.0,
            )?;
            if let (Some(bias), Some(ones)) = (bias, &ones) {
                // y += bias[oc, 1] @ ones[1, hwo]
                self.sgemm(
                    (g.oc, g.hwo(), 1),
                    bias,
                    false,
                    ones,
                    false,
                    &mut yv,
                    1.0,
                    1.0,
                )?;
            }
            Ok(())
        })?;
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
        let (plane, out, cl) = (g.c * g.h * g.w, g.oc * g.hwo(), g.col_len());
        need(OP, "dy", dy.len(), g.n * out)?;
        need(OP, "weight", wt.len(), g.oc * g.ckk())?;
        need(OP, "dx", dx.len(), g.n * plane)?;
        if g.is_pointwise(a) {
            // dx[c, hw] = w^T[c, oc] @ dy[oc, hw]: no fold needed.
            for img in 0..g.n {
                let dyv = dy.slice(img * out..(img + 1) * out);
                let mut dxv = dx.slice_mut(img * plane..(img + 1) * plane);
                self.sgemm(
                    (g.ckk(), g.hwo(), g.oc),
                    wt,
                    true,
                    &dyv,
                    false,
                    &mut dxv,
                    1.0,
                    0.0,
                )?;
            }
            return Ok(());
        }
        let chunk = images_per_chunk(g.n, cl);
        let mut col = scratch(dev, chunk * cl)?;
        for first in (0..g.n).step_by(chunk) {
            let images = chunk.min(g.n - first);
            for b in 0..images {
                let img = first + b;
                let dyv = dy.slice(img * out..(img + 1) * out);
                let mut colv = col.slice_mut(b * cl..(b + 1) * cl);
                // col[ckk, hwo] = w^T[ckk, oc] @ dy[oc, hwo]
                self.sgemm(
                    (g.ckk(), g.hwo(), g.oc),
                    wt,
                    true,
                    &dyv,
                    false,
                    &mut colv,
                    1.0,
                    0.0,
                )?;
            }
            let mut dxv = dx.slice_mut(first * plane..(first + images) * plane);
            let mut args: Vec<Arg<'_, '_>> = vec![Arg::In(&col), Arg::OutView(&mut dxv)];
            args.extend(g.args(a, images).map(Arg::U32));
            // SAFETY: col holds images*ckk*oh*ow (written above), dxv images*c*h*w elements;
            // col2im writes every element of dxv; sizes < 2^31.
            unsafe {
                launch::generic(
                    dev,
                    Module::Conv,
                    "col2im_bwd",
                    grid(dev, images * plane),
                    &mut args,
                )?
            };
        }
        Ok(())
    }

    /// `dw[oc, c, kh, kw] = sum over images of dy @ im2col(x)^T` (overwrites `dw`; images are
    /// accumulated in order, so the result is deterministic).
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
        let (plane, out) = (g.c * g.h * g.w, g.oc * g.hwo());
        need(OP, "x", x.len(), g.n * plane)?;
        need(OP, "dy", dy.len(), g.n * out)?;
        need(OP, "dw", dw.len(), g.oc * g.ckk())?;
        if g.n == 0 {
            // An empty batch contributes nothing: the gradient is zero.
            let mut dwv = dw.slice_mut(..g.oc * g.ckk());
            return dev.stream().memset_zeros(&mut dwv).ctx("cuMemsetD8");
        }
        self.each_unfolded(dev, &g, a, x, |img, src| {
            let dyv = dy.slice(img * out..(img + 1) * out);
            let beta = if img == 0 { 0.0 } else { 1.0 };
            // dw[oc, ckk] (+)= dy[oc, hwo] @ col^T[hwo, ckk]
            self.sgemm(
                (g.oc, g.ckk(), g.hwo()),
                &dyv,
                false,
                &src,
                true,
                dw,
                1.0,
                beta,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fill_the_cap_and_never_drop_below_one_image() {
        let cap = COL_CAP_BYTES / 4;
        assert_eq!(images_per_chunk(8, cap / 4), 4);
        assert_eq!(images_per_chunk(2, cap / 4), 2);
        assert_eq!(images_per_chunk(3, cap), 1);
        assert_eq!(
            images_per_chunk(3, cap * 3),
            1,
            "one image over the cap still runs"
        );
        assert_eq!(images_per_chunk(0, 10), 1);
        for (n, cl) in [(2, 27 * 400 * 666), (16, 576 * 56 * 56), (64, 9 * 32 * 32)] {
            let k = images_per_chunk(n, cl);
            assert!((1..=n).contains(&k));
            assert!(k == 1 || k * cl * 4 <= COL_CAP_BYTES, "{n} {cl} -> {k}");
            assert!(
                k == n || (k + 1) * cl * 4 > COL_CAP_BYTES,
                "{n} {cl} -> {k}"
            );
        }
    }

    #[test]
    fn output_shape_follows_torch() {
        let a = Conv2d {
            stride: [2, 2],
            padding: [3, 3],
            dilation: [1, 1],
        };
        assert_eq!(
            output_shape("t", [2, 3, 800, 1333], [64, 3, 7, 7], &a).unwrap(),
            [2, 64, 400, 667]
        );
        let p = Conv2d {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        };
        assert!(output_shape("t", [1, 4, 5, 5], [8, 3, 1, 1], &p).is_err());
        assert!(output_shape("t", [1, 4, 2, 2], [8, 4, 3, 3], &p).is_err());
    }

    #[test]
    fn pointwise_means_one_by_one_stride_one_unpadded() {
        let g = Geo::new(
            "t",
            [1, 4, 5, 5],
            [8, 4, 1, 1],
            &Conv2d {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [3, 3],
            },
        )
        .unwrap();
        let at = |s, p| Conv2d {
            stride: [s, s],
            padding: [p, p],
            dilation: [1, 1],
        };
        assert!(g.is_pointwise(&at(1, 0)));
        assert!(!g.is_pointwise(&at(2, 0)));
        assert!(!g.is_pointwise(&at(1, 1)));
        assert_eq!(g.col_len(), 4 * 25, "the column matrix is the image itself");
    }
}
