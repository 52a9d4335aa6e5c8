//! Errors of the CUDA backend: unavailable hardware, driver failures, bad shapes.

use cudarc::driver::DriverError;

/// Everything the CUDA backend can fail with. Shape errors name the op and the mismatch.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The CUDA driver library (libcuda) could not be opened.
    #[error(
        "no CUDA driver: libcuda could not be loaded (is this a GPU machine with the NVIDIA driver installed?)"
    )]
    NoDriver,
    /// The driver is present but has no device with this ordinal.
    #[error("no CUDA device {ordinal}: the driver reports {count} device(s)")]
    NoDevice { ordinal: usize, count: usize },
    /// `--device` did not name a device this build understands.
    #[error("bad device `{0}`: expected `cpu` or `cuda:N`")]
    BadDeviceName(String),
    /// A CUDA driver call failed (launch, copy, module load).
    #[error("CUDA driver error in {context}: {source}")]
    Driver {
        context: &'static str,
        #[source]
        source: DriverError,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS error in {context}: {message}")]
    Blas {
        context: &'static str,
        message: String,
    },
    /// A cuDNN call failed.
    #[error("cuDNN error in {context}: {message}")]
    Cudnn {
        context: &'static str,
        message: String,
    },
    /// Shapes or lengths do not satisfy the op's contract.
    #[error("{op}: {message}")]
    Shape { op: &'static str, message: String },
}

impl CudaError {
    pub(crate) fn shape(op: &'static str, message: impl Into<String>) -> Self {
        CudaError::Shape {
            op,
            message: message.into(),
        }
    }
}

/// Attaches a context to driver results: `stream.synchronize().ctx("synchronize")?`.
pub(crate) trait DriverContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, CudaError>;
}

impl<T> DriverContext<T> for Result<T, DriverError> {
    fn ctx(self, context: &'static str) -> Result<T, CudaError> {
        self.map_err(|source| CudaError::Driver { context, source })
    }
}
