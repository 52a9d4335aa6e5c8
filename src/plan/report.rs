//! A plan's graphs, built but not run: the detector's train and eval graphs at a static batch
//! shape, parameter counts per part, feature-map sizes, priors, and the planned memory of a
//! training step (the liveness/buffer-reuse plan), printed as a stable text dump by
//! `mmrun plan`, and the memory check `exec` makes before it loads any data.

use super::Plan;
use crate::data::config::{DataConfig, Resize, TransformConfig};
use crate::graph::{Graph, MemoryPlan};
use crate::ir::DType;
use crate::model::net::{Detector, GraphMode};
use crate::util::units::human_bytes;
use std::fmt::Write;

/// Shape of the planned step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanShape {
    pub batch: usize,
    /// `(height, width)` of the padded batch input.
    pub hw: (usize, usize),
}

/// What a plan builds: the detector's graphs at one batch shape, their sizes and memory.
#[derive(Clone, Debug)]
pub struct GraphReport {
    pub detector: String,
    pub shape: PlanShape,
    /// `(part, parameters, trainable)` for `backbone`, `neck` and the head (`bbox_head` or
    /// `rpn_head`).
    pub parts: Vec<(String, usize, usize)>,
    pub num_params: usize,
    pub num_trainable: usize,
    pub buffers: usize,
    pub featmap_sizes: Vec<(usize, usize)>,
    pub num_priors: usize,
    /// FLOPs of the inference network per image, as mmdetection's `get_flops` counts them
    /// (a multiply-add once; see `plan::flops`).
    pub flops_per_image: u64,
    /// Nodes and memory plan of the train step, or why it cannot be built.
    pub train: Result<(usize, MemoryPlan), String>,
    pub eval_memory: MemoryPlan,
}

impl GraphReport {
    /// The report as JSON (`mmrun plan --format json`): the same figures as the text, bytes
    /// unrounded.
    pub fn to_json(&self) -> serde_json::Value {
        let memory = |m: &MemoryPlan| {
            serde_json::json!({
                "peak_bytes": m.peak_bytes,
                "total_bytes": m.total_bytes,
                "external_bytes": m.external_bytes,
            })
        };
        serde_json::json!({
            "detector": self.detector,
            "batch": self.shape.batch,
            "input_hw": [self.shape.hw.0, self.shape.hw.1],
            "parts": self.parts.iter().map(|(name, params, trainable)| serde_json::json!({
                "name": name, "params": params, "trainable": trainable,
            })).collect::<Vec<_>>(),
            "params": self.num_params,
            "trainable": self.num_trainable,
            "buffers": self.buffers,
            "featmap_sizes": self.featmap_sizes.iter().map(|(h, w)| [h, w]).collect::<Vec<_>>(),
            "priors": self.num_priors,
            "flops_per_image": self.flops_per_image,
            "train": match &self.train {
                Ok((nodes, m)) => {
                    let mut v = memory(m);
                    v["nodes"] = (*nodes).into();
                    v
                }
                Err(e) => serde_json::json!({ "error": e }),
            },
            "eval": memory(&self.eval_memory),
        })
    }
}

/// Why a plan could not be made (a message naming the config path).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// The batch shape the plan implies: `data.samples_per_gpu` images of the largest size the
/// training pipeline can produce: the largest resize scale (`[long, short]`, or the largest
/// of a list, times the top of `ratio_range`) as landscape `short × long`, padded to the
/// pipeline's `size_divisor` or fixed pad `size`, or the largest of `data.shape_buckets` when
/// the recipe gives buckets. Falls back to 800×1333 (mmdetection's COCO default) for what the
/// recipe does not say.
pub fn default_shape(data: &DataConfig) -> PlanShape {
    let mut hw = (800usize, 1333usize);
    let mut div = 1usize;
    let mut fixed = None;
    let stages = data.train.as_ref().map(|t| t.params().pipeline.as_slice());
    for stage in stages.unwrap_or_default() {
        match stage {
            TransformConfig::Resize(r) => {
                if let Some((long, short)) = largest_scale(r) {
                    hw = (to_side(short), to_side(long));
                }
            }
            TransformConfig::Pad(p) => {
                if let Some(d) = p.size_divisor {
                    div = usize::try_from(d).unwrap_or(usize::MAX).max(1);
                }
                if let Some([h, w]) = p.size {
                    fixed = Some((h as usize, w as usize));
                }
            }
            _ => {}
        }
    }
    let up = |v: usize| v.div_ceil(div).saturating_mul(div);
    // Batches are padded to the smallest configured bucket that holds them: the largest
    // bucket is the largest step.
    let largest_bucket = (data.shape_buckets.iter())
        .map(|&[h, w]| (h as usize, w as usize))
        .max_by_key(|&(h, w)| h.saturating_mul(w));
    PlanShape {
        batch: data.samples_per_gpu,
        hw: largest_bucket.or(fixed).unwrap_or((up(hw.0), up(hw.1))),
    }
}

