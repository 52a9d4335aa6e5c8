//! Fill, unary maps, broadcasting binaries, sums over axes and layout ops on the device,
//! with the CPU backend's semantics (`backend::cpu::{mod, elementwise}`).
//!
//! Kernels (`kernels/tensor.ptx`): `strided_copy_fwd_f32` (any 32-bit element: permute,
//! slice, slice_pad, concat, broadcast_to, the reduction's gather), `broadcast_binary_fwd_f32`,
//! `unary_map_fwd_f32` (every [`UnaryOp`] and the f32 ↔ i32 casts, by op code) and
//! `rowsum_reduce_f32`. What each launch reads is decided by the host-side shape logic in
//! `backend::strided` (unit-tested without a GPU); this file checks dtypes and buffer lengths, then
//! launches. Every launch is on the device's one stream, so scratch buffers are freed in
//! stream order.

use cudarc::driver::{DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};

use super::backend::{CudaBackend, CudaBuffer, device_err, geometry_err, unsupported};
use super::device::CudaDevice;
use super::error::{CudaError, DriverContext};
use super::kernels::Module;
use super::launch::{self, Arg};
use crate::backend::strided::{self as plan, KernelIndex, LayoutPlan, MAX_ELEMS, Strided};
use crate::backend::{BackendError, TensorMut, TensorRef};
use crate::ir::DType;
use crate::ir::op::*;

type In<'a> = TensorRef<'a, CudaBuffer>;
type Out<'a> = TensorMut<'a, CudaBuffer>;

/// A shape or length error as a backend error (`{op}: {message}`).
fn shape_err(op: &'static str, message: impl Into<String>) -> BackendError {
    device_err(CudaError::shape(op, message))
}

/// Kernel arguments: raw device addresses and scalars, pushed in ABI order.
enum K {
    P(u64),
    U(u32),
    F(f32),
}

/// Launches `stem_f32` of `tensor.ptx` over `n` items (grid-stride, 256 threads).
///
/// # Safety
/// `args` follow the entry's ABI in `kernels/README.md`, and every address with the offsets
/// the entry derives from the scalars stays inside its buffer.
unsafe fn launch(
    be: &CudaBackend,
    stem: &'static str,
    cfg: LaunchConfig,
    args: &[K],
) -> Result<(), BackendError> {
    let dev = be.device();
    debug_assert_eq!(
        super::kernels::entry(stem).params.len(),
        args.len(),
        "{stem}: argument count"
    );
    let f = dev.function(Module::Tensor, stem).map_err(device_err)?;
    let mut b = dev.stream().launch_builder(&f);
    for a in args {
        match a {
            K::P(p) => b.arg(p),
            K::U(u) => b.arg(u),
            K::F(x) => b.arg(x),
        };
    }
    // SAFETY: the caller upholds the contract above.
    unsafe { b.launch(cfg) }.ctx(stem).map_err(device_err)?;
    Ok(())
}

/// Grid of a grid-stride kernel over `n` elements.
fn grid(be: &CudaBackend, n: usize) -> LaunchConfig {
    be.device().grid_for(n, 65535)
}

/// Element count of a tensor the kernels may touch (u32 offsets, see `plan::MAX_ELEMS`).
fn count(op: &'static str, shape: &[usize]) -> Result<usize, BackendError> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| shape_err(op, format!("shape {shape:?} overflows")))?;
    if n > MAX_ELEMS {
        return Err(shape_err(
            op,
            format!("{shape:?} has {n} elements; the device kernels take at most {MAX_ELEMS}"),
        ));
    }
    Ok(n)
}

