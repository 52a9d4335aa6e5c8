//! GEMM on the `gemm` crates' micro-kernels (rayon-parallel over output blocks; the reduction
//! over k is blocked by cache size only, so results do not depend on threads), for the
//! instruction set [`super::isa`] picks. The crates' own entry point chooses its kernels once
//! with no way to override it, so the choice is made here and the crates' generic driver is
//! called with the chosen set's micro-kernel tables.

use super::Float;
use super::isa::{self, CpuIsa};
use gemm_common::{Parallelism, simd};
use gemm_f32::microkernel as k32;
use gemm_f64::microkernel as k64;
use std::any::TypeId;

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
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
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
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
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
    par: Parallelism,
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
    // bounded by the asserts above; the destination contract is the caller's.
    unsafe {
        dispatch(
            isa::active(),
            m,
            n,
            k,
            c,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_rs,
            a_cs,
            b.as_ptr(),
            b_rs,
            b_cs,
            par,
        )
    }
}

/// Calls the crates' generic driver with one instruction set's micro-kernels for `T`.
/// `$lanes` is the vector width in `T`s (the crates' `N`); the tables come from
/// `gemm_f32`/`gemm_f64`'s `microkernel::<set>::<type>` modules (`k32`, `k64`).
macro_rules! drive {
    ($simd:ty, $kernels:path, $t:ty, $lanes:expr, $args:expr) => {{
        use $kernels as k;
        let (m, n, kk, dst, dst_cs, dst_rs, read, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, par) =
            $args;
        let simd = <$simd as gemm_common::simd::MixedSimd<$t, $t, $t, $t>>::try_new()
            .expect("the instruction set was checked available");
        gemm_common::gemm::gemm_basic_generic::<
            _,
            $t,
            { $lanes },
            { k::MR_DIV_N * $lanes },
            { k::NR },
            { k::MR_DIV_N },
            { k::H_M },
            { k::H_N },
        >(
            simd,
            m,
            n,
            kk,
            dst as *mut $t,
            dst_cs,
            dst_rs,
            read,
            lhs as *const $t,
            lhs_cs,
            lhs_rs,
            rhs as *const $t,
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            |a, b, c| a * b + c,
            &k::UKR,
            &k::H_UKR,
            false,
            par,
        )
    }};
}

