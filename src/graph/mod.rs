//! Compute graphs of the [`crate::ir`] ops: static shapes and dtypes, reverse-mode autodiff,
//! liveness and buffer reuse, seeded initialisation of parameters and the stable text dump.
//!
//! Owns the *meaning* of a step graph, not its kernels or its parameters' values: a backend
//! executes the ops and the engine's executor runs a graph against the engine's parameter set.
//!
//! Typical use: build a forward graph with [`GraphBuilder`] (shape errors come back as
//! [`GraphError`] values), turn it into a step graph with [`GraphBuilder::backward`], then hand
//! it to `engine::Executor` with an `engine::ParamSet` made from its parameter specs.

mod autodiff;
mod builder;
mod dump;
mod error;
mod fusion;
mod init;
mod losses;
mod memory;
mod nn;

pub use builder::{Graph, GraphBuilder, Node, NodeId, ParamSpec};
pub use error::GraphError;
pub use fusion::fuse_elementwise;
pub use init::Init;
pub use losses::Reduction;
pub use memory::MemoryPlan;
pub use nn::BnMode;
