//! Fill, unary maps, broadcasting binaries, sums over axes and layout ops on the device, with
//! the CPU backend's semantics (`backend::cpu::{mod, elementwise}`). The shape logic is the
//! CUDA backend's (`backend::strided`); the kernels are `kernels/wgsl/tensor.wgsl`.

use super::context::{Bound, Grid, Kernel, Module};
use super::{
    In, Out, WgpuBackend, count, fbits, geometry_err, input, nth, output, shape_err, unsupported, w,
};
use crate::backend::BackendError;
use crate::backend::strided::{self as plan, KernelIndex, LayoutPlan, Strided};
use crate::ir::DType;
use crate::ir::op::*;

const fn kernel(entry: &'static str, inputs: usize) -> Kernel {
    Kernel {
        module: Module::Tensor,
        entry,
        inputs,
    }
}

const FILL: Kernel = kernel("fill", 0);
const STRIDED_COPY: Kernel = kernel("strided_copy", 1);
const CAST_F32_I32: Kernel = kernel("cast_f32_i32", 1);
const CAST_I32_F32: Kernel = kernel("cast_i32_f32", 1);
const UNARY: Kernel = kernel("unary", 2);
const BINARY: Kernel = kernel("binary", 2);
const ROW_SUM: Kernel = kernel("row_sum", 1);

/// The index-space words of `strided_offsets`: rank, dims, then both stride sets.
fn index_words(k: &KernelIndex, words: &mut Vec<u32>) {
    words.push(k.rank);
    words.extend(k.dims);
    words.extend(k.a);
    words.extend(k.b);
}

/// Sets the first `n` 32-bit elements of `out` to `bits`.
pub(super) fn fill_bits(
    be: &WgpuBackend,
    out: Bound<'_>,
    n: usize,
    bits: u32,
) -> Result<(), BackendError> {
    be.gpu()
        .dispatch(FILL, &[w(n), bits], &[], out, Grid::Items(n))
}

pub(super) fn fill(be: &WgpuBackend, out: Out<'_>, value: f64) -> Result<(), BackendError> {
    let n = count("fill", out.shape)?;
    let bits = match out.dtype {
        DType::F32 => fbits(value),
        // Rust's saturating `as`, as the CPU's casts.
        DType::I32 => (value as i32) as u32,
        d => return Err(unsupported("fill", d)),
    };
    fill_bits(be, output(&out, "fill", out.dtype)?, n, bits)
}

/// `dst[dst_base + b(i)] = src[src_base + a(i)]` over the mapping (32-bit elements).
pub(super) fn strided_copy(
    be: &WgpuBackend,
    op: &'static str,
    src: (Bound<'_>, usize),
    dst: (Bound<'_>, usize),
    map: &Strided,
) -> Result<(), BackendError> {
    let k = map.kernel(op).map_err(|e| geometry_err(op, e))?;
    let mut meta = vec![k.n, w(src.1), w(dst.1)];
    index_words(&k, &mut meta);
    be.gpu().dispatch(
        STRIDED_COPY,
        &meta,
        &[src.0],
        dst.0,
        Grid::Items(k.n as usize),
    )
}

/// The op code of the `unary` kernel and its two constants.
fn unary_code(op: &UnaryOp) -> Option<(u32, f64, f64)> {
    Some(match op {
        UnaryOp::Relu => (0, 0.0, 0.0),
        UnaryOp::Sigmoid => (1, 0.0, 0.0),
        UnaryOp::Exp => (2, 0.0, 0.0),
        UnaryOp::Log => (3, 0.0, 0.0),
        UnaryOp::Scale(f) => (4, *f, 0.0),
        UnaryOp::AddScalar(v) => (5, *v, 0.0),
        UnaryOp::Clamp { lo, hi } => (6, *lo, *hi),
        UnaryOp::ReluGrad => (7, 0.0, 0.0),
        UnaryOp::SigmoidGrad => (8, 0.0, 0.0),
        UnaryOp::ExpGrad => (9, 0.0, 0.0),
        UnaryOp::LogGrad => (10, 0.0, 0.0),
        UnaryOp::ClampGrad { lo, hi } => (11, *lo, *hi),
        UnaryOp::Cast(_) => return None,
    })
}

/// First op code that reads `dy` (binding 2).
const FIRST_GRAD_CODE: u32 = 7;

/// A unary op's input and its element count, which the output's must equal.
pub(super) fn unary_operand<'a, 'b>(
    ins: &'b [In<'a>],
    out: &Out<'_>,
) -> Result<(&'b In<'a>, usize), BackendError> {
    let x = nth(ins, 0, "unary")?;
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
    Ok((x, n))
}

pub(super) fn unary(
    be: &WgpuBackend,
    op: &UnaryOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let (x, n) = unary_operand(ins, &out)?;
    let Some((code, c0, c1)) = unary_code(op) else {
        let UnaryOp::Cast(to) = op else {
            unreachable!("unary_code covers every op but casts")
        };
        return cast(be, x, out, *to, n);
    };
    let xb = input(x, "unary", DType::F32)?;
    let dy = if code >= FIRST_GRAD_CODE {
        let d = nth(ins, 1, "unary")?;
        if count("unary", d.shape)? != n {
            return Err(shape_err(
                "unary",
                format!("dy {:?} does not match {:?}", d.shape, out.shape),
            ));
        }
        input(d, "unary", DType::F32)?
    } else {
        xb
    };
    let ob = output(&out, "unary", DType::F32)?;
    be.gpu().dispatch(
        UNARY,
        &[w(n), code, fbits(c0), fbits(c1)],
        &[xb, dy],
        ob,
        Grid::Items(n),
    )
}

fn cast(
    be: &WgpuBackend,
    x: &In<'_>,
    out: Out<'_>,
    to: DType,
    n: usize,
) -> Result<(), BackendError> {
    if to != out.dtype {
        return Err(unsupported("cast", to));
    }
    let xb = input(x, "cast", x.dtype)?;
    let ob = output(&out, "cast", out.dtype)?;
    let k = match (x.dtype, out.dtype) {
        (a, b) if a == b && matches!(a, DType::F32 | DType::I32) => {
            return be.gpu().copy(xb, ob, 4 * n as u64);
        }
        (DType::F32, DType::I32) => CAST_F32_I32,
        (DType::I32, DType::F32) => CAST_I32_F32,
        (_, b) => return Err(unsupported("cast", b)),
    };
    be.gpu().dispatch(k, &[w(n)], &[xb], ob, Grid::Items(n))
}

pub(super) fn binary(
    be: &WgpuBackend,
    op: BinaryOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let [a, b] = ins else {
        return Err(shape_err("binary", "expects two inputs"));
    };
    let (ab, bb) = (
        input(a, "binary", DType::F32)?,
        input(b, "binary", DType::F32)?,
    );
    let ob = output(&out, "binary", DType::F32)?;
    let map =
        plan::plan_binary(a.shape, b.shape, out.shape).map_err(|e| geometry_err("binary", e))?;
    let k = map
        .kernel("binary")
        .map_err(|e| geometry_err("binary", e))?;
    let code = match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
    };
    let mut meta = vec![k.n, code];
    index_words(&k, &mut meta);
    be.gpu()
        .dispatch(BINARY, &meta, &[ab, bb], ob, Grid::Items(k.n as usize))
}