/// An input's device address after checking its dtype (f32 or i32 storage only) and that the
/// buffer holds the tensor.
fn in_addr(be: &CudaBackend, t: &In<'_>, op: &'static str) -> Result<u64, BackendError> {
    let n = count(op, t.shape)?;
    let s = be.device().stream();
    let (addr, len) = match t.buf {
        CudaBuffer::F32(b) if t.dtype == DType::F32 => (b.device_ptr(s).0, b.len()),
        CudaBuffer::I32(b) if t.dtype == DType::I32 => (b.device_ptr(s).0, b.len()),
        _ => return Err(unsupported(op, t.dtype)),
    };
    if len < n {
        return Err(shape_err(
            op,
            format!("input buffer holds {len} elements, {:?} needs {n}", t.shape),
        ));
    }
    Ok(addr)
}

/// The output's device address (as [`in_addr`]).
fn out_addr(be: &CudaBackend, t: &mut Out<'_>, op: &'static str) -> Result<u64, BackendError> {
    let n = count(op, t.shape)?;
    let s = be.device().stream();
    let dt = t.dtype;
    let (len, addr) = match &mut *t.buf {
        CudaBuffer::F32(b) if dt == DType::F32 => (b.len(), b.device_ptr_mut(s).0),
        CudaBuffer::I32(b) if dt == DType::I32 => (b.len(), b.device_ptr_mut(s).0),
        _ => return Err(unsupported(op, dt)),
    };
    if len < n {
        return Err(shape_err(
            op,
            format!(
                "output buffer holds {len} elements, {:?} needs {n}",
                t.shape
            ),
        ));
    }
    Ok(addr)
}

/// `addr` advanced by `elems` 32-bit elements.
fn at(addr: u64, elems: usize) -> u64 {
    addr + 4 * elems as u64
}

/// The index-space scalars of the strided entries: rank, dims, then both stride sets.
fn index_args(k: &KernelIndex, args: &mut Vec<K>) {
    args.push(K::U(k.rank));
    args.extend(k.dims.iter().map(|&d| K::U(d)));
    args.extend(k.a.iter().map(|&s| K::U(s)));
    args.extend(k.b.iter().map(|&s| K::U(s)));
}

/// `dst[dst_base + b(i)] = src[src_base + a(i)]` over the mapping (32-bit elements).
///
/// # Safety
/// Both addresses plus every offset of `map` stay inside their buffers.
unsafe fn strided_copy(
    be: &CudaBackend,
    op: &'static str,
    src: u64,
    dst: u64,
    map: &Strided,
) -> Result<(), BackendError> {
    let k = map.kernel(op).map_err(|e| geometry_err(op, e))?;
    if k.n == 0 {
        return Ok(());
    }
    let mut args = vec![K::P(src), K::P(dst), K::U(k.n)];
    index_args(&k, &mut args);
    // SAFETY: the caller upholds the contract; `k` is `map` collapsed (same offsets).
    unsafe { launch(be, "strided_copy_fwd", grid(be, k.n as usize), &args) }
}

/// Zeroes the first `n` elements of the output.
fn zero(be: &CudaBackend, out: &mut Out<'_>, n: usize) -> Result<(), BackendError> {
    if n == 0 {
        return Ok(());
    }
    let s = be.device().stream();
    match &mut *out.buf {
        CudaBuffer::F32(b) => s.memset_zeros(&mut b.slice_mut(..n)),
        CudaBuffer::I32(b) => s.memset_zeros(&mut b.slice_mut(..n)),
        CudaBuffer::U8(b) => s.memset_zeros(&mut b.slice_mut(..n)),
        CudaBuffer::F16(b) | CudaBuffer::BF16(b) => s.memset_zeros(&mut b.slice_mut(..n)),
    }
    .ctx("memset")
    .map_err(device_err)
}

/// Copies the first `n` elements of `x` into the output (same dtype: reshape, same-type cast).
fn copy_n(be: &CudaBackend, x: &In<'_>, out: &mut Out<'_>, n: usize) -> Result<(), BackendError> {
    in_addr(be, x, "copy")?;
    out_addr(be, out, "copy")?;
    if n == 0 {
        return Ok(());
    }
    let s = be.device().stream();
    match (x.buf, &mut *out.buf) {
        (CudaBuffer::F32(a), CudaBuffer::F32(b)) => {
            s.memcpy_dtod(&a.slice(..n), &mut b.slice_mut(..n))
        }
        (CudaBuffer::I32(a), CudaBuffer::I32(b)) => {
            s.memcpy_dtod(&a.slice(..n), &mut b.slice_mut(..n))
        }
        _ => return Err(unsupported("copy", x.dtype)),
    }
    .ctx("memcpy dtod")
    .map_err(device_err)
}

