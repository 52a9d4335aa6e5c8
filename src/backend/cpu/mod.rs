//! The CPU backend: the reference implementation of every op (f32 and f64, and f16/bf16 as
//! storage computed in f32 — see `widen`), multithreaded with rayon over independent output
//! chunks only, and GEMM through the `gemm` crate, so results are bit-identical whatever the
//! thread count.
//!
//! The kernels are also exposed as plain functions on slices (`loss`, `elementwise`, `norm`,
//! `conv`, `pool`) so that other backends' parity tests can call them directly.

mod check;
pub mod conv;
pub mod elementwise;
mod fastmath;
mod float;
pub mod fused;
pub mod gemm;
pub mod isa;
pub mod loss;
mod map;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod roi_align;
mod widen;

pub use float::Float;

use super::{Backend, BackendError, ParamUpdate, TensorMut, TensorRef, UpdateRule, fused_op_by_op};
use crate::ir::op::*;
use crate::ir::{DType, FusedElementwise, HostData, HostTensor, numel};

/// The CPU backend (stateless; uses rayon's current thread pool).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

type In<'a> = TensorRef<'a, HostData>;
type Out<'a> = TensorMut<'a, HostData>;

/// Size of the independent output chunks that rayon tasks take.
pub(crate) const CHUNK: usize = 1 << 14;

pub(crate) fn unsupported(op: &'static str, dtype: DType) -> BackendError {
    BackendError::Unsupported {
        backend: "cpu",
        op,
        dtype,
    }
}

/// The first `numel(shape)` elements of an input as `T`.
pub(crate) fn inp<'a, T: Float>(t: &In<'a>, op: &'static str) -> Result<&'a [T], BackendError> {
    let v = T::view(t.buf).ok_or_else(|| unsupported(op, t.dtype))?;
    Ok(&v[..numel(t.shape)])
}

/// The first `numel(shape)` elements of the output as `T`.
pub(crate) fn outp<'a, T: Float>(
    t: &'a mut Out<'_>,
    op: &'static str,
) -> Result<&'a mut [T], BackendError> {
    let n = numel(t.shape);
    let dt = t.dtype;
    let v = T::view_mut(t.buf).ok_or_else(|| unsupported(op, dt))?;
    Ok(&mut v[..n])
}

pub(crate) fn labels<'a>(t: &In<'a>, op: &'static str) -> Result<&'a [i32], BackendError> {
    match t.buf {
        HostData::I32(v) => Ok(&v[..numel(t.shape)]),
        _ => Err(unsupported(op, t.dtype)),
    }
}

/// Calls `$f::<f32>` or `$f::<f64>` by the output dtype.
macro_rules! by_dtype {
    ($out:expr, $name:expr, $f:ident ( $($arg:expr),* )) => {
        match $out.dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            d => Err(unsupported($name, d)),
        }
    };
}

/// `dst = src` in place when both hold the same dtype and length; false (nothing copied)
/// otherwise.
fn copy_data(src: &HostData, dst: &mut HostData) -> bool {
    src.len() == dst.len() && copy_prefix(src, dst, src.len())
}

/// `dst = src[..n]` in place when both hold the same dtype and `dst` has `n` elements; false
/// (nothing copied) otherwise.
fn copy_prefix(src: &HostData, dst: &mut HostData, n: usize) -> bool {
    fn go<T: Copy>(s: &[T], d: &mut [T], n: usize) -> bool {
        let ok = d.len() == n && s.len() >= n;
        if ok {
            d.copy_from_slice(&s[..n]);
        }
        ok
    }
    match (src, dst) {
        (HostData::F32(s), HostData::F32(d)) => go(s, d, n),
        (HostData::F64(s), HostData::F64(d)) => go(s, d, n),
        (HostData::F16(s), HostData::F16(d)) => go(s, d, n),
        (HostData::BF16(s), HostData::BF16(d)) => go(s, d, n),
        (HostData::I32(s), HostData::I32(d)) => go(s, d, n),
        (HostData::U8(s), HostData::U8(d)) => go(s, d, n),
        _ => false,
    }
}

