//! Half-precision storage, f32 arithmetic: an op with an f16 or bf16 input or output runs its
//! f32 kernel on widened copies of the half inputs and rounds the result to the output's dtype
//! once (round to nearest even). That is how mixed precision computes everywhere — torch's
//! autocast on the CPU and cuDNN/cuBLAS half GEMMs accumulate in f32 — so the CPU backend is
//! the reference for the half-precision numerics of a training step, not only for f32.

use super::super::{BackendError, TensorMut, TensorRef};
use crate::ir::{HostData, numel};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

type In<'a> = TensorRef<'a, HostData>;
type Out<'a> = TensorMut<'a, HostData>;

pub(super) use crate::backend::widen::is_half;

/// Whether an op reads or writes a half-precision tensor.
pub(super) fn involves_half(ins: &[In<'_>], out: &Out<'_>) -> bool {
    is_half(out.dtype) || ins.iter().any(|t| is_half(t.dtype))
}

/// Widens the first `dst.len()` elements of half storage into `dst` (exact); false when `src`
/// is not half storage or is too short.
fn widen_into(src: &HostData, dst: &mut [f32]) -> bool {
    let n = dst.len();
    match src {
        HostData::F16(v) if v.len() >= n => v[..n].convert_to_f32_slice(dst),
        HostData::BF16(v) if v.len() >= n => v[..n].convert_to_f32_slice(dst),
        _ => return false,
    }
    true
}

/// The first `n` elements of half storage as f32; `None` for other storage.
fn to_f32(d: &HostData, n: usize) -> Option<Vec<f32>> {
    let mut out = vec![0.0f32; n];
    widen_into(d, &mut out).then_some(out)
}

/// Rounds `src` into the first `src.len()` elements of half storage; false when `dst` is not
/// half storage or is too short.
fn round_into(src: &[f32], dst: &mut HostData) -> bool {
    let n = src.len();
    match dst {
        HostData::F16(v) if v.len() >= n => v[..n].convert_from_f32_slice(src),
        HostData::BF16(v) if v.len() >= n => v[..n].convert_from_f32_slice(src),
        _ => return false,
    }
    true
}

/// Fills the first `n` elements of half storage with `value` rounded once; false otherwise.
pub(super) fn fill(dst: &mut HostData, n: usize, value: f64) -> bool {
    match dst {
        HostData::F16(v) if v.len() >= n => v[..n].fill(f16::from_f64(value)),
        HostData::BF16(v) if v.len() >= n => v[..n].fill(bf16::from_f64(value)),
        _ => return false,
    }
    true
}

/// A cast between f32 and a half type, in bulk (the conversions mixed precision makes at
/// every convolution); `None` for other pairs, which take the general path.
pub(super) fn cast(src: &In<'_>, dst: &mut HostData) -> Option<Result<(), BackendError>> {
    let n = numel(src.shape);
    match (src.buf, &mut *dst) {
        (HostData::F32(s), d) if is_half(d.dtype()) => Some(match s.get(..n) {
            Some(s) if round_into(s, d) => Ok(()),
            _ => Err(short("cast")),
        }),
        (s, HostData::F32(d)) if is_half(s.dtype()) => {
            let done = d.get_mut(..n).is_some_and(|d| widen_into(s, d));
            Some(if done { Ok(()) } else { Err(short("cast")) })
        }
        _ => None,
    }
}

fn short(op: &'static str) -> BackendError {
    BackendError::Invalid {
        backend: "cpu",
        op,
        message: "a buffer is shorter than its tensor".into(),
    }
}

/// Runs `kernel` with every half input widened to f32 and an f32 output, then rounds the
/// output into `out` when it is half (`backend::widen`).
pub(super) fn widened(
    ins: &[In<'_>],
    out: Out<'_>,
    op: &'static str,
    kernel: impl FnOnce(&[In<'_>], Out<'_>) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let conversions = crate::backend::widen::Conversions {
        widen: |t: &In<'_>| {
            to_f32(t.buf, numel(t.shape))
                .map(HostData::F32)
                .ok_or_else(|| short(op))
        },
        scratch: |n| Ok(HostData::F32(vec![0.0; n])),
        narrow: |wide: &HostData, half: &mut HostData, _n| match wide {
            HostData::F32(v) if round_into(v, half) => Ok(()),
            _ => Err(short(op)),
        },
    };
    crate::backend::widen::widened(ins, out, conversions, kernel)
}
