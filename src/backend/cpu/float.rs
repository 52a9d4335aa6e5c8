//! The float types CPU kernels are generic over (f32 for training, f64 for gradient checks).

use crate::ir::HostData;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real number type the CPU kernels compute in.
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + Default
    + std::fmt::Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn atan(self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    /// `e^x` for `x <= 0`: branch-free in f32 (vectorises; within 3 ulp), libm in f64.
    fn exp_nonpos(self) -> Self;
    /// `ln(1 + x)` for `0 <= x <= 1`: branch-free in f32 (within 3 ulp), libm in f64.
    fn ln_1p_unit(self) -> Self;
    /// The typed slice inside host storage, if it has this type.
    fn view(d: &HostData) -> Option<&[Self]>;
    /// The typed mutable slice inside host storage, if it has this type.
    fn view_mut(d: &mut HostData) -> Option<&mut [Self]>;
}

macro_rules! impl_float {
    ($t:ty, $variant:ident, $exp_nonpos:expr, $ln_1p_unit:expr) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline]
            fn atan(self) -> Self {
                <$t>::atan(self)
            }
            #[inline]
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            #[inline]
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
            }
            #[inline(always)]
            fn exp_nonpos(self) -> Self {
                $exp_nonpos(self)
            }
            #[inline(always)]
            fn ln_1p_unit(self) -> Self {
                $ln_1p_unit(self)
            }
            fn view(d: &HostData) -> Option<&[Self]> {
                match d {
                    HostData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn view_mut(d: &mut HostData) -> Option<&mut [Self]> {
                match d {
                    HostData::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

impl_float!(
    f32,
    F32,
    super::fastmath::exp_nonpos,
    super::fastmath::ln_1p_unit
);
impl_float!(f64, F64, f64::exp, f64::ln_1p);
