//! GEMM through cuBLAS (row-major wrapper over column-major `cublasSgemm`); convolution is
//! im2col (`kernels/conv.ptx`) + this GEMM, in `im2col.rs`.

use cudarc::cublas::{
    CudaBlas, Gemm, GemmConfig, StridedBatchedConfig,
    sys::{cublasMath_t, cublasOperation_t},
};
use cudarc::driver::{DevicePtr, DevicePtrMut};

use super::device::CudaDevice;
use super::error::CudaError;

/// A cuBLAS handle bound to the device's stream.
pub struct Blas {
    handle: CudaBlas,
}

impl Blas {
    /// Opens cuBLAS; a missing libcublas is an error, not cudarc's panic. With `tf32`, f32
    /// GEMMs may run on TF32 tensor cores (`CUBLAS_TF32_TENSOR_OP_MATH`, what PyTorch's
    /// `allow_tf32` selects); without it they are strict f32 (`CUBLAS_DEFAULT_MATH`).
    pub fn new(dev: &CudaDevice, tf32: bool) -> Result<Self, CudaError> {
        // SAFETY: only tries to dlopen libcublas by its usual names.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(CudaError::Blas {
                context: "open",
                message: "libcublas could not be loaded (put its folder on LD_LIBRARY_PATH)".into(),
            });
        }
        let handle = CudaBlas::new(dev.stream().clone()).map_err(|e| CudaError::Blas {
            context: "cublasCreate",
            message: format!("{e:?}"),
        })?;
        let math = if tf32 {
            cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle was just created and lives as long as `handle`.
        unsafe { cudarc::cublas::sys::cublasSetMathMode(*handle.handle(), math) }
            .result()
            .map_err(|e| CudaError::Blas {
                context: "cublasSetMathMode",
                message: format!("{e:?}"),
            })?;
        Ok(Blas { handle })
    }

    /// Row-major `c[m, n] = alpha * op(a) @ op(b) + beta * c`, where `op(a)` is `[m, k]`
    /// (`a` stored `[k, m]` when `trans_a`) and `op(b)` is `[k, n]` (`b` stored `[n, k]`
    /// when `trans_b`).
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &A,
        trans_a: bool,
        b: &B,
        trans_b: bool,
        c: &mut C,
        alpha: f32,
        beta: f32,
    ) -> Result<(), CudaError> {
        self.sgemm_batched((m, n, k), 1, a, trans_a, b, trans_b, c, alpha, beta)
    }

    /// [`Blas::sgemm`] over `batch` matrices stored one after another in each buffer, as one
    /// strided-batched cuBLAS call (`cublasSgemmStridedBatched`).
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm_batched<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
        &self,
        (m, n, k): (usize, usize, usize),
        batch: usize,
        a: &A,
        trans_a: bool,
        b: &B,
        trans_b: bool,
        c: &mut C,
        alpha: f32,
        beta: f32,
    ) -> Result<(), CudaError> {
        let op = "sgemm";
        let fits = |v: usize| i32::try_from(v).is_ok();
        if ![m, n, k, m * k, k * n, m * n, batch].into_iter().all(fits)
            || m == 0
            || n == 0
            || k == 0
            || batch == 0
        {
            return Err(CudaError::shape(
                op,
                format!("dims ({m}, {n}, {k}) x {batch} must be in 1..2^31"),
            ));
        }
        if a.len() < batch * m * k || b.len() < batch * k * n || c.len() < batch * m * n {
            return Err(CudaError::shape(
                op,
                "a buffer is shorter than its matrices",
            ));
        }
        // Row-major C = A B is column-major C^T = B^T A^T: swap the operands.
        let t = |tr: bool| {
            if tr {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let gemm = GemmConfig {
            transa: t(trans_b),
            transb: t(trans_a),
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha,
            lda: if trans_b { k } else { n } as i32,
            ldb: if trans_a { m } else { k } as i32,
            beta,
            ldc: n as i32,
        };
        let result = if batch == 1 {
            // SAFETY: dims and leading dimensions describe matrices inside the checked buffers.
            unsafe { self.handle.gemm(gemm, b, a, c) }
        } else {
            let cfg = StridedBatchedConfig {
                gemm,
                batch_size: batch as i32,
                stride_a: (k * n) as i64,
                stride_b: (m * k) as i64,
                stride_c: (m * n) as i64,
            };
            // SAFETY: as above, for each of `batch` matrices at the checked strides.
            unsafe { self.handle.gemm_strided_batched(cfg, b, a, c) }
        };
        result.map_err(|e| CudaError::Blas {
            context: if batch == 1 {
                "cublasSgemm"
            } else {
                "cublasSgemmStridedBatched"
            },
            message: format!("{e:?}"),
        })
    }
}
