//! The one integration-test binary. Each area owns one module (file or folder).

mod cuda;
mod data;
mod engine;
mod engine_schedule;
mod eval;
mod graph;
mod model;
mod recipe;
