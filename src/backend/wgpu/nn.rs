//! Matrix products and convolutions (forward, input gradient, weight gradient, any groups) as
//! one tiled implicit GEMM (`kernels/wgsl/gemm.wgsl`): the convolution windows are gathered
//! while the tiles load. Geometry is checked on the host ([`MatmulGeo`], [`ConvGeo`]) before
//! any dispatch. The weight gradient, whose sum runs over every image and output position, is
//! split along that sum so that enough workgroups share it, then the splits are summed.

use super::context::{Bound, Grid, Kernel, Module};
use super::{In, Out, WgpuBackend, count, geometry_err, input, output, shape_err, w};
use crate::backend::BackendError;
use crate::backend::geometry::{ConvGeo, MatmulGeo};
use crate::ir::DType;
use crate::ir::op::*;

const fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        module: Module::Gemm,
        entry,
        inputs: 3,
    }
}

const MATMUL: Kernel = kernel("matmul");
const CONV_FORWARD: Kernel = kernel("conv_forward");
const CONV_GRAD_INPUT: Kernel = kernel("conv_grad_input");
const CONV_GRAD_WEIGHT: Kernel = kernel("conv_grad_weight");
const SUM_SPLITS: Kernel = kernel("sum_splits");

/// Results per workgroup along each side (`TILE` in gemm.wgsl).
const TILE: usize = 64;
/// Workgroups the weight gradient aims for (splits of its sum make up the difference).
const TARGET_GROUPS: usize = 512;
/// The shortest split of the weight gradient's sum worth a workgroup.
const MIN_SPLIT: usize = 1024;

/// The parameter words of gemm.wgsl: M, N, K, flags, then the convolution geometry.
fn words(
    m: usize,
    n: usize,
    k: usize,
    flags: u32,
    conv: Option<(&ConvGeo, &Conv2dAttrs)>,
) -> Vec<u32> {
    let mut v = vec![w(m), w(n), w(k), flags];
    match conv {
        Some((g, a)) => v.extend(
            [
                g.x[0],
                g.x[1],
                g.x[2],
                g.x[3],
                g.w[0],
                g.y[2],
                g.y[3],
                g.w[2],
                g.w[3],
                a.stride[0],
                a.stride[1],
                a.padding[0],
                a.padding[1],
                a.dilation[0],
                a.dilation[1],
                a.groups,
            ]
            .map(w),
        ),
        None => v.extend([0; 16]),
    }
    v.push(0); // K per split, set by the weight gradient
    v
}

/// The workgroup grid of an `m × n` result per `z` item.
fn tiles(op: &'static str, m: usize, n: usize, z: usize) -> Result<Grid, BackendError> {
    let fit = |v: usize| {
        u32::try_from(v).map_err(|_| shape_err(op, format!("{v} workgroups along one axis")))
    };
    Ok(Grid::Exact([
        fit(n.div_ceil(TILE))?,
        fit(m.div_ceil(TILE))?,
        fit(z)?,
    ]))
}

pub(super) fn matmul(
    be: &WgpuBackend,
    op: &MatmulOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    const OP: &str = "matmul";
    if ins.len() != 2 {
        return Err(shape_err(
            OP,
            format!("expects 2 inputs, got {}", ins.len()),
        ));
    }
    let g = MatmulGeo::new(op, ins[0].shape, ins[1].shape, out.shape)
        .map_err(|e| geometry_err(OP, e))?;
    let (a, b) = (
        input(&ins[0], OP, DType::F32)?,
        input(&ins[1], OP, DType::F32)?,
    );
    let y = output(&out, OP, DType::F32)?;
    count(OP, out.shape)?;
    let flags = u32::from(op.trans_a) | (u32::from(op.trans_b) << 1);
    let prm = words(g.m, g.n, g.k, flags, None);
    be.gpu()
        .dispatch(MATMUL, &prm, &[a, b, a], y, tiles(OP, g.m, g.n, g.batch)?)
}

