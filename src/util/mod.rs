//! Small shared pieces with no domain knowledge: the seeded RNG, atomic file writes, safe
//! reads of user-named files, units, UTC timestamps, the console (printing that never
//! panics), progress bars and protobuf encoding.

pub mod atomic_file;
pub mod clock;
pub mod console;
pub mod progress;
pub mod protobuf;
pub mod read;
pub mod rng;
pub mod units;