/// `c = a @ b` (or `+=`) for `T` = f32 or f64 on `isa`'s micro-kernels. As the `gemm` crate's
/// own entry point does, the problem is transposed when the destination is row-major, since
/// the micro-kernels walk columns: `c` is `m×n` with row stride `c_rs`, so the kernels see
/// `cᵀ = bᵀ aᵀ`, whose long side (the spatial one, in a convolution) is the vectorised one.
///
/// # Safety
/// As [`checked_gemm`]: the operands are in bounds and `c` is the caller's alone.
#[allow(clippy::too_many_arguments)]
unsafe fn dispatch<T: Float>(
    isa: CpuIsa,
    m: usize,
    n: usize,
    k: usize,
    c: *mut T,
    c_rs: usize,
    accumulate: bool,
    a: *const T,
    a_rs: usize,
    a_cs: usize,
    b: *const T,
    b_rs: usize,
    b_cs: usize,
    par: Parallelism,
) {
    let [a_rs, a_cs, b_rs, b_cs] = [a_rs, a_cs, b_rs, b_cs].map(|s| s as isize);
    // cᵀ[j, i] = c[i, j]: dst is n×m with row stride 1 and column stride c_rs; its lhs is bᵀ
    // (n×k: row stride b_cs, column stride b_rs) and its rhs aᵀ (k×m: row stride a_cs,
    // column stride a_rs). The tuple is in the driver's order: (m, n, k, dst, dst_cs, dst_rs,
    // read_dst, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, parallelism).
    let args = (
        n,
        m,
        k,
        c,
        c_rs as isize,
        1isize,
        accumulate,
        b,
        b_rs,
        b_cs,
        a,
        a_rs,
        a_cs,
        par,
    );
    let f32_ = TypeId::of::<T>() == TypeId::of::<f32>();
    assert!(
        f32_ || TypeId::of::<T>() == TypeId::of::<f64>(),
        "gemm: only f32 and f64"
    );
    // SAFETY: the bounds and exclusivity are the caller's contract; `isa` was checked available
    // when it was chosen (`isa::active`), which the micro-kernels' target features require.
    unsafe {
        match (isa, f32_) {
            #[cfg(target_arch = "x86_64")]
            (CpuIsa::Avx512, true) => drive!(simd::V4, k32::avx512f::f32, f32, 16, args),
            #[cfg(target_arch = "x86_64")]
            (CpuIsa::Avx512, false) => drive!(simd::V4, k64::avx512f::f64, f64, 8, args),
            #[cfg(target_arch = "x86_64")]
            (CpuIsa::Avx2, true) => drive!(simd::V3, k32::fma::f32, f32, 8, args),
            #[cfg(target_arch = "x86_64")]
            (CpuIsa::Avx2, false) => drive!(simd::V3, k64::fma::f64, f64, 4, args),
            #[cfg(target_arch = "aarch64")]
            (CpuIsa::Neon, true) => drive!(simd::Scalar, k32::neon::f32, f32, 4, args),
            #[cfg(target_arch = "aarch64")]
            (CpuIsa::Neon, false) => drive!(simd::Scalar, k64::neon::f64, f64, 2, args),
            (_, true) => drive!(simd::Scalar, k32::scalar::f32, f32, 1, args),
            (_, false) => drive!(simd::Scalar, k64::scalar::f64, f64, 1, args),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::Rng;

    /// Every instruction set this CPU has, in f32 and f64, on shapes around the micro-kernels'
    /// edges (the tiny horizontal-kernel case included), with transposed operands, a strided
    /// destination and accumulation, against an f64 loop.
    #[test]
    fn every_available_isa_matches_a_plain_loop() {
        check::<f32>(1e-5);
        check::<f64>(1e-13);
    }

    fn check<T: Float>(tol: f64) {
        let isas: Vec<_> = [CpuIsa::Avx512, CpuIsa::Avx2, CpuIsa::Neon, CpuIsa::Scalar]
            .into_iter()
            .filter(|i| i.available())
            .collect();
        let mut rng = Rng::seed(7);
        let shapes = [
            (1, 1, 1),
            (3, 70, 5),
            (5, 7, 40),
            (17, 33, 129),
            (48, 9, 300),
            (130, 65, 31),
        ];
        for &(m, n, k) in &shapes {
            for (a_t, b_t, acc) in [
                (false, false, false),
                (true, false, true),
                (false, true, true),
            ] {
                let mut draw = |len: usize| -> Vec<T> {
                    (0..len)
                        .map(|_| T::from_f64(rng.uniform_f64() - 0.5))
                        .collect()
                };
                let (a, b) = (draw(m * k), draw(k * n));
                let (a_rs, a_cs) = if a_t { (1, m) } else { (k, 1) };
                let (b_rs, b_cs) = if b_t { (1, k) } else { (n, 1) };
                let c_rs = n + 3;
                let start = draw(m * c_rs);
                for &isa in &isas {
                    for par in [Parallelism::None, Parallelism::Rayon(0)] {
                        let mut c = start.clone();
                        // SAFETY: the operands are m×k, k×n and m×c_rs as built above.
                        unsafe {
                            dispatch(
                                isa,
                                m,
                                n,
                                k,
                                c.as_mut_ptr(),
                                c_rs,
                                acc,
                                a.as_ptr(),
                                a_rs,
                                a_cs,
                                b.as_ptr(),
                                b_rs,
                                b_cs,
                                par,
                            )
                        };
                        for i in 0..m {
                            for j in 0..c_rs {
                                let got = c[i * c_rs + j].to_f64();
                                let before = start[i * c_rs + j].to_f64();
                                let want = if j >= n {
                                    before
                                } else {
                                    let dot: f64 = (0..k)
                                        .map(|p| {
                                            a[i * a_rs + p * a_cs].to_f64()
                                                * b[p * b_rs + j * b_cs].to_f64()
                                        })
                                        .sum();
                                    dot + if acc { before } else { 0.0 }
                                };
                                assert!(
                                    (got - want).abs() <= tol * (1.0 + want.abs()) * k as f64,
                                    "{isa:?} {} {m}×{n}×{k} a_t={a_t} b_t={b_t} acc={acc} at \
                                     ({i},{j}): {got} vs {want}",
                                    std::any::type_name::<T>()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
