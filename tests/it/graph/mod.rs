//! Integration tests of the `graph` area: gradient checks of every op in f64 against central
//! finite differences, losses against PyTorch reference values (`torchref`), a small network
//! that trains, memory planning, determinism and the text dump; mixed precision against torch's
//! autocast; the elementwise fusion pass.

mod autocast;
mod fusion;
mod gradcheck;
mod harness;
mod network;
mod roi_align;
mod torchref;