/// `fill_fwd_f32`: sets the first `n` elements of `y` (which holds at least `n`) to `value`.
pub(super) fn fill_f32(
    dev: &CudaDevice,
    y: &mut cudarc::driver::CudaSlice<f32>,
    value: f32,
    n: usize,
) -> Result<(), CudaError> {
    const OP: &str = "fill_fwd";
    let n32 = u32::try_from(n)
        .map_err(|_| CudaError::shape(OP, format!("{n} elements exceed 2^32 - 1")))?;
    if y.len() < n {
        return Err(CudaError::shape(
            OP,
            format!("y holds {} elements, {n} needed", y.len()),
        ));
    }
    // SAFETY: y holds n elements (checked), n fits u32.
    unsafe {
        launch::generic(
            dev,
            Module::Tensor,
            OP,
            dev.grid_for(n, 65535),
            &mut [Arg::Out(y), Arg::U32(n32), Arg::F32(value)],
        )
    }
}

pub(super) fn fill(be: &CudaBackend, mut out: Out<'_>, value: f64) -> Result<(), BackendError> {
    let n = count("fill", out.shape)?;
    match out.dtype {
        DType::F32 => {
            let y = super::backend::f32_out(&mut out, "fill")?;
            fill_f32(be.device(), y, value as f32, n).map_err(device_err)
        }
        DType::I32 => {
            // Rust's saturating `as`, as the CPU's casts. i32 fills are rare (label
            // constants): one host-to-device copy instead of a kernel.
            out_addr(be, &mut out, "fill")?;
            if n == 0 {
                return Ok(());
            }
            let v = vec![value as i32; n];
            match &mut *out.buf {
                CudaBuffer::I32(b) => be
                    .device()
                    .stream()
                    .memcpy_htod(&v, &mut b.slice_mut(..n))
                    .ctx("fill i32")
                    .map_err(device_err),
                _ => Err(unsupported("fill", DType::I32)),
            }
        }
        d => Err(unsupported("fill", d)),
    }
}

/// The op code of `unary_map_fwd_f32` and its two constants.
fn unary_code(op: &UnaryOp) -> Option<(u32, f32, f32)> {
    Some(match op {
        UnaryOp::Relu => (0, 0.0, 0.0),
        UnaryOp::Sigmoid => (1, 0.0, 0.0),
        UnaryOp::Exp => (2, 0.0, 0.0),
        UnaryOp::Log => (3, 0.0, 0.0),
        UnaryOp::Scale(f) => (4, *f as f32, 0.0),
        UnaryOp::AddScalar(v) => (5, *v as f32, 0.0),
        UnaryOp::Clamp { lo, hi } => (6, *lo as f32, *hi as f32),
        UnaryOp::ReluGrad => (7, 0.0, 0.0),
        UnaryOp::SigmoidGrad => (8, 0.0, 0.0),
        UnaryOp::ExpGrad => (9, 0.0, 0.0),
        UnaryOp::LogGrad => (10, 0.0, 0.0),
        UnaryOp::ClampGrad { lo, hi } => (11, *lo as f32, *hi as f32),
        UnaryOp::Cast(_) => return None,
    })
}

/// Op codes of the casts in `unary_map_fwd_f32`.
const CAST_F32_I32: u32 = 12;
const CAST_I32_F32: u32 = 13;

