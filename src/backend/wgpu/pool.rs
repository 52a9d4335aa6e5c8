//! `PoolOp` on the device: max pooling, nearest resizing and RoIAlign with their gradients, with
//! the CPU backend's semantics (`backend::cpu::{pool, roi_align}`); the kernels are
//! `kernels/wgsl/pool.wgsl`.
//!
//! Max pooling takes any kernel, stride and padding per axis (padding is −∞, ties go to the
//! first maximum). Its gradient, whose IR inputs are `(x, dy)`, recomputes each window's winner
//! into a scratch buffer and then gathers: every input element sums `dy` over the windows it
//! won, in the CPU's order, so the result is deterministic. The resize's gradient is the same
//! kind of gather, and the resize maps `dst → floor(dst · in / out)` in exact integer
//! arithmetic (no f32 scale to pick).
//!
//! RoIAlign's gradient is a scatter with a compare-and-swap float add into the zeroed output
//! (as torchvision's atomics): its last bits vary run to run. A box whose batch index names no
//! image of the batch reads nothing (its bins are 0) and gets no gradient, as on the CUDA
//! backend; the CPU refuses it, but the boxes live on the device and checking them would cost a
//! host round trip per op.

use super::context::{Grid, Kernel, Module};
use super::tensor::fill_bits;
use super::{In, Out, WgpuBackend, count, fbits, geometry_err, input, output, shape_err, w};
use crate::backend::BackendError;
use crate::backend::geometry::roi_bins;
use crate::ir::op::*;
use crate::ir::{DType, conv_out_size};

const fn kernel(entry: &'static str, inputs: usize) -> Kernel {
    Kernel {
        module: Module::Pool,
        entry,
        inputs,
    }
}

const MAX_POOL: Kernel = kernel("max_pool2d", 1);
const MAX_POOL_ARGMAX: Kernel = kernel("max_pool2d_argmax", 1);
const MAX_POOL_GRAD: Kernel = kernel("max_pool2d_grad", 2);
const UPSAMPLE: Kernel = kernel("upsample_nearest", 1);
const UPSAMPLE_GRAD: Kernel = kernel("upsample_nearest_grad", 1);
const ROI_ALIGN: Kernel = kernel("roi_align", 2);
const ROI_ALIGN_GRAD: Kernel = kernel("roi_align_grad", 2);

