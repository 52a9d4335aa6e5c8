//! Proposal recall the way mmdetection's `proposal_fast` computes it (`eval_recalls`).

/// Metric keys of `proposal_fast` with the default `proposal_nums=(100,300,1000)`.
pub const PROPOSAL_FAST_METRIC_NAMES: [&str; 3] = ["AR@100", "AR@300", "AR@1000"];