pub(super) fn conv(
    be: &WgpuBackend,
    op: &ConvOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let (name, a) = match op {
        ConvOp::Conv2d(a) => ("conv2d", a),
        ConvOp::Conv2dGradInput(a) => ("conv2d_grad_input", a),
        ConvOp::Conv2dGradWeight(a) => ("conv2d_grad_weight", a),
    };
    let bad = |m: String| shape_err(name, m);
    let geo = |e| geometry_err(name, e);
    let arity = |allowed: &[usize]| {
        if allowed.contains(&ins.len()) {
            Ok(())
        } else {
            Err(shape_err(
                name,
                format!("expects {allowed:?} inputs, got {}", ins.len()),
            ))
        }
    };
    let y = output(&out, name, DType::F32)?;
    for t in ins {
        count(name, t.shape)?;
    }
    match op {
        ConvOp::Conv2d(_) => {
            arity(&[2, 3])?;
            let g = ConvGeo::new(a, ins[0].shape, ins[1].shape).map_err(geo)?;
            if out.shape != g.y {
                return Err(bad(format!(
                    "output is {:?}, the convolution gives {:?}",
                    out.shape, g.y
                )));
            }
            let (x, wt) = (
                input(&ins[0], name, DType::F32)?,
                input(&ins[1], name, DType::F32)?,
            );
            let bias = match ins.get(2) {
                Some(b) if b.shape != [g.w[0]] => {
                    return Err(bad(format!("bias {:?} is not [{}]", b.shape, g.w[0])));
                }
                Some(b) => Some(input(b, name, DType::F32)?),
                None => None,
            };
            let (m, n, k) = (g.w[0] / a.groups, g.y[2] * g.y[3], g.w[1] * g.w[2] * g.w[3]);
            let prm = words(m, n, k, u32::from(bias.is_some()), Some((&g, a)));
            let grid = tiles(name, m, n, g.x[0] * a.groups)?;
            be.gpu()
                .dispatch(CONV_FORWARD, &prm, &[x, wt, bias.unwrap_or(wt)], y, grid)
        }
        ConvOp::Conv2dGradInput(_) => {
            arity(&[2])?;
            // The output is x's gradient: x's shape must convolve to dy's.
            let g = ConvGeo::with_output(a, out.shape, ins[1].shape, ins[0].shape).map_err(geo)?;
            let (dy, wt) = (
                input(&ins[0], name, DType::F32)?,
                input(&ins[1], name, DType::F32)?,
            );
            let (m, n, k) = (
                g.w[1],
                g.x[2] * g.x[3],
                (g.w[0] / a.groups) * g.w[2] * g.w[3],
            );
            let prm = words(m, n, k, 0, Some((&g, a)));
            let grid = tiles(name, m, n, g.x[0] * a.groups)?;
            be.gpu()
                .dispatch(CONV_GRAD_INPUT, &prm, &[dy, wt, dy], y, grid)
        }
        ConvOp::Conv2dGradWeight(_) => {
            arity(&[2])?;
            let g = ConvGeo::with_output(a, ins[0].shape, out.shape, ins[1].shape).map_err(geo)?;
            let (x, dy) = (
                input(&ins[0], name, DType::F32)?,
                input(&ins[1], name, DType::F32)?,
            );
            grad_weight(be, name, &g, a, x, dy, y)
        }
    }
}

/// The weight gradient: `splits` partial sums over the images' output positions, each a GEMM
/// of `dy` by the input's windows, then their sum (one split writes the output directly).
fn grad_weight(
    be: &WgpuBackend,
    name: &'static str,
    g: &ConvGeo,
    a: &Conv2dAttrs,
    x: Bound<'_>,
    dy: Bound<'_>,
    dw: Bound<'_>,
) -> Result<(), BackendError> {
    let (m, n) = (g.w[0] / a.groups, g.w[1] * g.w[2] * g.w[3]);
    let total = g.y[0] * g.y[2] * g.y[3];
    let groups = m.div_ceil(TILE) * n.div_ceil(TILE) * a.groups;
    let splits = TARGET_GROUPS
        .div_ceil(groups.max(1))
        .clamp(1, total.div_ceil(MIN_SPLIT).max(1));
    let per_split = total.div_ceil(splits);
    let splits = total.div_ceil(per_split.max(1)).max(1);
    let mut prm = words(m, n, total, 0, Some((g, a)));
    *prm.last_mut().expect("words ends with K per split") = w(per_split);
    let grid = tiles(name, m, n, splits * a.groups)?;
    if splits == 1 {
        return be
            .gpu()
            .dispatch(CONV_GRAD_WEIGHT, &prm, &[x, dy, x], dw, grid);
    }
    let len = g.w.iter().product::<usize>();
    let scratch = be.gpu().buffer(4 * (splits * len) as u64, name)?;
    let scratch = Bound::from(&scratch);
    be.gpu()
        .dispatch(CONV_GRAD_WEIGHT, &prm, &[x, dy, x], scratch, grid)?;
    be.gpu().dispatch(
        SUM_SPLITS,
        &[w(len), w(splits)],
        &[scratch, scratch, scratch],
        dw,
        Grid::Items(len),
    )
}
