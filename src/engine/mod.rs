//! The Runner: workflow, hook points, optimizers, schedules, checkpoint/resume, logging.
pub mod schedule;
