//! Limits on sizes a user gives (image sides, batch sizes) and fallible allocation of the
//! buffers whose size derives from them.
//!
//! A size a user writes (`--size`, a resize scale, `data.samples_per_gpu`, a shape bucket) is
//! checked where it is read, against the limits below, with an error naming it. What is left
//! (an image as large as the limits allow, under a tight address-space limit) is allocated
//! through [`zeroed`], so a failed allocation is an error naming what it was for, never an
//! abort.

use super::error::{DataError, Result};

/// The largest image side (pixels) a transform may produce, a shape bucket may have, or the
/// shapes dataset may draw: 16384 px, about 3 GiB for one f32 image at the limit.
pub const MAX_SIDE: usize = 16_384;

/// The most images a batch may hold (`data.samples_per_gpu`).
pub const MAX_BATCH: usize = 1_024;

/// The most loader worker threads (`data.workers_per_gpu`): each holds its batches in memory.
pub const MAX_WORKERS: usize = 64;

/// The most batches a worker prepares ahead (`data.prefetch`): the channel is allocated whole.
pub const MAX_PREFETCH: usize = 64;

/// The largest image file the loader reads: 1 GiB (a file past it is not an image a detector
/// trains on, or not an image).
pub const MAX_IMAGE_FILE_BYTES: u64 = 1 << 30;

/// The most bytes a decoded image may take (8-bit RGB): 512 MiB, the `image` crate's own
/// default limit, about 13,000 × 13,000 pixels.
pub const MAX_DECODED_BYTES: usize = 512 << 20;

/// A vector of `n` copies of `value`, or an error saying how much memory `what` needed.
pub fn zeroed<T: Clone>(n: usize, value: T, what: impl FnOnce() -> String) -> Result<Vec<T>> {
    let mut v = Vec::new();
    match v.try_reserve_exact(n) {
        Ok(()) => {
            v.resize(n, value);
            Ok(v)
        }
        Err(_) => Err(DataError::Alloc {
            what: what(),
            bytes: (n as u128) * std::mem::size_of::<T>() as u128,
        }),
    }
}

/// An empty vector with room for `n` elements, or an error naming `what`.
pub fn with_capacity<T>(n: usize, what: impl FnOnce() -> String) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| DataError::Alloc {
        what: what(),
        bytes: (n as u128) * std::mem::size_of::<T>() as u128,
    })?;
    Ok(v)
}

/// `a * b * ...` for a buffer size, or an error naming `what` when it overflows.
pub fn product(dims: &[usize], what: impl FnOnce() -> String) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::Alloc {
            what: what(),
            bytes: dims.iter().map(|&d| d as u128).product(),
        })
}

pub use crate::util::units::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_allocations_are_errors() {
        let e = zeroed(usize::MAX / 2, 0f32, || "a test buffer".into()).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("a test buffer") && m.contains("cannot allocate"),
            "{m}"
        );
        assert!(with_capacity::<u64>(usize::MAX / 4, || "x".into()).is_err());
        assert!(product(&[usize::MAX, 2], || "x".into()).is_err());
        assert_eq!(product(&[2, 3, 4], || "x".into()).unwrap(), 24);
        assert_eq!(zeroed(3, 1u8, || "x".into()).unwrap(), vec![1, 1, 1]);
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10), "10 B");
    }
}
