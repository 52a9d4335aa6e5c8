//! Parallel elementwise maps over equally long slices, cut into [`CHUNK`]-sized pieces.
//!
//! Each chunk runs in a function of its own (`#[inline(never)]`), so that the element
//! function is inlined into a small loop that vectorises: written inline in the closure
//! handed to rayon, it was called once per element (the sigmoid focal loss took 19 instead
//! of 5 ns per element).

use super::CHUNK;
use rayon::prelude::*;

/// `out[i] = f(a[i])`.
pub fn map1<T: Copy + Send + Sync>(a: &[T], out: &mut [T], f: impl Fn(T) -> T + Sync) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .for_each(|(o, a)| chunk1(o, a, &f));
}

/// `out[i] = f(a[i], b[i])`.
pub fn map2<T: Copy + Send + Sync>(a: &[T], b: &[T], out: &mut [T], f: impl Fn(T, T) -> T + Sync) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| chunk2(o, a, b, &f));
}

/// `out[i] = f(a[i], b[i], c[i])`.
pub fn map3<T: Copy + Send + Sync>(
    a: &[T],
    b: &[T],
    c: &[T],
    out: &mut [T],
    f: impl Fn(T, T, T) -> T + Sync,
) {
    out.par_chunks_mut(CHUNK)
        .zip(
            a.par_chunks(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .zip(c.par_chunks(CHUNK)),
        )
        .for_each(|(o, ((a, b), c))| chunk3(o, a, b, c, &f));
}

#[inline(never)]
fn chunk1<T: Copy, F: Fn(T) -> T>(o: &mut [T], a: &[T], f: &F) {
    for (o, &x) in o.iter_mut().zip(a) {
        *o = f(x);
    }
}

#[inline(never)]
fn chunk2<T: Copy, F: Fn(T, T) -> T>(o: &mut [T], a: &[T], b: &[T], f: &F) {
    for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

#[inline(never)]
fn chunk3<T: Copy, F: Fn(T, T, T) -> T>(o: &mut [T], a: &[T], b: &[T], c: &[T], f: &F) {
    for (((o, &x), &y), &z) in o.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(x, y, z);
    }
}