pub(super) fn unary(
    be: &CudaBackend,
    op: &UnaryOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let x = ins.first().ok_or_else(|| shape_err("unary", "no input"))?;
    let n = count("unary", out.shape)?;
    if count("unary", x.shape)? != n {
        return Err(shape_err(
            "unary",
            format!(
                "input {:?} and output {:?} differ in size",
                x.shape, out.shape
            ),
        ));
    }
    let (code, c0, c1, dy) = match (op, unary_code(op)) {
        (UnaryOp::Cast(to), _) => {
            if *to != out.dtype {
                return Err(unsupported("cast", *to));
            }
            match (x.dtype, out.dtype) {
                (a, b) if a == b && matches!(a, DType::F32 | DType::I32) => {
                    return copy_n(be, x, &mut out, n);
                }
                (DType::F32, DType::I32) => (CAST_F32_I32, 0.0, 0.0, 0),
                (DType::I32, DType::F32) => (CAST_I32_F32, 0.0, 0.0, 0),
                (_, b) => return Err(unsupported("cast", b)),
            }
        }
        (_, Some((code, c0, c1))) => {
            if x.dtype != DType::F32 || out.dtype != DType::F32 {
                return Err(unsupported("unary", x.dtype));
            }
            let dy = if code >= 7 {
                let d = ins
                    .get(1)
                    .ok_or_else(|| shape_err("unary", "gradient ops take (x, dy)"))?;
                if count("unary", d.shape)? != n || d.dtype != DType::F32 {
                    return Err(shape_err(
                        "unary",
                        format!("dy {:?} does not match {:?}", d.shape, out.shape),
                    ));
                }
                in_addr(be, d, "unary")?
            } else {
                0
            };
            (code, c0, c1, dy)
        }
        (_, None) => return Err(unsupported("unary", x.dtype)),
    };
    let xa = in_addr(be, x, "unary")?;
    let ya = out_addr(be, &mut out, "unary")?;
    if n == 0 {
        return Ok(());
    }
    let args = [
        K::P(xa),
        K::P(dy),
        K::P(ya),
        K::U(n as u32),
        K::U(code),
        K::F(c0),
        K::F(c1),
    ];
    // SAFETY: x, dy (read by the gradient codes only, checked present) and y hold n elements.
    unsafe { launch(be, "unary_map_fwd", grid(be, n), &args) }
}

pub(super) fn binary(
    be: &CudaBackend,
    op: BinaryOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let [a, b] = ins else {
        return Err(shape_err("binary", "expects two inputs"));
    };
    for t in [a, b] {
        if t.dtype != DType::F32 {
            return Err(unsupported("binary", t.dtype));
        }
    }
    if out.dtype != DType::F32 {
        return Err(unsupported("binary", out.dtype));
    }
    let (aa, ba) = (in_addr(be, a, "binary")?, in_addr(be, b, "binary")?);
    let oa = out_addr(be, &mut out, "binary")?;
    let map =
        plan::plan_binary(a.shape, b.shape, out.shape).map_err(|e| geometry_err("binary", e))?;
    let k = map
        .kernel("binary")
        .map_err(|e| geometry_err("binary", e))?;
    if k.n == 0 {
        return Ok(());
    }
    let code = match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
    };
    let mut args = vec![K::P(aa), K::P(ba), K::P(oa), K::U(k.n), K::U(code)];
    index_args(&k, &mut args);
    // SAFETY: the offsets are broadcast strides of a and b inside their shapes (plan_binary),
    // and the output holds n elements.
    unsafe { launch(be, "broadcast_binary_fwd", grid(be, k.n as usize), &args) }
}