impl Backend for CpuBackend {
    type Buffer = HostData;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn alloc(&self, dtype: DType, len: usize) -> Result<HostData, BackendError> {
        Ok(HostData::zeros(dtype, len))
    }

    fn upload(&self, t: &HostTensor) -> Result<HostData, BackendError> {
        Ok(t.data.clone())
    }

    fn download(
        &self,
        buf: &HostData,
        dtype: DType,
        shape: &[usize],
    ) -> Result<HostTensor, BackendError> {
        let n = numel(shape);
        let data = match buf {
            HostData::F32(v) => HostData::F32(v[..n].to_vec()),
            HostData::F64(v) => HostData::F64(v[..n].to_vec()),
            HostData::F16(v) => HostData::F16(v[..n].to_vec()),
            HostData::BF16(v) => HostData::BF16(v[..n].to_vec()),
            HostData::I32(v) => HostData::I32(v[..n].to_vec()),
            HostData::U8(v) => HostData::U8(v[..n].to_vec()),
        };
        if data.dtype() != dtype {
            return Err(unsupported("download", dtype));
        }
        Ok(HostTensor {
            shape: shape.to_vec(),
            data,
        })
    }

    fn upload_into(&self, t: &HostTensor, buf: &mut HostData) -> Result<(), BackendError> {
        if !copy_data(&t.data, buf) {
            *buf = t.data.clone();
        }
        Ok(())
    }

