//! Integration tests of the `recipe` area: UI cases (`tests/ui`), merge semantics, pipelines,
//! formatting and a property test that no input panics.

mod check_exec;
mod cli;
mod fmt;
mod fuzz;
mod limits;
mod long_lines;
mod merge;
mod pipelines;
mod plan_args;
mod registry_walk;
mod ui;
