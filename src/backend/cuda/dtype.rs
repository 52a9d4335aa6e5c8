//! Element types the kernels accept for their floating-point inputs and gradients.
//! Arithmetic is always f32 inside the kernels; 16-bit types are converted on load and
//! rounded to nearest-even on store.

use cudarc::driver::{DeviceRepr, ValidAsZeroBits};

/// The dtype suffix of a kernel entry (`focal_fwdbwd_bf16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    /// The suffix used in entry names.
    pub fn suffix(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

/// A storage type with a kernel variant: f32, half::f16, half::bf16.
pub trait KernelFloat: DeviceRepr + ValidAsZeroBits + Copy + Send + Sync + Unpin + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl KernelFloat for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl KernelFloat for half::f16 {
    const DTYPE: DType = DType::F16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        half::f16::from_f64(v)
    }
}

impl KernelFloat for half::bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        half::bf16::from_f64(v)
    }
}
