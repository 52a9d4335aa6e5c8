//! The one integration-test binary. Each area owns one module (file or folder).
#![allow(clippy::disallowed_macros)] // tests print freely; the binary prints through util::console

mod backend;
mod bench;
mod bin;
mod cuda;
mod data;
mod engine;
mod engine_schedule;
mod eval;
mod fuzz;
mod graph;
mod layering;
mod model;
mod recipe;
mod support;
