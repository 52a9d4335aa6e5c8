//! GEMM through the `gemm` crate (runtime-dispatched SIMD, rayon-parallel over output blocks;
//! the reduction over k is blocked by cache size only, so results do not depend on threads).

use super::Float;
use ::gemm as gemm_crate;

/// `c = a @ b` (or `c += a @ b` with `accumulate`), with explicit row/column strides so that
/// transposed operands need no copy. `a` is `m×k`, `b` is `k×n`, `c` is `m×n` row-major.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    a_rs: usize,
    a_cs: usize,
    b: &[T],
    b_rs: usize,
    b_cs: usize,
    c: &mut [T],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::ZERO);
        }
        return;
    }
    assert!(c.len() >= m * n, "gemm: dst too short");
    let par = if m * n * k >= 1 << 15 {
        gemm_crate::Parallelism::Rayon(0)
    } else {
        gemm_crate::Parallelism::None
    };
    // SAFETY: dst is m×n row-major (rs = n, cs = 1), bounded by the assert above; `&mut c`
    // cannot alias `a` or `b`.
    unsafe {
        checked_gemm(
            m,
            n,
            k,
            a,
            a_rs,
            a_cs,
            b,
            b_rs,
            b_cs,
            c.as_mut_ptr(),
            n,
            accumulate,
            par,
        )
    }
}

/// `c = a @ b` (or `c += a @ b`) into a strided destination (row stride `c_rs`). With
/// `parallel` the crate splits the output into blocks across rayon's pool (never the reduction
/// over k, so the result is the same as single-threaded); without, callers parallelise over
/// independent output tiles themselves.
///
/// # Safety
/// `c` must be valid for writes at `i * c_rs + j` for `i < m`, `j < n`, and no other thread
/// may access those elements during the call; `a` and `b` must satisfy the bounds that
/// [`gemm`] asserts.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_tile<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    a_rs: usize,
    a_cs: usize,
    b: &[T],
    b_rs: usize,
    b_cs: usize,
    c: *mut T,
    c_rs: usize,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let par = if parallel && m * n * k >= 1 << 15 {
        gemm_crate::Parallelism::Rayon(0)
    } else {
        gemm_crate::Parallelism::None
    };
    // SAFETY: the destination contract is the caller's (see above).
    unsafe {
        checked_gemm(
            m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, accumulate, par,
        )
    }
}

/// The one call into the `gemm` crate, for `m, n, k > 0`: asserts the operand bounds, then
/// computes `c = a @ b` (or `c += a @ b`) into a destination with row stride `c_rs`.
///
/// # Safety
/// `c` must be valid for writes at `i * c_rs + j` for `i < m`, `j < n`, and nothing else may
/// access those elements during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn checked_gemm<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    a_rs: usize,
    a_cs: usize,
    b: &[T],
    b_rs: usize,
    b_cs: usize,
    c: *mut T,
    c_rs: usize,
    accumulate: bool,
    par: gemm_crate::Parallelism,
) {
    assert!(
        a.len() > (m - 1) * a_rs + (k - 1) * a_cs,
        "gemm: lhs too short"
    );
    assert!(
        b.len() > (k - 1) * b_rs + (n - 1) * b_cs,
        "gemm: rhs too short"
    );
    // SAFETY: lhs reads (i*a_rs + p*a_cs) for i < m, p < k and rhs (p*b_rs + j*b_cs) are
    // bounded by the asserts above; T is f32 or f64, which the crate supports; the
    // destination contract is the caller's.
    unsafe {
        gemm_crate::gemm(
            m,
            n,
            k,
            c,
            1,
            c_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}
