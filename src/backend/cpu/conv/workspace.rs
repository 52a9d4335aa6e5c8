//! Per-thread scratch buffers for im2col bands, kept between calls so that a convolution does
//! not allocate, page-fault and zero a fresh multi-megabyte buffer every time.

use super::super::Float;
use std::cell::RefCell;

thread_local! {
    /// Backing words (8-byte aligned, so they can be viewed as `f32` or `f64`).
    static WORDS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer of `len` elements. The contents are stale values
/// of earlier calls: callers must write every element before reading it.
///
/// The buffer is taken out of the thread-local slot for the duration of `f`, so a nested call
/// on the same thread (rayon may run another task here while `f` waits on a join) gets its own
/// buffer instead of aliasing this one.
pub(super) fn with_workspace<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
    assert!(
        size > 0 && 8 % size == 0 && align <= 8,
        "workspace: unsupported element type"
    );
    let words = (len * size).div_ceil(8);
    let mut buf = WORDS.with(|w| std::mem::take(&mut *w.borrow_mut()));
    if buf.len() < words {
        buf = vec![0.0; words];
    }
    // SAFETY: the buffer holds at least `len * size` bytes, is 8-byte aligned (>= align of T),
    // and is exclusively owned here. `Float` is implemented for f32 and f64 only, for which
    // every bit pattern is a valid value.
    let view = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<T>(), len) };
    let r = f(view);
    WORDS.with(|w| {
        let mut slot = w.borrow_mut();
        if slot.len() < buf.len() {
            *slot = buf;
        }
    });
    r
}
