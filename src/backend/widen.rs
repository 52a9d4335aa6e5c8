//! The one shape of every backend's mixed precision: an op that reads or writes f16/bf16
//! tensors runs its f32 kernel on widened copies of the half inputs and an f32 output, which
//! is then rounded once into the half output (`cpu::widen`, `wgpu::half`, `cuda::half` supply
//! the conversions).

use super::{BackendError, TensorMut, TensorRef};
use crate::ir::{DType, numel};

/// f16 or bf16.
pub(crate) fn is_half(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16)
}

/// How a backend converts: `widen` makes an f32 copy of a half tensor, `scratch(n)` an f32
/// buffer of `n` elements, `narrow(f32, half, n)` rounds the first `n` elements into a half
/// buffer.
pub(crate) struct Conversions<W, S, N> {
    pub widen: W,
    pub scratch: S,
    pub narrow: N,
}

/// Runs `kernel` with every half input widened to f32 and an f32 output, then rounds the
/// output into `out` when it is half.
pub(crate) fn widened<Buf, W, S, N>(
    ins: &[TensorRef<'_, Buf>],
    out: TensorMut<'_, Buf>,
    conv: Conversions<W, S, N>,
    kernel: impl FnOnce(&[TensorRef<'_, Buf>], TensorMut<'_, Buf>) -> Result<(), BackendError>,
) -> Result<(), BackendError>
where
    W: FnMut(&TensorRef<'_, Buf>) -> Result<Buf, BackendError>,
    S: FnOnce(usize) -> Result<Buf, BackendError>,
    N: FnOnce(&Buf, &mut Buf, usize) -> Result<(), BackendError>,
{
    let Conversions {
        mut widen,
        scratch,
        narrow,
    } = conv;
    let wide: Vec<Option<Buf>> = ins
        .iter()
        .map(|t| is_half(t.dtype).then(|| widen(t)).transpose())
        .collect::<Result<_, _>>()?;
    let refs: Vec<TensorRef<'_, Buf>> = ins
        .iter()
        .zip(&wide)
        .map(|(t, wide)| match wide {
            Some(buf) => TensorRef {
                buf,
                shape: t.shape,
                dtype: DType::F32,
            },
            None => TensorRef {
                buf: t.buf,
                shape: t.shape,
                dtype: t.dtype,
            },
        })
        .collect();
    if !is_half(out.dtype) {
        return kernel(&refs, out);
    }
    let n = numel(out.shape);
    let mut tmp = scratch(n)?;
    kernel(
        &refs,
        TensorMut {
            buf: &mut tmp,
            shape: out.shape,
            dtype: DType::F32,
        },
    )?;
    narrow(&tmp, out.buf, n)
}
