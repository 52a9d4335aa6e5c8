//! `ConvOp` — `Conv2d` (x, w, optional bias), `Conv2dGradInput` (dy, w) and
//! `Conv2dGradWeight` (x, dy) — through cuDNN ([`crate::backend::cuda::cudnn`]) when the
//! backend has it, else through im2col + cuBLAS ([`crate::backend::cuda::im2col`]), which
//! refuses grouped convolutions (it is groups = 1). Every shape is checked against the
//! convolution's own geometry before a launch.

use super::{In, Out, arity, bad, input, nchw, output};
use crate::backend::BackendError;
use cudarc::driver::CudaSlice;

use crate::backend::cuda::backend::{CudaBackend, CudaBuffer, device_err};
use crate::backend::cuda::cudnn::{ConvKey, Cudnn, Pass};
use crate::backend::cuda::im2col::{Conv2d, output_shape};
use crate::ir::DType;
use crate::ir::op::{Conv2dAttrs, ConvOp};

pub(super) fn conv(
    be: &CudaBackend,
    op: &ConvOp,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let (name, attrs) = match op {
        ConvOp::Conv2d(a) => ("conv2d", a),
        ConvOp::Conv2dGradInput(a) => ("conv2d_grad_input", a),
        ConvOp::Conv2dGradWeight(a) => ("conv2d_grad_weight", a),
    };
    if let Some(cudnn) = be.cudnn() {
        return through_cudnn(be, cudnn, op, attrs, ins, out);
    }
    let a = plain_attrs(name, attrs)?;
    let (dev, blas) = (be.device(), be.blas());
    let os = nchw(name, "output", out.shape)?;
    match op {
        ConvOp::Conv2d(_) => {
            arity(name, ins, &[2, 3])?;
            let xs = nchw(name, "input", ins[0].shape)?;
            let ws = nchw(name, "weight", ins[1].shape)?;
            expect(name, "output", os, output_shape(name, xs, ws, &a))?;
            let bias = match ins.get(2) {
                Some(b) => {
                    if b.shape != [ws[0]] {
                        return Err(bad(name, format!("bias {:?} is not [{}]", b.shape, ws[0])));
                    }
                    Some(input(b, name)?)
                }
                None => None,
            };
            let (x, w) = (input(&ins[0], name)?, input(&ins[1], name)?);
            let y = output(&mut out, name)?;
            blas.conv2d(dev, x, xs, w, ws, bias, &a, y)
                .map_err(device_err)?;
        }
        ConvOp::Conv2dGradInput(_) => {
            arity(name, ins, &[2])?;
            let ys = nchw(name, "dy", ins[0].shape)?;
            let ws = nchw(name, "weight", ins[1].shape)?;
            // The output is x's gradient: x's shape must convolve to dy's.
            expect(name, "dy", ys, output_shape(name, os, ws, &a))?;
            let (dy, w) = (input(&ins[0], name)?, input(&ins[1], name)?);
            let dx = output(&mut out, name)?;
            blas.conv2d_bwd_input(dev, dy, w, ws, os, &a, dx)
                .map_err(device_err)?;
        }
        ConvOp::Conv2dGradWeight(_) => {
            arity(name, ins, &[2])?;
            let xs = nchw(name, "input", ins[0].shape)?;
            let ys = nchw(name, "dy", ins[1].shape)?;
            expect(name, "dy", ys, output_shape(name, xs, os, &a))?;
            let (x, dy) = (input(&ins[0], name)?, input(&ins[1], name)?);
            let dw = output(&mut out, name)?;
            blas.conv2d_bwd_weight(dev, x, xs, dy, os, &a, dw)
                .map_err(device_err)?;
        }
    }
    Ok(())
}

