//! mmrun: a training engine for object detectors driven by a declarative recipe language.
//!
//! Dependencies point one way (see `docs/ARCHITECTURE.md`): `cli → plan → {recipe, engine}`,
//! `engine → {model, data, eval, schedule} → graph → backend`, `recipe → {registry, schedule}`.
//! Nothing below `cli` imports it.

pub mod backend;
pub mod bench;
pub mod data;
pub mod dist;
pub mod engine;
pub mod eval;
pub mod graph;
pub mod ir;
#[cfg(feature = "jit")]
pub mod jit;
pub mod model;
pub mod plan;
pub mod recipe;
pub mod registry;
pub mod schedule;
pub mod syntax;
pub mod util;
pub mod viz;

#[doc(hidden)]
pub mod cli;