/// The largest `(long, short)` a resize stage can produce: its scale, or the largest sides of
/// a list of scales, times the top of its `ratio_range`.
fn largest_scale(r: &Resize) -> Option<(f64, f64)> {
    let long_short = |[a, b]: [f64; 2]| (a.max(b), a.min(b));
    let (long, short) = (r.scale.as_ref()?.list().into_iter())
        .map(long_short)
        .reduce(|(l0, s0), (l1, s1)| (l0.max(l1), s0.max(s1)))?;
    let ratio = r.ratio_range.map_or(1.0, |[lo, hi]| lo.max(hi));
    Some((long * ratio, short * ratio))
}

/// A planned side in pixels (rounded up; absurd values saturate and are refused later).
fn to_side(v: f64) -> usize {
    if v.is_finite() && v > 0.0 {
        v.ceil().min(usize::MAX as f64) as usize
    } else {
        0
    }
}

/// Parameters (not buffers) whose names start with `prefix`: `(all, trainable)` elements.
pub fn param_count(g: &Graph, prefix: &str) -> (usize, usize) {
    let mut all = 0;
    let mut tr = 0;
    for (k, s) in &g.params {
        if k.starts_with(prefix) && !s.buffer {
            let n: usize = s.shape.iter().product();
            all += n;
            if s.trainable {
                tr += n;
            }
        }
    }
    (all, tr)
}

/// The graph report of a plan at `shape` (or the plan's own, see [`default_shape`]).
pub fn report(plan: &Plan, shape: Option<PlanShape>) -> Result<GraphReport, PlanError> {
    let det = Detector::new(plan.model.clone()).map_err(|e| PlanError(e.to_string()))?;
    let detector = det.cfg.type_name().to_string();
    let shape = shape.unwrap_or_else(|| default_shape(&plan.data));
    let err = |e: crate::graph::GraphError| PlanError(format!("model: {e}"));
    let eval = det
        .build(GraphMode::Eval, shape.batch, shape.hw, DType::F32)
        .map_err(err)?;
    let train_graph = det.build(GraphMode::Train, shape.batch, shape.hw, DType::F32);
    let train = (train_graph.as_ref())
        .map(|t| (t.graph.nodes.len(), MemoryPlan::new(&t.graph)))
        .map_err(|e| e.to_string());
    // Counts come from the eval graph: the same parameters with the same trainable flags. A
    // two-stage detector's eval graph is its first stage: its train graph has them all.
    let second = (det.is_two_stage())
        .then(|| second_stage(&det, &eval.graph, shape.batch))
        .transpose()
        .map_err(err)?;
    let g = match (&second, &train_graph) {
        (Some(_), Ok(t)) => &t.graph,
        (Some(_), Err(e)) => return Err(PlanError(format!("model: {e}"))),
        (None, _) => &eval.graph,
    };
    let heads: &[&str] = match (&det.cfg, det.is_two_stage()) {
        (_, true) => &["rpn_head", "roi_head"],
        (c, false) if c.is_proposal_net() => &["rpn_head"],
        _ => &["bbox_head"],
    };
    let parts = ["backbone", "neck"]
        .iter()
        .chain(heads)
        .map(|p| {
            let (a, t) = param_count(g, &format!("{p}."));
            (p.to_string(), a, t)
        })
        .collect();
    let buffers = g
        .params
        .values()
        .filter(|s| s.buffer)
        .map(|s| s.shape.iter().product::<usize>())
        .sum();
    Ok(GraphReport {
        detector,
        shape,
        parts,
        num_params: g.num_params(),
        num_trainable: g.num_trainable(),
        buffers,
        featmap_sizes: eval.featmap_sizes.clone(),
        num_priors: eval.num_priors,
        flops_per_image: (super::flops::mmcv_flops(&eval.graph)
            + second.as_ref().map_or(0, super::flops::mmcv_flops))
            / shape.batch.max(1) as u64,
        train,
        eval_memory: MemoryPlan::new(&eval.graph),
    })
}