/// The three passes through cuDNN (any group count), with the same shape checks.
fn through_cudnn(
    be: &CudaBackend,
    cudnn: &Cudnn,
    op: &ConvOp,
    a: &Conv2dAttrs,
    ins: &[In<'_>],
    mut out: Out<'_>,
) -> Result<(), BackendError> {
    let (name, pass) = match op {
        ConvOp::Conv2d(_) => ("conv2d", Pass::Forward),
        ConvOp::Conv2dGradInput(_) => ("conv2d_grad_input", Pass::BackwardData),
        ConvOp::Conv2dGradWeight(_) => ("conv2d_grad_weight", Pass::BackwardFilter),
    };
    let os = nchw(name, "output", out.shape)?;
    arity(
        name,
        ins,
        if pass == Pass::Forward { &[2, 3] } else { &[2] },
    )?;
    let s0 = nchw(name, "first input", ins[0].shape)?;
    let s1 = nchw(name, "second input", ins[1].shape)?;
    // The key's x and w, and the tensor the op's other shape must equal.
    let (x, w, (what, other)) = match pass {
        Pass::Forward => (s0, s1, ("output", os)),
        Pass::BackwardData => (os, s1, ("dy", s0)),
        Pass::BackwardFilter => (s0, os, ("dy", s1)),
    };
    let key = ConvKey {
        pass,
        x,
        w,
        stride: a.stride,
        padding: a.padding,
        dilation: a.dilation,
        groups: a.groups,
        dtype: out.dtype,
    };
    if ins.iter().any(|t| t.dtype != key.dtype) {
        return Err(bad(name, "inputs and output of one dtype expected"));
    }
    let Some(y) = key.output() else {
        return Err(bad(
            name,
            format!(
                "input {x:?} and weight {w:?} with {} group(s), stride {:?}, padding {:?}, dilation {:?} give no output",
                a.groups, a.stride, a.padding, a.dilation
            ),
        ));
    };
    if other != y {
        return Err(bad(
            name,
            format!("{what} is {other:?}, the convolution gives {y:?}"),
        ));
    }
    if let Some(b) = ins.get(2)
        && b.shape != [w[0]]
    {
        return Err(bad(name, format!("bias {:?} is not [{}]", b.shape, w[0])));
    }
    let dev = be.device();
    if key.dtype == DType::F32 {
        let bias = ins.get(2).map(|b| input(b, name)).transpose()?;
        let (i0, i1) = (input(&ins[0], name)?, input(&ins[1], name)?);
        let o = output(&mut out, name)?;
        return cudnn.run(dev, key, i0, i1, bias, o).map_err(device_err);
    }
    let bias = ins.get(2).map(|b| halves(b.buf, name)).transpose()?;
    let (i0, i1) = (halves(ins[0].buf, name)?, halves(ins[1].buf, name)?);
    let o = match out.buf {
        CudaBuffer::F16(s) | CudaBuffer::BF16(s) => s,
        other => return Err(bad(name, format!("a {:?} output buffer", other.dtype()))),
    };
    cudnn.run(dev, key, i0, i1, bias, o).map_err(device_err)
}

/// A half tensor's 16-bit patterns (lengths are checked by `Cudnn::run`).
fn halves<'a>(b: &'a CudaBuffer, op: &'static str) -> Result<&'a CudaSlice<u16>, BackendError> {
    match b {
        CudaBuffer::F16(s) | CudaBuffer::BF16(s) => Ok(s),
        other => Err(bad(
            op,
            format!("a {:?} buffer where halves were expected", other.dtype()),
        )),
    }
}

/// Whether cuDNN runs this convolution on its half-precision tensors directly (f16 or bf16
/// data, f32 accumulation: tensor cores) instead of on widened f32 copies: every tensor of
/// one half type.
pub(in crate::backend::cuda) fn runs_half_directly(
    be: &CudaBackend,
    ins: &[In<'_>],
    out: &Out<'_>,
) -> bool {
    be.cudnn().is_some()
        && matches!(out.dtype, DType::F16 | DType::BF16)
        && ins.iter().all(|t| t.dtype == out.dtype)
}

/// The attributes the im2col path runs: groups = 1.
fn plain_attrs(op: &'static str, a: &Conv2dAttrs) -> Result<Conv2d, BackendError> {
    if a.groups != 1 {
        return Err(bad(
            op,
            format!(
                "groups = {} is not supported by the cuda backend (its im2col convolution is groups = 1)",
                a.groups
            ),
        ));
    }
    Ok(Conv2d {
        stride: a.stride,
        padding: a.padding,
        dilation: a.dilation,
    })
}

/// `got` must equal the shape the convolution geometry gives (or its error).
fn expect(
    op: &'static str,
    what: &str,
    got: [usize; 4],
    want: Result<[usize; 4], crate::backend::cuda::CudaError>,
) -> Result<(), BackendError> {
    let want = want.map_err(device_err)?;
    if got != want {
        return Err(bad(
            op,
            format!("{what} is {got:?}, the convolution gives {want:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_convolutions_are_refused_with_the_reason() {
        let a = Conv2dAttrs {
            groups: 32,
            ..Conv2dAttrs::default()
        };
        let e = plain_attrs("conv2d", &a).unwrap_err().to_string();
        assert!(e.contains("groups = 32"), "{e}");
        let p = plain_attrs(
            "conv2d",
            &Conv2dAttrs {
                stride: [2, 1],
                padding: [3, 0],
                dilation: [1, 2],
                groups: 1,
            },
        )
        .unwrap();
        assert_eq!((p.stride, p.padding, p.dilation), ([2, 1], [3, 0], [1, 2]));
    }

    #[test]
    fn shape_mismatches_name_the_tensor() {
        let e = expect("conv2d", "output", [1, 2, 3, 4], Ok([1, 2, 3, 5]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("output is [1, 2, 3, 4]"), "{e}");
        assert!(expect("conv2d", "output", [1, 2, 3, 4], Ok([1, 2, 3, 4])).is_ok());
    }
}
