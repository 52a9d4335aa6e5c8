//! CPU f64 reference vs CUDA kernels (run on a GPU machine by `scripts/gpu-check run`).
