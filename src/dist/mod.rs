//! Collective communication between the ranks of a data-parallel run, behind one trait, and
//! how a process finds out it is a rank ([`launch`]).
//!
//! [`Collective`] is what data-parallel training needs of a process group: sums over ranks
//! that leave the same bits on every rank, a broadcast from one rank, a gather of opaque
//! bytes (evaluation results) and a barrier. The implementation is an existing library, never
//! a hand-written ring: MPI (`mpi` feature, Open MPI through the `mpi` crate) for CPU ranks.
//! A run of one process has no collective at all (`Option<Dist>` is `None`), so the
//! single-device path does not pay for, or depend on, any of this.
//!
//! This module knows nothing of parameters or models: `engine::ddp` decides what is
//! reduced when.

pub mod launch;
#[cfg(feature = "mpi")]
mod mpi;

use std::rc::Rc;

/// A collective failed or cannot start.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DistError {
    #[error("{0}")]
    Init(String),
    #[error("rank {rank}: {message}")]
    Comm { rank: usize, message: String },
}

/// One process's handle on its process group. Every call is collective: every rank must make
/// the same calls in the same order (a rank that does not, or dies, makes the others stop:
/// MPI's default error handler aborts the job, and `mpirun` ends every rank).
pub trait Collective: std::fmt::Debug {
    /// This process's rank, `0..world()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world(&self) -> usize;
    /// Element-wise sum over ranks, in place; every rank receives the same bits.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<(), DistError>;
    /// Element-wise sum over ranks, in place, in f64.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<(), DistError>;
    /// Element-wise maximum over ranks, in place.
    fn all_reduce_max_u64(&self, buf: &mut [u64]) -> Result<(), DistError>;
    /// `root`'s values, to every rank.
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<(), DistError>;
    /// Every rank's bytes, in rank order, to every rank.
    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, DistError>;
    /// Wait until every rank reaches this call.
    fn barrier(&self) -> Result<(), DistError>;
}

/// A shared handle on the process group (the runner and the task both hold one). MPI is
/// driven from the main thread only, so the handle is not `Send`.
pub type Dist = Rc<dyn Collective>;

/// Rank 0 of the group, or the only process.
pub fn is_main(dist: Option<&Dist>) -> bool {
    dist.is_none_or(|d| d.rank() == 0)
}

/// `(rank, world)`, `(0, 1)` for a single process.
pub fn rank_world(dist: Option<&Dist>) -> (usize, usize) {
    dist.map_or((0, 1), |d| (d.rank(), d.world()))
}
