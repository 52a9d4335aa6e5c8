//! Integration tests of the `engine` area: optimizers against torch.optim, checkpoints,
//! hooks, and whole runs of the Runner with a small stand-in model.

mod checkpoint;
mod cli;
mod detector;
mod exec;
mod faults;
mod hostile;
mod kill;
mod optim;
mod pretrained;
mod pyref;
mod runner;
mod standin;
