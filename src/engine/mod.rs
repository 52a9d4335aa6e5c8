//! The Runner: workflow, hook points, optimizers, checkpoint/resume, logging.
//!
//! Owns everything that happens around a model's train step: what runs when (the workflow and
//! hooks), how parameters change (optimizers), and what survives a crash (checkpoints). Does
//! not own schedules' formulas (`crate::schedule`), parsing recipes, or
//! the model's maths.

pub mod checkpoint;
pub mod executor;
pub mod hooks;
pub mod interrupt;
pub mod optim;
pub mod params;
pub mod pretrained;
pub mod runner;
pub mod task;

pub use executor::{Executor, GraphRunError, LateFeeds, RunOutputs};
pub use on_device::{RunGraph, executor_on};
pub use params::{Param, ParamKind, ParamSet};
pub use runner::{CheckpointSettings, RunConfig, RunError, RunSummary, Runner};
pub use task::{Metrics, Task, TaskError, TrainOutput};
pub mod ddp;
pub mod detector;
pub mod device_params;
pub mod job;
pub mod on_device;
pub mod resident;
pub mod schedule_curve;
pub mod setup;
pub mod step;
pub mod workdir;
