//! The `Backend` trait and its implementations: `cpu` (the reference, the living spec) and `cuda`.

#[cfg(feature = "cuda")]
pub mod cuda;