/// A two-stage detector's second stage at test time over its first stage's eval graph
/// (`test_cfg.rpn.max_per_img` RoIs per image, as `get_flops` runs it on 1000 proposals).
fn second_stage(
    det: &Detector,
    eval: &crate::graph::Graph,
    batch: usize,
) -> Result<crate::graph::Graph, crate::graph::GraphError> {
    let shapes: Vec<Vec<usize>> = (0..)
        .map_while(|l| {
            let name = crate::model::net::feat_name(l);
            (eval.outputs.iter())
                .find(|(n, _)| *n == name)
                .map(|&(_, id)| eval.shape(id).to_vec())
        })
        .collect();
    det.rcnn_eval_graph(batch * det.rcnn_eval_rois(), &shapes, DType::F32)
}

impl GraphReport {
    /// Bytes the planned training step needs at once: its intermediates at their planned
    /// peak plus the parameters and feeds it reads (optimizer state not included, so this
    /// is a lower bound of what a step takes).
    pub fn train_step_bytes(&self) -> Option<usize> {
        let (_, m) = self.train.as_ref().ok()?;
        Some(m.peak_bytes.saturating_add(m.external_bytes))
    }
}

/// Refuse, with the numbers, a recipe whose planned training step cannot fit in the
/// `available` bytes the opened device reports (`source` says where that number is from).
/// A recipe that cannot be planned is left to `exec`, which reports it where it fails.
pub fn check_fits(
    plan: &Plan,
    device: &str,
    available: Option<(u64, &str)>,
) -> Result<(), PlanError> {
    let Some((available, source)) = available else {
        return Ok(());
    };
    let Ok(p) = report(plan, None) else {
        return Ok(());
    };
    let (Some(needed), Ok((_, m))) = (p.train_step_bytes(), &p.train) else {
        return Ok(());
    };
    if needed as u128 <= u128::from(available) {
        return Ok(());
    }
    let PlanShape { batch, hw: (h, w) } = p.shape;
    Err(PlanError(format!(
        "the planned training step needs {}: {} of intermediates for a batch of {batch} x 3 x \
         {h} x {w} (from `data.samples_per_gpu` and the largest size `data.train.pipeline` \
         can make) and {} of parameters and inputs; the {device} has {} available \
         ({source}). Lower `data.samples_per_gpu`, the resize scale or the model's size \
         (`mmrun plan` shows the plan)",
        human_bytes(needed as u128),
        human_bytes(m.peak_bytes as u128),
        human_bytes(m.external_bytes as u128),
        human_bytes(u128::from(available))
    )))
}

/// `37968692` → `37,968,692`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

impl std::fmt::Display for GraphReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        let (h, w) = self.shape.hw;
        let _ = writeln!(s, "detector: {}", self.detector);
        let _ = writeln!(s, "batch: {} x 3 x {h} x {w}", self.shape.batch);
        let _ = writeln!(
            s,
            "parameters: {} ({} trainable)",
            thousands(self.num_params),
            thousands(self.num_trainable)
        );
        for (p, a, t) in &self.parts {
            let _ = writeln!(
                s,
                "  {p:<10} {:>12} ({} trainable)",
                thousands(*a),
                thousands(*t)
            );
        }
        let _ = writeln!(s, "buffers: {}", thousands(self.buffers));
        let _ = writeln!(
            s,
            "FLOPs per image: {:.2} G (mmdetection's get_flops: a multiply-add counted once)",
            self.flops_per_image as f64 / 1e9
        );
        let sizes: Vec<String> = self
            .featmap_sizes
            .iter()
            .map(|(y, x)| format!("{y}x{x}"))
            .collect();
        let _ = writeln!(s, "levels: {}", sizes.join(" "));
        let _ = writeln!(s, "priors per image: {}", thousands(self.num_priors));
        match &self.train {
            Ok((nodes, m)) => {
                let _ = writeln!(s, "train graph: {nodes} nodes");
                let _ = writeln!(
                    s,
                    "train step memory: {} planned peak of intermediates ({} without reuse) + {} params and feeds = {} (optimizer state not included)",
                    mib(m.peak_bytes),
                    mib(m.total_bytes),
                    mib(m.external_bytes),
                    mib(m.peak_bytes + m.external_bytes)
                );
            }
            Err(e) => {
                let _ = writeln!(s, "train graph: not built: {e}");
            }
        }
        let e = &self.eval_memory;
        let _ = writeln!(
            s,
            "eval forward memory: {} planned peak + {} params and feeds = {}",
            mib(e.peak_bytes),
            mib(e.external_bytes),
            mib(e.peak_bytes + e.external_bytes)
        );
        f.write_str(&s)
    }
}
