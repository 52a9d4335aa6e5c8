//! Small shared pieces with no domain knowledge: the seeded RNG and atomic file writes.

pub mod atomic_file;
pub mod rng;
pub mod units;
