//! The CPU backend's losses against PyTorch autograd in float64, through an f64 reference of
//! mmdetection's formulas (`formulas`): the reference pinned to torch (`torch`, skipped with a
//! reason without torch) and the CPU backend pinned to the reference (`cpu`).

mod cpu;
mod formulas;
mod torch;
