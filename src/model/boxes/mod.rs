//! Box operations on `[x1, y1, x2, y2]` boxes: overlaps (IoU, GIoU, IoF), box coders and NMS.
//!
//! Boxes are `[T; 4]` with `T` either `f32` or `f64` (the [`Real`] trait), held in slices.
//! Widths are `x2 - x1` (no `+1`), as in torchvision and mmdetection 2.x.

mod coder;
mod nms;
mod overlaps;

pub use coder::{DEFAULT_WH_RATIO_CLIP, DeltaXYWHBBoxCoder, DistancePointBBoxCoder};
pub use nms::{batched_nms, nms};
pub use overlaps::{OverlapMode, bbox_overlaps, box_iou, generalized_box_iou};

/// One box `[x1, y1, x2, y2]`.
pub type BBox<T> = [T; 4];

/// The float types box ops run on (`f32` in the data stage, `f64` in tests).
pub trait Real:
    Copy
    + PartialOrd
    + Default
    + std::fmt::Debug
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    /// `max` that returns `self` when either side is NaN-free and equal.
    fn max(self, o: Self) -> Self {
        if o > self { o } else { self }
    }
    fn min(self, o: Self) -> Self {
        if o < self { o } else { self }
    }
    /// Clamp into `[lo, hi]`.
    fn clamp_to(self, lo: Self, hi: Self) -> Self {
        self.max(lo).min(hi)
    }
}

macro_rules! real_impl {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = <$t>::INFINITY;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
        }
    };
}
real_impl!(f32);
real_impl!(f64);

/// Area of one box (negative extents give a negative area, as in torchvision).
pub fn area<T: Real>(b: &BBox<T>) -> T {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// Clip a box to an image of `(height, width)`.
pub fn clip_box<T: Real>(b: &mut BBox<T>, height: T, width: T) {
    b[0] = b[0].clamp_to(T::ZERO, width);
    b[1] = b[1].clamp_to(T::ZERO, height);
    b[2] = b[2].clamp_to(T::ZERO, width);
    b[3] = b[3].clamp_to(T::ZERO, height);
}