/// Workgroups a sum aims to keep busy: fewer, longer rows are cut into chunks
/// (`strided::row_chunks`) whose partial sums a second pass adds.
const SUM_TARGET_GROUPS: usize = 256;

/// Sums rows of `len` contiguous elements of `src` into `rows` outputs.
pub(super) fn row_sum(
    be: &WgpuBackend,
    src: Bound<'_>,
    out: Bound<'_>,
    rows: usize,
    len: usize,
) -> Result<(), BackendError> {
    if len == 0 {
        return fill_bits(be, out, rows, 0);
    }
    let (nchunks, chunk) = plan::row_chunks(rows, len, SUM_TARGET_GROUPS);
    let sum =
        |src: Bound<'_>, out: Bound<'_>, rows: usize, len: usize, chunk: usize, nchunks: usize| {
            let prm = [w(rows * nchunks), w(len), w(chunk), w(nchunks)];
            be.gpu()
                .dispatch(ROW_SUM, &prm, &[src], out, Grid::Groups(rows * nchunks))
        };
    if nchunks == 1 {
        return sum(src, out, rows, len, len, 1);
    }
    let partial = be.gpu().buffer(4 * (rows * nchunks) as u64, "sum")?;
    sum(src, (&partial).into(), rows, len, chunk, nchunks)?;
    sum((&partial).into(), out, rows, nchunks, nchunks, 1)
}

pub(super) fn reduce(
    be: &WgpuBackend,
    op: &ReduceOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let ReduceOp::Sum { axes, .. } = op;
    let x = nth(ins, 0, "sum")?;
    let xb = input(x, "sum", DType::F32)?;
    let ob = output(&out, "sum", DType::F32)?;
    let n_out = count("sum", out.shape)?;
    let p = plan::plan_reduce(x.shape, axes, n_out).map_err(|e| geometry_err("sum", e))?;
    if p.rows == 0 {
        return Ok(());
    }
    match &p.gather {
        Some(map) => {
            let scratch = be.gpu().buffer(4 * (p.rows * p.len) as u64, "sum")?;
            strided_copy(be, "sum", (xb, 0), ((&scratch).into(), 0), map)?;
            row_sum(be, (&scratch).into(), ob, p.rows, p.len)
        }
        None => row_sum(be, xb, ob, p.rows, p.len),
    }
}

pub(super) fn layout(
    be: &WgpuBackend,
    op: &LayoutOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let name = plan::op_name(op);
    if !matches!(out.dtype, DType::F32 | DType::I32) {
        return Err(unsupported(name, out.dtype));
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape).collect();
    let p = plan::plan_layout(op, &shapes, out.shape).map_err(|e| geometry_err(name, e))?;
    let bufs: Vec<Bound<'_>> = ins
        .iter()
        .map(|t| input(t, name, out.dtype))
        .collect::<Result<_, _>>()?;
    let ob = output(&out, name, out.dtype)?;
    match p {
        LayoutPlan::Memcpy { n } => be.gpu().copy(bufs[0], ob, 4 * n as u64),
        LayoutPlan::Copies { zero, copies } => {
            if zero {
                fill_bits(be, ob, count(name, out.shape)?, 0)?;
            }
            for c in &copies {
                strided_copy(
                    be,
                    name,
                    (bufs[c.input], c.src_base),
                    (ob, c.dst_base),
                    &c.map,
                )?;
            }
            Ok(())
        }
    }
}
