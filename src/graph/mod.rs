//! Compute-graph IR: ops with static shapes and dtypes, reverse-mode autodiff, liveness and
//! buffer reuse, the named parameter store, seeded initialisation and the stable text dump.
//!
//! Owns the *meaning* of a step graph, not its kernels: every op is executed by a
//! [`crate::backend::Backend`], whose CPU implementation is the reference.
//!
//! Typical use: build a forward graph with [`GraphBuilder`] (shape errors come back as
//! [`GraphError`] values), turn it into a step graph with [`GraphBuilder::backward`], create a
//! [`ParamStore`] from the graph's parameter specs, and run it with an [`Executor`].

mod autodiff;
mod builder;
mod dtype;
mod dump;
mod error;
mod exec;
mod init;
mod losses;
mod memory;
mod nn;
pub mod op;
mod params;
mod tensor;

pub use builder::{Graph, GraphBuilder, Node, NodeId, ParamSpec};
pub use dtype::{DType, numel};
pub use error::GraphError;
pub use exec::{ExecError, Executor, RunOutputs};
pub use init::Init;
pub use losses::Reduction;
pub use memory::MemoryPlan;
pub use nn::{BnMode, conv_out_size};
pub use op::Op;
pub use params::ParamStore;
pub use tensor::{HostData, HostTensor};