    fn host_buffer<'a>(&self, t: &'a HostTensor) -> Option<&'a HostData> {
        Some(&t.data)
    }

    fn adopt_host(&self, data: HostData) -> Option<HostData> {
        Some(data)
    }

    fn take_host(
        &self,
        buf: HostData,
        dtype: DType,
        shape: &[usize],
    ) -> Result<HostTensor, BackendError> {
        // A longer buffer (a slot shared with a larger value) is copied rather than kept
        // whole behind a short tensor.
        if buf.dtype() != dtype || buf.len() != numel(shape) {
            return self.download(&buf, dtype, shape);
        }
        Ok(HostTensor {
            shape: shape.to_vec(),
            data: buf,
        })
    }

    fn fill(&self, mut out: Out<'_>, value: f64) -> Result<(), BackendError> {
        fn f<T: Float>(out: &mut Out<'_>, v: f64) -> Result<(), BackendError> {
            outp::<T>(out, "fill")?.fill(T::from_f64(v));
            Ok(())
        }
        if widen::is_half(out.dtype) {
            let n = numel(out.shape);
            return match widen::fill(out.buf, n, value) {
                true => Ok(()),
                false => Err(unsupported("fill", out.dtype)),
            };
        }
        if let (DType::I32, HostData::I32(v)) = (out.dtype, &mut *out.buf) {
            // Rust's `as`: truncation toward zero, saturating, NaN to 0 (as the CUDA backend).
            v[..numel(out.shape)].fill(value as i32);
            return Ok(());
        }
        by_dtype!(out, "fill", f(&mut out, value))
    }

    fn unary(&self, op: &UnaryOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        check::unary(ins, &out)?;
        if let UnaryOp::Cast(_) = op {
            if let Some(done) = widen::cast(&ins[0], out.buf) {
                return done;
            }
            let n = numel(out.shape);
            let src =
                HostData::F64((0..n).map(|i| ins[0].buf.get_f64(i)).collect()).cast(out.dtype);
            return write_host(out.buf, src, n);
        }
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "unary", |i, o| self.unary(op, i, o));
        }
        by_dtype!(out, "unary", unary_t(op, ins, &mut out))
    }

    fn binary(&self, op: BinaryOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "binary", |i, o| self.binary(op, i, o));
        }
        check::binary(ins, &out)?;
        by_dtype!(out, "binary", binary_t(op, ins, &mut out))
    }

    fn fusable(&self, op: &Op, dtype: DType) -> bool {
        fused::fusable(op, dtype)
    }

    fn fused(
        &self,
        f: &FusedElementwise,
        ins: &[In<'_>],
        out: Out<'_>,
    ) -> Result<(), BackendError> {
        match fused::compiles(f, out.dtype) {
            true => fused::run(f, ins, out),
            false => fused_op_by_op(self, f, ins, out),
        }
    }

    fn reduce(&self, op: &ReduceOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "sum", |i, o| self.reduce(op, i, o));
        }
        check::reduce(op, ins, &out)?;
        let ReduceOp::Sum { axes, .. } = op;
        by_dtype!(out, "sum", sum_t(axes, ins, &mut out))
    }

    fn layout(&self, op: &LayoutOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "layout", |i, o| self.layout(op, i, o));
        }
        check::layout(op, ins, &out)?;
        match out.dtype {
            DType::F32 => layout_t::<f32>(op, ins, &mut out),
            DType::F64 => layout_t::<f64>(op, ins, &mut out),
            DType::I32 => {
                // Integer tensors (labels) only move: go through f64, exact for i32.
                let n = numel(out.shape);
                let fins: Vec<HostData> = ins
                    .iter()
                    .map(|t| HostData::F64((0..numel(t.shape)).map(|i| t.buf.get_f64(i)).collect()))
                    .collect();
                let refs: Vec<In<'_>> = ins
                    .iter()
                    .zip(&fins)
                    .map(|(t, b)| TensorRef {
                        buf: b,
                        shape: t.shape,
                        dtype: DType::F64,
                    })
                    .collect();
                let mut tmp = HostData::zeros(DType::F64, n);
                layout_t::<f64>(
                    op,
                    &refs,
                    &mut TensorMut {
                        buf: &mut tmp,
                        shape: out.shape,
                        dtype: DType::F64,
                    },
                )?;
                write_host(out.buf, tmp.cast(DType::I32), n)
            }
            d => Err(unsupported("layout", d)),
        }
    }

    fn matmul(&self, op: &MatmulOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        check::matmul(op, ins, &out)?;
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "matmul", |i, o| self.matmul(op, i, o));
        }
        by_dtype!(out, "matmul", matmul_t(op, ins, &mut out))
    }

    fn conv(&self, op: &ConvOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "conv2d", |i, o| self.conv(op, i, o));
        }
        by_dtype!(out, "conv2d", conv_t(op, ins, &mut out))
    }

    fn pool(&self, op: &PoolOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "pool", |i, o| self.pool(op, i, o));
        }
        by_dtype!(out, "pool", pool_t(op, ins, &mut out))
    }

    fn norm(&self, op: &NormOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "norm", |i, o| self.norm(op, i, o));
        }
        by_dtype!(out, "norm", norm_t(op, ins, &mut out))
    }

    fn loss(&self, op: &LossOp, ins: &[In<'_>], mut out: Out<'_>) -> Result<(), BackendError> {
        if widen::involves_half(ins, &out) {
            return widen::widened(ins, out, "loss", |i, o| self.loss(op, i, o));
        }
        check::loss(op, ins, &out)?;
        by_dtype!(out, "loss", loss_t(op, ins, &mut out))
    }

    fn update(
        &self,
        rule: &UpdateRule,
        params: &mut [ParamUpdate<'_, HostData>],
    ) -> Result<(), BackendError> {
        optim::update_buffers(rule, params)
    }
}

fn write_host(dst: &mut HostData, src: HostData, n: usize) -> Result<(), BackendError> {
    match (dst, src) {
        (HostData::F32(d), HostData::F32(s)) => d[..n].copy_from_slice(&s),
        (HostData::F64(d), HostData::F64(s)) => d[..n].copy_from_slice(&s),
        (HostData::F16(d), HostData::F16(s)) => d[..n].copy_from_slice(&s),
        (HostData::BF16(d), HostData::BF16(s)) => d[..n].copy_from_slice(&s),
        (HostData::I32(d), HostData::I32(s)) => d[..n].copy_from_slice(&s),
        (HostData::U8(d), HostData::U8(s)) => d[..n].copy_from_slice(&s),
        (d, s) => {
            return Err(unsupported(
                "copy",
                if d.dtype() != s.dtype() {
                    s.dtype()
                } else {
                    d.dtype()
                },
            ));
        }
    }
    Ok(())
}

fn unary_t<T: Float>(op: &UnaryOp, ins: &[In<'_>], out: &mut Out<'_>) -> Result<(), BackendError> {
    let x = inp::<T>(&ins[0], "unary")?;
    let dy = if ins.len() > 1 {
        Some(inp::<T>(&ins[1], "unary")?)
    } else {
        None
    };
    let o = outp::<T>(out, "unary")?;
    elementwise::unary(op, x, dy, o);
    Ok(())
}

fn binary_t<T: Float>(op: BinaryOp, ins: &[In<'_>], out: &mut Out<'_>) -> Result<(), BackendError> {
    let (a, b) = (inp::<T>(&ins[0], "binary")?, inp::<T>(&ins[1], "binary")?);
    let shape = out.shape.to_vec();
    let o = outp::<T>(out, "binary")?;
    elementwise::binary(op, a, ins[0].shape, b, ins[1].shape, o, &shape);
    Ok(())
}

fn sum_t<T: Float>(axes: &[usize], ins: &[In<'_>], out: &mut Out<'_>) -> Result<(), BackendError> {
    let x = inp::<T>(&ins[0], "sum")?;
    let o = outp::<T>(out, "sum")?;
    elementwise::sum_axes(x, ins[0].shape, axes, o);
    Ok(())
}

fn layout_t<T: Float>(
    op: &LayoutOp,
    ins: &[In<'_>],
    out: &mut Out<'_>,
) -> Result<(), BackendError> {
    let shape = out.shape.to_vec();
    let xs: Vec<&[T]> = ins
        .iter()
        .map(|t| inp::<T>(t, "layout"))
        .collect::<Result<_, _>>()?;
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    let o = outp::<T>(out, "layout")?;
    match op {
        LayoutOp::Reshape => o.copy_from_slice(xs[0]),
        LayoutOp::Permute { perm } => elementwise::permute(xs[0], shapes[0], perm, o),
        LayoutOp::Slice { axis, start, end } => {
            elementwise::slice(xs[0], shapes[0], *axis, *start, *end, o)
        }
        LayoutOp::SlicePad { axis, start } => {
            elementwise::slice_pad(xs[0], shapes[0], *axis, *start, o, &shape)
        }
        LayoutOp::Concat { axis } => elementwise::concat(&xs, &shapes, *axis, o),
        LayoutOp::BroadcastTo => elementwise::broadcast_to(xs[0], shapes[0], o, &shape),
    }
    Ok(())
}

fn matmul_t<T: Float>(
    op: &MatmulOp,
    ins: &[In<'_>],
    out: &mut Out<'_>,
) -> Result<(), BackendError> {
    let (a, b) = (inp::<T>(&ins[0], "matmul")?, inp::<T>(&ins[1], "matmul")?);
    let (sa, sb) = (ins[0].shape, ins[1].shape);
    let r = sa.len();
    let batch = if r == 3 { sa[0] } else { 1 };
    let (ar, ac) = (sa[r - 2], sa[r - 1]);
    let (br, bc) = (sb[r - 2], sb[r - 1]);
    let (m, k) = if op.trans_a { (ac, ar) } else { (ar, ac) };
    let n = if op.trans_b { br } else { bc };
    let o = outp::<T>(out, "matmul")?;
    for i in 0..batch {
        let ai = &a[i * ar * ac..(i + 1) * ar * ac];
        let bi = &b[i * br * bc..(i + 1) * br * bc];
        let oi = &mut o[i * m * n..(i + 1) * m * n];
        let (a_rs, a_cs) = if op.trans_a { (1, ac) } else { (ac, 1) };
        let (b_rs, b_cs) = if op.trans_b { (1, bc) } else { (bc, 1) };
        gemm::gemm(m, n, k, ai, a_rs, a_cs, bi, b_rs, b_cs, oi, false);
    }
    Ok(())
}

fn conv_t<T: Float>(op: &ConvOp, ins: &[In<'_>], out: &mut Out<'_>) -> Result<(), BackendError> {
    let shape = out.shape.to_vec();
    let (a, b) = (inp::<T>(&ins[0], "conv2d")?, inp::<T>(&ins[1], "conv2d")?);
    let (sa, sb) = (ins[0].shape, ins[1].shape);
    match op {
        ConvOp::Conv2d(attrs) => {
            let bias = if ins.len() > 2 {
                Some(inp::<T>(&ins[2], "conv2d")?)
            } else {
                None
            };
            let o = outp::<T>(out, "conv2d")?;
            conv::conv2d(a, sa, b, sb, bias, attrs, o, &shape);
        }
        ConvOp::Conv2dGradInput(attrs) => {
            let o = outp::<T>(out, "conv2d_grad_input")?;
            conv::conv2d_grad_input(a, sa, b, sb, attrs, o, &shape);
        }
        ConvOp::Conv2dGradWeight(attrs) => {
            let o = outp::<T>(out, "conv2d_grad_weight")?;
            conv::conv2d_grad_weight(a, sa, b, sb, attrs, o, &shape);
        }
    }
    Ok(())
}

fn pool_t<T: Float>(op: &PoolOp, ins: &[In<'_>], out: &mut Out<'_>) -> Result<(), BackendError> {
    let shape = out.shape.to_vec();
    let x = inp::<T>(&ins[0], "pool")?;
    let xs = ins[0].shape;
    match op {
        PoolOp::MaxPool2d {
            kernel,
            stride,
            padding,
        } => pool::max_pool2d(
            x,
            xs,
            *kernel,
            *stride,
            *padding,
            outp::<T>(out, "max_pool2d")?,
            &shape,
        ),
        PoolOp::MaxPool2dGrad {
            kernel,
            stride,
            padding,
        } => {
            let dy = inp::<T>(&ins[1], "max_pool2d_grad")?;
            pool::max_pool2d_grad(
                x,
                xs,
                dy,
                ins[1].shape,
                *kernel,
                *stride,
                *padding,
                outp::<T>(out, "max_pool2d_grad")?,
            )
        }
        PoolOp::UpsampleNearest => {
            pool::upsample_nearest(x, xs, outp::<T>(out, "upsample_nearest")?, &shape)
        }
        PoolOp::UpsampleNearestGrad => {
            pool::upsample_nearest_grad(x, xs, outp::<T>(out, "upsample_nearest_grad")?, &shape)
        }
        PoolOp::RoiAlign(a) => {
            let rois = inp::<T>(&ins[1], "roi_align")?;
            let g = roi_geometry(a, xs)?;
            roi_align::roi_align(&g, x, rois, outp::<T>(out, "roi_align")?).map_err(invalid)?
        }
        PoolOp::RoiAlignGrad(a) => {
            let dy = inp::<T>(&ins[1], "roi_align_grad")?;
            let g = roi_geometry(a, &shape)?;
            let dx = outp::<T>(out, "roi_align_grad")?;
            roi_align::roi_align_grad(&g, x, dy, dx).map_err(invalid)?
        }
    }
    Ok(())
}

/// RoIAlign's geometry for a feature map of shape `xs`.
fn roi_geometry(
    a: &crate::ir::op::RoiAlignAttrs,
    xs: &[usize],
) -> Result<roi_align::RoiAlignGeometry, BackendError> {
    let &[n, c, h, w] = xs else {
        return Err(invalid(format!("roi_align: a feature map of shape {xs:?}")));
    };
    Ok(roi_align::RoiAlignGeometry {
        input: [n, c, h, w],
        output: a.output,
        spatial_scale: a.spatial_scale,
        sampling_ratio: a.sampling_ratio,
        aligned: a.aligned,
    })
}

fn invalid(message: String) -> BackendError {
    BackendError::Invalid {
        backend: "cpu",
        op: "roi_align",
        message,
    }
}

fn norm_t<T: Float>(op: &NormOp, ins: &[In<'_>], out: &mut Out<'_>) -> Result<(), BackendError> {
    let xs: Vec<&[T]> = ins
        .iter()
        .map(|t| inp::<T>(t, "norm"))
        .collect::<Result<_, _>>()?;
    let shape = ins[0].shape.to_vec();
    let o = outp::<T>(out, "norm")?;
    let geo = |k: &NormKind| norm::NormGeometry::new(&shape, *k);
    match op {
        NormOp::Stats(k) => norm::stats(&geo(k), xs[0], o),
        NormOp::Apply { kind, eps } => norm::apply(&geo(kind), xs[0], xs[1], xs[2], xs[3], *eps, o),
        NormOp::ApplyGradX { kind, eps } => {
            norm::apply_grad_x(&geo(kind), xs[1], xs[2], xs[3], *eps, o)
        }
        NormOp::ApplyGradStats { kind, eps } => {
            norm::apply_grad_stats(&geo(kind), xs[0], xs[1], xs[2], xs[3], *eps, o)
        }
        NormOp::ApplyGradAffine { kind, eps } => {
            norm::apply_grad_affine(&geo(kind), xs[0], xs[1], xs[2], *eps, o)
        }
        NormOp::StatsGrad(k) => norm::stats_grad(&geo(k), xs[0], xs[1], xs[2], o),
    }
    Ok(())
}

fn loss_t<T: Float>(op: &LossOp, ins: &[In<'_>], out: &mut Out<'_>) -> Result<(), BackendError> {
    let (kind, wrt) = match op {
        LossOp::Forward(k) => (k, None),
        LossOp::Grad { kind, wrt } => (kind, Some(*wrt)),
    };
    let a = inp::<T>(&ins[0], "loss")?;
    if let LossKind::CrossEntropy {
        ignore_index,
        label_smoothing,
    } = kind
    {
        let lab = labels(&ins[1], "cross_entropy")?;
        let k = ins[0].shape[1];
        let o = outp::<T>(out, "cross_entropy")?;
        match wrt {
            None => loss::cross_entropy(a, lab, k, *ignore_index, *label_smoothing, o),
            Some(_) => {
                let dy = inp::<T>(&ins[2], "cross_entropy")?;
                loss::cross_entropy_grad(a, lab, k, *ignore_index, *label_smoothing, dy, o)
            }
        }
        return Ok(());
    }
    let b = inp::<T>(&ins[1], "loss")?;
    let dy = match wrt {
        Some(_) => Some(inp::<T>(&ins[2], "loss")?),
        None => None,
    };
    let o = outp::<T>(out, "loss")?;
    match (kind, dy) {
        (LossKind::SigmoidFocal { alpha, gamma }, None) => {
            loss::sigmoid_focal(a, b, *alpha, *gamma, o)
        }
        (LossKind::SigmoidFocal { alpha, gamma }, Some(dy)) => {
            loss::sigmoid_focal_grad(a, b, *alpha, *gamma, dy, o)
        }
        (LossKind::BceWithLogits, None) => loss::bce_with_logits(a, b, o),
        (LossKind::BceWithLogits, Some(dy)) => loss::bce_with_logits_grad(a, b, dy, o),
        (LossKind::L1, None) => loss::l1(a, b, o),
        (LossKind::L1, Some(dy)) => loss::l1_grad(a, b, dy, wrt == Some(1), o),
        (LossKind::SmoothL1 { beta }, None) => loss::smooth_l1(a, b, *beta, o),
        (LossKind::SmoothL1 { beta }, Some(dy)) => {
            loss::smooth_l1_grad(a, b, *beta, dy, wrt == Some(1), o)
        }
        (LossKind::Iou { kind, eps }, None) => loss::iou_loss(a, b, *kind, *eps, o),
        (LossKind::Iou { kind, eps }, Some(dy)) => {
            loss::iou_loss_grad(a, b, *kind, *eps, dy, wrt == Some(1), o)
        }
        (LossKind::CrossEntropy { .. }, _) => unreachable!("handled above"),
    }
    Ok(())
}