pub(super) fn reduce(
    be: &CudaBackend,
    op: &ReduceOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let ReduceOp::Sum { axes, .. } = op;
    let x = ins.first().ok_or_else(|| shape_err("sum", "no input"))?;
    if x.dtype != DType::F32 || out.dtype != DType::F32 {
        return Err(unsupported("sum", x.dtype));
    }
    let xa = in_addr(be, x, "sum")?;
    let oa = out_addr(be, &mut out, "sum")?;
    let n_out = count("sum", out.shape)?;
    let p = plan::plan_reduce(x.shape, axes, n_out).map_err(|e| geometry_err("sum", e))?;
    if p.rows == 0 {
        return Ok(());
    }
    if p.len == 0 {
        return zero(be, &mut out, p.rows);
    }
    let stream = be.device().stream();
    let alloc = |len: usize| {
        // SAFETY: every element is written by the launch that follows, before any read.
        unsafe { stream.alloc::<f32>(len) }
            .ctx("sum scratch")
            .map_err(device_err)
    };
    let gathered = match &p.gather {
        Some(map) => {
            let mut g = alloc(p.rows * p.len)?;
            let ga = g.device_ptr_mut(stream).0;
            // SAFETY: `map` reads x inside its shape and writes [rows, len] contiguously.
            unsafe { strided_copy(be, "sum", xa, ga, map)? };
            Some(g)
        }
        None => None,
    };
    let src = match &gathered {
        Some(g) => g.device_ptr(stream).0,
        None => xa,
    };
    let target = be.device().sm_count() as usize * 4;
    let (nch, chunk) = plan::row_chunks(p.rows, p.len, target);
    if nch == 1 {
        // SAFETY: src holds rows × len elements, out holds rows.
        return unsafe { rowsum(be, src, oa, p.rows, p.len, p.len, 1) };
    }
    let mut partial = alloc(p.rows * nch)?;
    let pa = partial.device_ptr_mut(stream).0;
    // SAFETY: src holds rows × len, partial rows × nch; then partial is [rows, nch].
    unsafe {
        rowsum(be, src, pa, p.rows * nch, p.len, chunk, nch)?;
        rowsum(be, pa, oa, p.rows, nch, nch, 1)
    }
}

/// `rowsum_reduce_f32` over `segs` segments (`segs / nchunks` rows of `len`).
///
/// # Safety
/// `x` holds `segs / nchunks · len` elements, `out` `segs`.
unsafe fn rowsum(
    be: &CudaBackend,
    x: u64,
    out: u64,
    segs: usize,
    len: usize,
    chunk: usize,
    nchunks: usize,
) -> Result<(), BackendError> {
    if chunk.checked_mul(nchunks).is_none_or(|v| v > MAX_ELEMS) || segs > MAX_ELEMS {
        return Err(shape_err(
            "sum",
            "reduction too large for the device kernels",
        ));
    }
    let cfg = LaunchConfig {
        grid_dim: (segs.min(65535) as u32, 1, 1),
        block_dim: (super::device::BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let args = [
        K::P(x),
        K::P(out),
        K::U(segs as u32),
        K::U(len as u32),
        K::U(chunk as u32),
        K::U(nchunks as u32),
    ];
    // SAFETY: the caller upholds the contract above.
    unsafe { launch(be, "rowsum_reduce", cfg, &args) }
}

pub(super) fn layout(
    be: &CudaBackend,
    op: &LayoutOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let name = plan::op_name(op);
    if !matches!(out.dtype, DType::F32 | DType::I32) {
        return Err(unsupported(name, out.dtype));
    }
    for t in ins {
        if t.dtype != out.dtype {
            return Err(unsupported(name, t.dtype));
        }
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    let p = plan::plan_layout(op, &shapes, out.shape).map_err(|e| geometry_err(name, e))?;
    let addrs: Vec<u64> = ins
        .iter()
        .map(|t| in_addr(be, t, name))
        .collect::<Result<_, _>>()?;
    let oa = out_addr(be, &mut out, name)?;
    match p {
        LayoutPlan::Memcpy { n } => copy_n(be, &ins[0], &mut out, n),
        LayoutPlan::Copies { zero: z, copies } => {
            if z {
                let n = count(name, out.shape)?;
                zero(be, &mut out, n)?;
            }
            for c in &copies {
                // SAFETY: plan_layout keeps every offset inside the input's and the output's
                // shapes (validated against them), and both buffers hold those shapes.
                unsafe {
                    strided_copy(
                        be,
                        name,
                        at(addrs[c.input], c.src_base),
                        at(oa, c.dst_base),
                        &c.map,
                    )?
                };
            }
            Ok(())
        }
    }
}
