//! Host tensors: a shape and a typed, contiguous, row-major vector. Used for feeds, outputs,
//! parameters and checkpoints; backends upload them into their own opaque buffers.

use super::dtype::{DType, fmt_shape, numel};
use half::{bf16, f16};

/// Typed host storage.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    U8(Vec<u8>),
}

impl HostData {
    /// Zeros of a dtype.
    pub fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F32 => HostData::F32(vec![0.0; len]),
            DType::F64 => HostData::F64(vec![0.0; len]),
            DType::F16 => HostData::F16(vec![f16::ZERO; len]),
            DType::BF16 => HostData::BF16(vec![bf16::ZERO; len]),
            DType::I32 => HostData::I32(vec![0; len]),
            DType::U8 => HostData::U8(vec![0; len]),
        }
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F64(_) => DType::F64,
            HostData::F16(_) => DType::F16,
            HostData::BF16(_) => DType::BF16,
            HostData::I32(_) => DType::I32,
            HostData::U8(_) => DType::U8,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::F64(v) => v.len(),
            HostData::F16(v) => v.len(),
            HostData::BF16(v) => v.len(),
            HostData::I32(v) => v.len(),
            HostData::U8(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element `i` as f64 (exact for every type but u8/i32 beyond 2^53, which cannot occur).
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            HostData::F32(v) => v[i] as f64,
            HostData::F64(v) => v[i],
            HostData::F16(v) => v[i].to_f64(),
            HostData::BF16(v) => v[i].to_f64(),
            HostData::I32(v) => v[i] as f64,
            HostData::U8(v) => v[i] as f64,
        }
    }
    /// Converts to another dtype (rounding to nearest for narrower floats, truncating toward
    /// zero for integers).
    pub fn cast(&self, dtype: DType) -> HostData {
        let n = self.len();
        let it = (0..n).map(|i| self.get_f64(i));
        match dtype {
            DType::F32 => HostData::F32(it.map(|x| x as f32).collect()),
            DType::F64 => HostData::F64(it.collect()),
            DType::F16 => HostData::F16(it.map(f16::from_f64).collect()),
            DType::BF16 => HostData::BF16(it.map(bf16::from_f64).collect()),
            DType::I32 => HostData::I32(it.map(|x| x as i32).collect()),
            DType::U8 => HostData::U8(it.map(|x| x as u8).collect()),
        }
    }
}

/// Data that does not fill the shape it was given.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("shape {} holds {} elements but {given} were given", fmt_shape(.shape), numel(.shape))]
pub struct LengthMismatch {
    pub shape: Vec<usize>,
    pub given: usize,
}

/// A shape plus contiguous row-major data.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

impl HostTensor {
    /// A tensor from a shape and data; errors when the lengths disagree.
    pub fn new(shape: Vec<usize>, data: HostData) -> Result<Self, LengthMismatch> {
        if numel(&shape) != data.len() {
            return Err(LengthMismatch {
                shape,
                given: data.len(),
            });
        }
        Ok(HostTensor { shape, data })
    }
    /// f32 tensor (see [`HostTensor::new`]).
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, LengthMismatch> {
        Self::new(shape, HostData::F32(data))
    }
    /// f64 tensor.
    pub fn f64(shape: Vec<usize>, data: Vec<f64>) -> Result<Self, LengthMismatch> {
        Self::new(shape, HostData::F64(data))
    }
    /// i32 tensor.
    pub fn i32(shape: Vec<usize>, data: Vec<i32>) -> Result<Self, LengthMismatch> {
        Self::new(shape, HostData::I32(data))
    }
    /// A scalar (shape `[]`) of the given float dtype.
    pub fn scalar(dtype: DType, value: f64) -> Self {
        HostTensor {
            shape: vec![],
            data: HostData::F64(vec![value]).cast(dtype),
        }
    }
    /// Zeros.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Self {
        let n = numel(&shape);
        HostTensor {
            shape,
            data: HostData::zeros(dtype, n),
        }
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    /// The data as f32, if that is its type.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }
    /// The data as mutable f32, if that is its type.
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }
    /// The data as f64, if that is its type.
    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            HostData::F64(v) => Some(v),
            _ => None,
        }
    }
    /// The data as mutable f64, if that is its type.
    pub fn as_f64_mut(&mut self) -> Option<&mut [f64]> {
        match &mut self.data {
            HostData::F64(v) => Some(v),
            _ => None,
        }
    }
    /// The data as i32, if that is its type.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            HostData::I32(v) => Some(v),
            _ => None,
        }
    }
    /// Every element converted to f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        (0..self.numel()).map(|i| self.data.get_f64(i)).collect()
    }
    /// A copy in another dtype.
    pub fn cast(&self, dtype: DType) -> HostTensor {
        HostTensor {
            shape: self.shape.clone(),
            data: self.data.cast(dtype),
        }
    }
}
