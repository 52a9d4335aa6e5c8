//! Small shared pieces with no domain knowledge: the seeded RNG, atomic file writes, units and
//! the console (printing that never panics).

pub mod atomic_file;
pub mod console;
pub mod rng;
pub mod units;