pub(super) fn pool(
    be: &WgpuBackend,
    op: &PoolOp,
    ins: &[In<'_>],
    out: Out<'_>,
) -> Result<(), BackendError> {
    let gpu = be.gpu();
    match op {
        PoolOp::MaxPool2d {
            kernel,
            stride,
            padding,
        } => {
            const OP: &str = "max_pool2d";
            arity(OP, ins, 1)?;
            let xs = nchw(OP, "input", ins[0].shape)?;
            let ys = nchw(OP, "output", out.shape)?;
            expect_pooled(OP, "output", xs, ys, *kernel, *stride, *padding)?;
            let x = input(&ins[0], OP, DType::F32)?;
            let y = output(&out, OP, DType::F32)?;
            let n = count(OP, &ys)?;
            let meta = pool_meta(xs, ys, *kernel, *stride, *padding);
            gpu.dispatch(MAX_POOL, &meta, &[x], y, Grid::Items(n))
        }
        PoolOp::MaxPool2dGrad {
            kernel,
            stride,
            padding,
        } => {
            const OP: &str = "max_pool2d_grad";
            arity(OP, ins, 2)?;
            let xs = nchw(OP, "input", ins[0].shape)?;
            let ys = nchw(OP, "dy", ins[1].shape)?;
            if out.shape != xs {
                return Err(shape_err(
                    OP,
                    format!("output {:?} is not the input's shape {xs:?}", out.shape),
                ));
            }
            expect_pooled(OP, "dy", xs, ys, *kernel, *stride, *padding)?;
            let (x, dy) = (
                input(&ins[0], OP, DType::F32)?,
                input(&ins[1], OP, DType::F32)?,
            );
            let dx = output(&out, OP, DType::F32)?;
            let (nx, ny) = (count(OP, &xs)?, count(OP, &ys)?);
            let meta = pool_meta(xs, ys, *kernel, *stride, *padding);
            // The IR keeps x, not the forward's indices: find the winners again.
            let winners = gpu.buffer(4 * ny as u64, OP)?;
            let winners = (&winners).into();
            gpu.dispatch(MAX_POOL_ARGMAX, &meta, &[x], winners, Grid::Items(ny))?;
            gpu.dispatch(MAX_POOL_GRAD, &meta, &[dy, winners], dx, Grid::Items(nx))
        }
        PoolOp::UpsampleNearest => {
            const OP: &str = "upsample_nearest";
            arity(OP, ins, 1)?;
            let small = nchw(OP, "input", ins[0].shape)?;
            let big = nchw(OP, "output", out.shape)?;
            let meta = resize_meta(OP, small, big)?;
            let x = input(&ins[0], OP, DType::F32)?;
            let y = output(&out, OP, DType::F32)?;
            gpu.dispatch(UPSAMPLE, &meta, &[x], y, Grid::Items(count(OP, &big)?))
        }
        PoolOp::UpsampleNearestGrad => {
            const OP: &str = "upsample_nearest_grad";
            arity(OP, ins, 1)?;
            let big = nchw(OP, "dy", ins[0].shape)?;
            let small = nchw(OP, "output", out.shape)?;
            let meta = resize_meta(OP, small, big)?;
            let dy = input(&ins[0], OP, DType::F32)?;
            let dx = output(&out, OP, DType::F32)?;
            gpu.dispatch(
                UPSAMPLE_GRAD,
                &meta,
                &[dy],
                dx,
                Grid::Items(count(OP, &small)?),
            )
        }
        PoolOp::RoiAlign(a) => {
            const OP: &str = "roi_align";
            arity(OP, ins, 2)?;
            let xs = nchw(OP, "input", ins[0].shape)?;
            let ys = roi_output(OP, ins[1].shape, out.shape, "output", xs, a)?;
            let k = ys[0];
            let (x, rois) = (
                input(&ins[0], OP, DType::F32)?,
                input(&ins[1], OP, DType::F32)?,
            );
            let y = output(&out, OP, DType::F32)?;
            let n = count(OP, &ys)?;
            gpu.dispatch(
                ROI_ALIGN,
                &roi_meta(xs, k, a),
                &[x, rois],
                y,
                Grid::Items(n),
            )
        }
        PoolOp::RoiAlignGrad(a) => {
            const OP: &str = "roi_align_grad";
            arity(OP, ins, 2)?;
            let xs = nchw(OP, "output", out.shape)?;
            let ys = roi_output(OP, ins[0].shape, ins[1].shape, "dy", xs, a)?;
            let k = ys[0];
            let (rois, dy) = (
                input(&ins[0], OP, DType::F32)?,
                input(&ins[1], OP, DType::F32)?,
            );
            let dx = output(&out, OP, DType::F32)?;
            let (nx, ny) = (count(OP, &xs)?, count(OP, &ys)?);
            // The scatter adds into dx: it starts at zero.
            fill_bits(be, dx, nx, 0)?;
            let meta = roi_meta(xs, k, a);
            gpu.dispatch(ROI_ALIGN_GRAD, &meta, &[rois, dy], dx, Grid::Items(ny))
        }
    }
}

/// Checks the number of inputs (the kernels bind exactly the op's list).
fn arity(op: &'static str, ins: &[In<'_>], want: usize) -> Result<(), BackendError> {
    if ins.len() != want {
        return Err(shape_err(
            op,
            format!("expects {want} inputs, got {}", ins.len()),
        ));
    }
    Ok(())
}

fn nchw(op: &'static str, what: &str, s: &[usize]) -> Result<[usize; 4], BackendError> {
    <[usize; 4]>::try_from(s)
        .map_err(|_| shape_err(op, format!("{what} must be 4-D (NCHW), got {s:?}")))
}

