//! Compute-graph IR: ops with static shapes and dtypes, reverse-mode autodiff, liveness and buffer reuse.