/// `pooled` must be the max pool of `xs`: same N and C, the floor-mode size per axis.
fn expect_pooled(
    op: &'static str,
    what: &str,
    xs: [usize; 4],
    pooled: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
) -> Result<(), BackendError> {
    if k.contains(&0) || s.contains(&0) {
        return Err(shape_err(
            op,
            format!("kernel {k:?} and stride {s:?} must be positive"),
        ));
    }
    // The kernels form padded coordinates (index + padding, window ends, strides) in u32;
    // checked first, so that the size below cannot overflow either.
    let fits = |axis: usize| {
        [xs[2 + axis], p[axis], p[axis], k[axis], s[axis]]
            .iter()
            .try_fold(0usize, |a, &v| a.checked_add(v))
            .is_some_and(|v| v <= u32::MAX as usize)
    };
    if !(fits(0) && fits(1)) {
        return Err(shape_err(
            op,
            format!("input {xs:?}, kernel {k:?}, stride {s:?}, padding {p:?} overflow u32"),
        ));
    }
    let size = |axis: usize| {
        conv_out_size(xs[2 + axis], k[axis], s[axis], p[axis], 1).ok_or_else(|| {
            shape_err(
                op,
                format!("input {xs:?} with padding {p:?} is smaller than kernel {k:?}"),
            )
        })
    };
    let want = [xs[0], xs[1], size(0)?, size(1)?];
    if pooled != want {
        return Err(shape_err(
            op,
            format!("{what} is {pooled:?}, pooling {xs:?} gives {want:?}"),
        ));
    }
    Ok(())
}

/// The max-pool kernels' words: `[planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw]`.
fn pool_meta(
    xs: [usize; 4],
    ys: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
) -> [u32; 11] {
    [
        w(xs[0] * xs[1]),
        w(xs[2]),
        w(xs[3]),
        w(ys[2]),
        w(ys[3]),
        w(k[0]),
        w(k[1]),
        w(s[0]),
        w(s[1]),
        w(p[0]),
        w(p[1]),
    ]
}

/// The resize kernels' words `[planes, h, w, oh, ow]` between `small` (the forward's input)
/// and `big` (its output), after checking that they agree and that the kernels' integer map
/// (`dst · in / out` and its inverse) stays within u32.
fn resize_meta(
    op: &'static str,
    small: [usize; 4],
    big: [usize; 4],
) -> Result<[u32; 5], BackendError> {
    if small[..2] != big[..2] {
        return Err(shape_err(
            op,
            format!("{small:?} and {big:?} differ in batch or channels"),
        ));
    }
    count(op, &small)?;
    count(op, &big)?;
    // Output planes with pixels need input pixels to copy (the CPU's `in - 1` underflows).
    if small[0] * small[1] > 0 && big[2] * big[3] > 0 && small[2] * small[3] == 0 {
        return Err(shape_err(op, format!("cannot resize {small:?} to {big:?}")));
    }
    for (i, o) in [(small[2], big[2]), (small[3], big[3])] {
        if (o + 1).checked_mul(i).is_none_or(|v| v > u32::MAX as usize) {
            return Err(shape_err(
                op,
                format!("resizing {i} to {o} overflows the kernels' u32 index map"),
            ));
        }
    }
    Ok([
        w(small[0] * small[1]),
        w(small[2]),
        w(small[3]),
        w(big[2]),
        w(big[3]),
    ])
}

/// RoIAlign's bins (`geometry::roi_bins`), and what these kernels add: a map with bins to
/// fill must not be empty, the sampling ratio must fit u32.
fn roi_output(
    op: &'static str,
    rois: &[usize],
    bins: &[usize],
    what: &'static str,
    xs: [usize; 4],
    a: &RoiAlignAttrs,
) -> Result<[usize; 4], BackendError> {
    let want = roi_bins(rois, bins, what, xs[1], a).map_err(|e| geometry_err(op, e))?;
    let k = want[0];
    if want.iter().all(|&d| d > 0) && xs.contains(&0) {
        return Err(shape_err(
            op,
            format!("{k} boxes on an empty feature map {xs:?}"),
        ));
    }
    if u32::try_from(a.sampling_ratio).is_err() {
        return Err(shape_err(
            op,
            format!("sampling ratio {} exceeds u32", a.sampling_ratio),
        ));
    }
    Ok(want)
}

/// The RoIAlign kernels' words:
/// `[n, c, h, w, k, ph, pw, sampling_ratio, aligned, spatial_scale bits]`.
fn roi_meta(xs: [usize; 4], k: usize, a: &RoiAlignAttrs) -> [u32; 10] {
    [
        w(xs[0]),
        w(xs[1]),
        w(xs[2]),
        w(xs[3]),
        w(k),
        w(a.output[0]),
        w(a.output[1]),
        w(a.sampling_ratio),
        u32::from(a.aligned),
        fbits(a.spatial_scale),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::pool as cpu;
    use crate::backend::{Backend, TensorMut, TensorRef};
    use crate::ir::{HostData, HostTensor};
    use crate::util::rng::Rng;

    /// The default adapter, or `None` (the test skips) where wgpu finds none.
    fn backend() -> Option<WgpuBackend> {
        match WgpuBackend::open(&super::super::AdapterChoice::Default) {
            Ok(b) => Some(b),
            Err(why) => {
                crate::errln!("skipped: {why}");
                None
            }
        }
    }

    fn run(
        be: &WgpuBackend,
        op: &PoolOp,
        ins: &[(&[usize], Vec<f32>)],
        out_shape: &[usize],
    ) -> Result<Vec<f32>, BackendError> {
        let bufs: Vec<_> = ins
            .iter()
            .map(|(s, v)| {
                be.upload(&HostTensor::new(s.to_vec(), HostData::F32(v.clone())).unwrap())
            })
            .collect::<Result<_, _>>()?;
        let refs: Vec<_> = ins
            .iter()
            .zip(&bufs)
            .map(|((s, _), b)| TensorRef {
                buf: b,
                shape: s,
                dtype: DType::F32,
            })
            .collect();
        let n: usize = out_shape.iter().product();
        let mut out =
            be.upload(&HostTensor::new(vec![n], HostData::F32(vec![f32::NAN; n])).unwrap())?;
        be.pool(
            op,
            &refs,
            TensorMut {
                buf: &mut out,
                shape: out_shape,
                dtype: DType::F32,
            },
        )?;
        Ok(be
            .download(&out, DType::F32, &[n])?
            .to_f64_vec()
            .iter()
            .map(|&v| v as f32)
            .collect())
    }

    /// Non-square kernels, strides and paddings (windows partly or wholly in the padding) on
    /// inputs from a few levels (ties everywhere): the values and the routed gradients are the
    /// CPU's bit for bit (a max is exact, and the gather adds in the CPU's order).
    #[test]
    fn max_pool_matches_the_cpu_bitwise_with_ties_and_padding() {
        let Some(be) = backend() else { return };
        let mut rng = Rng::seed(7);
        for _ in 0..40 {
            let (h, w) = (1 + rng.below(9) as usize, 1 + rng.below(9) as usize);
            let k = [1 + rng.below(4) as usize, 1 + rng.below(4) as usize];
            let s = [1 + rng.below(3) as usize, 1 + rng.below(3) as usize];
            let p = [
                rng.below(k[0] as u64 + 1) as usize,
                rng.below(k[1] as u64 + 1) as usize,
            ];
            let (Some(ho), Some(wo)) = (
                conv_out_size(h, k[0], s[0], p[0], 1),
                conv_out_size(w, k[1], s[1], p[1], 1),
            ) else {
                continue;
            };
            let (xs, ys) = ([2, 3, h, w], [2, 3, ho, wo]);
            let x: Vec<f32> = (0..6 * h * w).map(|_| rng.below(3) as f32).collect();
            let dy: Vec<f32> = (0..6 * ho * wo)
                .map(|_| rng.range_f64(-1.0, 1.0) as f32)
                .collect();
            let mut want_y = vec![0f32; dy.len()];
            cpu::max_pool2d(&x, &xs, k, s, p, &mut want_y, &ys);
            let mut want_dx = vec![0f32; x.len()];
            cpu::max_pool2d_grad(&x, &xs, &dy, &ys, k, s, p, &mut want_dx);
            let (kernel, stride, padding) = (k, s, p);
            let y = run(
                &be,
                &PoolOp::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                },
                &[(&xs, x.clone())],
                &ys,
            )
            .unwrap();
            let dx = run(
                &be,
                &PoolOp::MaxPool2dGrad {
                    kernel,
                    stride,
                    padding,
                },
                &[(&xs, x), (&ys, dy)],
                &xs,
            )
            .unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "{xs:?} k{k:?} s{s:?} p{p:?}");
            assert_eq!(bits(&dx), bits(&want_dx), "{xs:?} k{k:?} s{s:?} p{p:?}");
        }
    }

    /// Up- and downsampling by odd ratios: the CPU's results bit for bit.
    #[test]
    fn nearest_resize_matches_the_cpu_bitwise_both_ways() {
        let Some(be) = backend() else { return };
        let mut rng = Rng::seed(8);
        for (small, big) in [
            ([5, 7], [13, 3]),
            ([9, 4], [2, 11]),
            ([1, 1], [3, 2]),
            ([6, 6], [6, 6]),
        ] {
            let (xs, ys) = ([1, 2, small[0], small[1]], [1, 2, big[0], big[1]]);
            let x: Vec<f32> = (0..2 * small[0] * small[1])
                .map(|_| rng.range_f64(-1.0, 1.0) as f32)
                .collect();
            let dy: Vec<f32> = (0..2 * big[0] * big[1])
                .map(|_| rng.range_f64(-1.0, 1.0) as f32)
                .collect();
            let mut want_y = vec![0f32; dy.len()];
            cpu::upsample_nearest(&x, &xs, &mut want_y, &ys);
            let mut want_dx = vec![0f32; x.len()];
            cpu::upsample_nearest_grad(&dy, &ys, &mut want_dx, &xs);
            let y = run(&be, &PoolOp::UpsampleNearest, &[(&xs, x)], &ys).unwrap();
            let dx = run(&be, &PoolOp::UpsampleNearestGrad, &[(&ys, dy)], &xs).unwrap();
            assert_eq!(y, want_y, "{xs:?} -> {ys:?}");
            assert_eq!(dx, want_dx, "{ys:?} -> {xs:?}");
        }
    }

    /// A box naming no image of the batch reads nothing and gets no gradient; malformed ops
    /// are errors.
    #[test]
    fn stray_boxes_read_nothing_and_malformed_ops_are_refused() {
        let Some(be) = backend() else { return };
        let a = RoiAlignAttrs {
            output: [2, 2],
            spatial_scale: 1.0,
            sampling_ratio: 2,
            aligned: true,
        };
        let xs = [1, 1, 4, 4];
        let rois = vec![
            1.0, 0.0, 0.0, 3.0, 3.0, -1.0, 0.0, 0.0, 3.0, 3.0, 0.5, 0.0, 0.0, 3.0, 3.0,
        ];
        let y = run(
            &be,
            &PoolOp::RoiAlign(a),
            &[(&xs, vec![1.0; 16]), (&[3, 5], rois.clone())],
            &[3, 1, 2, 2],
        )
        .unwrap();
        assert_eq!(y, vec![0.0; 12]);
        let dx = run(
            &be,
            &PoolOp::RoiAlignGrad(a),
            &[(&[3, 5], rois), (&[3, 1, 2, 2], vec![1.0; 12])],
            &xs,
        )
        .unwrap();
        assert_eq!(dx, vec![0.0; 16]);

        let mp = PoolOp::MaxPool2d {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        };
        let x = vec![0.0; 16];
        // Wrong output size, input count, rank.
        assert!(run(&be, &mp, &[(&xs, x.clone())], &[1, 1, 3, 3]).is_err());
        assert!(
            run(
                &be,
                &mp,
                &[(&xs, x.clone()), (&xs, x.clone())],
                &[1, 1, 2, 2]
            )
            .is_err()
        );
        assert!(run(&be, &mp, &[(&[16], x.clone())], &[1, 1, 2, 2]).is_err());
        let zero_k = PoolOp::MaxPool2d {
            kernel: [0, 3],
            stride: [2, 2],
            padding: [0, 0],
        };
        assert!(run(&be, &zero_k, &[(&xs, x.clone())], &[1, 1, 2, 2]).is_err());
        // Channels differ; boxes not [K, 5].
        assert!(
            run(
                &be,
                &PoolOp::UpsampleNearest,
                &[(&xs, x.clone())],
                &[1, 2, 8, 8]
            )
            .is_err()
        );
        assert!(
            run(
                &be,
                &PoolOp::RoiAlign(a),
                &[(&xs, x), (&[1, 4], vec![0.0; 4])],
                &[1, 1, 2, 2]
            )
            .is_err()
        );
    }
}
